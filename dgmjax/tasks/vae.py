"""VAE tasks: maximize the ELBO on images (discrete decoders) or on 2-D toys (Gaussian decoder)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax.data import ArrayBatches, SamplerBatches, sample_toy
from dgmjax.dequantization import bits_per_dim
from dgmjax.tasks.base import Task
from dgmjax.training.plotting import save_image_grid, save_latent_plot
from dgmjax.vae.model import VAE
from dgmjax.vae.objectives import iwae_bound
from dgmjax.vae.surgery import aggregated_posterior_log_prob


def vae_task(model: VAE, train_arrays: dict, test_arrays: dict, *, data_name: str,
             toy: str | None = None, eval_iwae_samples: int = 0, num_samples: int = 64) -> Task:
    """Trains `model` by maximizing the average ELBO (nats per example).

    `train_arrays`/`test_arrays` hold "x" (the data, integer images or float
    vectors). With `toy`, training draws fresh samples of that 2-D density.
    Eval reports elbo, reconstruction and kl (nats per example; negative
    log-likelihood bounds are -elbo), bits/dim for discrete data, and with
    `eval_iwae_samples` = k > 1 the k-sample IWAE bound `iwae`.
    """
    num_dims = math.prod(model.data_shape)
    discrete = model.num_levels is not None

    def init_fn(key, batch):
        return model.init(key, batch["x"], key)

    def loss_fn(params, batch, key):
        terms = model.apply(params, batch["x"], key)
        metrics = {k: jnp.mean(val) for k, val in terms.items()}
        return -metrics["elbo"], metrics

    def eval_fn(params, batch, key):
        k1, k2 = jax.random.split(key)
        out = dict(model.apply(params, batch["x"], k1))
        if discrete:
            out["bpd_bound"] = bits_per_dim(out["elbo"], num_dims)
        if eval_iwae_samples > 1:
            chunk = min(eval_iwae_samples, 100)
            out["iwae"] = iwae_bound(
                k2, lambda kk: model.apply(params, batch["x"], kk, chunk, method=model.log_weights),
                eval_iwae_samples, chunk_size=chunk)
        return out

    def make_train_batches(batch_size, key, sharding):
        if toy is not None:
            return SamplerBatches(lambda k, n: sample_toy(toy, k, n), batch_size, key=key, name="x",
                                  sharding=sharding)
        return ArrayBatches(train_arrays, batch_size, key=key, sharding=sharding)

    @functools.partial(jax.jit, static_argnums=2)
    def _sample(params, key, n):
        return model.apply(params, key, n, method=model.sample)

    posterior_means = jax.jit(lambda params, x: model.apply(params, x, method=model.encode)[:2])
    prior_log_prob = jax.jit(lambda params, z: model.apply(params, z, method=model.prior_log_prob))

    def save_samples(params, key, prefix: Path):
        paths = []
        if discrete and len(model.data_shape) == 3:
            images = np.asarray(_sample(params, key, num_samples))
            paths.append(save_image_grid(images, model.num_levels, f"{prefix}.png",
                                         title=f"VAE ({model.prior} prior, {model.posterior} posterior) "
                                               f"samples, {data_name}"))
        if model.latent_size == 2:
            x = jnp.asarray(test_arrays["x"][:2000])
            mean, log_std = posterior_means(params, x)
            paths.append(save_latent_plot(
                lambda g: np.asarray(prior_log_prob(params, jnp.asarray(g))),
                lambda g: np.asarray(aggregated_posterior_log_prob(jnp.asarray(g), mean, log_std)),
                np.asarray(mean), f"{prefix}_latent.png",
                title=f"{data_name}: aggregated posterior vs {model.prior} prior"))
        return paths

    def headline(m):
        line = f"test ELBO {m['elbo']:.2f} nats (reconstruction {m['reconstruction']:.2f}, KL {m['kl']:.2f})"
        if "iwae" in m:
            line += f"; IWAE (k={eval_iwae_samples}) {m['iwae']:.2f}"
        if "bpd_bound" in m:
            line += f"; {m['bpd_bound']:.4f} bits/dim bound"
        return line

    return Task(f"VAE ({model.prior} prior, {model.posterior} posterior, {model.decoder} decoder) on "
                f"{data_name}", init_fn, loss_fn, eval_fn, make_train_batches, test_arrays, save_samples,
                headline)
