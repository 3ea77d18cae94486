"""A VAE with pluggable decoder, prior and posterior, as one Flax module.

    vae = VAE(data_shape=(28, 28, 1), num_levels=2, prior="vamp", posterior="iaf")
    variables = vae.init(key, x, key)
    terms = vae.apply(variables, x, key)          # {"reconstruction", "kl", "elbo"} per example
    log_w = vae.apply(variables, x, key, 5000, method=vae.log_weights)   # for IWAE

Encoder and decoder are MLPs on the flattened data. Posteriors: "gaussian"
(diagonal), "iaf" (IAF steps on top of the Gaussian, conditioned on an
encoder context h, Kingma et al. 2016), "planar" (planar steps whose
parameters the encoder outputs per example, Rezende & Mohamed 2015). Priors:
"standard", "gmm", "vamp" (mixture of the posteriors at learned
pseudo-inputs, Tomczak & Welling 2018), "realnvp" / "maf" / "iaf" (flows in
latent space). The KL term is in closed form for a Gaussian posterior under
the standard prior, and a one-sample Monte Carlo estimate (log q - log p at
the same z as the reconstruction) otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dgmjax import _validation as v
from dgmjax.bijectors import Planar
from dgmjax.models import IAF
from dgmjax.nn.conditioners import MLP
from dgmjax.vae.decoders import decoder_log_prob, decoder_mean, decoder_sample, param_size
from dgmjax.vae.objectives import gaussian_kl, gaussian_log_prob
from dgmjax.vae.priors import make_prior, mixture_of_gaussians_log_prob

POSTERIORS = ("gaussian", "iaf", "planar")


class VAE(nn.Module):
    """Variational autoencoder on data of shape `data_shape`.

    Attributes:
      data_shape: one example's shape ((H, W, C) images, or (D,) vectors).
      num_levels: levels of discrete data, or None for continuous data
        (Gaussian decoder).
      latent_size, hidden_sizes, activation: encoder/decoder MLPs (mirrored).
      decoder: "bernoulli", "categorical", "mixture" (discretized logistic
        mixture per dimension, `num_mixtures` components) or "gaussian".
      prior, prior_components (GMM components / VampPrior pseudo-inputs),
      prior_flow_layers, prior_flow_hidden: see `dgmjax.vae.priors`.
      posterior, posterior_flow_layers, posterior_flow_hidden,
      posterior_context: see the module docstring.
    """

    data_shape: Sequence[int]
    num_levels: int | None = 2
    latent_size: int = 40
    hidden_sizes: Sequence[int] = (300, 300)
    activation: str = "relu"
    decoder: str = "bernoulli"
    num_mixtures: int = 5
    prior: str = "standard"
    prior_components: int = 500
    prior_flow_layers: int = 4
    prior_flow_hidden: Sequence[int] = (256,)
    posterior: str = "gaussian"
    posterior_flow_layers: int = 4
    posterior_flow_hidden: Sequence[int] = (256,)
    posterior_context: int = 64

    # ------------------------------------------------------------------ setup
    def _data_size(self) -> int:
        return math.prod(self.data_shape)

    def _encoder_extra(self) -> int:
        if self.posterior == "iaf":
            return self.posterior_context
        if self.posterior == "planar":
            return self.posterior_flow_layers * (2 * self.latent_size + 1)
        return 0

    def setup(self):
        if self.posterior not in POSTERIORS:
            raise ValueError(f"`posterior` must be one of {POSTERIORS}; got {self.posterior!r}.")
        v.check_positive_int(self.latent_size, "latent_size")
        d, size = self.latent_size, self._data_size()
        out = param_size(self.decoder, self.num_levels, self.num_mixtures)
        self.encoder_net = MLP(tuple(self.hidden_sizes), (2 * d + self._encoder_extra(),),
                               self.activation, zero_init_output=False)
        self.decoder_net = MLP(tuple(self.hidden_sizes)[::-1], (size, out), self.activation,
                               zero_init_output=False)
        self.prior_module = make_prior(self.prior, d, num_components=self.prior_components,
                                       flow_layers=self.prior_flow_layers,
                                       flow_hidden=self.prior_flow_hidden)
        if self.prior == "vamp":
            init = nn.initializers.normal(0.5) if self.num_levels is None else \
                (lambda rng, shape: -2.0 + 0.5 * jax.random.normal(rng, shape))
            self.pseudo_inputs = self.param("pseudo_inputs", init, (self.prior_components, size))
        if self.posterior == "iaf":
            self.posterior_flow = IAF(event_size=d, num_layers=self.posterior_flow_layers,
                                      hidden_sizes=tuple(self.posterior_flow_hidden),
                                      context_size=self.posterior_context)

    # ------------------------------------------------------------------ data
    def _prepare(self, x):
        """Flattened encoder input: discrete levels scaled to [0, 1], continuous data as is."""
        shape = tuple(self.data_shape)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"`x` must have shape (batch,) + {shape}; got {x.shape}.")
        if self.num_levels is None:
            v.check_float(x, "x")
            return x.reshape(x.shape[0], -1)
        v.check_integer_levels(x, self.num_levels, "x")
        return x.reshape(x.shape[0], -1).astype(jnp.float32) / (self.num_levels - 1)

    # ------------------------------------------------------------------ encoder / posterior
    def _encode_prepared(self, xf):
        h = self.encoder_net(xf)
        d = self.latent_size
        return h[..., :d], jnp.clip(h[..., d:2 * d], -7.0, 5.0), h[..., 2 * d:]

    def encode(self, x):
        """Posterior parameters (mean, log_std, extra): Gaussian part and flow inputs, per example."""
        return self._encode_prepared(self._prepare(x))

    def _posterior_flow(self, extra) -> distrax.Bijector | None:
        if self.posterior == "iaf":
            return self.posterior_flow.bijector(self.posterior_flow.check_context(extra))
        if self.posterior == "planar":
            d, t = self.latent_size, self.posterior_flow_layers
            p = extra.reshape(extra.shape[:-1] + (t, 2 * d + 1))
            steps = [Planar(p[..., i, :d], p[..., i, d:2 * d], p[..., i, 2 * d]) for i in range(t)]
            return distrax.Chain(steps[::-1])  # step 0 is applied first
        return None

    def posterior_sample(self, key, encoded, num_samples: int):
        """z of shape (S, B, d) and log q(z|x) of shape (S, B) (reparameterized)."""
        mean, log_std, extra = encoded
        eps = jax.random.normal(key, (num_samples,) + mean.shape)
        z0 = mean + jnp.exp(log_std) * eps
        log_q = gaussian_log_prob(z0, mean, log_std)
        flow = self._posterior_flow(extra)
        if flow is None:
            return z0, log_q
        z, log_det = flow.forward_and_log_det(z0)
        return z, log_q - log_det

    def posterior_log_prob(self, z, encoded):
        """log q(z|x) at given z (..., B, d); flow posteriors invert their flow (IAF: sequentially)."""
        mean, log_std, extra = encoded
        flow = self._posterior_flow(extra)
        if flow is None:
            return gaussian_log_prob(z, mean, log_std)
        z0, log_det = flow.inverse_and_log_det(z)
        return gaussian_log_prob(z0, mean, log_std) + log_det

    # ------------------------------------------------------------------ prior
    def _vamp_components(self):
        u = self.pseudo_inputs
        u = u if self.num_levels is None else jax.nn.sigmoid(u)
        mean, log_std, _ = self._encode_prepared(u)
        return mean, log_std

    def prior_log_prob(self, z):
        if self.prior == "vamp":
            return mixture_of_gaussians_log_prob(z, *self._vamp_components())
        return self.prior_module.log_prob(z)

    def prior_sample(self, key, num_samples: int):
        if self.prior == "vamp":
            mean, log_std = self._vamp_components()
            k1, k2 = jax.random.split(key)
            idx = jax.random.randint(k1, (num_samples,), 0, mean.shape[0])
            return mean[idx] + jnp.exp(log_std[idx]) * jax.random.normal(k2, (num_samples,
                                                                                self.latent_size))
        return self.prior_module.sample(key, num_samples)

    # ------------------------------------------------------------------ decoder
    def decoder_params(self, z):
        return self.decoder_net(z)  # (..., D, P)

    def log_likelihood(self, x, z):
        """log p(x|z) for z of shape (..., B, d), shape (..., B)."""
        flat = x.reshape(x.shape[0], -1)
        return decoder_log_prob(self.decoder, flat, self.decoder_params(z), self.num_levels,
                                self.num_mixtures)

    # ------------------------------------------------------------------ objectives
    def __call__(self, x, key):
        """Per-example ELBO terms in nats: {"reconstruction", "kl", "elbo"} (one z sample each)."""
        encoded = self.encode(x)
        z, log_q = self.posterior_sample(key, encoded, 1)
        reconstruction = self.log_likelihood(x, z)[0]
        if self.posterior == "gaussian" and self.prior == "standard":
            kl = gaussian_kl(encoded[0], encoded[1])
        else:
            kl = (log_q - self.prior_log_prob(z))[0]
        return {"reconstruction": reconstruction, "kl": kl, "elbo": reconstruction - kl}

    def log_weights(self, x, key, num_samples: int):
        """log p(x, z_s) - log q(z_s|x) for `num_samples` posterior draws, shape (S, B)."""
        encoded = self.encode(x)
        z, log_q = self.posterior_sample(key, encoded, num_samples)
        return self.log_likelihood(x, z) + self.prior_log_prob(z) - log_q

    def sample(self, key, num_samples: int):
        """Data drawn from the model: z ~ p(z), x ~ p(x|z); shape (num_samples,) + data_shape."""
        num_samples = v.check_positive_int(num_samples, "num_samples")
        k1, k2 = jax.random.split(key)
        params = self.decoder_params(self.prior_sample(k1, num_samples))
        x = decoder_sample(self.decoder, k2, params, self.num_levels, self.num_mixtures)
        return x.reshape((num_samples,) + tuple(self.data_shape))

    def reconstruct_mean(self, x):
        """The decoder's mean at the posterior mean: for pictures of reconstructions."""
        mean, _, _ = self.encode(x)
        out = decoder_mean(self.decoder, self.decoder_params(mean), self.num_levels, self.num_mixtures)
        return out.reshape(x.shape)
