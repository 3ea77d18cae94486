"""Conditioner networks for coupling and autoregressive layers (Flax linen).

Each network ends in a zero-initialized layer, so the bijector it
parameterizes starts as the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.nn.conv import Conv

ModuleDef = Callable[..., nn.Module]
"""A Flax module class or a factory of modules (e.g. a `functools.partial` of one)."""

BLOCK_CONTRACT = "a module class (features, activation, conv_impl=...) -> a block keeping the channels"
"""What `ConvResNet`'s `block` must be, for its error message."""


class MLP(nn.Module):
    """Dense network on the last axis, output reshaped to `x.shape[:-1] + out_shape`.

    `functools.partial(MLP, hidden_sizes=(64, 64))` is a conditioner factory
    (output size -> module) for `dgmjax.models.RealNVP`.

    Attributes:
      out_shape: per-example output shape, e.g. (D, 2) for shift and
        log-scale, or an int for a vector.
      hidden_sizes: widths of the hidden layers.
      activation: the hidden activation, a function (`flax.linen.relu`).
      zero_init_output: zero the last layer's kernel and bias.
      compute_dtype: `jnp.bfloat16` or `jnp.float16` runs the layers in that
        dtype (parameters stay float32; the output is cast back to x's
        dtype); None computes in float32.
    """

    out_shape: int | Sequence[int]
    hidden_sizes: Sequence[int] = (256, 256)
    activation: Callable = nn.relu
    zero_init_output: bool = True
    compute_dtype: Any = None

    @nn.compact
    def __call__(self, x):
        hidden_sizes = v.check_sizes(self.hidden_sizes, "hidden_sizes", allow_empty=True)
        out_shape = (self.out_shape,) if isinstance(self.out_shape, (int, np.integer)) else self.out_shape
        out_shape = v.check_sizes(out_shape, "out_shape")
        act = v.check_callable(self.activation, "activation", "an activation function")
        dt = v.as_compute_dtype(self.compute_dtype)
        x = v.as_array(x, "x")
        if x.ndim < 1:
            raise ValueError("`x` must have shape (..., features); got a scalar.")
        v.check_float(x, "x")
        h = x if dt is None else x.astype(dt)
        for width in hidden_sizes:
            h = act(nn.Dense(width, dtype=dt)(h))
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        out = nn.Dense(math.prod(out_shape), kernel_init=init, bias_init=nn.initializers.zeros,
                       dtype=dt)(h)
        return out.astype(x.dtype).reshape(x.shape[:-1] + out_shape)


class ResidualBlock(nn.Module):
    """Pre-activation residual block on NHWC images: `x + conv1x1(act(conv3x3(act(x))))`.

    Attributes:
      features: channels of both convolutions; must equal the input's channels.
      activation: the activation function.
      conv_impl: implementation of the convolutions (see `conv2d_same`).
    """

    features: int
    activation: Callable = nn.gelu
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        features = v.check_positive_int(self.features, "features")
        act = v.check_callable(self.activation, "activation", "an activation function")
        x = v.as_array(x, "x")
        if x.ndim < 3 or x.shape[-1] != features:
            raise ValueError(f"`x` must have shape (..., H, W, features={features}) (the block adds its "
                             f"output to x); got {x.shape}.")
        h = Conv(self.features, (3, 3), impl=self.conv_impl)(act(x))
        h = Conv(self.features, (1, 1), impl=self.conv_impl)(act(h))
        return x + h


def concat_elu(x):
    """ELU of x and of -x, concatenated on the last axis (PixelCNN++): twice the channels."""
    x = v.as_array(x, "x")
    if not jnp.issubdtype(x.dtype, jnp.floating):  # bfloat16 too (mixed precision)
        raise ValueError(f"`x` must be floating point; got dtype {x.dtype}.")
    if x.ndim < 1:
        raise ValueError("`x` must have shape (..., channels); got a scalar.")
    return nn.elu(jnp.concatenate([x, -x], -1))


class GatedResidualBlock(nn.Module):
    """Gated residual block (PixelCNN++, Flow++) on NHWC images: `x + a * sigmoid(b)` where
    `(a, b) = conv1x1(act(conv3x3(act(x))))` split in two, `act` concat-ELU by default.

    Attributes:
      features: channels of the input and of the output; must equal the input's channels.
      activation: the activation function (`concat_elu`, which doubles the channels, or one that
        keeps them).
      conv_impl: implementation of the convolutions (see `conv2d_same`).
    """

    features: int
    activation: Callable = concat_elu
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        features = v.check_positive_int(self.features, "features")
        act = v.check_callable(self.activation, "activation", "an activation function")
        x = v.as_array(x, "x")
        if x.ndim < 3 or x.shape[-1] != features:
            raise ValueError(f"`x` must have shape (..., H, W, features={features}) (the block adds its "
                             f"output to x); got {x.shape}.")
        h = Conv(features, (3, 3), impl=self.conv_impl)(act(x))
        h = Conv(2 * features, (1, 1), impl=self.conv_impl)(act(h))
        a, b = jnp.split(h, 2, axis=-1)
        return x + a * nn.sigmoid(b)


class ConvResNet(nn.Module):
    """Convolutional ResNet on NHWC images, keeping H and W.

    Input conv (3x3) to `features` channels, `num_blocks` blocks
    (`block(features, activation, conv_impl=conv_impl)`), `activation`, and a zero-initialized 3x3
    output conv to `out_channels`. The blocks are pre-activation
    `ResidualBlock`s by default, or `GatedResidualBlock`s with
    `activation=concat_elu` as in Flow++; any module class (or factory)
    taking `(features, activation, conv_impl=...)` and keeping the channels
    works. Leading
    batch axes beyond one are flattened and restored. Convolutions are
    `dgmjax.nn.Conv` (fast inside `lax.scan` on CPU too). `compute_dtype` as
    in `MLP`: the convolutions run in it, the parameters stay float32 and the
    output comes back in x's dtype.

    `functools.partial(ConvResNet, features=96, num_blocks=4)` is a
    conditioner factory (output channels -> module) for the image flows.
    """

    out_channels: int
    features: int = 64
    num_blocks: int = 2
    activation: Callable = nn.gelu
    block: ModuleDef = ResidualBlock
    zero_init_output: bool = True
    conv_impl: str = "auto"
    compute_dtype: Any = None

    @nn.compact
    def __call__(self, x):
        v.check_positive_int(self.features, "features")
        v.check_nonnegative_int(self.num_blocks, "num_blocks")
        v.check_positive_int(self.out_channels, "out_channels")
        act = v.check_callable(self.activation, "activation", "an activation function")
        block = v.check_callable(self.block, "block", BLOCK_CONTRACT)
        x = v.as_array(x, "x")
        if x.ndim < 3:
            raise ValueError(f"`x` must have shape (..., H, W, C); got {x.shape}.")
        v.check_float(x, "x")
        batch_shape, event_shape = x.shape[:-3], x.shape[-3:]
        dt = v.as_compute_dtype(self.compute_dtype)
        h = x.reshape((-1,) + event_shape)
        h = h if dt is None else h.astype(dt)  # every Conv computes in its input's dtype
        h = Conv(self.features, (3, 3), impl=self.conv_impl)(h)
        for _ in range(self.num_blocks):
            h = block(self.features, act, conv_impl=self.conv_impl)(h)
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        h = Conv(self.out_channels, (3, 3), kernel_init=init, impl=self.conv_impl)(act(h))
        return h.astype(x.dtype).reshape(batch_shape + h.shape[-3:])
