"""Flax linen modules: conditioner networks (MLP, ConvResNet, MADE) and a scan-friendly Conv."""

from dgmjax.nn.conditioners import (
    MLP,
    ConvResNet,
    ResidualBlock,
    get_activation,
    init_layerwise,
    init_stacked,
    layers_as_list,
    stack_layers,
    unstack_layers,
)
from dgmjax.nn.conv import Conv, conv2d_same
from dgmjax.nn.made import MADE, MaskedDense, made_degrees, made_masks, made_order

__all__ = [
    "MADE",
    "MLP",
    "Conv",
    "ConvResNet",
    "MaskedDense",
    "ResidualBlock",
    "conv2d_same",
    "get_activation",
    "init_layerwise",
    "init_stacked",
    "layers_as_list",
    "made_degrees",
    "made_masks",
    "made_order",
    "stack_layers",
    "unstack_layers",
]
