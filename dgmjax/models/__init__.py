"""Assembled models (Flax modules that give distrax distributions)."""

from dgmjax.models.realnvp import ImageRealNVP, RealNVP

__all__ = ["ImageRealNVP", "RealNVP"]
