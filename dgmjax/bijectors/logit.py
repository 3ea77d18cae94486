"""The logit preprocessing bijector of RealNVP / MAF image models."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp


class Logit(distrax.Bijector):
    """Elementwise `y = logit(alpha + (1 - 2 alpha) x)` for x in [0, 1].

    `forward` maps data in [0, 1] to logit space; `inverse` maps back,
    `x = (sigmoid(y) - alpha) / (1 - 2 alpha)`. The squeeze by `alpha` keeps
    the boundary values 0 and 1 finite (alpha = 0.05 in RealNVP, 1e-6 in MAF).
    In a flow whose `forward` goes from noise to data (dgmjax's convention), the
    preprocessing appears as `distrax.Inverse(Logit(alpha))` on the data side.

    log|dy/dx| = log(1 - 2 alpha) - log(s) - log(1 - s),  s = alpha + (1 - 2 alpha) x.
    """

    def __init__(self, alpha: float = 0.05):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 0.5:
            raise ValueError(f"`alpha` must be a float in [0, 0.5); got {alpha!r}.")
        self._alpha = float(alpha)
        self._log_scale = math.log1p(-2.0 * self._alpha)
        super().__init__(event_ndims_in=0)

    @property
    def alpha(self) -> float:
        return self._alpha

    def forward_and_log_det(self, x):
        s = self._alpha + (1.0 - 2.0 * self._alpha) * x
        log_s, log_1ms = jnp.log(s), jnp.log1p(-s)
        return log_s - log_1ms, self._log_scale - log_s - log_1ms

    def inverse_and_log_det(self, y):
        x = (jax.nn.sigmoid(y) - self._alpha) / (1.0 - 2.0 * self._alpha)
        # log sigmoid(y) + log sigmoid(-y), written with softplus to stay finite for any y.
        log_det = -jax.nn.softplus(-y) - jax.nn.softplus(y) - self._log_scale
        return x, log_det

    def same_as(self, other) -> bool:
        return type(other) is Logit and other.alpha == self.alpha
