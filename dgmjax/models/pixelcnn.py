"""A PixelCNN++-style autoregressive image model (Salimans et al. 2017) as a Flax module.

Two causal streams, as in PixelCNN++ (no blind spot): `u` sees the rows above
a pixel (down-shifted convolutions), `ul` sees the rows above and the pixels
to its left (down-right-shifted convolutions), each a stack of gated residual
blocks run with `lax.scan`. The head gives, per pixel:

- "mixture": a discretized logistic mixture of K components (for C = 3 with
  PixelCNN++'s channel coupling, so the channels of a pixel are ordered too);
- "bernoulli": one logit (binary data, C = 1);
- "categorical": num_levels logits (C = 1).

log p(x) is one network pass; sampling is pixel by pixel through a
`lax.fori_loop` (H*W passes). An optional context vector (a VAE decoder's
latent) enters every block.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dgmjax import _validation as v
from dgmjax.likelihoods import (
    bernoulli_log_prob,
    categorical_log_prob,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_sample,
    discretized_logistic_rgb_log_prob,
    discretized_logistic_rgb_sample,
)
from dgmjax.nn.conditioners import init_stacked
from dgmjax.nn.conv import Conv

__all__ = ["PixelCNN", "down_shift", "right_shift"]

HEADS = ("mixture", "bernoulli", "categorical")


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
      head: "mixture" (K = num_mixtures discretized logistics; RGB-coupled when
        C = 3), "bernoulli" (L = 2, C = 1) or "categorical" (C = 1).
      num_mixtures: K.
      context_size: > 0 to condition on a vector `context` of that size.
    """

    image_shape: Sequence[int]
    num_levels: int = 256
    features: int = 64
    num_blocks: int = 4
    head: str = "mixture"
    num_mixtures: int = 5
    context_size: int = 0
    conv_impl: str = "auto"

    def _check_config(self):
        if len(self.image_shape) != 3:
            raise ValueError(f"`image_shape` must be (H, W, C); got {tuple(self.image_shape)}.")
        v.check_num_levels(self.num_levels)
        v.check_positive_int(self.num_blocks, "num_blocks")
        c = self.image_shape[-1]
        if self.head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}; got {self.head!r}.")
        if self.head == "mixture" and c not in (1, 3):
            raise ValueError(f"the mixture head takes C = 1 or 3 (RGB coupling); got C = {c}.")
        if self.head != "mixture" and c != 1:
            raise ValueError(f"the {self.head} head takes one channel; got C = {c}.")
        if self.head == "bernoulli" and self.num_levels != 2:
            raise ValueError(f"the bernoulli head needs num_levels = 2; got {self.num_levels}.")

    def _out_channels(self) -> int:
        k, c = self.num_mixtures, self.image_shape[-1]
        if self.head == "bernoulli":
            return 1
        if self.head == "categorical":
            return self.num_levels
        return 3 * k if c == 1 else 10 * k

    def _check_context(self, context, batch: int):
        if self.context_size == 0:
            if context is not None:
                raise ValueError("`context` was given to an unconditional PixelCNN (context_size=0).")
            return None
        if context is None:
            raise ValueError(f"this PixelCNN is conditional (context_size={self.context_size}); pass "
                             "`context`.")
        context = jnp.asarray(context)
        if context.ndim == 1:
            context = jnp.broadcast_to(context, (batch,) + context.shape)
        if context.shape != (batch, self.context_size):
            raise ValueError(f"`context` must have shape (batch, {self.context_size}) = "
                             f"{(batch, self.context_size)}; got {context.shape}.")
        return context

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
        stacked = self.param("blocks", lambda rng: init_stacked(block, rng, self.num_blocks, u[:1], ul[:1],
                                                                example_ctx))

        def body(carry, p):
            u_, ul_ = block.apply({"params": p}, *carry, context)
            return (u_, ul_), None

        (u, ul), _ = jax.lax.scan(body, (u, ul), stacked)
        return nn.Dense(self._out_channels(), name="head")(jax.nn.elu(ul))

    def _split_head(self, out):
        k = self.num_mixtures
        if self.image_shape[-1] == 1:
            return out[..., :k], out[..., k:2 * k], out[..., 2 * k:]
        lw = out[..., :k]
        rest = out[..., k:].reshape(out.shape[:-1] + (3, 3 * k))
        return lw, rest[..., :k], rest[..., k:2 * k], rest[..., 2 * k:]

    def log_prob_per_pixel(self, x, out):
        """log p of every pixel (B, H, W) given the head outputs."""
        if self.head == "bernoulli":
            return bernoulli_log_prob(x[..., 0], out[..., 0])
        if self.head == "categorical":
            return categorical_log_prob(x[..., 0], out)
        if self.image_shape[-1] == 1:
            lw, mu, ls = self._split_head(out)
            return discretized_logistic_mixture_log_prob(x[..., 0], lw, mu, ls, self.num_levels)
        lw, mu, ls, co = self._split_head(out)
        return discretized_logistic_rgb_log_prob(x, lw, mu, ls, co, self.num_levels)

    def __call__(self, x, context=None):
        """log p(x) in nats per image (exact: the model is discrete), shape (B,)."""
        self._check_config()
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"`x` must have shape (B,) + {tuple(self.image_shape)}; got {x.shape}.")
        v.check_integer_levels(x, self.num_levels, "x")
        context = self._check_context(context, x.shape[0])
        out = self.network(x, context)
        return self.log_prob_per_pixel(x, out).sum((1, 2))

    def _sample_pixel(self, key, out):
        """Samples one pixel (B, C) from its head outputs (B, out)."""
        if self.head == "bernoulli":
            return jax.random.bernoulli(key, jax.nn.sigmoid(out[..., :1])).astype(jnp.int32)
        if self.head == "categorical":
            return jax.random.categorical(key, out, axis=-1)[..., None].astype(jnp.int32)
        if self.image_shape[-1] == 1:
            lw, mu, ls = self._split_head(out)
            return discretized_logistic_mixture_sample(key, lw, mu, ls, self.num_levels)[..., None]
        lw, mu, ls, co = self._split_head(out)
        return discretized_logistic_rgb_sample(key, lw, mu, ls, co, self.num_levels)

    def sample(self, key, num_samples: int, context=None):
        """Images (num_samples, H, W, C), int32, one pixel at a time (H*W network passes)."""
        num_samples = v.check_positive_int(num_samples, "num_samples")
        context = self._check_context(context, num_samples)
        h, w, c = self.image_shape
        canvas = jnp.zeros((num_samples, h, w, c), jnp.int32)

        def body(i, canvas):
            row, col = i // w, i % w
            out = self.network(canvas, context)
            pixel_out = jax.lax.dynamic_slice(out, (0, row, col, 0), (num_samples, 1, 1, out.shape[-1]))
            pixel = self._sample_pixel(jax.random.fold_in(key, i), pixel_out[:, 0, 0])
            return jax.lax.dynamic_update_slice(canvas, pixel[:, None, None, :], (0, row, col, 0))

        return jax.lax.fori_loop(0, h * w, body, canvas)
