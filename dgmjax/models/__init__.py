"""Assembled models: Flax modules (flows give distrax distributions; discrete models give log P(x))."""

from dgmjax.models.autoregressive import IAF, MAF
from dgmjax.models.base import FlowModule, actnorm_stack_init
from dgmjax.models.glow import Glow
from dgmjax.models.idf import IntegerDiscreteFlow
from dgmjax.models.pixelcnn import PixelCNN
from dgmjax.models.realnvp import ImageRealNVP, RealNVP, layer_permutations

__all__ = [
    "IAF",
    "MAF",
    "FlowModule",
    "Glow",
    "ImageRealNVP",
    "IntegerDiscreteFlow",
    "PixelCNN",
    "RealNVP",
    "actnorm_stack_init",
    "layer_permutations",
]
