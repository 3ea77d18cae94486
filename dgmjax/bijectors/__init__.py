"""Bijectors: `distrax.Bijector` subclasses and coupling helpers.

Direction convention (as in `distrax.Transformed`): `forward` maps base noise z
to data x (sampling), `inverse` maps data to noise (density). Preprocessing
bijectors are named by what they do to data (`Logit`, `Squeeze`) and enter a
flow as `distrax.Inverse(...)` on its data side.
"""

from dgmjax.bijectors.autoregressive import (
    SOLVERS,
    InverseAutoregressive,
    MaskedAutoregressive,
    Permute,
)
from dgmjax.bijectors.coupling import (
    SCALE_FNS,
    affine_coupling,
    affine_split_coupling,
    alternating_mask,
    bounded_log_scale,
    channel_mask,
    checkerboard_mask,
)
from dgmjax.bijectors.glow import ActNorm, Invertible1x1Conv, actnorm_init
from dgmjax.bijectors.logit import Logit
from dgmjax.bijectors.multiscale import FactorOut, Squeeze
from dgmjax.bijectors.planar import Planar
from dgmjax.bijectors.scan import ScanChain

__all__ = [
    "SCALE_FNS",
    "SOLVERS",
    "ActNorm",
    "FactorOut",
    "Invertible1x1Conv",
    "InverseAutoregressive",
    "Logit",
    "MaskedAutoregressive",
    "Permute",
    "Planar",
    "ScanChain",
    "Squeeze",
    "actnorm_init",
    "affine_coupling",
    "affine_split_coupling",
    "alternating_mask",
    "bounded_log_scale",
    "channel_mask",
    "checkerboard_mask",
]
