"""The logit preprocessing of RealNVP and MAF image models, as a noise -> data bijector."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v


class ScaledSigmoid(distrax.Bijector):
    """Elementwise `x = (sigmoid(y) - alpha) / (1 - 2 alpha)`: logit space -> data in [0, 1].

    `forward` maps y in R (the flow's side) to data x in (0, 1) (dgmjax's
    noise -> data direction); `inverse` is the logit preprocessing of RealNVP
    and MAF, `y = logit(alpha + (1 - 2 alpha) x)`, whose squeeze by `alpha`
    keeps the data values 0 and 1 finite (alpha = 0.05 in RealNVP, 1e-6 in
    MAF). A flow on images in logit space is
    `distrax.Chain([distrax.Block(ScaledSigmoid(alpha), 3), flow])`.

    log|dx/dy| = log s + log(1 - s) - log(1 - 2 alpha),  s = sigmoid(y) = alpha + (1 - 2 alpha) x.

    Input in float16 or bfloat16 is upcast to float32 first, in both directions:
    the transform and its log-det compute in float32 (docs/DESIGN.md, precision).
    As the data-side layer of the image models, this is where their low-precision
    images become float32.
    """

    def __init__(self, alpha: float = 0.05):
        if isinstance(alpha, (np.ndarray, jax.Array)) and np.ndim(alpha) == 0 and v.is_concrete(alpha):
            alpha = np.asarray(alpha).item()  # a 0-d array counts as its number
        real = isinstance(alpha, (int, float, np.floating, np.integer))
        if not real or isinstance(alpha, (bool, np.bool_)) or not 0.0 <= float(alpha) < 0.5:
            raise ValueError(f"`alpha` must be a float in [0, 0.5); got {alpha!r}.")
        self._alpha = float(alpha)
        self._log_scale = math.log1p(-2.0 * self._alpha)
        super().__init__(event_ndims_in=0)

    @property
    def alpha(self) -> float:
        return self._alpha

    def forward_and_log_det(self, y):
        y = v.as_array(y, "y")
        v.check_float(y, "y")
        y = v.upcast_low_precision(y)
        # sigmoid(y) as exp(-softplus(-y)): the same value, and its derivative comes out as
        # sigmoid(y) sigmoid(-y) (jax.nn.sigmoid's is s (1 - s), which cancels for large y).
        x = (jnp.exp(-jax.nn.softplus(-y)) - self._alpha) / (1.0 - 2.0 * self._alpha)
        # log sigmoid(y) + log sigmoid(-y), written with softplus to stay finite for any y.
        return x, -jax.nn.softplus(-y) - jax.nn.softplus(y) - self._log_scale

    def inverse_and_log_det(self, x):
        x = v.as_array(x, "x")
        v.check_unit_interval(x, "x", what="pixel values")
        x = v.upcast_low_precision(x)
        # s and 1 - s = alpha + (1 - 2 alpha)(1 - x), each formed without cancellation (1 - x is exact
        # for x in [1/2, 1]), so both logs stay finite for alpha > 0 and accurate near x = 1.
        s = self._alpha + (1.0 - 2.0 * self._alpha) * x
        log_s, log_1ms = jnp.log(s), jnp.log(self._alpha + (1.0 - 2.0 * self._alpha) * (1.0 - x))
        return log_s - log_1ms, self._log_scale - log_s - log_1ms

    def same_as(self, other) -> bool:
        return type(other) is ScaledSigmoid and other.alpha == self.alpha
