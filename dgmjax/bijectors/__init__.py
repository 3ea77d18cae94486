"""Bijectors: `distrax.Bijector` subclasses, coupling helpers and the multi-scale builder.

Direction, for every bijector here (as in `distrax.Transformed`): `forward`
maps base noise z to data x (sampling), `inverse` maps data to noise
(density). Preprocessing included: `ScaledSigmoid.forward` maps logit space
to pixels in [0, 1], and `DepthToSpace.forward` maps a flow's squeezed side
to the data's shape.
"""

from dgmjax.bijectors.autoregressive import (
    SOLVERS,
    InverseAutoregressive,
    MaskedAutoregressive,
    Permute,
)
from dgmjax.bijectors.coupling import (
    SIGMOID_MAX_LOG_SCALE,
    affine_coupling,
    affine_split_coupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    sigmoid_scale,
    tanh_scale,
)
from dgmjax.bijectors.glow import ActNorm, Invertible1x1Conv, actnorm_init
from dgmjax.bijectors.multiscale import (
    DepthToSpace,
    FactorOut,
    Scale,
    merge_latent,
    multiscale_flow,
    multiscale_shapes,
    split_latent,
)
from dgmjax.bijectors.planar import Planar
from dgmjax.bijectors.sigmoid import ScaledSigmoid
from dgmjax.bijectors.stack import LayerStack

__all__ = [
    "SIGMOID_MAX_LOG_SCALE",
    "SOLVERS",
    "ActNorm",
    "DepthToSpace",
    "FactorOut",
    "InverseAutoregressive",
    "Invertible1x1Conv",
    "LayerStack",
    "MaskedAutoregressive",
    "Permute",
    "Planar",
    "Scale",
    "ScaledSigmoid",
    "actnorm_init",
    "affine_coupling",
    "affine_split_coupling",
    "alternating_mask",
    "channel_mask",
    "checkerboard_mask",
    "merge_latent",
    "multiscale_flow",
    "multiscale_shapes",
    "sigmoid_scale",
    "split_latent",
    "tanh_scale",
]
