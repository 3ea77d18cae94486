"""Conditioner networks for coupling and autoregressive layers (Flax linen).

Each network ends in a zero-initialized layer, so the bijector it
parameterizes starts as the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dgmjax.nn.conv import Conv

_ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "gelu": nn.gelu, "elu": nn.elu,
                                     "silu": nn.silu, "tanh": jnp.tanh}


def get_activation(name: str) -> Callable:
    """The activation function called `name`: "relu", "gelu", "elu", "silu" or "tanh"."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {name!r}.")
    return _ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense network on the last axis, output reshaped to `x.shape[:-1] + out_shape`.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      out_shape: per-example output shape, e.g. (D, 2) for shift and log-scale.
      activation: name of the hidden activation.
      zero_init_output: zero the last layer's kernel and bias.
    """

    hidden_sizes: Sequence[int]
    out_shape: Sequence[int]
    activation: str = "relu"
    zero_init_output: bool = True

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        h = x
        for width in self.hidden_sizes:
            h = act(nn.Dense(width)(h))
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        out = nn.Dense(math.prod(self.out_shape), kernel_init=init, bias_init=nn.initializers.zeros)(h)
        return out.reshape(x.shape[:-1] + tuple(self.out_shape))


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
        act = get_activation(self.activation)
        h = Conv(self.features, (3, 3), impl=self.conv_impl)(act(x))
        h = Conv(self.features, (1, 1), impl=self.conv_impl)(act(h))
        return x + h


class ConvResNet(nn.Module):
    """Convolutional ResNet on NHWC images, keeping H and W.

    Input conv (3x3) to `features` channels, `num_blocks` residual blocks
    (3x3 then 1x1 conv, pre-activation), and a zero-initialized 3x3 output conv
    to `out_channels`. Leading batch axes beyond one are flattened and restored.
    Convolutions are `dgmjax.nn.Conv` (fast inside `lax.scan` on CPU too).
    """

    features: int
    num_blocks: int
    out_channels: int
    activation: str = "gelu"
    zero_init_output: bool = True
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        batch_shape, event_shape = x.shape[:-3], x.shape[-3:]
        h = x.reshape((-1,) + event_shape)
        h = Conv(self.features, (3, 3), impl=self.conv_impl)(h)
        for _ in range(self.num_blocks):
            h = ResidualBlock(self.features, self.activation, self.conv_impl)(h)
        h = get_activation(self.activation)(h)
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        h = Conv(self.out_channels, (3, 3), kernel_init=init, impl=self.conv_impl)(h)
        return h.reshape(batch_shape + h.shape[-3:])
