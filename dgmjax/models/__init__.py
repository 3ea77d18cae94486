"""Assembled models: Flax modules that give distrax distributions."""

from dgmjax.models.autoregressive import IAF, MAF
from dgmjax.models.base import FlowModule, actnorm_stack_init
from dgmjax.models.glow import Glow
from dgmjax.models.realnvp import ImageRealNVP, RealNVP, layer_permutations

__all__ = ["IAF", "MAF", "FlowModule", "Glow", "ImageRealNVP", "RealNVP", "actnorm_stack_init",
           "layer_permutations"]
