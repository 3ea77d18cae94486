"""VAE priors p(z) as Flax modules that return distrax distributions.

Every prior is called with the VAE's encoder (`prior(encoder)`), which only
the VampPrior uses, and returns a distribution with event shape
(latent_size,): one interface for

- `StandardNormalPrior`: N(0, I);
- `GaussianMixturePrior`: a learnable mixture of diagonal Gaussians;
- `FlowPrior`: a flow in latent space (the lecture's flow-based prior),
  log p(z) = log N(f(z)) + log|det df/dz|. With a RealNVP f and its inverse
  are one pass each; with a MAF the density is one pass and sampling
  sequential; with an IAF every ELBO evaluation pays the sequential density,
  the cost the lecture asks about;
- `VampPrior`: the mixture of the encoder's posteriors at learned
  pseudo-inputs (Tomczak & Welling 2018), the aggregated posterior
  (`dgmjax.objectives.aggregated_posterior`, the optimal prior) with
  pseudo-inputs in place of data.
"""

from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dgmjax import _checks as v
from dgmjax.distributions import LogScaleNormal
from dgmjax.models.base import FlowModule
from dgmjax.objectives import aggregated_posterior

__all__ = ["FlowPrior", "GaussianMixturePrior", "StandardNormalPrior", "VampPrior"]


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I)."""

    latent_size: int

    def __call__(self, encoder=None) -> distrax.Distribution:
        d = v.check_positive_int(self.latent_size, "latent_size")
        return LogScaleNormal(jnp.zeros(d), jnp.zeros(d))


class GaussianMixturePrior(nn.Module):
    """A learnable mixture of `num_components` diagonal Gaussians."""

    latent_size: int
    num_components: int = 16

    @nn.compact
    def __call__(self, encoder=None) -> distrax.Distribution:
        k = v.check_positive_int(self.num_components, "num_components")
        d = v.check_positive_int(self.latent_size, "latent_size")
        logits = self.param("logits", nn.initializers.zeros, (k,))
        means = self.param("means", nn.initializers.normal(1.0), (k, d))
        log_stds = self.param("log_stds", nn.initializers.zeros, (k, d))
        return distrax.MixtureSameFamily(distrax.Categorical(logits=logits),
                                         LogScaleNormal(means, log_stds))


class FlowPrior(nn.Module):
    """A flow in latent space: `flow` is a vector flow module (`RealNVP`, `MAF`, `IAF`) on latent_size."""

    flow: FlowModule

    def __call__(self, encoder=None) -> distrax.Distribution:
        return self.flow.distribution()


class VampPrior(nn.Module):
    """p(z) = (1/K) sum_k q(z | u_k): the encoder's posteriors at K learned pseudo-inputs u_k.

    Attributes:
      num_components: K.
      input_size: the size of the encoder's input (the flattened data).
      bounded: pseudo-inputs pass through a sigmoid into [0, 1], the range of
        the features of discrete data; False leaves them real-valued.
    """

    num_components: int
    input_size: int
    bounded: bool = True

    @nn.compact
    def __call__(self, encoder) -> distrax.Distribution:
        k = v.check_positive_int(self.num_components, "num_components")
        size = v.check_positive_int(self.input_size, "input_size")
        if self.bounded:
            init = lambda rng, shape: -2.0 + 0.5 * jax.random.normal(rng, shape)
        else:
            init = nn.initializers.normal(0.5)
        u = self.param("pseudo_inputs", init, (k, size))
        return aggregated_posterior(encoder(jax.nn.sigmoid(u) if self.bounded else u))
