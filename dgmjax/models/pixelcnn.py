"""A PixelCNN++-style autoregressive image model (Salimans et al. 2017) as a Flax module.

Two causal streams, as in PixelCNN++ (no blind spot): `u` sees the rows above
a pixel (down-shifted convolutions), `ul` sees the rows above and the pixels
to its left (down-right-shifted convolutions), each a stack of gated residual
blocks run with `lax.scan`. A likelihood head (`dgmjax.distributions`) turns
the last layer's outputs into each pixel's distribution: per channel
(`LogisticMixtureHead`, `CategoricalHead`, `BernoulliHead`: the channels of a
pixel independent given the pixels before it), or per RGB pixel with
PixelCNN++'s channel coupling (`RGBLogisticMixtureHead`).

log p(x) is one network pass; sampling is pixel by pixel through a
`lax.fori_loop` (H*W passes). An optional context vector (a VAE decoder's
latent) enters every block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dgmjax import _checks as v
from dgmjax._checks import check_context
from dgmjax.distributions import LogisticMixtureHead
from dgmjax.nn.conv import IMPLS, Conv
from dgmjax.nn.stack import stack_params

__all__ = ["PixelCNN", "down_shift", "right_shift"]


def down_shift(x):
    """Shifts NHWC rows down by one (a zero row on top): output row i holds input row i-1."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x):
    """Shifts NHWC columns right by one: output column j holds input column j-1."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def concat_elu(x):
    return jax.nn.elu(jnp.concatenate([x, -x], axis=-1))


def _down_conv(features, kernel, impl, **kwargs):
    """Output (i, j) sees rows i-kh+1..i and columns j-(kw-1)/2..j+(kw-1)/2."""
    kh, kw = kernel
    return Conv(features, kernel, padding=((kh - 1, 0), ((kw - 1) // 2, (kw - 1) // 2)), impl=impl,
                **kwargs)


def _down_right_conv(features, kernel, impl, **kwargs):
    """Output (i, j) sees rows i-kh+1..i and columns j-kw+1..j."""
    kh, kw = kernel
    return Conv(features, kernel, padding=((kh - 1, 0), (kw - 1, 0)), impl=impl, **kwargs)


class GatedResidual(nn.Module):
    """x + a * sigmoid(b), [a, b] = conv(concat_elu(conv(concat_elu(x)) + nin(aux))) + context."""

    features: int
    kind: str  # "down" or "down_right"
    context_size: int = 0
    impl: str = "auto"

    @nn.compact
    def __call__(self, x, aux=None, context=None):
        conv = (lambda f, **kw: _down_conv(f, (2, 3), self.impl, **kw)) if self.kind == "down" else \
            (lambda f, **kw: _down_right_conv(f, (2, 2), self.impl, **kw))
        h = conv(self.features)(concat_elu(x))
        if aux is not None:
            h = h + nn.Dense(self.features, name="aux")(concat_elu(aux))
        h = conv(2 * self.features, kernel_init=nn.initializers.variance_scaling(
            0.1, "fan_in", "truncated_normal"))(concat_elu(h))
        if context is not None:
            h = h + nn.Dense(2 * self.features, use_bias=False, name="context")(context)[:, None, None, :]
        a, b = jnp.split(h, 2, axis=-1)
        return x + a * jax.nn.sigmoid(b)


class _Block(nn.Module):
    """One block of both streams: u <- gated(u); ul <- gated(ul, aux=u)."""

    features: int
    context_size: int = 0
    impl: str = "auto"

    @nn.compact
    def __call__(self, u, ul, context=None):
        u = GatedResidual(self.features, "down", self.context_size, self.impl, name="u")(u, None, context)
        ul = GatedResidual(self.features, "down_right", self.context_size, self.impl, name="ul")(
            ul, u, context)
        return u, ul


class PixelCNN(nn.Module):
    """PixelCNN++-style model of integer NHWC images in [0, num_levels).

    Attributes:
      image_shape: (H, W, C).
      num_levels: L, levels per channel.
      features: channels of both streams.
      num_blocks: gated residual blocks per stream (scanned).
      head: a likelihood head from `dgmjax.distributions` (default a
        discretized logistic mixture of 5 per channel; RGBLogisticMixtureHead
        couples the channels of RGB pixels).
      context_size: if > 0, condition on a vector `context` of that size.

    `model.apply(variables, x)` is log P(x) in nats per image (exact: the
    model is discrete); `method=model.distribution` gives the distrax
    distribution of x; `method=model.sample` draws images.
    """

    image_shape: Sequence[int]
    num_levels: int = 256
    features: int = 64
    num_blocks: int = 4
    head: Any = LogisticMixtureHead(5)
    context_size: int = 0
    conv_impl: str = "auto"

    def _check_config(self):
        v.check_image_shape(self.image_shape)
        v.check_num_levels(self.num_levels)
        v.check_positive_int(self.features, "features")
        v.check_positive_int(self.num_blocks, "num_blocks")
        v.check_nonnegative_int(self.context_size, "context_size")
        v.check_choice(self.conv_impl, IMPLS, "conv_impl")
        event = tuple(getattr(self.head, "event_shape", ()))
        if event not in ((), (self.image_shape[-1],)):
            raise ValueError(f"`head` {self.head} models pixels of {event[0]} channels; the images have "
                             f"{self.image_shape[-1]}.")

    def _per_pixel(self) -> bool:
        return tuple(self.head.event_shape) != ()

    def _out_channels(self) -> int:
        p = self.head.num_params(self.num_levels)
        return p if self._per_pixel() else p * self.image_shape[-1]

    def _context(self, context, batch: int):
        context = check_context(context, self.context_size, "PixelCNN")
        if context is not None:
            if context.ndim == 1:
                context = jnp.broadcast_to(context, (batch,) + context.shape)
            if context.shape != (batch, self.context_size):
                raise ValueError(f"`context` must have shape (batch, {self.context_size}) = "
                                 f"{(batch, self.context_size)}; got {context.shape}.")
        return context

    def _check_x(self, x):
        self._check_config()
        x = v.as_array(x, "x")
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"`x` must have shape (B,) + {tuple(self.image_shape)}; got {x.shape}.")
        v.check_integer_levels(x, self.num_levels, "x")
        return x

    @nn.compact
    def network(self, x, context=None):
        """Per-pixel head outputs (B, H, W, out) from integer images x (B, H, W, C).

        Output at pixel (i, j) depends only on pixels before it in raster order.
        """
        self._check_config()
        xs = 2.0 * x.astype(jnp.float32) / (self.num_levels - 1) - 1.0
        # A channel of ones lets the network tell the zero padding from real pixels.
        xs = jnp.concatenate([xs, jnp.ones(xs.shape[:-1] + (1,), xs.dtype)], axis=-1)
        f, impl = self.features, self.conv_impl
        u = down_shift(_down_conv(f, (2, 3), impl, name="u_in")(xs))
        ul = down_shift(_down_conv(f, (1, 3), impl, name="ul_in_up")(xs)) + \
            right_shift(_down_right_conv(f, (2, 1), impl, name="ul_in_left")(xs))
        block = _Block(f, self.context_size, impl, parent=None)
        example_ctx = None if context is None else context[:1]
        stacked = self.param("blocks", lambda rng: stack_params(block, rng, self.num_blocks, u[:1], ul[:1],
                                                                example_ctx))

        def body(carry, p):
            u_, ul_ = block.apply({"params": p}, *carry, context)
            return (u_, ul_), None

        (u, ul), _ = jax.lax.scan(body, (u, ul), stacked)
        return nn.Dense(self._out_channels(), name="head")(jax.nn.elu(ul))

    def _pixel_distribution(self, out) -> distrax.Distribution:
        """The distribution of the channels of each position of `out` (..., P): event shape (C,)."""
        if self._per_pixel():
            return self.head(out, self.num_levels)
        c = self.image_shape[-1]
        per_channel = self.head(out.reshape(out.shape[:-1] + (c, -1)), self.num_levels)
        return distrax.Independent(per_channel, 1)

    def distribution(self, x, context=None) -> distrax.Distribution:
        """The distribution of images whose pixels are conditioned on those of x before them
        (evaluate it at x for log P(x)): batch shape (B,), event shape (H, W, C)."""
        x = self._check_x(x)
        out = self.network(x, self._context(context, x.shape[0]))
        return distrax.Independent(self._pixel_distribution(out), 2)

    def __call__(self, x, context=None):
        """log P(x) in nats per image (exact: the model is discrete), shape (B,)."""
        x = self._check_x(x)
        return self.distribution(x, context).log_prob(x)

    def sample(self, key, num_samples: int, context=None):
        """Images (num_samples, H, W, C), int32, one pixel at a time (H*W network passes)."""
        num_samples = v.check_positive_int(num_samples, "num_samples")
        self._check_config()
        context = self._context(context, num_samples)
        h, w, c = self.image_shape
        canvas = jnp.zeros((num_samples, h, w, c), jnp.int32)

        def body(i, canvas):
            row, col = i // w, i % w
            out = self.network(canvas, context)
            pixel_out = jax.lax.dynamic_slice(out, (0, row, col, 0), (num_samples, 1, 1, out.shape[-1]))
            pixel = self._pixel_distribution(pixel_out[:, 0, 0]).sample(seed=jax.random.fold_in(key, i))
            pixel = jnp.clip(pixel.astype(jnp.int32), 0, self.num_levels - 1)
            return jax.lax.dynamic_update_slice(canvas, pixel[:, None, None, :], (0, row, col, 0))

        return jax.lax.fori_loop(0, h * w, body, canvas)
