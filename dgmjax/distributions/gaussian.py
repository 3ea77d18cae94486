"""A diagonal Gaussian that keeps its log standard deviations: finite log-densities and KLs at any scale.

`distrax.MultivariateNormalDiag(loc, exp(log_scale))` loses the scale once
exp(log_scale) under- or overflows float32 (log_scale below -103 or above 88):
its log-density and its closed-form KL become -inf or NaN although their true
values are ordinary numbers. `LogScaleNormal` is a `MultivariateNormalDiag`
(it samples, and is recognised, as one) that stores `log_scale` and computes
from it

    log N(x) = -0.5 ((x - mu) e^{-ls})^2 - ls - 0.5 log(2 pi)       (per dimension)
    KL(q || p) = (ls_p - ls_q) + 0.5 expm1(2 (ls_q - ls_p)) + 0.5 ((mu_q - mu_p) e^{-ls_p})^2

(`diag_gaussian_kl`), with the standardized difference (x - mu) e^{-ls}
formed in log space only where e^{-ls} itself would overflow. For ordinary
scales the arithmetic is the textbook formula; for any finite parameters
whose result fits in float32 the result and its gradients are finite.
"""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp

from dgmjax import _checks as v

__all__ = ["LogScaleNormal", "diag_gaussian_kl", "gaussian_log_scale"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_EXP_SAFE = 80.0  # e^80 is far from float32 overflow (e^88.7)
_EXP_MAX = 88.0


def _float(x, name: str = "x"):
    return v.as_float_array(x, name)


@jax.custom_jvp
def _standardize(diff, log_scale):
    """diff * exp(-log_scale) without overflow of exp(-log_scale): where -log_scale > 80 it is
    sign(diff) exp(log|diff| - log_scale) (zero for diff = 0).

    Its derivatives, d/d diff = exp(-log_scale) and d/d log_scale = -result, are given directly
    (autodiff of the product would form cotangent * diff, which overflows for a large difference
    over a large scale although the gradient itself fits).
    """
    ordinary = log_scale > -_EXP_SAFE
    direct = diff * jnp.exp(-jnp.where(ordinary, log_scale, 0.0))
    far_case = ~ordinary & (diff != 0)
    safe = jnp.where(far_case, diff, 1.0)
    far = jnp.sign(safe) * jnp.exp(jnp.log(jnp.abs(safe)) - jnp.where(far_case, log_scale, 0.0))
    return jnp.where(ordinary, direct, jnp.where(far_case, far, 0.0))


@_standardize.defjvp
def _standardize_jvp(primals, tangents):
    diff, log_scale = primals
    t_diff, t_log_scale = tangents
    z = _standardize(diff, log_scale)
    # past e^88 the true d/d diff does not fit in float32 anyway: keep it finite
    inv_scale = jnp.exp(-jnp.maximum(log_scale, -_EXP_MAX))
    return z, inv_scale * t_diff - z * t_log_scale


def diag_gaussian_kl(loc_q, log_scale_q, loc_p, log_scale_p):
    """KL(N(loc_q, e^{2 log_scale_q}) || N(loc_p, e^{2 log_scale_p})) per dimension (no sum), elementwise.

    The four arguments broadcast together (numpy's rule) and the result has their broadcast shape:
    one p for a batch of q (`loc_p` of shape (d,) against `loc_q` of shape (B, d)), or a log-scale
    shared along axes where it has size 1. A location's last axis is the latent dimension and never
    broadcasts: it must equal the result's. Shapes that do not broadcast, or a location whose last
    axis is widened (a (B, 1) `loc_q` against a (d,) `loc_p`), are a ValueError naming both
    arguments and their shapes. Finite, with finite gradients, for all finite arguments whose KL
    fits in float32.
    """
    loc_q, log_scale_q = _float(loc_q, "loc_q"), _float(log_scale_q, "log_scale_q")
    loc_p, log_scale_p = _float(loc_p, "loc_p"), _float(log_scale_p, "log_scale_p")
    shapes = {"loc_q": loc_q.shape, "log_scale_q": log_scale_q.shape, "loc_p": loc_p.shape,
              "log_scale_p": log_scale_p.shape}
    shape = v.check_broadcast(shapes)
    for name in ("loc_q", "loc_p"):
        if shapes[name] and shapes[name][-1] != shape[-1]:
            other = next(n for n, sh in shapes.items() if sh and sh[-1] == shape[-1])
            raise ValueError(f"`{name}` of shape {shapes[name]} has latent size {shapes[name][-1]}, but "
                             f"`{other}` of shape {shapes[other]} has {shape[-1]}: a location's last axis "
                             f"(the latent dimension) does not broadcast.")
    delta = log_scale_q - log_scale_p
    r = _standardize(loc_q - loc_p, log_scale_p)
    return 0.5 * jnp.expm1(2.0 * delta) - delta + 0.5 * jnp.square(r)


def gaussian_log_scale(dist):
    """The log standard deviations of a diagonal Gaussian: kept by `LogScaleNormal`, log(scale_diag)
    for a plain `distrax.MultivariateNormalDiag`, None for anything else."""
    if isinstance(dist, LogScaleNormal):
        return dist.log_scale
    if isinstance(dist, distrax.MultivariateNormalDiag):
        return jnp.log(dist.scale_diag)
    return None


class LogScaleNormal(distrax.MultivariateNormalDiag):
    """N(loc, diag(exp(log_scale))^2) over vectors (event shape (d,)), parameterized by its log-scale.

    Args:
      loc: means, shape (..., d).
      log_scale: log standard deviations, shape broadcastable with `loc`.

    `log_prob`, `sample_and_log_prob`, `entropy` and `kl_divergence` (to another
    `LogScaleNormal` or a `distrax.MultivariateNormalDiag`) are computed from
    the log-scale; sampling is loc + exp(log_scale) * noise, as distrax's.

    `log_prob` takes vectors of shape (..., d): the last axis must be d, and the
    axes before it broadcast against the batch shape as in distrax (a value of
    shape (d,) is scored under every member; (..., 1, d) against a batch (n,)
    gives every pair, which is how `distrax.MixtureSameFamily` scores its
    components). Anything else is a ValueError naming `value` and both shapes.
    `kl_divergence` needs the two batch shapes to broadcast together.
    """

    def __init__(self, loc, log_scale):
        loc, log_scale = _float(loc, "loc"), _float(log_scale, "log_scale")
        if loc.ndim < 1:
            raise ValueError(f"`loc` must have shape (..., d) (event axis last); got shape {loc.shape}.")
        try:
            shape = jnp.broadcast_shapes(loc.shape, log_scale.shape)
        except ValueError as err:
            raise ValueError(f"`log_scale` of shape {log_scale.shape} does not broadcast with `loc` of shape "
                             f"{loc.shape}.") from err
        if shape[-1] != loc.shape[-1]:
            raise ValueError(f"`log_scale` of shape {log_scale.shape} must not widen `loc`'s event axis "
                             f"({loc.shape[-1]}).")
        log_scale = jnp.broadcast_to(log_scale, shape)
        super().__init__(loc, jnp.exp(log_scale))
        self._log_scale = log_scale

    @property
    def log_scale(self):
        return jnp.broadcast_to(self._log_scale, self.batch_shape + self.event_shape)

    def log_prob(self, value):
        value = v.check_value_shape(value, self.batch_shape, self.event_shape, broadcast=True)
        z = _standardize(_float(value, "value") - self._loc, self._log_scale)
        return jnp.sum(-0.5 * jnp.square(z) - self._log_scale - _HALF_LOG_2PI, axis=-1)

    def _sample_n_and_log_prob(self, key, n):
        # the draws distrax's would be (the same standard-normal noise, scaled and shifted), and
        # their log-density from the noise itself (no re-standardizing, no log(exp(log_scale)))
        noise = self.distribution.sample(seed=key, sample_shape=n)
        samples = noise * self._scale_diag + self._loc
        log_prob = jnp.sum(-0.5 * jnp.square(noise) - self._log_scale - _HALF_LOG_2PI, axis=-1)
        return samples, log_prob

    def entropy(self):
        return jnp.sum(jnp.broadcast_to(self._log_scale + 0.5 + _HALF_LOG_2PI,
                                        self.batch_shape + self.event_shape), axis=-1)

    def kl_divergence(self, other_dist, **kwargs):
        log_scale_p = gaussian_log_scale(other_dist)
        if log_scale_p is None or tuple(other_dist.event_shape) != tuple(self.event_shape):
            return super().kl_divergence(other_dist, **kwargs)
        v.check_broadcast({"self": self.batch_shape, "other_dist": other_dist.batch_shape}, "batch shape")
        return jnp.sum(diag_gaussian_kl(self._loc, self._log_scale, other_dist.loc, log_scale_p), axis=-1)

    def __getitem__(self, index):
        """The members at `index` of the batch (numpy indexing of the batch axes; the event axis,
        last, is kept whole)."""
        index = (*(index if isinstance(index, tuple) else (index,)), slice(None))
        return LogScaleNormal(self.loc[index], self.log_scale[index])
