"""Objectives for continuous models of discrete data: dequantization bounds, bits/dim, logit space.

Every function returns per-example values in nats (bits per dimension for
`bits_per_dim`) and takes the model as a distrax distribution or a callable
`x -> log p(x)`. Integer data `x` are levels in [0, num_levels).
"""

from __future__ import annotations

import math

import distrax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.bijectors import ScaledSigmoid
from dgmjax.dequantization import uniform_noise
from dgmjax.objectives._util import as_log_prob
from dgmjax.objectives.importance import importance_weighted_bound

__all__ = ["bits_per_dim", "dequantization_bound", "importance_weighted_dequantization_bound",
           "logit_space_log_prob"]

_BELOW_ONE = np.nextafter(np.float32(1), np.float32(0))


def bits_per_dim(log_prob_nats, num_dims: int):
    """A log-likelihood in nats per example as bits per dimension: -log P(x) / (D ln 2).

    For image models `log_prob_nats` must be the log-likelihood of the discrete
    data, so it already includes the `-D log num_levels` term of scaling to
    [0, 1) and every preprocessing log-det (e.g. the logit); with
    dequantization it is a bound, and so is the bpd.
    """
    num_dims = v.check_positive_int(num_dims, "num_dims")
    return -v.as_float_array(log_prob_nats, "log_prob_nats") / (num_dims * math.log(2.0))


def _event(x, num_levels, event_ndims):
    num_levels = v.check_num_levels(num_levels)
    x = x if hasattr(x, "dtype") else jnp.asarray(x)
    v.check_integer_levels(x, num_levels, "x")
    if event_ndims is None:
        event_ndims = max(x.ndim - 1, 0)
    if isinstance(event_ndims, bool) or not isinstance(event_ndims, (int, np.integer)) \
            or not 0 <= event_ndims <= x.ndim:
        raise ValueError(f"`event_ndims` must be an int in [0, {x.ndim}]; got {event_ndims!r}.")
    return x, num_levels, int(event_ndims), math.prod(x.shape[x.ndim - event_ndims:])


def _per_example(value, batch_shape, name: str, what: str):
    """`value`, one number per example: its shape must be x's batch shape (nothing broadcasts)."""
    if tuple(np.shape(value)) != tuple(batch_shape):
        raise ValueError(f"`{name}` must give {what} per example, shape {tuple(batch_shape)} (x's batch "
                         f"shape); got shape {tuple(np.shape(value))}.")
    return value


def dequantization_bound(key, model, x, num_levels: int, *, dequantizer=None,
                         event_ndims: int | None = None):
    """The dequantization lower bound on log P(x), one noise draw per example, in nats.

        log p((x + u) / K) - D log K - log q(u | x),   u ~ q(u | x),

    with p the model's density on [0, 1)^D. Its expectation is <= log P(x)
    for every q (Jensen), with equality iff q(u | x) is the model's own
    conditional of u given the bin x.

    Args:
      key: PRNG key for the noise.
      model: a distrax distribution on [0, 1)^D, or a callable `x -> log p(x)`.
      x: integer levels in [0, num_levels), `batch_shape + event_shape`.
      num_levels: K.
      dequantizer: `(key, x) -> (u, log q(u | x))` with u in [0, 1) of x's
        shape and log q of its batch shape (a bound
        `dgmjax.models.VariationalDequantizer`); None is uniform dequantization
        (u ~ U[0, 1), log q = 0).
      event_ndims: trailing axes of x that form one example (default x.ndim - 1).
        The model's log p must have x's batch shape (one number per example).

    Returns the bound, shape `batch_shape`.
    """
    log_prob = as_log_prob(model, "model")
    x, num_levels, event_ndims, event_size = _event(x, num_levels, event_ndims)
    if dequantizer is None:
        u, log_q = uniform_noise(key, x, event_ndims=event_ndims)
    else:
        u, log_q = dequantizer(key, x)
        if u.shape != x.shape:
            raise ValueError(f"the `dequantizer` must return u of x's shape {x.shape}; got {u.shape}.")
    batch_shape = x.shape[:x.ndim - event_ndims]
    _per_example(log_q, batch_shape, "dequantizer", "log q(u | x)")
    x_cont = jnp.minimum((x.astype(u.dtype) + u) / num_levels, _BELOW_ONE)
    log_p = _per_example(log_prob(x_cont), batch_shape, "model", "log p")
    return log_p - event_size * math.log(num_levels) - log_q


def importance_weighted_dequantization_bound(key, model, x, num_levels: int, num_samples: int, *,
                                             dequantizer=None, chunk_size: int | None = None,
                                             event_ndims: int | None = None):
    """log (1/S) sum_s p(x + u_s) / q(u_s | x), u_s ~ q: the S-sample importance-weighted estimate.

    A lower bound on log P(x) in expectation that tightens as S grows (S = 1
    is `dequantization_bound`); draws go `chunk_size` at a time (see
    `importance_weighted_bound`). Arguments as `dequantization_bound`.
    """
    return importance_weighted_bound(
        key, lambda k: dequantization_bound(k, model, x, num_levels, dequantizer=dequantizer,
                                            event_ndims=event_ndims),
        num_samples, chunk_size=chunk_size)


def logit_space_log_prob(key, model, x, num_levels: int, *, alpha: float = 1e-6,
                         event_ndims: int | None = None) -> dict:
    """A density in logit space fitted to integer data, as in the MAF paper's image experiments.

    x is uniformly dequantized, x_c = (x + u) / K, and mapped to logit space,
    t = logit(alpha + (1 - 2 alpha) x_c) (alpha = 1e-6 in the MAF paper), where
    `model` is a density (t has x's shape). Returns, per example:

    - "logit_space": log p(t), the number the MAF paper reports;
    - "bound": the same model as a lower bound on log P(x) of the discrete
      data, log p(t) + log|dt/dx_c| - D log K, every Jacobian included.

    Both have the same gradient in the model's parameters.
    """
    log_prob = as_log_prob(model, "model")
    x, num_levels, event_ndims, event_size = _event(x, num_levels, event_ndims)
    u, _ = uniform_noise(key, x, event_ndims=event_ndims)
    x_cont = jnp.minimum((x.astype(jnp.float32) + u) / num_levels, _BELOW_ONE)
    t, log_det = distrax.Block(ScaledSigmoid(alpha), event_ndims).inverse_and_log_det(x_cont)
    log_p_t = _per_example(log_prob(t), x.shape[:x.ndim - event_ndims], "model", "log p")
    return {"logit_space": log_p_t, "bound": log_p_t + log_det - event_size * math.log(num_levels)}
