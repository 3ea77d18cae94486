"""Flax linen networks: MADE, the coupling conditioners (MLP, ConvResNet), a scan-friendly Conv,
and `stack_params` for stacks of identical layers."""

from dgmjax.nn.conditioners import (
    MLP,
    ConvResNet,
    GatedResidualBlock,
    ModuleDef,
    ResidualBlock,
    concat_elu,
)
from dgmjax.nn.conv import Conv, conv2d_same
from dgmjax.nn.made import MADE, MaskedDense, made_degrees, made_masks, made_order
from dgmjax.nn.stack import stack_params, zip_layers

__all__ = [
    "MADE",
    "MLP",
    "Conv",
    "ConvResNet",
    "GatedResidualBlock",
    "MaskedDense",
    "ModuleDef",
    "ResidualBlock",
    "concat_elu",
    "conv2d_same",
    "made_degrees",
    "made_masks",
    "made_order",
    "stack_params",
    "zip_layers",
]
