"""A VAE composed of distributions: an encoder q(z|x), a decoder p(x|z) and a prior p(z).

    vae = VAE(data_shape=(28, 28, 1), num_levels=2,
              encoder=GaussianEncoder(latent_size=40), decoder=MLPDecoder((28, 28, 1), BernoulliHead()),
              prior=VampPrior(num_components=500, input_size=784))
    variables = vae.init(key, key, x)
    terms = vae.apply(variables, key, x)        # {"elbo", "reconstruction", "kl"} per example, nats

Each part is a Flax module that returns a distrax distribution: the encoder
maps features of x (flattened, integer levels scaled to [0, 1]) to q(z|x);
the decoder maps z to p(x|z); the prior, called with the encoder (which only
the VampPrior uses), returns p(z). The ELBO, IWAE and surgery are the pure
functions of `dgmjax.objectives` applied to these distributions, so any
other encoder, decoder or prior plugs in the same way.

Encoders here: `GaussianEncoder` (diagonal Gaussian), `IAFEncoder` (IAF
steps on the Gaussian, conditioned on an encoder context h; Kingma et al.
2016), `PlanarEncoder` (planar steps whose parameters the encoder outputs per
example; Rezende & Mohamed 2015). Priors are in `dgmjax.models.priors`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.bijectors import Planar
from dgmjax.distributions import LogScaleNormal
from dgmjax.models.autoregressive import IAF
from dgmjax.nn.conditioners import MLP
from dgmjax.objectives import elbo

__all__ = ["VAE", "GaussianEncoder", "IAFEncoder", "MLPDecoder", "PlanarEncoder"]

MIN_LOG_STD, MAX_LOG_STD = -7.0, 5.0


def _gaussian(h, d):
    """The diagonal Gaussian q(z|x) from the first 2d outputs (means, log-stds clipped to
    [MIN_LOG_STD, MAX_LOG_STD]), kept in log-scale form for its density and KL; and the rest."""
    mean, log_std = h[..., :d], jnp.clip(h[..., d:2 * d], MIN_LOG_STD, MAX_LOG_STD)
    return LogScaleNormal(mean, log_std), h[..., 2 * d:]


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mean(x), diag(std(x))^2) from an MLP on the features of x."""

    latent_size: int
    hidden_sizes: Sequence[int] = (300, 300)
    activation: Callable = nn.relu

    @nn.compact
    def __call__(self, features) -> distrax.Distribution:
        d = v.check_positive_int(self.latent_size, "latent_size")
        net = MLP((2 * d,), tuple(self.hidden_sizes), self.activation, zero_init_output=False, name="net")
        h = net(features)
        return _gaussian(h, d)[0]


class IAFEncoder(nn.Module):
    """A diagonal Gaussian pushed through IAF steps conditioned on a context h(x) (Kingma et al. 2016).

    One MLP gives the Gaussian's mean and log-std and the context; the IAF's
    sampling direction is one pass, so drawing z and its log q is cheap; the
    density at another z inverts the IAF sequentially.
    """

    latent_size: int
    hidden_sizes: Sequence[int] = (300, 300)
    activation: Callable = nn.relu
    num_layers: int = 4
    flow_hidden_sizes: Sequence[int] = (256,)
    context_size: int = 64

    @nn.compact
    def __call__(self, features) -> distrax.Distribution:
        d = v.check_positive_int(self.latent_size, "latent_size")
        h = MLP((2 * d + self.context_size,), tuple(self.hidden_sizes), self.activation,
                zero_init_output=False, name="net")(features)
        base, context = _gaussian(h, d)
        flow = IAF(event_size=d, num_layers=self.num_layers, hidden_sizes=tuple(self.flow_hidden_sizes),
                   context_size=self.context_size, name="flow")
        return distrax.Transformed(base, flow.bijector(flow.check_context(context)))


class PlanarEncoder(nn.Module):
    """A diagonal Gaussian pushed through `num_layers` planar steps whose (u, w, b) the encoder
    outputs per example (Rezende & Mohamed 2015)."""

    latent_size: int
    hidden_sizes: Sequence[int] = (300, 300)
    activation: Callable = nn.relu
    num_layers: int = 4

    @nn.compact
    def __call__(self, features) -> distrax.Distribution:
        d = v.check_positive_int(self.latent_size, "latent_size")
        t = v.check_positive_int(self.num_layers, "num_layers")
        h = MLP((2 * d + t * (2 * d + 1),), tuple(self.hidden_sizes), self.activation,
                zero_init_output=False, name="net")(features)
        base, extra = _gaussian(h, d)
        p = extra.reshape(extra.shape[:-1] + (t, 2 * d + 1))
        steps = [Planar(p[..., i, :d], p[..., i, d:2 * d], p[..., i, 2 * d]) for i in range(t)]
        return distrax.Transformed(base, distrax.Chain(steps[::-1]))  # step 0 is applied first


class MLPDecoder(nn.Module):
    """p(x|z): an MLP from z to `head.num_params` numbers per data element, through `head`.

    Attributes:
      data_shape: one example's shape.
      head: a per-element likelihood head (`dgmjax.distributions`).
      num_levels: levels of discrete data, None for continuous data.
      hidden_sizes, activation: the MLP.
    """

    data_shape: Sequence[int]
    head: Any
    num_levels: int | None = 2
    hidden_sizes: Sequence[int] = (300, 300)
    activation: Callable = nn.relu

    @nn.compact
    def __call__(self, z) -> distrax.Distribution:
        if tuple(getattr(self.head, "event_shape", ())) != ():
            raise ValueError(f"`head` of MLPDecoder must be a per-element head (event shape ()); got "
                             f"{self.head}.")
        shape = tuple(self.data_shape)
        params = MLP((math.prod(shape), self.head.num_params(self.num_levels)), tuple(self.hidden_sizes),
                     self.activation, zero_init_output=False, name="net")(z)
        params = params.reshape(params.shape[:-2] + shape + params.shape[-1:])
        return distrax.Independent(self.head(params, self.num_levels), len(shape))


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


class VAE(nn.Module):
    """A variational autoencoder on data of shape `data_shape`, composed of distributions.

    Attributes:
      data_shape: one example's shape ((H, W, C) images, or (D,) vectors).
      num_levels: levels of discrete data (integer x), or None for real-valued x.
      encoder: features -> q(z|x) (e.g. `GaussianEncoder`); the features are
        x flattened, integer levels scaled to [0, 1].
      decoder: z -> p(x|z) (e.g. `MLPDecoder`).
      prior: encoder -> p(z) (`dgmjax.models.priors`).

    `apply(variables, key, x)` returns the per-example ELBO terms (nats);
    methods `posterior(x)`, `likelihood(z)`, `prior_distribution()` give the
    distributions for `dgmjax.objectives` (IWAE, surgery), `sample(key, n)`
    draws data.

    A decoder that declares `num_levels` or `data_shape` (as `MLPDecoder`
    does) must agree with the VAE's, and a prior that declares `input_size`
    (`VampPrior`, whose pseudo-inputs are encoder inputs) must have the size of
    the flattened data: a ValueError at construction names both. `x` is a
    batch of at least one example.
    """

    data_shape: Sequence[int]
    num_levels: int | None
    encoder: nn.Module
    decoder: nn.Module
    prior: nn.Module

    def __post_init__(self):
        missing = object()
        for name in ("num_levels", "data_shape"):
            mine, theirs = getattr(self, name), getattr(self.decoder, name, missing)
            if theirs is not missing and _as_tuple(mine) != _as_tuple(theirs):
                raise ValueError(f"`{name}` = {mine!r} of the VAE and `decoder.{name}` = {theirs!r} of its "
                                 f"decoder must agree: the decoder models the VAE's data.")
        input_size = getattr(self.prior, "input_size", None)
        size = math.prod(self.data_shape) if isinstance(self.data_shape, (list, tuple)) else None
        valid = isinstance(input_size, (int, np.integer)) and not isinstance(input_size, bool) \
            and input_size >= 1
        if valid and size is not None and input_size != size:  # an invalid size is the prior's to report
            raise ValueError(f"`prior.input_size` = {input_size!r} and the size of the VAE's `data_shape` "
                             f"{tuple(self.data_shape)} ({size}) must agree: the prior's pseudo-inputs are "
                             f"inputs of the encoder, which reads flattened data.")
        super().__post_init__()

    def features(self, x):
        """The encoder's input: x flattened, integer levels scaled to [0, 1], real values as they are."""
        shape = tuple(self.data_shape)
        v.check_batch(x)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"`x` must have shape (batch,) + {shape}; got {x.shape}.")
        if self.num_levels is None:
            v.check_float(x, "x")
            return x.reshape(x.shape[0], -1)
        v.check_integer_levels(x, self.num_levels, "x")
        return x.reshape(x.shape[0], -1).astype(jnp.float32) / (self.num_levels - 1)

    def posterior(self, x) -> distrax.Distribution:
        """q(z|x), batch shape (B,)."""
        return self.encoder(self.features(x))

    def likelihood(self, z) -> distrax.Distribution:
        """p(x|z), batch shape z.shape[:-1], event shape `data_shape`."""
        return self.decoder(z)

    def prior_distribution(self) -> distrax.Distribution:
        """p(z)."""
        return self.prior(self.encoder)

    def __call__(self, key, x, num_samples: int = 1):
        """Per-example ELBO terms in nats: {"elbo", "reconstruction", "kl"} (`dgmjax.objectives.elbo`)."""
        return elbo(key, x, self.posterior(x), self.likelihood, self.prior_distribution(),
                    num_samples=num_samples)

    def sample(self, key, num_samples: int):
        """Data drawn from the model: z ~ p(z), x ~ p(x|z); shape (num_samples,) + data_shape."""
        num_samples = v.check_positive_int(num_samples, "num_samples")
        k1, k2 = jax.random.split(v.check_key(key))
        z = self.prior_distribution().sample(seed=k1, sample_shape=(num_samples,))
        return self.likelihood(z).sample(seed=k2)
