"""RealNVP affine coupling on top of `distrax.MaskedCoupling`.

Coupling layer (mask m, True = kept):

    x = m * z + (1 - m) * (z * s(m * z) + t(m * z))       (forward, noise -> data)
    z = m * x + (1 - m) * (x - t(m * x)) / s(m * x)        (inverse, data -> noise)

Both directions take one conditioner pass; log|det| = sum over the transformed
entries of log s. The scale is bounded (`tanh_scale`, `sigmoid_scale`) so that evaluating the
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

from dgmjax import _checks as v

SIGMOID_MAX_LOG_SCALE = 10.0
"""The largest log-scale (noise -> data) that `sigmoid_scale` gives."""


def tanh_scale(raw: jax.Array, bound: float = 2.0) -> jax.Array:
    """A bounded log-scale from an unconstrained conditioner output: log s = bound * tanh(raw / bound).

    `s` is the forward (noise -> data) scale; the inverse (data -> noise)
    divides by it. |log s| < bound both ways, the slope is 1 at raw = 0 and
    log s = 0 there. The default scale function of the couplings, the
    autoregressive layers and the dequantizer; another bound is
    `functools.partial(tanh_scale, bound=3.0)`.
    """
    bound = v.check_positive_float(bound, "bound")
    return bound * jnp.tanh(raw / bound)


def sigmoid_scale(raw: jax.Array) -> jax.Array:
    """Glow's bounded log-scale: the data -> noise direction multiplies by 1 / s = 2 sigmoid(raw).

    On the density side a layer expands by at most 2x, however large the
    conditioner's output; log s = 0 at raw = 0. Unclamped, the sampling side
    (noise -> data) would multiply by 1 / (2 sigmoid(raw)), which overflows
    float32 for raw below about -88 (and underflows the density side's
    multiplier to 0): so log s is clamped at `SIGMOID_MAX_LOG_SCALE` = 10 (raw
    below about -10.7, where the density side would shrink by more than e^10 =
    2.2e4). Both directions and the log-det use the same clamped log s, so
    they stay exact inverses with a consistent log-det. (Bounding the other
    side instead would leave the density side free to divide by a vanishing
    sigmoid, and training evaluates the density side.)
    """
    return jnp.minimum(-(math.log(2.0) + jax.nn.log_sigmoid(raw)), SIGMOID_MAX_LOG_SCALE)


def check_scale_fn(scale_fn, name: str = "scale_fn") -> Callable:
    """`scale_fn` if it is callable (raw conditioner output -> log-scale), else a ValueError."""
    return v.check_callable(scale_fn, name, "a function raw -> log-scale, e.g. tanh_scale")


def _check_real_input(x, name: str):
    """`x` checked to be a float array, and upcast to float32 when in a lower-precision float (the
    coupling computes in float32 or wider, whatever its conditioner returns)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise ValueError(f"`{name}` must be an array; got {type(x).__name__}.")
    v.check_float(x, name)
    return v.upcast_low_precision(x)


def _image_shape(shape, name: str = "shape") -> tuple[int, int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or len(dims) != 3 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer))
                                             or n < 1 for n in dims):
        raise ValueError(f"`{name}` must be (H, W, C) of positive ints; got {shape!r}.")
    return tuple(int(n) for n in dims)


def _parity(parity) -> int:
    if isinstance(parity, bool) or not isinstance(parity, (int, np.integer)):
        raise ValueError(f"`parity` must be an int (0 or 1); got {parity!r}.")
    return int(parity) % 2


def checkerboard_mask(shape: Sequence[int], parity: int = 0) -> np.ndarray:
    """Boolean (H, W, C) mask, True (kept) where (row + col) % 2 == parity."""
    h, w, c = _image_shape(shape)
    parity = _parity(parity)
    if h * w < 2:
        raise ValueError(f"a checkerboard mask needs at least 2 pixels; got `shape` {tuple(shape)}.")
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    board = (rows + cols) % 2 == parity
    return np.broadcast_to(board[:, :, None], (h, w, c)).copy()


def channel_mask(shape: Sequence[int], parity: int = 0) -> np.ndarray:
    """Boolean (H, W, C) mask keeping the first half of the channels (parity 0) or the second."""
    h, w, c = _image_shape(shape)
    parity = _parity(parity)
    if c < 2 or c % 2:
        raise ValueError(f"channel masks need an even number of channels >= 2; got `shape` {tuple(shape)}.")
    first = np.arange(c) < c // 2
    keep = first if parity == 0 else ~first
    return np.broadcast_to(keep, (h, w, c)).copy()


def alternating_mask(size: int, parity: int = 0) -> np.ndarray:
    """Boolean (D,) mask keeping even entries (parity 0) or odd entries (parity 1)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"`size` must be an int >= 2 (coupling needs at least 2 dimensions); got {size!r}.")
    return np.arange(size) % 2 == _parity(parity)


class _AffineMaskedCoupling(distrax.MaskedCoupling):
    """`distrax.MaskedCoupling` that checks its input's dtype and event shape first
    (distrax would broadcast a mask against an input of another shape)."""

    def _check_input(self, x, name):
        x = _check_real_input(x, name)
        return v.check_event_shape(x, self.mask.shape, name)

    def forward_and_log_det(self, x):
        return super().forward_and_log_det(self._check_input(x, "z"))

    def inverse_and_log_det(self, y):
        return super().inverse_and_log_det(self._check_input(y, "x"))


def affine_coupling(
    mask: jax.Array,
    conditioner: Callable[[jax.Array], jax.Array],
    *,
    scale_fn: Callable[[jax.Array], jax.Array] = tanh_scale,
) -> distrax.MaskedCoupling:
    """A RealNVP affine coupling layer as a `distrax.MaskedCoupling`.

    Args:
      mask: boolean array of the event shape; True entries are kept and
        condition the transformation of the False entries (at least one entry
        must be False). The input's trailing axes must equal `mask.shape`.
      conditioner: maps the masked input (shape `batch + event`) to parameters
        of shape `batch + event + (2,)`: `[..., 0]` is the shift, `[..., 1]` the
        unconstrained log-scale. Any callable works (Flax, Equinox, a function).
      scale_fn: raw log-scale -> log-scale, bounded: `tanh_scale` (the
        default; another bound with `functools.partial`), `sigmoid_scale`
        (Glow's), or any function.
    """
    check_scale_fn(scale_fn)
    mask = mask if isinstance(mask, (np.ndarray, jax.Array)) else np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"`mask` must be boolean; got dtype {mask.dtype}.")
    if mask.ndim < 1 or mask.size == 0:
        raise ValueError(f"`mask` must have the event's shape (at least one axis); got shape {mask.shape}.")
    if v.is_concrete(mask) and bool(np.all(np.asarray(mask))):
        raise ValueError(f"`mask` must leave at least one entry to transform (False); got all True, "
                         f"shape {mask.shape}: the layer would be the identity.")
    mask = jnp.asarray(mask)
    if not callable(conditioner):
        raise ValueError(f"`conditioner` must be callable; got {type(conditioner).__name__}.")

    def checked_conditioner(masked_x):
        params = conditioner(masked_x)
        expected = masked_x.shape + (2,)
        if getattr(params, "shape", None) != expected:
            raise ValueError(
                f"the `conditioner` must return shift and log-scale of shape {expected} for "
                f"input shape {masked_x.shape}; got {getattr(params, 'shape', type(params).__name__)}."
            )
        return params

    def inner(params):
        return distrax.ScalarAffine(shift=params[..., 0], log_scale=scale_fn(params[..., 1]))

    return _AffineMaskedCoupling(mask=mask, conditioner=checked_conditioner, bijector=inner)


class _AffineSplitCoupling(distrax.SplitCoupling):
    """`distrax.SplitCoupling` that checks its input: a split strictly inside the last axis."""

    def _check_input(self, x, name):
        x = _check_real_input(x, name)
        k = self.event_ndims_in
        if x.ndim < k:
            raise ValueError(f"`{name}` must have at least event_ndims={k} axes; got shape {x.shape}.")
        if not 0 < self._split_index < x.shape[-1]:
            raise ValueError(
                f"`split_index` {self._split_index} must lie strictly inside the last axis of `{name}` "
                f"(1 <= split_index <= {x.shape[-1] - 1}); got `{name}` of shape {x.shape}: the "
                f"layer would transform nothing.")
        return x

    def _params(self, kept, rest):
        params = self._conditioner(kept)
        if getattr(params, "shape", None) != rest.shape + (2,):
            raise ValueError(
                f"the `conditioner` must return shift and log-scale of shape rest.shape + (2,) = "
                f"{rest.shape + (2,)} for kept input of shape {kept.shape}; got "
                f"{getattr(params, 'shape', type(params).__name__)}.")
        return params

    def forward_and_log_det(self, x):
        x = self._check_input(x, "z")
        x1, x2 = self._split(x)
        y2, logdet = self._inner_bijector(self._params(x1, x2)).forward_and_log_det(x2)
        return self._recombine(x1, y2), logdet

    def inverse_and_log_det(self, y):
        y = self._check_input(y, "x")
        y1, y2 = self._split(y)
        x2, logdet = self._inner_bijector(self._params(y1, y2)).inverse_and_log_det(y2)
        return self._recombine(y1, x2), logdet


def affine_split_coupling(
    split_index: int,
    conditioner: Callable[[jax.Array], jax.Array],
    *,
    event_ndims: int = 3,
    scale_fn: Callable[[jax.Array], jax.Array] = tanh_scale,
    swap: bool = False,
) -> distrax.SplitCoupling:
    """Affine coupling on a split of the last axis, as a `distrax.SplitCoupling` (Glow style).

    The first `split_index` entries of the last axis are kept and fed to the
    conditioner, which returns shift and raw log-scale for the rest, shape
    `rest.shape + (2,)`. Cheaper than a masked coupling: the conditioner sees
    only the kept half. `swap=True` keeps the second part instead.
    `split_index` must be in [1, D - 1] for a last axis of size D (checked
    when the layer is called). `scale_fn` as in `affine_coupling`.
    """
    if isinstance(split_index, bool) or not isinstance(split_index, (int, np.integer)) or split_index < 1:
        raise ValueError(f"`split_index` must be a positive int (the kept entries of the last axis); "
                         f"got {split_index!r}.")
    event_ndims = v.check_positive_int(event_ndims, "event_ndims")
    check_scale_fn(scale_fn)
    if not isinstance(swap, (bool, np.bool_)):
        raise ValueError(f"`swap` must be a bool; got {swap!r}.")
    if not callable(conditioner):
        raise ValueError(f"`conditioner` must be callable; got {type(conditioner).__name__}.")

    def inner(params):
        return distrax.Block(distrax.ScalarAffine(shift=params[..., 0], log_scale=scale_fn(params[..., 1])),
                             event_ndims)

    return _AffineSplitCoupling(int(split_index), event_ndims, conditioner, inner,
                                swap=bool(swap))
