"""VAE priors p(z) as Flax modules: standard normal, Gaussian mixture, flows in latent space.

Each has `log_prob(z)` (nats, summed over the latent axis; z of shape
(..., latent_size)) and `sample(key, n)`. The VampPrior, a mixture of the
encoder's posteriors at learned pseudo-inputs, needs the encoder and lives in
`dgmjax.vae.model.VAE`; the aggregated posterior (the optimal prior, for
analysis) is `aggregated_posterior_log_prob` in `dgmjax.vae.surgery`.

Flow priors (Lecture: "a flow model in latent space"): log p(z) = log N(f(z))
+ log|det df/dz| with f the flow's data -> noise direction:

- RealNVP: f and its inverse are one pass each;
- MAF: f is one pass (density is parallel), sampling is sequential;
- IAF: f is sequential (latent_size conditioner passes per layer): usable as
  a prior, but every ELBO evaluation pays the sequential density. That is
  the cost the lecture asks about.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dgmjax import _validation as v
from dgmjax.models import IAF, MAF, RealNVP
from dgmjax.vae.objectives import LOG_2PI

PRIORS = ("standard", "gmm", "vamp", "realnvp", "maf", "iaf")


def _check_latent(z, latent_size):
    if z.ndim < 1 or z.shape[-1] != latent_size:
        raise ValueError(f"`z` must have last axis latent_size={latent_size}; got shape {z.shape}.")


class StandardNormalPrior(nn.Module):
    latent_size: int

    def log_prob(self, z):
        _check_latent(z, self.latent_size)
        return jnp.sum(-0.5 * z * z - 0.5 * LOG_2PI, -1)

    def sample(self, key, num_samples: int):
        return jax.random.normal(key, (num_samples, self.latent_size))

    def __call__(self, z):
        return self.log_prob(z)


class GaussianMixturePrior(nn.Module):
    """A learnable mixture of `num_components` diagonal Gaussians."""

    latent_size: int
    num_components: int = 16

    def setup(self):
        v.check_positive_int(self.num_components, "num_components")
        self.logits = self.param("logits", nn.initializers.zeros, (self.num_components,))
        self.means = self.param("means", nn.initializers.normal(1.0),
                                (self.num_components, self.latent_size))
        self.log_stds = self.param("log_stds", nn.initializers.zeros,
                                   (self.num_components, self.latent_size))

    def log_prob(self, z):
        _check_latent(z, self.latent_size)
        return mixture_of_gaussians_log_prob(z, self.means, self.log_stds,
                                             jax.nn.log_softmax(self.logits))

    def sample(self, key, num_samples: int):
        k1, k2 = jax.random.split(key)
        idx = jax.random.categorical(k1, self.logits, shape=(num_samples,))
        eps = jax.random.normal(k2, (num_samples, self.latent_size))
        return self.means[idx] + jnp.exp(self.log_stds[idx]) * eps

    def __call__(self, z):
        return self.log_prob(z)


class FlowPrior(nn.Module):
    """A flow in latent space (RealNVP, MAF or IAF from `dgmjax.models`)."""

    latent_size: int
    flow: str = "maf"
    num_layers: int = 4
    hidden_sizes: Sequence[int] = (256,)

    def setup(self):
        kw = dict(event_size=self.latent_size, num_layers=self.num_layers,
                  hidden_sizes=tuple(self.hidden_sizes))
        if self.flow == "realnvp":
            self.model = RealNVP(**kw, coupling="masked", permutation="random")
        elif self.flow == "maf":
            self.model = MAF(**kw)
        elif self.flow == "iaf":
            self.model = IAF(**kw)
        else:
            raise ValueError(f"`flow` must be 'realnvp', 'maf' or 'iaf'; got {self.flow!r}.")

    def log_prob(self, z):
        _check_latent(z, self.latent_size)
        flat = z.reshape(-1, self.latent_size)
        return self.model(flat).reshape(z.shape[:-1])

    def sample(self, key, num_samples: int):
        return self.model.sample(key, num_samples)

    def __call__(self, z):
        return self.log_prob(z)


def make_prior(kind: str, latent_size: int, *, num_components: int = 16, flow_layers: int = 4,
               flow_hidden: Sequence[int] = (256,)) -> nn.Module | None:
    """The prior module for `kind` (None for "vamp", which the VAE builds from its encoder)."""
    if kind not in PRIORS:
        raise ValueError(f"`prior` must be one of {PRIORS}; got {kind!r}.")
    if kind == "standard":
        return StandardNormalPrior(latent_size)
    if kind == "gmm":
        return GaussianMixturePrior(latent_size, num_components)
    if kind == "vamp":
        return None
    return FlowPrior(latent_size, kind, flow_layers, tuple(flow_hidden))


def mixture_of_gaussians_log_prob(z, means, log_stds, log_weights=None):
    """log sum_k w_k N(z; means_k, diag(exp(log_stds_k))^2) for z (..., d), components (K, d)."""
    zc = z[..., None, :]
    comp = jnp.sum(-0.5 * jnp.square((zc - means) * jnp.exp(-log_stds)) - log_stds - 0.5 * LOG_2PI, -1)
    if log_weights is None:
        return jax.scipy.special.logsumexp(comp, -1) - math.log(means.shape[0])
    return jax.scipy.special.logsumexp(log_weights + comp, -1)
