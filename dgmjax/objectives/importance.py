"""Importance-weighted estimates: log (1/S) sum_s w_s, S draws at a time or in chunks."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v

__all__ = ["importance_weighted_bound", "log_mean_exp"]


def log_mean_exp(values, axis: int = 0):
    """log (1/k) sum exp(values) along `axis`, stably."""
    values = v.as_array(values, "values")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -values.ndim <= axis < values.ndim:
        raise ValueError(f"`axis` must be an int in [-{values.ndim}, {values.ndim}) for `values` of shape "
                         f"{values.shape}; got {axis!r}.")
    if values.shape[axis] == 0:
        raise ValueError(f"`values` must have at least one entry along `axis` {axis}; got shape "
                         f"{values.shape}.")
    return jax.scipy.special.logsumexp(values, axis=axis) - math.log(values.shape[axis])


def importance_weighted_bound(key, log_weight_fn: Callable[[jax.Array], jax.Array], num_samples: int, *,
                              chunk_size: int | None = None):
    """log (1/S) sum_s exp(log_weight_fn(key_s)): the S-sample importance-weighted estimate.

    With log w = log p(x, z) - log q(z | x) for z ~ q (one draw per call) this
    is a lower bound on log p(x) in expectation that tightens as S grows
    (Burda et al. 2016); S = 1 is the single-sample bound. IWAE and the
    importance-weighted dequantization bound are this with their own log w.

    Args:
      key: PRNG key; draw s of chunk c uses `split(fold_in(key, c), chunk)[s]`.
      log_weight_fn: `key -> log w`, one draw for every example (any shape).
      num_samples: S >= 1.
      chunk_size: draws vectorized at once (memory grows with it); chunks run
        one after another. Default: all S at once.

    Returns the estimate per example, the shape of one `log_weight_fn` result.
    """
    v.check_key(key)
    if not callable(log_weight_fn):
        raise ValueError(f"`log_weight_fn` must be a callable key -> log w; got "
                         f"{type(log_weight_fn).__name__}.")
    num_samples = v.check_positive_int(num_samples, "num_samples")
    chunk = num_samples if chunk_size is None else min(v.check_positive_int(chunk_size, "chunk_size"),
                                                        num_samples)
    num_chunks = -(-num_samples // chunk)

    def one_chunk(c):
        log_w = jax.vmap(log_weight_fn)(jax.random.split(jax.random.fold_in(key, c), chunk))
        valid = (c * chunk + jnp.arange(chunk)) < num_samples
        valid = valid.reshape((chunk,) + (1,) * (log_w.ndim - 1))
        return jax.scipy.special.logsumexp(jnp.where(valid, log_w, -jnp.inf), axis=0)

    per_chunk = jax.lax.map(one_chunk, jnp.arange(num_chunks))
    return jax.scipy.special.logsumexp(per_chunk, axis=0) - math.log(num_samples)
