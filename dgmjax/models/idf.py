"""Integer discrete flows (Hoogeboom et al. 2019): a bijection on integers, exact likelihoods.

Data -> noise, per scale: squeeze, then `num_layers` steps of [reverse the
channels, additive coupling z_b = x_b - round(t(x_a))] on a channel split;
then, except at the last scale, half the channels are factored out and only
the other half goes on to the deeper scales; then unsqueeze. The latent is an
integer array of the data's shape. Rounding keeps every value an integer, so
the map is a bijection of Z^D with no Jacobian: log P(x) = log P_Z(f(x)),
exactly, with no dequantization.

The prior P_Z is autoregressive over the scales: the deepest latent has a
per-dimension mixture of logistics discretized to the integers, and the half
factored out at scale s has one whose parameters a ConvResNet computes from
the half kept there (as in the IDF paper and Glow). The conditional priors
learn the dependencies between pixels with exact gradients; the couplings'
rounding has no useful derivative, and training passes the gradient straight
through it (d round(t) / dt := 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.bijectors import LayerStack, Permute, Scale, merge_latent, multiscale_flow, split_latent
from dgmjax.bijectors.multiscale import multiscale_shapes
from dgmjax.distributions import IntegerLogisticMixture
from dgmjax.models.base import build_conditioner
from dgmjax.nn.conditioners import ConvResNet, ModuleDef
from dgmjax.nn.stack import stack_params

__all__ = ["IntegerDiscreteFlow", "round_straight_through"]


def round_straight_through(x):
    """round(x) in the forward pass, identity gradient in the backward pass."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


class IntegerDiscreteFlow(nn.Module):
    """Integer discrete flow for integer NHWC images in [0, num_levels).

    Attributes:
      image_shape: (H, W, C), H and W divisible by 2**num_scales.
      num_levels: K; inputs to the coupling networks are scaled by 1/K.
      num_scales: squeeze levels.
      num_layers: additive couplings per scale.
      features, num_blocks: the default networks of the translations and of the conditional
        priors, `dgmjax.nn.ConvResNet`s of this width and depth.
      num_mixtures: components of each prior mixture (per dimension, per scale).
      conditioner: your own network instead, for both: a factory `n -> Flax module` mapping NHWC
        input (the kept channels, scaled by 1/K) to n output channels (e.g.
        `functools.partial(dgmjax.nn.ConvResNet, features=128)` or a module class); its last
        layer best zero-initialized, so that the couplings start as the identity and the
        conditional priors as the per-dimension ones.
    """

    image_shape: Sequence[int]
    num_levels: int
    num_scales: int = 2
    num_layers: int = 4
    features: int = 64
    num_blocks: int = 1
    num_mixtures: int = 5
    conditioner: ModuleDef | None = None

    def _squeezes(self):
        v.check_image_shape(self.image_shape)
        v.check_num_levels(self.num_levels)
        v.check_positive_int(self.num_scales, "num_scales")
        v.check_positive_int(self.num_layers, "num_layers")
        v.check_positive_int(self.features, "features")
        v.check_nonnegative_int(self.num_blocks, "num_blocks")
        v.check_positive_int(self.num_mixtures, "num_mixtures")
        return [True] * self.num_scales

    def _shapes(self):
        """The squeezed (h, w, c) each scale's couplings act on."""
        return [after for _, after in multiscale_shapes(self.image_shape, self._squeezes())]

    def _default_conditioner(self, out_channels: int) -> ConvResNet:
        return ConvResNet(out_channels, self.features, self.num_blocks, parent=None)

    def setup(self):
        shapes = self._shapes()
        factory = self.conditioner or self._default_conditioner
        translations, priors = [], []
        for s, (h, w, c) in enumerate(shapes):
            net = build_conditioner(factory, c - c // 2)
            translations.append(net.apply)
            self.param(f"coupling_{s}", lambda rng, h=h, w=w, c=c, net=net: stack_params(
                net, rng, self.num_layers, jnp.zeros((1, h, w, c // 2))))
            if s + 1 < len(shapes):
                # Logit, scaled-mean and log-scale offsets for each of the K components of every
                # factored-out channel; zero at init, so the conditional prior starts as the
                # per-dimension one.
                net = build_conditioner(factory, 3 * self.num_mixtures * (c - c // 2))
                priors.append(net.apply)
                self.param(f"prior_net_{s}", lambda rng, h=h, w=w, c=c, net=net: net.init(
                    rng, jnp.zeros((1, h, w, c // 2)))["params"])
        self._translation_nets, self._prior_nets = tuple(translations), tuple(priors)
        k, shape = self.num_mixtures, tuple(self.image_shape)
        # The means are stored in units of num_levels around the centre of the level range
        # (see `prior_params`): a step of Adam moves a stored parameter by about the learning
        # rate, so in raw level units the means would crawl (about lr levels per step); on this
        # scale they cross the whole range in about 1/lr steps. `__call__`
        # replaces these values at init with ones fitted to the init batch's latents.
        self.prior = self.param("prior", lambda rng: {
            "logit_weights": jnp.zeros(shape + (k,)),
            "scaled_means": jnp.linspace(-0.25, 0.25, k) * jnp.ones(shape + (k,)),
            "log_scales": jnp.full(shape + (k,), np.log(max(self.num_levels / 8.0, 1.0)))})

    def prior_params(self):
        """The prior's mixture parameters in level units: logit_weights, means, log_scales."""
        p = self.prior
        centre = (self.num_levels - 1) / 2.0
        return {"logit_weights": p["logit_weights"],
                "means": centre + self.num_levels * p["scaled_means"],
                "log_scales": p["log_scales"]}

    def _data_dependent_init(self, z):
        """Start the prior on the init batch's latents, as ActNorm starts on its activations.

        Per dimension, component k (of K, equally weighted) covers the batch's latents between
        their k/K and (k + 1)/K quantiles: its mean is the (k + 1/2)/K quantile and its scale
        a quarter of the bin's width, at least 1/4 level (a bin where the batch is constant,
        as on MNIST's borders, then gets probability sigmoid(2) - sigmoid(-2) = 0.76).
        """
        k, shape = self.num_mixtures, tuple(self.image_shape)
        flat = z.reshape(z.shape[0], -1)
        quantiles = jnp.quantile(flat, jnp.arange(2 * k + 1) / (2 * k), axis=0).T  # (D, 2K+1)
        means = quantiles[:, 1::2].reshape(shape + (k,))
        widths = (quantiles[:, 2::2] - quantiles[:, :-1:2]).reshape(shape + (k,))
        centre = (self.num_levels - 1) / 2.0
        self.put_variable("params", "prior", {
            "logit_weights": jnp.zeros(shape + (k,)),
            "scaled_means": (means - centre) / self.num_levels,
            "log_scales": jnp.log(jnp.maximum(widths / 4.0, 0.25))})

    def _steps(self, s: int, c: int) -> LayerStack:
        apply = self._translation_nets[s]
        scale = 1.0 / self.num_levels
        reverse = distrax.Block(Permute(np.arange(c)[::-1]), 2)

        def layer(p, _):
            def translation(kept):
                return round_straight_through(apply({"params": p}, kept * scale))[..., None]

            coupling = distrax.SplitCoupling(c // 2, 3, translation,
                                             lambda t: distrax.Block(distrax.Shift(t[..., 0]), 3))
            return distrax.Chain([reverse, coupling])

        return LayerStack(layer, self.get_variable("params", f"coupling_{s}"), event_ndims=3)

    def bijector(self) -> distrax.Bijector:
        """The integer bijection: `forward` latent -> image, `inverse` image -> latent (on floats
        holding integers)."""
        return multiscale_flow(self.image_shape, [Scale(None, True, self._steps(s, shape[2]))
                                                  for s, shape in enumerate(self._shapes())])

    def _check_event(self, a, name):
        a = v.as_array(a, name)
        v.check_event_shape(a, tuple(self.image_shape), name)
        if a.dtype == jnp.bool_:
            raise ValueError(f"`{name}` must hold integers (an integer dtype or floats holding integers); "
                             f"got dtype bool.")
        return a

    def latent(self, x):
        """The integer latent z = f(x) of integer images x (as float32 holding integers)."""
        x = self._check_event(x, "x")
        return self.bijector().inverse(x.astype(jnp.float32))

    def image(self, z):
        """The image x = f^-1(z) of an integer latent z (as float32 holding integers)."""
        z = self._check_event(z, "z")
        return self.bijector().forward(z.astype(jnp.float32))

    def __call__(self, x):
        """log P(x) in nats per image, exact (a discrete bijection has no Jacobian), shape (B,)."""
        self._squeezes()
        x = v.as_array(x, "x")
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"`x` must have shape (B,) + {tuple(self.image_shape)}; got {x.shape}.")
        v.check_integer_levels(x, self.num_levels, "x")
        z = self.latent(x)
        if self.is_initializing():
            self._data_dependent_init(z)
        return self.latent_log_prob(z)

    def _level_biases(self):
        """The per-dimension prior in the latent's parts (`split_latent`): the factored-out half of
        every scale but the last, then the deepest latent; each a dict of (h, w, c, K) arrays."""
        squeezes = self._squeezes()
        parts = {k: split_latent(jnp.moveaxis(a, -1, 0), self.image_shape, squeezes)
                 for k, a in self.prior_params().items()}
        return [{k: jnp.moveaxis(parts[k][s], 0, -1) for k in parts} for s in range(self.num_scales)]

    def _conditional(self, s, kept, bias):
        """Mixture parameters of the half factored out at scale s, given the kept half."""
        k = self.num_mixtures
        out = self._prior_nets[s]({"params": self.get_variable("params", f"prior_net_{s}")},
                                  kept / self.num_levels)
        out = out.reshape(out.shape[:-1] + (-1, 3, k))
        return {"logit_weights": bias["logit_weights"] + out[..., 0, :],
                "means": bias["means"] + self.num_levels * out[..., 1, :],
                "log_scales": bias["log_scales"] + out[..., 2, :]}

    def _kept(self, parts, s):
        """The channels scale s keeps for the deeper scales, in its squeezed layout, from the
        latent's deeper parts."""
        shape = multiscale_shapes(self.image_shape, self._squeezes())[s + 1][0]
        return merge_latent(parts[s + 1:], shape, self._squeezes()[s + 1:])

    def _prior(self, p) -> IntegerLogisticMixture:
        return IntegerLogisticMixture(p["logit_weights"], p["means"], p["log_scales"])

    def latent_log_prob(self, z):
        """log P_Z(z) in nats, shape (B,), for integer latents z of the data's shape."""
        z = v.as_array(z, "z")
        if z.ndim != 4 or tuple(z.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"`z` must have shape (B,) + {tuple(self.image_shape)}; got {z.shape}.")
        parts = split_latent(z, self.image_shape, self._squeezes())
        biases, total = self._level_biases(), 0.0
        for s, part in enumerate(parts):
            last = s + 1 == self.num_scales
            p = biases[s] if last else self._conditional(s, self._kept(parts, s), biases[s])
            total = total + self._prior(p).log_prob(part).sum((1, 2, 3))
        return total

    def sample(self, key, num_samples: int):
        """Integer images (num_samples, H, W, C); values outside [0, num_levels) can occur."""
        num_samples = v.check_positive_int(num_samples, "num_samples")
        self._squeezes()
        biases = self._level_biases()
        keys = jax.random.split(key, self.num_scales)

        def draw(k, p):
            p = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (num_samples,) + a.shape[-4:]), p)
            return self._prior(p).sample(seed=k).astype(jnp.float32)

        parts = [None] * self.num_scales
        parts[-1] = draw(keys[-1], biases[-1])  # the deepest latent
        for s in range(self.num_scales - 2, -1, -1):
            parts[s] = draw(keys[s], self._conditional(s, self._kept(parts, s), biases[s]))
        z = merge_latent(parts, self.image_shape, self._squeezes())
        return jnp.round(self.image(z)).astype(jnp.int32)
