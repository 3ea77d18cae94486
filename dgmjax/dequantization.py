"""Dequantization of discrete data (uniform and variational), and the units results are reported in.

Discrete data are integer levels y in [0, K)^D. A continuous density p on
[0, 1)^D meets them through uniform dequantization:

    x = (y + u) / K,   u ~ U[0, 1)^D,

and, by Jensen's inequality (the lecture's theorem),

    log P(y) = log ∫ p_K(y + u) du >= E_u[log p(x)] - D log K,

where p_K is p moved to [0, K)^D. `uniform_dequantize` returns x and the
log-determinant -D log K of the scaling, so that `log p(x) + log_det` is a
single-sample estimate of that lower bound, in nats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _validation as v
from dgmjax.bijectors import ScanChain, affine_coupling, checkerboard_mask
from dgmjax.nn.conditioners import ConvResNet, init_stacked

__all__ = [
    "VariationalDequantizer",
    "bits_per_dim",
    "dequantization_bound",
    "importance_weighted_log_likelihood",
    "uniform_dequantize",
    "uniform_proposal",
]


def uniform_dequantize(key: jax.Array, x: jax.Array, num_levels: int, *, event_ndims: int | None = None):
    """Uniformly dequantizes integer levels into [0, 1).

    Args:
      key: PRNG key for the noise u ~ U[0, 1).
      x: integer levels in [0, num_levels), shape `batch_shape + event_shape`.
      num_levels: K, the number of levels (>= 2).
      event_ndims: how many trailing axes of `x` form one example. Defaults to
        `x.ndim - 1` (one leading batch axis: NHWC images, (N, D) vectors).

    Returns:
      `(x_cont, log_det)`: `x_cont = (x + u) / K` as float32 in [0, 1) with the
      shape of `x`, and `log_det = -D log K` of shape `batch_shape`, where D is
      the event size. `model_log_prob(x_cont) + log_det` is a stochastic lower
      bound on log P(x) in nats.
    """
    num_levels = v.check_num_levels(num_levels)
    x = jnp.asarray(x) if not isinstance(x, (np.ndarray, jax.Array)) else x
    v.check_integer_levels(x, num_levels, "x")
    if event_ndims is None:
        event_ndims = max(x.ndim - 1, 0)
    if isinstance(event_ndims, bool) or not isinstance(event_ndims, int) or not 0 <= event_ndims <= x.ndim:
        raise ValueError(f"`event_ndims` must be an int in [0, {x.ndim}]; got {event_ndims!r}.")
    u = jax.random.uniform(key, x.shape, jnp.float32)
    x_cont = (x.astype(jnp.float32) + u) / num_levels
    # (K - 1 + u) / K can round up to exactly 1.0 in float32; keep the promise x < 1.
    x_cont = jnp.minimum(x_cont, jnp.nextafter(jnp.float32(1), jnp.float32(0)))
    event_size = math.prod(x.shape[x.ndim - event_ndims :])
    batch_shape = x.shape[: x.ndim - event_ndims]
    log_det = jnp.full(batch_shape, -event_size * math.log(num_levels), jnp.float32)
    return x_cont, log_det


def bits_per_dim(log_prob_nats, num_dims: int):
    """Converts a log-likelihood in nats per example to bits per dimension.

    `bpd = -log P(x) / (D ln 2)`. For image models `log_prob_nats` must be the
    log-likelihood of the discrete data, so it already includes the
    `-D log num_levels` term of scaling to [0, 1) and every preprocessing
    log-det (e.g. the logit); with dequantization it is a bound, and so is the
    bpd.
    """
    num_dims = v.check_positive_int(num_dims, "num_dims")
    return -jnp.asarray(log_prob_nats) / (num_dims * math.log(2.0))


# ----------------------------------------------------------------------------- variational


def dequantization_bound(log_prob_fn, y, u, log_q, num_levels: int, *, event_ndims: int | None = None):
    """The dequantization lower bound on log P(y), one sample per example, in nats.

    log p((y + u) / K) - D log K - log q(u | y), with `log_prob_fn` the
    model's log-density on [0, 1)^D and (u, log q) from a dequantizer
    (uniform: u ~ U[0, 1), log q = 0). Its expectation over q is <= log P(y)
    for every q (Jensen), with equality iff q(u|y) is the model's own
    conditional of u given the bin y.
    """
    num_levels = v.check_num_levels(num_levels)
    v.check_integer_levels(y, num_levels, "y")
    if event_ndims is None:
        event_ndims = max(y.ndim - 1, 0)
    x = (y.astype(u.dtype) + u) / num_levels
    event_size = math.prod(y.shape[y.ndim - event_ndims:])
    return log_prob_fn(x) - event_size * math.log(num_levels) - log_q


def uniform_proposal(key, y):
    """u ~ U[0, 1)^D with log q = 0: uniform dequantization as a proposal (batch axis first)."""
    u = jax.random.uniform(key, y.shape, jnp.float32)
    u = jnp.minimum(u, jnp.nextafter(jnp.float32(1), jnp.float32(0)))
    return u, jnp.zeros(y.shape[:1], jnp.float32)


def importance_weighted_log_likelihood(key, y, num_samples: int, proposal, log_prob_fn, num_levels: int, *,
                                       chunk_size: int | None = None, event_ndims: int | None = None):
    """log (1/S) sum_s p(y + u_s) / q(u_s | y), u_s ~ q: the S-sample importance-weighted estimate.

    A lower bound on log P(y) in expectation that tightens as S grows (Burda et
    al. 2016); S = 1 is the dequantization bound. `proposal(key, y) -> (u,
    log_q)`; samples are drawn `chunk_size` at a time (default all) so large S
    fits in memory. Returns nats, shape y.shape[:1].
    """
    num_samples = v.check_positive_int(num_samples, "num_samples")
    chunk = min(v.check_positive_int(chunk_size or num_samples, "chunk_size"), num_samples)
    num_chunks = -(-num_samples // chunk)

    def one_chunk(i):
        keys = jax.random.split(jax.random.fold_in(key, i), chunk)

        def one(k):
            u, log_q = proposal(k, y)
            return dequantization_bound(log_prob_fn, y, u, log_q, num_levels, event_ndims=event_ndims)

        bounds = jax.lax.map(one, keys)  # (chunk, B)
        valid = (i * chunk + jnp.arange(chunk)) < num_samples
        return jax.scipy.special.logsumexp(jnp.where(valid[:, None], bounds, -jnp.inf), axis=0)

    per_chunk = jax.lax.map(one_chunk, jnp.arange(num_chunks))
    return jax.scipy.special.logsumexp(per_chunk, axis=0) - math.log(num_samples)


class VariationalDequantizer(nn.Module):
    """Flow++'s variational dequantization q(u | y) (Ho et al. 2019), a conditional flow.

    Gaussian noise eps ~ N(0, I) of the image's shape goes through
    `num_layers` affine couplings (checkerboard masks, alternating) whose
    conditioners see the masked noise and features of y (a ConvResNet on y
    scaled to [-1, 1]), then through a sigmoid into (0, 1)^D:

        u = sigmoid(g(eps; y)),   log q(u|y) = log N(eps) - log|det dg/deps| - sum log sigma'(.)

    `model.apply(variables, key, y)` returns (u, log q(u|y)) per example;
    reparameterized, so the bound E_q[log p(y + u) - log q(u|y)] trains both
    the density model and q.
    """

    image_shape: Sequence[int]
    num_levels: int
    num_layers: int = 4
    features: int = 32
    num_blocks: int = 1
    context_features: int = 16
    scale_fn: str = "tanh"

    def setup(self):
        if len(self.image_shape) != 3:
            raise ValueError(f"`image_shape` must be (H, W, C); got {tuple(self.image_shape)}.")
        v.check_num_levels(self.num_levels)
        v.check_positive_int(self.num_layers, "num_layers")
        h, w, c = self.image_shape
        self.features_of_y = ConvResNet(self.features, self.num_blocks, self.context_features,
                                        zero_init_output=False)
        dummy = jnp.zeros((1, h, w, 2 * c + self.context_features))
        self.conditioners = self.param(
            "conditioners", lambda rng: init_stacked(self._net(), rng, self.num_layers, dummy))

    def _net(self) -> ConvResNet:
        return ConvResNet(self.features, self.num_blocks, 2 * self.image_shape[-1], parent=None)

    def flow(self, y) -> ScanChain:
        """The coupling flow eps -> pre-sigmoid noise, conditioned on y."""
        feats = self.features_of_y(2.0 * y.astype(jnp.float32) / (self.num_levels - 1) - 1.0)
        net = self._net()
        masks = np.stack([checkerboard_mask(tuple(self.image_shape), i % 2) for i in range(self.num_layers)])

        def layer(p):
            def cond(em):
                mask_f = jnp.broadcast_to(p["mask"], em.shape).astype(em.dtype)
                out = net.apply({"params": p["net"]}, jnp.concatenate([em, mask_f, feats], -1))
                return out.reshape(em.shape + (2,))

            return affine_coupling(p["mask"], cond, scale_fn=self.scale_fn)

        return ScanChain(layer, {"net": self.conditioners, "mask": jnp.asarray(masks)}, event_ndims=3)

    def __call__(self, key, y):
        """(u, log q(u|y)) for integer images y (B, H, W, C); u in (0, 1), log q in nats, shape (B,)."""
        if y.ndim != 4 or tuple(y.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"`y` must have shape (B,) + {tuple(self.image_shape)}; got {y.shape}.")
        v.check_integer_levels(y, self.num_levels, "y")
        eps = jax.random.normal(key, y.shape, jnp.float32)
        log_n = jnp.sum(jax.scipy.stats.norm.logpdf(eps), axis=(1, 2, 3))
        z, log_det = self.flow(y).forward_and_log_det(eps)
        u = jax.nn.sigmoid(z)
        log_det_sigmoid = jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z), axis=(1, 2, 3))
        # Keep u strictly inside (0, 1) in float32 (the density already accounts for the sigmoid).
        u = jnp.clip(u, 1e-7, 1.0 - 1e-7)
        return u, log_n - log_det - log_det_sigmoid
