"""Multi-scale image flows: squeeze, factor-out, and the one builder RealNVP, Glow and IDF share.

A multi-scale flow (RealNVP, Glow, integer flows) squeezes space into
channels and, at each scale, sends half of the channels straight to the
latent ("factor-out") while the other half goes on through the deeper
scales. dgmjax keeps the latent the same shape as the data: each scale
squeezes, transforms, and unsqueezes, and `FactorOut` runs the deeper scales
on the kept channels only. `multiscale_flow` builds the whole structure from
a list of `Scale`s; `split_latent` / `merge_latent` walk its latent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import distrax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v


class DepthToSpace(distrax.Bijector):
    """Depth-to-space: `forward` maps (..., H, W, C f^2) to (..., H f, W f, C); log|det| = 0.

    Every f^2 channels become an f x f spatial block (row-major within the
    block). `forward` runs noise -> data, as for every dgmjax bijector: the
    deeper side of a multi-scale flow is the squeezed one. `inverse` is
    RealNVP's and Glow's "squeeze" (space-to-depth), which the density
    direction applies on the way in.
    """

    def __init__(self, factor: int = 2):
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"`factor` must be a positive int; got {factor!r}.")
        self._factor = int(factor)
        super().__init__(event_ndims_in=3, is_constant_jacobian=True)

    @property
    def factor(self) -> int:
        return self._factor

    def _check(self, x, name, squeezed: bool):
        if not hasattr(x, "shape"):
            raise ValueError(f"`{name}` must be an array of shape (..., H, W, C); got {type(x).__name__}.")
        v.check_real(x, name)
        if x.ndim < 3:
            raise ValueError(f"`{name}` must have shape (..., H, W, C); got {x.shape}.")
        f = self._factor
        h, w, c = x.shape[-3:]
        if squeezed and c % (f * f):
            raise ValueError(f"DepthToSpace(factor={f}) needs C divisible by {f * f}; got `{name}` of "
                             f"shape {x.shape}.")
        if not squeezed and (h % f or w % f):
            raise ValueError(f"space-to-depth (DepthToSpace(factor={f}).inverse) needs H and W divisible "
                             f"by {f}; got `{name}` of shape {x.shape}.")

    def forward_and_log_det(self, z):
        self._check(z, "z", squeezed=True)
        f = self._factor
        *batch, h, w, c = z.shape
        x = z.reshape(*batch, h, w, f, f, c // (f * f))
        x = jnp.moveaxis(x, -3, -4)  # (..., h, f, w, f, c/f^2)
        return x.reshape(*batch, h * f, w * f, c // (f * f)), jnp.zeros(tuple(batch), z.dtype)

    def inverse_and_log_det(self, x):
        self._check(x, "x", squeezed=False)
        f = self._factor
        *batch, h, w, c = x.shape
        z = x.reshape(*batch, h // f, f, w // f, f, c)
        z = jnp.moveaxis(z, -4, -3)  # (..., h/f, w/f, f, f, c)
        return z.reshape(*batch, h // f, w // f, f * f * c), jnp.zeros(tuple(batch), x.dtype)


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
        if isinstance(num_kept, bool) or not isinstance(num_kept, (int, np.integer)) or num_kept < 1:
            raise ValueError(f"`num_kept` must be a positive int; got {num_kept!r}.")
        self._bijector = bijector
        self._num_kept = int(num_kept)
        super().__init__(event_ndims_in=3)

    @property
    def bijector(self) -> distrax.Bijector:
        return self._bijector

    def _split(self, x, name):
        if not hasattr(x, "shape"):
            raise ValueError(f"`{name}` must be an array of shape (..., H, W, C); got {type(x).__name__}.")
        v.check_real(x, name)
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


class Scale(NamedTuple):
    """One scale of a multi-scale flow, listed from the data side.

    `pre` acts at the scale's input resolution, then (with `squeeze`) space
    goes to depth, then `post` acts at the squeezed resolution; every scale
    but the last ends by factoring out half the channels. RealNVP's scales
    are (checkerboard couplings, True, channel couplings) and its last is
    (checkerboard couplings, False, None); Glow's and the integer flow's are
    (None, True, flow steps).
    """

    pre: distrax.BijectorLike | None = None
    squeeze: bool = True
    post: distrax.BijectorLike | None = None


def multiscale_shapes(image_shape: Sequence[int], squeezes: Sequence[bool]) -> list[tuple[tuple, tuple]]:
    """Per scale, the (H, W, C) its `pre` layers see and the one its `post` layers see.

    Scale s + 1 starts from the first half of the channels of scale s's
    squeezed shape: the other half is factored out to the latent.
    """
    h, w, c = v.check_image_shape(image_shape)
    if not squeezes:
        raise ValueError("`scales` (or `squeezes`) must hold at least one scale; got none.")
    shapes = []
    for s, squeeze in enumerate(squeezes):
        before = (h, w, c)
        if squeeze:
            if h % 2 or w % 2:
                raise ValueError(
                    f"`image_shape` {tuple(image_shape)} cannot be squeezed {sum(squeezes)} times: scale {s} "
                    f"has H x W = {h} x {w}, not divisible by 2.")
            h, w, c = h // 2, w // 2, 4 * c
        shapes.append((before, (h, w, c)))
        if s + 1 < len(squeezes):
            if c < 2:
                raise ValueError(f"`image_shape` {tuple(image_shape)} leaves scale {s} with {c} channel(s): "
                                 f"nothing to factor out; expected at least 2.")
            c //= 2
    return shapes


def multiscale_flow(image_shape: Sequence[int], scales: Sequence[Scale]) -> distrax.Bijector:
    """The multi-scale flow of `scales` (data side first) on images of `image_shape`.

    The latent keeps the data's shape: a scale's factored-out channels are
    the second half of the channels of the latent squeezed to that scale (see
    `split_latent`). Forward runs noise -> data.
    """
    if isinstance(scales, Scale) or not isinstance(scales, Sequence) or \
            not all(isinstance(s, Scale) for s in scales):
        raise ValueError(f"`scales` must be a sequence of `Scale`s; got {scales!r}.")
    shapes = multiscale_shapes(image_shape, [s.squeeze for s in scales])

    def build(s: int) -> distrax.Bijector:
        scale = scales[s]
        layers = [] if scale.pre is None else [scale.pre]
        if scale.squeeze:
            layers.append(DepthToSpace())
        if scale.post is not None:
            layers.append(scale.post)
        if s + 1 < len(scales):
            layers.append(FactorOut(build(s + 1), num_kept=shapes[s][1][2] // 2))
        if scale.squeeze:
            layers.append(distrax.Inverse(DepthToSpace()))
        if not layers:
            raise ValueError(f"`scales`[{s}] has no layers (pre and post None, no squeeze, last scale).")
        return distrax.Chain(layers) if len(layers) > 1 else distrax.as_bijector(layers[0])

    return build(0)


def split_latent(z, image_shape: Sequence[int], squeezes: Sequence[bool]) -> list:
    """The latent of a multi-scale flow in parts: the channels factored out at each scale
    (in that scale's squeezed layout), then all channels of the last scale. Any leading axes ride along."""
    shapes = multiscale_shapes(image_shape, squeezes)
    z = v.as_array(z, "z")
    v.check_event_shape(z, shapes[0][0], "z")
    parts, h = [], z
    for s, squeeze in enumerate(squeezes):
        if squeeze:
            h = DepthToSpace().inverse(h)
        if s + 1 == len(squeezes):
            parts.append(h)
        else:
            kept = shapes[s][1][2] // 2
            parts.append(h[..., kept:])
            h = h[..., :kept]
    return parts


def merge_latent(parts: Sequence, image_shape: Sequence[int], squeezes: Sequence[bool]):
    """The inverse of `split_latent`."""
    shapes = multiscale_shapes(image_shape, squeezes)
    if len(parts) != len(squeezes):
        raise ValueError(f"`parts` must hold one array per scale ({len(squeezes)}); got {len(parts)}.")
    for s, part in enumerate(parts):
        v.check_real(part, f"parts[{s}]")
        h, w, c = shapes[s][1]
        expected = (h, w, c if s + 1 == len(squeezes) else c - c // 2)
        if tuple(np.shape(part))[-3:] != expected:
            raise ValueError(f"`parts`[{s}] must have trailing shape {expected} (see `split_latent`); got "
                             f"shape {tuple(np.shape(part))}.")
    h = parts[-1]
    for s in range(len(squeezes) - 1, -1, -1):
        if s + 1 < len(squeezes):
            h = jnp.concatenate([h, parts[s]], axis=-1)
        if squeezes[s]:
            h = DepthToSpace().forward(h)
    return h
