"""Dequantization of discrete data: from integer levels to [0, 1) and back.

Discrete data are integer levels x in [0, K)^D. A continuous density p on
[0, 1)^D meets them through dequantization, x_cont = (x + u) / K with noise
u in [0, 1)^D, and by Jensen's inequality (the lecture's theorem)

    log P(x) = log ∫ p_K(x + u) du >= E_q[log p((x + u) / K) - log q(u | x)] - D log K,

where p_K is p moved to [0, K)^D: uniform dequantization takes q = U[0, 1)^D
(log q = 0), variational dequantization a learned q (Flow++,
`dgmjax.models.VariationalDequantizer`). The bounds themselves are in
`dgmjax.objectives`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v

__all__ = ["to_levels", "uniform_dequantize", "uniform_noise"]

_BELOW_ONE = np.nextafter(np.float32(1), np.float32(0))


def _event_ndims(x, event_ndims):
    if event_ndims is None:
        return max(x.ndim - 1, 0)
    if isinstance(event_ndims, bool) or not isinstance(event_ndims, (int, np.integer)) \
            or not 0 <= event_ndims <= x.ndim:
        raise ValueError(f"`event_ndims` must be an int in [0, {x.ndim}]; got {event_ndims!r}.")
    return int(event_ndims)


def uniform_noise(key: jax.Array, x: jax.Array, *, event_ndims: int | None = None):
    """u ~ U[0, 1) of the shape of `x`, and log q(u | x) = 0 per example: uniform dequantization
    as a dequantizer `(key, x) -> (u, log_q)`. u stays below 1 in float32."""
    x = v.as_array(x, "x")
    event_ndims = _event_ndims(x, event_ndims)
    u = jnp.minimum(jax.random.uniform(key, x.shape, jnp.float32), _BELOW_ONE)
    return u, jnp.zeros(x.shape[: x.ndim - event_ndims], jnp.float32)


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
    x = x if isinstance(x, (np.ndarray, jax.Array)) else jnp.asarray(x)
    v.check_integer_levels(x, num_levels, "x")
    event_ndims = _event_ndims(x, event_ndims)
    u, _ = uniform_noise(key, x, event_ndims=event_ndims)
    # (K - 1 + u) / K can round up to exactly 1.0 in float32; keep the promise x < 1.
    x_cont = jnp.minimum((x.astype(jnp.float32) + u) / num_levels, _BELOW_ONE)
    event_size = math.prod(x.shape[x.ndim - event_ndims:])
    log_det = jnp.full(x.shape[: x.ndim - event_ndims], -event_size * math.log(num_levels), jnp.float32)
    return x_cont, log_det


def to_levels(x_cont: jax.Array, num_levels: int) -> jax.Array:
    """Continuous values in [0, 1) back to integer levels: floor(x K), clipped to [0, K), int32.

    The inverse of dequantization up to the noise: turns a flow's samples into images.
    """
    num_levels = v.check_num_levels(num_levels)
    x_cont = v.as_array(x_cont, "x_cont")
    if x_cont.dtype == jnp.bool_:
        raise ValueError("`x_cont` must hold numbers in [0, 1); got dtype bool.")
    v.check_values(~jnp.isnan(x_cont), "`x_cont` must not hold NaN (it has no level); got NaN values.")
    levels = jnp.floor(x_cont.astype(jnp.float32) * num_levels)
    return jnp.clip(jnp.where(jnp.isnan(levels), 0.0, levels), 0, num_levels - 1).astype(jnp.int32)
