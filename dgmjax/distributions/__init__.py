"""Distributions the lecture needs and distrax lacks, and the likelihood heads that build them.

`DiscretizedLogisticMixture` (PixelCNN++), `DiscretizedRGBLogisticMixture`
(PixelCNN++'s channel-coupled RGB version) and `IntegerLogisticMixture` (the
prior of integer flows) are `distrax.Distribution`s with exact samplers and
log-probabilities that stay finite at every level and every finite parameter
value. `LogScaleNormal` is distrax's diagonal Gaussian parameterized by its
log standard deviations, whose log-density and KL (`diag_gaussian_kl`) stay
finite where exp(log_scale) would under- or overflow. Other Gaussians,
mixtures, Bernoulli and categorical distributions come from distrax itself.
"""

from dgmjax.distributions.discretized import (
    MAX_LOG_SCALE,
    MIN_LOG_SCALE,
    DiscretizedLogisticMixture,
    DiscretizedRGBLogisticMixture,
    IntegerLogisticMixture,
    log1mexp,
)
from dgmjax.distributions.gaussian import LogScaleNormal, diag_gaussian_kl
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
    "LogScaleNormal",
    "LogisticMixtureHead",
    "RGBLogisticMixtureHead",
    "diag_gaussian_kl",
    "log1mexp",
]
