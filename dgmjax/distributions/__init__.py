"""Distributions the lecture needs and distrax lacks, and the likelihood heads that build them.

`DiscretizedLogisticMixture` (PixelCNN++), `DiscretizedRGBLogisticMixture`
(PixelCNN++'s channel-coupled RGB version) and `IntegerLogisticMixture` (the
prior of integer flows) are `distrax.Distribution`s with exact samplers and
log-probabilities that stay finite at every level. Gaussians, mixtures,
Bernoulli and categorical distributions come from distrax itself.
"""

from dgmjax.distributions.discretized import (
    MAX_LOG_SCALE,
    MIN_LOG_SCALE,
    DiscretizedLogisticMixture,
    DiscretizedRGBLogisticMixture,
    IntegerLogisticMixture,
    log1mexp,
)
from dgmjax.distributions.heads import (
    BernoulliHead,
    CategoricalHead,
    GaussianHead,
    LogisticMixtureHead,
    RGBLogisticMixtureHead,
)

__all__ = [
    "MAX_LOG_SCALE",
    "MIN_LOG_SCALE",
    "BernoulliHead",
    "CategoricalHead",
    "DiscretizedLogisticMixture",
    "DiscretizedRGBLogisticMixture",
    "GaussianHead",
    "IntegerLogisticMixture",
    "LogisticMixtureHead",
    "RGBLogisticMixtureHead",
    "log1mexp",
]
