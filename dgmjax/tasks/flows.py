"""Tasks: flows on dequantized images, discrete image models, vector flows, 2-D densities."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax.bijectors import Logit
from dgmjax.data import ArrayBatches, ImageData, SamplerBatches, sample_toy, toy_log_prob
from dgmjax.dequantization import (
    bits_per_dim,
    dequantization_bound,
    importance_weighted_log_likelihood,
    uniform_dequantize,
    uniform_proposal,
)
from dgmjax.tasks.base import Task
from dgmjax.training.plotting import save_density_plot, save_image_grid

DEQUANTIZATIONS = ("uniform", "variational")


def continuous_to_levels(x: jax.Array, num_levels: int) -> jax.Array:
    """Maps samples in [0, 1) back to integer levels: floor(x K), clipped to [0, K)."""
    return jnp.clip(jnp.floor(x * num_levels), 0, num_levels - 1).astype(jnp.int32)


def image_flow_task(model: nn.Module, train: ImageData, test: ImageData, *,
                    dequantization: str = "uniform", dequantizer: nn.Module | None = None,
                    eval_importance_samples: int = 0, num_samples: int = 64) -> Task:
    """A flow on [0, 1)^D fitted to integer images through dequantization.

    The objective is the dequantization bound on log P(x) in bits per
    dimension, -(log p((x + u) / K) - D log K - log q(u|x)) / (D ln 2), with
    the model's preprocessing log-dets (logit) inside log p:

    - "uniform": u ~ U[0, 1)^D, log q = 0 (the lecture's theorem);
    - "variational": u ~ q(u|x), a `VariationalDequantizer` trained jointly
      (Flow++); parameters are {"flow": ..., "dequantizer": ...}.

    Eval reports `bpd_bound` (one sample of u) and, with
    `eval_importance_samples` = S > 1, `bpd_iw`: the S-sample importance-
    weighted estimate with the same q, tighter than the bound. Both are upper
    bounds on the true bits/dim (in expectation) and are named as such.
    """
    if dequantization not in DEQUANTIZATIONS:
        raise ValueError(f"`dequantization` must be one of {DEQUANTIZATIONS}; got {dequantization!r}.")
    if (dequantization == "variational") != (dequantizer is not None):
        raise ValueError("`dequantizer` (a VariationalDequantizer) is needed exactly when "
                         f"dequantization='variational'; got dequantization={dequantization!r}.")
    if train.num_levels != test.num_levels or train.image_shape != test.image_shape:
        raise ValueError(
            f"train and test splits disagree: {train.image_shape}/{train.num_levels} levels vs "
            f"{test.image_shape}/{test.num_levels} levels."
        )
    num_levels, num_dims = train.num_levels, math.prod(train.image_shape)
    variational = dequantizer is not None
    flow_params = (lambda params: params["flow"]) if variational else (lambda params: params)

    def proposal(params):
        if variational:
            return lambda key, y: dequantizer.apply(params["dequantizer"], key, y)
        return uniform_proposal

    def bound(params, y, key):
        u, log_q = proposal(params)(key, y)
        return dequantization_bound(lambda x: model.apply(flow_params(params), x), y, u, log_q,
                                    num_levels, event_ndims=3)

    def init_fn(key, batch):
        k1, k2, k3 = jax.random.split(key, 3)
        x, _ = uniform_dequantize(k1, batch["image"], num_levels, event_ndims=3)
        flow = model.init(k2, x)
        if not variational:
            return flow
        return {"flow": flow, "dequantizer": dequantizer.init(k3, k1, batch["image"])}

    def loss_fn(params, batch, key):
        log_p = bound(params, batch["image"], key)
        bpd = jnp.mean(bits_per_dim(log_p, num_dims))
        return bpd, {"bpd_bound": bpd, "nll_bound_nats": -jnp.mean(log_p)}

    def eval_fn(params, batch, key):
        k1, k2 = jax.random.split(key)
        log_p = bound(params, batch["image"], k1)
        out = {"bpd_bound": bits_per_dim(log_p, num_dims), "nll_bound_nats": -log_p}
        if eval_importance_samples > 1:
            iw = importance_weighted_log_likelihood(
                k2, batch["image"], eval_importance_samples, proposal(params),
                lambda x: model.apply(flow_params(params), x), num_levels,
                chunk_size=min(eval_importance_samples, 8), event_ndims=3)
            out.update(bpd_iw=bits_per_dim(iw, num_dims), nll_iw_nats=-iw)
        return out

    def make_train_batches(batch_size, key, sharding):
        return ArrayBatches(train.arrays(), batch_size, key=key, sharding=sharding)

    @functools.partial(jax.jit, static_argnums=2)
    def _sample_levels(params, key, n):
        x = model.apply(flow_params(params), key, n, method=model.sample)
        return continuous_to_levels(x, num_levels)

    def save_samples(params, key, prefix: Path):
        levels = np.asarray(_sample_levels(params, key, num_samples))
        path = save_image_grid(levels, num_levels, f"{prefix}.png",
                               title=f"{model.__class__.__name__} samples, {train.name}")
        return [path]

    def headline(m):
        line = (f"test bits/dim {m['bpd_bound']:.4f} ({dequantization}-dequantized upper bound; "
                f"{m['nll_bound_nats']:.2f} nats/image)")
        if "bpd_iw" in m:
            line += f"; importance-weighted (S={eval_importance_samples}) {m['bpd_iw']:.4f}"
        return line

    return Task(f"{model.__class__.__name__} on {train.name} ({dequantization} dequantization)",
                init_fn, loss_fn, eval_fn, make_train_batches, test.arrays(), save_samples, headline)


def discrete_image_task(model: nn.Module, train: ImageData, test: ImageData, *,
                        num_samples: int = 16) -> Task:
    """A model of the integers themselves (PixelCNN, integer flow): exact log P(x), no bound.

    `model.apply(params, x)` must return log P(x) in nats per image for integer
    images x; the objective is bits/dim, reported with nats per image.
    """
    if train.num_levels != test.num_levels or train.image_shape != test.image_shape:
        raise ValueError("train and test splits disagree in image shape or num_levels.")
    num_levels, num_dims = train.num_levels, math.prod(train.image_shape)

    def init_fn(key, batch):
        return model.init(key, batch["image"])

    def loss_fn(params, batch, key):
        log_p = model.apply(params, batch["image"])
        bpd = jnp.mean(bits_per_dim(log_p, num_dims))
        return bpd, {"bpd": bpd, "nll_nats": -jnp.mean(log_p)}

    def eval_fn(params, batch, key):
        log_p = model.apply(params, batch["image"])
        return {"bpd": bits_per_dim(log_p, num_dims), "nll_nats": -log_p}

    def make_train_batches(batch_size, key, sharding):
        return ArrayBatches(train.arrays(), batch_size, key=key, sharding=sharding)

    @functools.partial(jax.jit, static_argnums=2)
    def _sample(params, key, n):
        return jnp.clip(model.apply(params, key, n, method=model.sample), 0, num_levels - 1)

    def save_samples(params, key, prefix: Path):
        images = np.asarray(_sample(params, key, num_samples))
        return [save_image_grid(images, num_levels, f"{prefix}.png",
                                title=f"{model.__class__.__name__} samples, {train.name}")]

    def headline(m):
        return (f"test {m['nll_nats']:.2f} nats/image = {m['nll_nats'] / num_dims:.4f} nats/dim = "
                f"{m['bpd']:.4f} bits/dim (exact discrete likelihood)")

    return Task(f"{model.__class__.__name__} on {train.name}", init_fn, loss_fn, eval_fn,
                make_train_batches, test.arrays(), save_samples, headline)


def logit_space_flow_task(model: nn.Module, train: ImageData, test: ImageData, *,
                          logit_alpha: float = 1e-6, num_samples: int = 64) -> Task:
    """A vector flow on flattened images in logit space, as in the MAF paper's MNIST experiments.

    Pixels y are dequantized, x = (y + u) / K, and mapped to logit space,
    t = logit(alpha + (1 - 2 alpha) x) (alpha = 1e-6 in the MAF paper); the
    model is a density on t in R^D. Reported:

    - `logit_ll_nats`: log p(t), the MAF paper's number (its Table 2 unit);
    - `nll_bound_nats` / `bpd_bound`: the same model as a bound on the
      discrete pixels, -log P(y) <= -(log p(t) + log|dt/dx| - D log K),
      every Jacobian included.
    The objective is `bpd_bound`, whose parameter gradient is that of log p(t).
    """
    if train.num_levels != test.num_levels or train.image_shape != test.image_shape:
        raise ValueError("train and test splits disagree in image shape or num_levels.")
    num_levels, shape = train.num_levels, train.image_shape
    num_dims = math.prod(shape)
    logit = distrax.Block(Logit(logit_alpha), 3)

    def to_logit_space(key, images):
        x, log_det_scale = uniform_dequantize(key, images, num_levels, event_ndims=3)
        t, log_det_logit = logit.forward_and_log_det(x)
        return t.reshape(t.shape[:-3] + (num_dims,)), log_det_scale + log_det_logit

    def init_fn(key, batch):
        t, _ = to_logit_space(key, batch["image"])
        return model.init(key, t)

    def terms(params, batch, key):
        t, log_det = to_logit_space(key, batch["image"])
        log_p_t = model.apply(params, t)
        return log_p_t, log_p_t + log_det

    def loss_fn(params, batch, key):
        log_p_t, bound = terms(params, batch, key)
        bpd = jnp.mean(bits_per_dim(bound, num_dims))
        return bpd, {"bpd_bound": bpd, "logit_ll_nats": jnp.mean(log_p_t)}

    def eval_fn(params, batch, key):
        log_p_t, bound = terms(params, batch, key)
        return {"logit_ll_nats": log_p_t, "nll_bound_nats": -bound,
                "bpd_bound": bits_per_dim(bound, num_dims)}

    def make_train_batches(batch_size, key, sharding):
        return ArrayBatches(train.arrays(), batch_size, key=key, sharding=sharding)

    @functools.partial(jax.jit, static_argnums=2)
    def _sample_levels(params, key, n):
        t = model.apply(params, key, n, method=model.sample).reshape((n,) + tuple(shape))
        return continuous_to_levels(logit.inverse(t), num_levels)

    def save_samples(params, key, prefix: Path):
        levels = np.asarray(_sample_levels(params, key, num_samples))
        return [save_image_grid(levels, num_levels, f"{prefix}.png",
                                title=f"{model.__class__.__name__} samples, {train.name}")]

    def headline(m):
        return (f"test log-likelihood in logit space {m['logit_ll_nats']:.1f} nats (alpha="
                f"{logit_alpha:g}); {m['bpd_bound']:.4f} bits/dim on the pixels (upper bound)")

    return Task(f"{model.__class__.__name__} on {train.name} in logit space", init_fn, loss_fn,
                eval_fn, make_train_batches, test.arrays(), save_samples, headline)


def density_2d_task(model: nn.Module, toy: str, *, num_test: int = 10_000, test_seed: int = 1234,
                    num_samples: int = 2000) -> Task:
    """A density model fitted to samples of a 2-D toy, by maximum likelihood.

    Eval reports the test NLL in nats and `kl_nats`, the Monte Carlo estimate of
    KL(p_data || p_model) = E_data[log p_data(x) - log p_model(x)] from the
    toy's exact density.
    """
    test_x = np.asarray(sample_toy(toy, jax.random.PRNGKey(test_seed), num_test))

    def init_fn(key, batch):
        return model.init(key, batch["x"])

    def loss_fn(params, batch, key):
        nll = -jnp.mean(model.apply(params, batch["x"]))
        return nll, {"nll_nats": nll}

    def eval_fn(params, batch, key):
        log_p = model.apply(params, batch["x"])
        return {"nll_nats": -log_p, "kl_nats": toy_log_prob(toy, batch["x"]) - log_p}

    def make_train_batches(batch_size, key, sharding):
        return SamplerBatches(lambda k, n: sample_toy(toy, k, n), batch_size, key=key, name="x",
                              sharding=sharding)

    log_prob = jax.jit(lambda params, x: model.apply(params, x))
    sample = jax.jit(lambda params, key: model.apply(params, key, num_samples, method=model.sample))

    def save_samples(params, key, prefix: Path):
        path = save_density_plot(
            lambda g: log_prob(params, jnp.asarray(g)), sample(params, key), test_x[:num_samples],
            f"{prefix}.png", true_log_prob_fn=lambda g: toy_log_prob(toy, jnp.asarray(g)),
            title=f"{model.__class__.__name__} on {toy}")
        return [path]

    def headline(m):
        return f"test NLL {m['nll_nats']:.4f} nats, KL(data || model) {m['kl_nats']:.4f} nats"

    return Task(f"{model.__class__.__name__} on {toy}", init_fn, loss_fn, eval_fn,
                make_train_batches, {"x": test_x}, save_samples, headline)
