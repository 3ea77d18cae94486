"""RealNVP affine coupling on top of `distrax.MaskedCoupling`.

Coupling layer (mask m, True = kept):

    x = m * z + (1 - m) * (z * s(m * z) + t(m * z))       (forward, noise -> data)
    z = m * x + (1 - m) * (x - t(m * x)) / s(m * x)        (inverse, data -> noise)

Both directions take one conditioner pass; log|det| = sum over the transformed
entries of log s. The scale is bounded (tanh or sigmoid) so that evaluating the
density (data -> noise, the direction training runs) can never blow up in a
single layer, and with a zero-initialized last conditioner layer (shift 0,
raw scale 0 -> s = 1) every layer starts as the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import distrax
import jax
import jax.numpy as jnp
import numpy as np

SCALE_FNS = ("tanh", "sigmoid")
"""The names `bounded_log_scale` accepts for `scale_fn`."""


def bounded_log_scale(raw: jax.Array, scale_fn: str = "tanh", bound: float = 2.0) -> jax.Array:
    """Maps an unconstrained conditioner output to a bounded log-scale, 0 at raw = 0.

    `s` is the forward (noise -> data) scale; the inverse (data -> noise)
    divides by it.

    - `"tanh"`: log s = bound * tanh(raw / bound), so |log s| < bound both ways.
    - `"sigmoid"`: Glow's bound. The data -> noise direction multiplies by
      1 / s = 2 sigmoid(raw) in (0, 2), so on the density side a layer expands
      by at most 2x, however large the conditioner's output; only sampling
      (noise -> data) can expand without bound, as in Glow. (Bounding the
      other side instead would leave the density side free to divide by a
      vanishing sigmoid, and training evaluates the density side.)
    """
    if scale_fn == "tanh":
        return bound * jnp.tanh(raw / bound)
    if scale_fn == "sigmoid":
        return -(math.log(2.0) + jax.nn.log_sigmoid(raw))
    raise ValueError(f"`scale_fn` must be one of {SCALE_FNS}; got {scale_fn!r}.")


def checkerboard_mask(shape: Sequence[int], parity: int = 0) -> np.ndarray:
    """Boolean (H, W, C) mask, True (kept) where (row + col) % 2 == parity."""
    if len(shape) != 3:
        raise ValueError(f"`shape` must be (H, W, C); got {tuple(shape)}.")
    h, w, c = shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    board = (rows + cols) % 2 == parity % 2
    return np.broadcast_to(board[:, :, None], (h, w, c)).copy()


def channel_mask(shape: Sequence[int], parity: int = 0) -> np.ndarray:
    """Boolean (H, W, C) mask keeping the first half of the channels (parity 0) or the second."""
    if len(shape) != 3:
        raise ValueError(f"`shape` must be (H, W, C); got {tuple(shape)}.")
    h, w, c = shape
    if c < 2 or c % 2:
        raise ValueError(f"channel masks need an even number of channels >= 2; got shape {tuple(shape)}.")
    first = np.arange(c) < c // 2
    keep = first if parity % 2 == 0 else ~first
    return np.broadcast_to(keep, (h, w, c)).copy()


def alternating_mask(size: int, parity: int = 0) -> np.ndarray:
    """Boolean (D,) mask keeping even entries (parity 0) or odd entries (parity 1)."""
    if size < 2:
        raise ValueError(f"coupling needs at least 2 dimensions; got size {size}.")
    return np.arange(size) % 2 == parity % 2


def affine_coupling(
    mask: jax.Array,
    conditioner: Callable[[jax.Array], jax.Array],
    *,
    scale_fn: str = "tanh",
    scale_bound: float = 2.0,
) -> distrax.MaskedCoupling:
    """A RealNVP affine coupling layer as a `distrax.MaskedCoupling`.

    Args:
      mask: boolean array of the event shape; True entries are kept and
        condition the transformation of the False entries.
      conditioner: maps the masked input (shape `batch + event`) to parameters
        of shape `batch + event + (2,)`: `[..., 0]` is the shift, `[..., 1]` the
        unconstrained log-scale. Any callable works (Flax, Equinox, a function).
      scale_fn: `"tanh"` or `"sigmoid"` bound on the scale (see
        `bounded_log_scale`).
    """
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise ValueError(f"`mask` must be boolean; got dtype {mask.dtype}.")
    if scale_fn not in SCALE_FNS:
        raise ValueError(f"`scale_fn` must be one of {SCALE_FNS}; got {scale_fn!r}.")

    def checked_conditioner(masked_x):
        params = conditioner(masked_x)
        expected = masked_x.shape + (2,)
        if params.shape != expected:
            raise ValueError(
                f"the `conditioner` must return shift and log-scale of shape {expected} for "
                f"input shape {masked_x.shape}; got {params.shape}."
            )
        return params

    def inner(params):
        log_scale = bounded_log_scale(params[..., 1], scale_fn, scale_bound)
        return distrax.ScalarAffine(shift=params[..., 0], log_scale=log_scale)

    return distrax.MaskedCoupling(mask=mask, conditioner=checked_conditioner, bijector=inner)


def affine_split_coupling(
    split_index: int,
    conditioner: Callable[[jax.Array], jax.Array],
    *,
    event_ndims: int = 3,
    scale_fn: str = "sigmoid",
    scale_bound: float = 2.0,
    swap: bool = False,
) -> distrax.SplitCoupling:
    """Affine coupling on a split of the last axis, as a `distrax.SplitCoupling` (Glow style).

    The first `split_index` entries of the last axis are kept and fed to the
    conditioner, which returns shift and raw log-scale for the rest, shape
    `rest.shape + (2,)`. Cheaper than a masked coupling: the conditioner sees
    only the kept half. `swap=True` keeps the second part instead.
    """
    if scale_fn not in SCALE_FNS:
        raise ValueError(f"`scale_fn` must be one of {SCALE_FNS}; got {scale_fn!r}.")

    def inner(params):
        log_scale = bounded_log_scale(params[..., 1], scale_fn, scale_bound)
        return distrax.Block(distrax.ScalarAffine(shift=params[..., 0], log_scale=log_scale),
                             event_ndims)

    def checked_conditioner(kept):
        params = conditioner(kept)
        if params.ndim < 1 or params.shape[-1] != 2 or params.shape[:-1][:-1] != kept.shape[:-1]:
            raise ValueError(
                f"the `conditioner` must return shift and log-scale of shape rest.shape + (2,) for "
                f"kept input of shape {kept.shape}; got {params.shape}."
            )
        return params

    return distrax.SplitCoupling(split_index, event_ndims, checked_conditioner, inner, swap=swap)
