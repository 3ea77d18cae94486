"""Continuous distributions discretized to integer levels, as `distrax.Distribution`s.

Discretizing a continuous model (the lecture): P(x) = F(x + 1/2) - F(x - 1/2).
In PixelCNN++'s parameterization the levels x = 0..L-1 of a pixel sit at
c = 2x/(L-1) - 1 in [-1, 1], each bin has half-width w = 1/(L-1), the edge
levels take the whole tails, and a mixture of K logistics gives

    P(x) = sum_k pi_k [sigma((c + w - mu_k)/s_k) - sigma((c - w - mu_k)/s_k)].

The bin mass is computed in log space with the identity

    sigma(b) - sigma(a) = sigma(b) sigma(-a) (1 - exp(-(b - a))),   b > a,

so log P_k(x) = log_sigmoid(b) + log_sigmoid(-a) + log1mexp(b - a): three
terms that are each finite and accurate for every level and every parameter
value, down to bins whose mass underflows float32 (no sigma difference is
formed, so there is no cancellation, no log(0), and no fallback branch whose
gradient could be NaN). At an infinite edge the terms that involve it are
dropped. Only the observed level is evaluated: nothing of shape
(..., K, num_levels) is ever built.

`IntegerLogisticMixture` is the same construction on all of Z (unit bins, no
edges), the prior of integer discrete flows.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v

__all__ = [
    "MAX_LOG_SCALE",
    "MIN_LOG_SCALE",
    "DiscretizedLogisticMixture",
    "DiscretizedRGBLogisticMixture",
    "IntegerLogisticMixture",
    "log1mexp",
]

MIN_LOG_SCALE = -7.0
"""Default lower clamp of the mixtures' log-scales (`min_log_scale`; PixelCNN++'s -7)."""
# Upper clamp of log-scales where no edge bins exist (integer logistics) and in the
# samplers: past e^20 a unit bin's mass 1/s underflows float32 and log(0) would give a
# NaN gradient.
MAX_LOG_SCALE = 20.0
"""Upper clamp of log-scales where no edge bins exist (integer logistics) and in the samplers."""


def log1mexp(d):
    """log(1 - exp(-d)) for d > 0, accurate for small and large d (Maechler 2012)."""
    d = jnp.asarray(d)
    small = d < np.log(2.0)
    safe_small = jnp.where(small, d, 1.0)
    safe_large = jnp.where(small, 1.0, d)
    return jnp.where(small, jnp.log(-jnp.expm1(-safe_small)), jnp.log1p(-jnp.exp(-safe_large)))


def _log_bin_mass(a, b, width, has_lower, has_upper):
    """log(sigma(b) - sigma(a)) with a = -inf where not has_lower, b = +inf where not has_upper.

    `width` is b - a, passed in exactly (the bin width over the scale): formed as the
    difference of the rounded a and b it would lose digits to cancellation (a bin of
    1/255 over a scale of 0.6 gives b - a = 0.013 from a, b ~ 1, and a relative error
    of ~2e-5 in every bin's mass, which summed over 256 levels drifts from 1 by 1e-5).
    """
    upper = jnp.where(has_upper, jax.nn.log_sigmoid(b), 0.0)
    lower = jnp.where(has_lower, jax.nn.log_sigmoid(-a), 0.0)
    width = jnp.where(has_lower & has_upper, log1mexp(width), 0.0)
    return upper + lower + width


def _discretized_logistic(x, means, log_scales, num_levels, min_log_scale):
    """log P(x) of single discretized logistics on the [-1, 1] scale, elementwise."""
    inv_scale = jnp.exp(-jnp.maximum(log_scales, min_log_scale))
    half_width = 1.0 / (num_levels - 1)
    centre = 2.0 * x.astype(means.dtype) / (num_levels - 1) - 1.0
    a = (centre - half_width - means) * inv_scale
    b = (centre + half_width - means) * inv_scale
    return _log_bin_mass(a, b, 2.0 * half_width * inv_scale, x > 0, x < num_levels - 1)


def _logistic_noise(key, shape, dtype):
    u = jax.random.uniform(key, shape, dtype, minval=1e-7, maxval=1.0 - 1e-7)
    return jnp.log(u) - jnp.log1p(-u)


def _level_of(values, num_levels):
    """The level whose bin contains a value of the [-1, 1] scale (edge bins take the tails)."""
    level = jnp.round((values + 1.0) * (num_levels - 1) / 2.0)
    return jnp.clip(level, 0, num_levels - 1).astype(jnp.int32)


def _as_float(p, name):
    p = jnp.asarray(p)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.float32)
    return p


def _mixture_params(logit_weights, means, log_scales):
    params = {"logit_weights": _as_float(logit_weights, "logit_weights"),
              "means": _as_float(means, "means"), "log_scales": _as_float(log_scales, "log_scales")}
    shapes = {k: p.shape for k, p in params.items()}
    if len(set(shapes.values())) != 1 or not shapes["means"]:
        raise ValueError(f"`logit_weights`, `means` and `log_scales` must share one shape (..., K) "
                         f"with K the last axis; got {shapes}.")
    return params


def _check_value(value, batch_shape, event_shape, name="value"):
    """Integer values whose trailing axes are `batch_shape + event_shape`, up to parameter axes of size 1.

    Leading axes beyond those are sample axes. A value axis of size 1 against a
    larger batch axis is rejected: it would silently broadcast one value against
    many parameter sets (an (B, 1) array against a batch of B gives B x B terms).
    """
    value = value if hasattr(value, "dtype") else jnp.asarray(value)
    full = tuple(batch_shape) + tuple(event_shape)
    tail = value.shape[max(value.ndim - len(full), 0):]
    aligned = full[len(full) - len(tail):]
    if value.ndim < len(event_shape) or tail[len(tail) - len(event_shape):] != tuple(event_shape) or any(
            t != a and a != 1 for t, a in zip(tail, aligned, strict=True)):
        raise ValueError(f"`{name}` of shape {value.shape} does not line up with the distribution's "
                         f"batch shape {tuple(batch_shape)} and event shape {tuple(event_shape)}: its "
                         f"trailing axes must equal them (leading axes are sample axes).")
    return value


def _sample_logistic_mixture(key, n, params, batch_shape, min_log_scale):
    """n draws of the continuous mixture: a component by its weight, then a logistic from it."""
    k1, k2 = jax.random.split(key)
    shape = (n,) + tuple(batch_shape)
    comp = jax.random.categorical(k1, params["logit_weights"], axis=-1, shape=shape)

    def pick(a):
        a = jnp.broadcast_to(a, shape + a.shape[-1:])
        return jnp.take_along_axis(a, comp[..., None], axis=-1)[..., 0]

    scale = jnp.exp(jnp.clip(pick(params["log_scales"]), min_log_scale, MAX_LOG_SCALE))
    return pick(params["means"]) + scale * _logistic_noise(k2, shape, params["means"].dtype)


class DiscretizedLogisticMixture(distrax.Distribution):
    """A mixture of K logistics discretized to the levels 0..L-1 (PixelCNN++), event shape ().

    Args:
      logit_weights: the components' unnormalized log-weights, shape (..., K);
        the batch shape is (...).
      means: the components' means, shape (..., K), on the [-1, 1] scale,
        where level x sits at 2x/(L-1) - 1.
      log_scales: the components' log-scales, shape (..., K), on the same scale.
      num_levels: L >= 2 (256 for 8-bit pixels, 17 for the digits, 2 binary).
      min_log_scale: log-scales are clamped from below to this (PixelCNN++'s -7).

    `log_prob` takes integer levels and is exact and finite for every level
    and parameter value; `sample` draws exactly (a component, a logistic
    draw, its bin). K = 1 is a single discretized logistic.
    """

    def __init__(self, logit_weights, means, log_scales, num_levels: int,
                 min_log_scale: float = MIN_LOG_SCALE):
        self._params = _mixture_params(logit_weights, means, log_scales)
        self._num_levels = v.check_num_levels(num_levels)
        self._min_log_scale = float(min_log_scale)
        super().__init__()

    @property
    def event_shape(self):
        return ()

    @property
    def batch_shape(self):
        return self._params["means"].shape[:-1]

    @property
    def num_levels(self) -> int:
        return self._num_levels

    @property
    def num_components(self) -> int:
        return self._params["means"].shape[-1]

    @property
    def logit_weights(self):
        return self._params["logit_weights"]

    @property
    def means(self):
        return self._params["means"]

    @property
    def log_scales(self):
        return self._params["log_scales"]

    def log_prob(self, value):
        value = _check_value(value, self.batch_shape, ())
        v.check_integer_levels(value, self._num_levels, "value")
        p = self._params
        per_component = _discretized_logistic(value[..., None], p["means"], p["log_scales"],
                                              self._num_levels, self._min_log_scale)
        log_weights = jax.nn.log_softmax(p["logit_weights"], axis=-1)
        return jax.scipy.special.logsumexp(log_weights + per_component, axis=-1)

    def _sample_n(self, key, n):
        values = _sample_logistic_mixture(key, n, self._params, self.batch_shape, self._min_log_scale)
        return _level_of(values, self._num_levels)

    def mean(self):
        """The mixture's mean in level units (the logistics' means, mapped back from [-1, 1])."""
        w = jax.nn.softmax(self.logit_weights, -1)
        centre = jnp.sum(w * self.means, -1)
        return jnp.clip((centre + 1.0) * (self._num_levels - 1) / 2.0, 0, self._num_levels - 1)


class DiscretizedRGBLogisticMixture(distrax.Distribution):
    """PixelCNN++'s mixture for RGB pixels, with channels coupled: event shape (3,).

    One mixture indicator per pixel, shared by its three channels, and each
    channel's mean linear in the channels before it:

        P(x) = sum_k pi_k prod_c P(x_c | mu_ck(x_<c), s_ck),
        mu_r = m_r,  mu_g = m_g + a r,  mu_b = m_b + b r + c g   (r, g on the [-1, 1] scale)

    with (a, b, c) = tanh(coeffs). Args: `logit_weights` (..., K); `means`,
    `log_scales`, `coeffs` (..., 3, K). Sampling draws r, then g given r, then b.
    """

    def __init__(self, logit_weights, means, log_scales, coeffs, num_levels: int,
                 min_log_scale: float = MIN_LOG_SCALE):
        p = {"means": _as_float(means, "means"), "log_scales": _as_float(log_scales, "log_scales"),
             "coeffs": _as_float(coeffs, "coeffs")}
        shapes = {k: a.shape for k, a in p.items()}
        if len(set(shapes.values())) != 1 or shapes["means"][-2:-1] != (3,):
            raise ValueError(f"`means`, `log_scales` and `coeffs` must share a shape (..., 3, K); got "
                             f"{shapes}.")
        p["logit_weights"] = _as_float(logit_weights, "logit_weights")
        if p["logit_weights"].shape != shapes["means"][:-2] + shapes["means"][-1:]:
            expected = shapes["means"][:-2] + shapes["means"][-1:]
            raise ValueError(f"`logit_weights` must have shape (..., K) = {expected}; got "
                             f"{p['logit_weights'].shape}.")
        self._params = p
        self._num_levels = v.check_num_levels(num_levels)
        self._min_log_scale = float(min_log_scale)
        super().__init__()

    @property
    def event_shape(self):
        return (3,)

    @property
    def batch_shape(self):
        return self._params["logit_weights"].shape[:-1]

    @property
    def num_levels(self) -> int:
        return self._num_levels

    def _to_scale(self, level):
        return 2.0 * level.astype(self._params["means"].dtype) / (self._num_levels - 1) - 1.0

    def log_prob(self, value):
        value = _check_value(value, self.batch_shape, (3,))
        v.check_integer_levels(value, self._num_levels, "value")
        p = self._params
        c = jnp.tanh(p["coeffs"])
        xs = self._to_scale(value)[..., None]  # (..., 3, 1)
        r, g = xs[..., 0, :], xs[..., 1, :]
        # value may carry sample axes that the parameters lack: broadcast red's means (which
        # depend on no channel) to the coupled green and blue means before stacking
        mu = jnp.stack(jnp.broadcast_arrays(
            p["means"][..., 0, :], p["means"][..., 1, :] + c[..., 0, :] * r,
            p["means"][..., 2, :] + c[..., 1, :] * r + c[..., 2, :] * g), axis=-2)
        per_channel = _discretized_logistic(value[..., None], mu, p["log_scales"], self._num_levels,
                                            self._min_log_scale)
        log_weights = jax.nn.log_softmax(p["logit_weights"], axis=-1)
        return jax.scipy.special.logsumexp(log_weights + per_channel.sum(-2), axis=-1)

    def _sample_n(self, key, n):
        p = self._params
        k1, k2 = jax.random.split(key)
        shape = (n,) + self.batch_shape
        comp = jax.random.categorical(k1, p["logit_weights"], axis=-1, shape=shape)

        def pick(a):  # (..., 3, K) -> (n, ..., 3) at the drawn component
            a = jnp.broadcast_to(a, shape + a.shape[-2:])
            return jnp.take_along_axis(a, comp[..., None, None], axis=-1)[..., 0]

        mu, c = pick(p["means"]), jnp.tanh(pick(p["coeffs"]))
        log_s = jnp.clip(pick(p["log_scales"]), self._min_log_scale, MAX_LOG_SCALE)
        noise = _logistic_noise(k2, mu.shape, mu.dtype) * jnp.exp(log_s)
        r = _level_of(mu[..., 0] + noise[..., 0], self._num_levels)
        g = _level_of(mu[..., 1] + c[..., 0] * self._to_scale(r) + noise[..., 1], self._num_levels)
        b = _level_of(mu[..., 2] + c[..., 1] * self._to_scale(r) + c[..., 2] * self._to_scale(g)
                      + noise[..., 2], self._num_levels)
        return jnp.stack([r, g, b], axis=-1)


class IntegerLogisticMixture(distrax.Distribution):
    """A mixture of K logistics discretized to all integers (unit bins, no edges), event shape ().

    P(z) = sum_k pi_k [sigma((z + 1/2 - mu_k)/s_k) - sigma((z - 1/2 - mu_k)/s_k)]
    for every integer z, with means and log-scales in integer units (the prior
    of integer discrete flows). Log-scales are clamped to [min_log_scale,
    MAX_LOG_SCALE]. `log_prob` also takes floats holding integers (values that
    come through a straight-through rounding).
    """

    def __init__(self, logit_weights, means, log_scales, min_log_scale: float = MIN_LOG_SCALE):
        self._params = _mixture_params(logit_weights, means, log_scales)
        self._min_log_scale = float(min_log_scale)
        super().__init__()

    @property
    def event_shape(self):
        return ()

    @property
    def batch_shape(self):
        return self._params["means"].shape[:-1]

    def log_prob(self, value):
        value = _check_value(value, self.batch_shape, ())
        p = self._params
        log_scales = jnp.clip(p["log_scales"], self._min_log_scale, MAX_LOG_SCALE)
        inv_scale = jnp.exp(-log_scales)
        z = value.astype(p["means"].dtype)[..., None]
        a = (z - 0.5 - p["means"]) * inv_scale
        b = (z + 0.5 - p["means"]) * inv_scale
        edges = jnp.ones(jnp.broadcast_shapes(a.shape, b.shape), bool)
        per_component = _log_bin_mass(a, b, inv_scale, edges, edges)
        log_weights = jax.nn.log_softmax(p["logit_weights"], axis=-1)
        return jax.scipy.special.logsumexp(log_weights + per_component, axis=-1)

    def _sample_n(self, key, n):
        values = _sample_logistic_mixture(key, n, self._params, self.batch_shape, self._min_log_scale)
        return jnp.round(values).astype(jnp.int32)

