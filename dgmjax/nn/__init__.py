"""Flax linen modules: conditioner networks and a scan-friendly convolution."""

from dgmjax.nn.conditioners import MLP, ConvResNet, ResidualBlock, get_activation, init_stacked
from dgmjax.nn.conv import Conv, conv2d_same

__all__ = ["MLP", "Conv", "ConvResNet", "ResidualBlock", "conv2d_same", "get_activation",
           "init_stacked"]
