"""Shape plumbing of multi-scale image flows: squeeze and factor-out.

A multi-scale flow (RealNVP, Glow) squeezes space into channels and, at each
scale, sends half of the channels straight to the latent ("factor-out") while
the other half goes on through the deeper scales. dgmjax keeps the latent the
same shape as the data: each scale squeezes, transforms, and unsqueezes, and
`FactorOut` runs the deeper scales on the kept channels only.
"""

from __future__ import annotations

import distrax
import jax.numpy as jnp


class Squeeze(distrax.Bijector):
    """Space-to-depth: `forward` maps (..., H, W, C) to (..., H/f, W/f, C f^2).

    Each f x f spatial block becomes f^2 channels (row-major within the block);
    `inverse` is depth-to-space. A permutation, so log|det| = 0. In a flow whose
    forward goes noise -> data, the squeeze of the data -> noise pass appears as
    `distrax.Inverse(Squeeze())`.
    """

    def __init__(self, factor: int = 2):
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"`factor` must be a positive int; got {factor!r}.")
        self._factor = factor
        super().__init__(event_ndims_in=3, is_constant_jacobian=True)

    @property
    def factor(self) -> int:
        return self._factor

    def _check(self, x, name, squeezed: bool):
        if x.ndim < 3:
            raise ValueError(f"`{name}` must have shape (..., H, W, C); got {x.shape}.")
        f = self._factor
        h, w, c = x.shape[-3:]
        if not squeezed and (h % f or w % f):
            raise ValueError(
                f"Squeeze(factor={f}) needs H and W divisible by {f}; got `{name}` of shape {x.shape}."
            )
        if squeezed and c % (f * f):
            raise ValueError(
                f"Inverse squeeze (factor={f}) needs C divisible by {f * f}; got `{name}` of "
                f"shape {x.shape}."
            )

    def forward_and_log_det(self, x):
        self._check(x, "x", squeezed=False)
        f = self._factor
        *batch, h, w, c = x.shape
        y = x.reshape(*batch, h // f, f, w // f, f, c)
        y = jnp.moveaxis(y, -4, -3)  # (..., h/f, w/f, f, f, c)
        y = y.reshape(*batch, h // f, w // f, f * f * c)
        return y, jnp.zeros(tuple(batch), x.dtype)

    def inverse_and_log_det(self, y):
        self._check(y, "y", squeezed=True)
        f = self._factor
        *batch, h, w, c = y.shape
        x = y.reshape(*batch, h, w, f, f, c // (f * f))
        x = jnp.moveaxis(x, -3, -4)  # (..., h, f, w, f, c/f^2)
        x = x.reshape(*batch, h * f, w * f, c // (f * f))
        return x, jnp.zeros(tuple(batch), y.dtype)


class FactorOut(distrax.Bijector):
    """Applies `bijector` to the first `num_kept` channels and passes the rest through.

    The passed-through channels are the ones a multi-scale flow "factors out"
    to the latent at this scale; the kept ones go on to the deeper scales.
    `bijector` must preserve the shape of the kept channels and have
    `event_ndims_in == 3`.
    """

    def __init__(self, bijector: distrax.BijectorLike, num_kept: int):
        bijector = distrax.as_bijector(bijector)
        if bijector.event_ndims_in != 3 or bijector.event_ndims_out != 3:
            raise ValueError(
                "FactorOut's `bijector` must act on (H, W, C) events; got event_ndims "
                f"{bijector.event_ndims_in} -> {bijector.event_ndims_out}."
            )
        if isinstance(num_kept, bool) or not isinstance(num_kept, int) or num_kept < 1:
            raise ValueError(f"`num_kept` must be a positive int; got {num_kept!r}.")
        self._bijector = bijector
        self._num_kept = num_kept
        super().__init__(event_ndims_in=3)

    @property
    def bijector(self) -> distrax.Bijector:
        return self._bijector

    def _split(self, x, name):
        if x.ndim < 3 or x.shape[-1] <= self._num_kept:
            raise ValueError(
                f"`{name}` must have more than num_kept={self._num_kept} channels; got shape "
                f"{x.shape}."
            )
        return x[..., : self._num_kept], x[..., self._num_kept :]

    def forward_and_log_det(self, x):
        kept, rest = self._split(x, "x")
        y, log_det = self._bijector.forward_and_log_det(kept)
        return jnp.concatenate([y, rest], axis=-1), log_det

    def inverse_and_log_det(self, y):
        kept, rest = self._split(y, "y")
        x, log_det = self._bijector.inverse_and_log_det(kept)
        return jnp.concatenate([x, rest], axis=-1), log_det
