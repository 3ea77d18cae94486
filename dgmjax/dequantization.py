"""Dequantization of discrete data, and the units results are reported in.

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

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _validation as v

__all__ = ["uniform_dequantize", "bits_per_dim"]


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
