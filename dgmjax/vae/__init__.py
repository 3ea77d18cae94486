"""VAEs taken apart: the ELBO and IWAE, ELBO surgery, priors (standard, GMM, VampPrior, flows,
the aggregated posterior) and posteriors (diagonal Gaussian, IAF, planar)."""

from dgmjax.vae.decoders import DECODERS, decoder_log_prob, decoder_sample
from dgmjax.vae.flow_vae import deterministic_flow_elbo, linear_gaussian_vae_elbo
from dgmjax.vae.model import POSTERIORS, VAE
from dgmjax.vae.objectives import gaussian_kl, gaussian_log_prob, iwae_bound, log_mean_exp
from dgmjax.vae.priors import (
    PRIORS,
    FlowPrior,
    GaussianMixturePrior,
    StandardNormalPrior,
    make_prior,
    mixture_of_gaussians_log_prob,
)
from dgmjax.vae.surgery import aggregated_posterior_log_prob, elbo_surgery, gaussian_elbo_surgery

__all__ = [
    "DECODERS",
    "POSTERIORS",
    "PRIORS",
    "VAE",
    "FlowPrior",
    "GaussianMixturePrior",
    "StandardNormalPrior",
    "aggregated_posterior_log_prob",
    "decoder_log_prob",
    "decoder_sample",
    "deterministic_flow_elbo",
    "elbo_surgery",
    "gaussian_elbo_surgery",
    "gaussian_kl",
    "gaussian_log_prob",
    "iwae_bound",
    "linear_gaussian_vae_elbo",
    "log_mean_exp",
    "make_prior",
    "mixture_of_gaussians_log_prob",
]
