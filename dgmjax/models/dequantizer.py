"""Flow++'s variational dequantizer q(u | x) as a Flax module."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.bijectors import LayerStack, affine_coupling, checkerboard_mask, tanh_scale
from dgmjax.bijectors.coupling import check_scale_fn
from dgmjax.nn.conditioners import ConvResNet
from dgmjax.nn.stack import stack_params

__all__ = ["VariationalDequantizer"]


class VariationalDequantizer(nn.Module):
    """Flow++'s variational dequantization q(u | x) (Ho et al. 2019), a conditional flow.

    Gaussian noise eps ~ N(0, I) of the image's shape goes through
    `num_layers` affine couplings (checkerboard masks, alternating) whose
    conditioners see the masked noise and features of x (a ConvResNet on x
    scaled to [-1, 1]), then through a sigmoid into (0, 1)^D:

        u = sigmoid(g(eps; x)),   log q(u|x) = log N(eps) - log|det dg/deps| - sum log sigma'(.)

    `model.apply(variables, key, x)` returns (u, log q(u|x)) per example for
    integer images x: a dequantizer as `dgmjax.objectives.dequantization_bound`
    takes it. Reparameterized, so the bound trains both the density model and q.
    """

    image_shape: Sequence[int]
    num_levels: int
    num_layers: int = 4
    features: int = 32
    num_blocks: int = 1
    context_features: int = 16
    scale_fn: Callable = tanh_scale

    def _check_config(self):
        v.check_image_shape(self.image_shape)
        h, w, _ = self.image_shape
        if h * w < 2:
            raise ValueError(f"`image_shape` needs at least 2 pixels (checkerboard couplings); got "
                             f"{tuple(self.image_shape)}.")
        v.check_num_levels(self.num_levels)
        v.check_positive_int(self.num_layers, "num_layers")
        v.check_positive_int(self.features, "features")
        v.check_nonnegative_int(self.num_blocks, "num_blocks")
        v.check_positive_int(self.context_features, "context_features")
        check_scale_fn(self.scale_fn)

    def setup(self):
        self._check_config()
        h, w, c = self.image_shape
        self.features_of_x = ConvResNet(self.context_features, self.features, self.num_blocks,
                                        zero_init_output=False)
        dummy = jnp.zeros((1, h, w, 2 * c + self.context_features))
        self.conditioners = self.param(
            "conditioners", lambda rng: stack_params(self._net(), rng, self.num_layers, dummy))

    def _net(self) -> ConvResNet:
        return ConvResNet(2 * self.image_shape[-1], self.features, self.num_blocks, parent=None)

    def flow(self, x) -> LayerStack:
        """The coupling flow eps -> pre-sigmoid noise, conditioned on integer images x."""
        feats = self.features_of_x(2.0 * x.astype(jnp.float32) / (self.num_levels - 1) - 1.0)
        net = self._net()
        masks = np.stack([checkerboard_mask(tuple(self.image_shape), i % 2) for i in range(self.num_layers)])

        def layer(p, c):
            def cond(em):
                mask_f = jnp.broadcast_to(c["mask"], em.shape).astype(em.dtype)
                out = net.apply({"params": p}, jnp.concatenate([em, mask_f, feats], -1))
                return out.reshape(em.shape + (2,))

            return affine_coupling(c["mask"], cond, scale_fn=self.scale_fn)

        return LayerStack(layer, self.conditioners, event_ndims=3, constants={"mask": masks})

    def __call__(self, key, x):
        """(u, log q(u|x)) for integer images x (B, H, W, C); u in (0, 1), log q in nats, shape (B,)."""
        self._check_config()
        x = v.as_array(x, "x")
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"`x` must have shape (B,) + {tuple(self.image_shape)}; got {x.shape}.")
        v.check_integer_levels(x, self.num_levels, "x")
        eps = jax.random.normal(key, x.shape, jnp.float32)
        log_n = jnp.sum(jax.scipy.stats.norm.logpdf(eps), axis=(1, 2, 3))
        z, log_det = self.flow(x).forward_and_log_det(eps)
        u = jax.nn.sigmoid(z)
        log_det_sigmoid = jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z), axis=(1, 2, 3))
        # Keep u strictly inside (0, 1) in float32 (the density already accounts for the sigmoid).
        u = jnp.clip(u, 1e-7, 1.0 - 1e-7)
        return u, log_n - log_det - log_det_sigmoid
