"""Conditioner networks for coupling and autoregressive layers (Flax linen).

Each network ends in a zero-initialized layer, so the bijector it
parameterizes starts as the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dgmjax import _checks as v
from dgmjax.nn.conv import Conv

_ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "gelu": nn.gelu, "elu": nn.elu,
                                     "silu": nn.silu, "tanh": jnp.tanh}


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def resolve_compute_dtype(name: str | None):
    """The jnp dtype a network computes in: None or "float32" is float32 (no casting), "bfloat16" or
    "float16" for mixed precision (parameters stay float32, outputs come back as float32)."""
    if name is None or name == "float32":
        return None
    if not isinstance(name, str) or name not in COMPUTE_DTYPES:
        raise ValueError(f"`compute_dtype` must be one of {COMPUTE_DTYPES} or None; got {name!r}.")
    return jnp.dtype(name)


def get_activation(name: str) -> Callable:
    """The activation function called `name`: "relu", "gelu", "elu", "silu" or "tanh"."""
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {name!r}.")
    return _ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense network on the last axis, output reshaped to `x.shape[:-1] + out_shape`.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      out_shape: per-example output shape, e.g. (D, 2) for shift and log-scale.
      activation: name of the hidden activation.
      zero_init_output: zero the last layer's kernel and bias.
      compute_dtype: "bfloat16" or "float16" runs the layers in that dtype
        (parameters stay float32; the output is cast back to x's dtype);
        None or "float32" computes in float32.
    """

    hidden_sizes: Sequence[int]
    out_shape: Sequence[int]
    activation: str = "relu"
    zero_init_output: bool = True
    compute_dtype: str | None = None

    @nn.compact
    def __call__(self, x):
        hidden_sizes = v.check_sizes(self.hidden_sizes, "hidden_sizes", allow_empty=True)
        out_shape = v.check_sizes(self.out_shape, "out_shape")
        act = get_activation(self.activation)
        dt = resolve_compute_dtype(self.compute_dtype)
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
      activation: name of the activation (see `get_activation`).
      conv_impl: implementation of the convolutions (see `conv2d_same`).
    """

    features: int
    activation: str = "gelu"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        features = v.check_positive_int(self.features, "features")
        act = get_activation(self.activation)
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
    """Gated residual block with concat-ELU (PixelCNN++, Flow++) on NHWC images:
    `x + a * sigmoid(b)` where `(a, b) = conv1x1(concat_elu(conv3x3(concat_elu(x))))` split in two.

    Attributes:
      features: channels of the input and of the output; must equal the input's channels.
      conv_impl: implementation of the convolutions (see `conv2d_same`).
    """

    features: int
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        features = v.check_positive_int(self.features, "features")
        x = v.as_array(x, "x")
        if x.ndim < 3 or x.shape[-1] != features:
            raise ValueError(f"`x` must have shape (..., H, W, features={features}) (the block adds its "
                             f"output to x); got {x.shape}.")
        h = Conv(features, (3, 3), impl=self.conv_impl)(concat_elu(x))
        h = Conv(2 * features, (1, 1), impl=self.conv_impl)(concat_elu(h))
        a, b = jnp.split(h, 2, axis=-1)
        return x + a * nn.sigmoid(b)


BLOCKS = ("residual", "gated")


class ConvResNet(nn.Module):
    """Convolutional ResNet on NHWC images, keeping H and W.

    Input conv (3x3) to `features` channels, `num_blocks` residual blocks,
    and a zero-initialized 3x3 output conv to `out_channels`. The blocks are
    `block="residual"`: pre-activation `ResidualBlock`s (3x3 then 1x1 conv,
    `activation`), or `block="gated"`: `GatedResidualBlock`s with concat-ELU
    as in Flow++ (`activation` then unused; the output conv sees concat-ELU
    features). Leading batch axes beyond one are flattened and restored.
    Convolutions are `dgmjax.nn.Conv` (fast inside `lax.scan` on CPU too).
    `compute_dtype` as in `MLP`: the convolutions run in it, the parameters
    stay float32 and the output comes back in x's dtype.
    """

    features: int
    num_blocks: int
    out_channels: int
    activation: str = "gelu"
    zero_init_output: bool = True
    conv_impl: str = "auto"
    compute_dtype: str | None = None
    block: str = "residual"

    @nn.compact
    def __call__(self, x):
        v.check_positive_int(self.features, "features")
        v.check_choice(self.block, BLOCKS, "block")
        v.check_nonnegative_int(self.num_blocks, "num_blocks")
        v.check_positive_int(self.out_channels, "out_channels")
        get_activation(self.activation)
        x = v.as_array(x, "x")
        if x.ndim < 3:
            raise ValueError(f"`x` must have shape (..., H, W, C); got {x.shape}.")
        v.check_float(x, "x")
        batch_shape, event_shape = x.shape[:-3], x.shape[-3:]
        dt = resolve_compute_dtype(self.compute_dtype)
        h = x.reshape((-1,) + event_shape)
        h = h if dt is None else h.astype(dt)  # every Conv computes in its input's dtype
        h = Conv(self.features, (3, 3), impl=self.conv_impl)(h)
        for _ in range(self.num_blocks):
            if self.block == "gated":
                h = GatedResidualBlock(self.features, self.conv_impl)(h)
            else:
                h = ResidualBlock(self.features, self.activation, self.conv_impl)(h)
        h = concat_elu(h) if self.block == "gated" else get_activation(self.activation)(h)
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        h = Conv(self.out_channels, (3, 3), kernel_init=init, impl=self.conv_impl)(h)
        return h.astype(x.dtype).reshape(batch_shape + h.shape[-3:])
