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
formed, so there is no cancellation and no log(0)). At an infinite edge the
terms that involve it are dropped (and the dropped branch is given a safe
input, so that no NaN gradient leaks through `jnp.where`). Only the observed
level is evaluated: nothing of shape (..., K, num_levels) is ever built.

Round-off: the centred value d = c - mu is formed once, and a = (d - w)/s,
b = (d + w)/s from it, with the bin width b - a = 2w/s passed in exactly
rather than taken as a difference of rounded numbers. The float32 error of
log P is then a few units of round-off of |d|/s and of log P itself, for
means at any distance from the data. Log-scales are clamped to
[min_log_scale, MAX_LOG_SCALE] (past e^20 every interior bin's mass is below
float32's resolution of the edges' and the width 2w/s approaches underflow),
and a, b to +-1e30 (means so far out that log P itself would overflow): any
finite mean and log-scale give a finite log-probability and finite gradients.

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
MAX_LOG_SCALE = 20.0
"""Upper clamp of every mixture's log-scales (log_prob and samplers): past e^20 a bin's mass
relative to the whole is below float32's resolution, and the width 2w/s nears underflow."""
LOWEST_MIN_LOG_SCALE = -80.0
"""The lowest `min_log_scale` accepted: 1/s = e^80 stays far from float32 overflow."""
_MAX_ARG = 1e30  # |a|, |b| are clipped here: past it log P would not fit in float32


def log1mexp(d):
    """log(1 - exp(-d)) for d > 0, accurate for small and large d (Maechler 2012).

    Each branch of the `jnp.where` sees a safe input, so the gradient is finite for every d > 0.
    """
    d = v.as_float_array(d, "d")
    small = d < np.log(2.0)
    safe_small = jnp.where(small, d, 1.0)
    safe_large = jnp.where(small, 1.0, d)
    return jnp.where(small, jnp.log(-jnp.expm1(-safe_small)), jnp.log1p(-jnp.exp(-safe_large)))


def _clamp(x, lo, hi):
    """x clamped to [lo, hi], with gradient 1 inside the closed interval and 0 outside
    (`jnp.clip` halves the gradient at a tie)."""
    return jnp.where(x < lo, lo, jnp.where(x > hi, hi, x))


def _log_bin_mass(d, half_width, log_scales, has_lower, has_upper):
    """log(sigma(b) - sigma(a)) with a = (d - half_width)/s, b = (d + half_width)/s, s = exp(log_scales).

    `d` is the bin's centre minus the mean, formed once; a = -inf where not has_lower, b = +inf
    where not has_upper. The width b - a = 2 half_width / s enters exactly: formed as the
    difference of the rounded a and b it would lose digits to cancellation.
    """
    inv_scale = jnp.exp(-log_scales)
    a = jnp.clip((d - half_width) * inv_scale, -_MAX_ARG, _MAX_ARG)
    b = jnp.clip((d + half_width) * inv_scale, -_MAX_ARG, _MAX_ARG)
    width = (2.0 * half_width) * inv_scale
    both = has_lower & has_upper
    upper = jnp.where(has_upper, jax.nn.log_sigmoid(b), 0.0)
    lower = jnp.where(has_lower, jax.nn.log_sigmoid(-a), 0.0)
    middle = jnp.where(both, log1mexp(jnp.where(both, width, 1.0)), 0.0)
    return upper + lower + middle


def _discretized_logistic(x, means, log_scales, num_levels, min_log_scale):
    """log P(x) of single discretized logistics on the [-1, 1] scale, elementwise."""
    log_scales = _clamp(log_scales, min_log_scale, MAX_LOG_SCALE)
    half_width = 1.0 / (num_levels - 1)
    # the centre 2x/(L-1) - 1 as one rounding of an exact integer ratio, then d = centre - mean
    centre = (2 * x.astype(jnp.int32) - (num_levels - 1)).astype(means.dtype) / (num_levels - 1)
    return _log_bin_mass(centre - means, half_width, log_scales, x > 0, x < num_levels - 1)


def _level_of(values, num_levels):
    """The level whose bin contains a value of the [-1, 1] scale (edge bins take the tails),
    clipped into [0, L) as a float before the cast (a NaN, possible only from NaN parameters
    under jit, becomes level 0 rather than an undefined integer)."""
    level = jnp.round((values + 1.0) * ((num_levels - 1) / 2.0))
    level = jnp.where(jnp.isnan(level), 0.0, level)
    return jnp.clip(level, 0, num_levels - 1).astype(jnp.int32)


def _as_float(p, name):
    """A parameter as a real float array (Python numbers, lists and integer arrays are accepted)."""
    return v.as_float_array(p, name)


def _check_finite_params(params):
    """Concrete NaN or infinite parameters raise (under `checked_mode`, traced ones too); a
    logit weight of -inf (a component switched off) is allowed."""
    for name, p in params.items():
        ok = ~jnp.isnan(p) & (p < jnp.inf) if name == "logit_weights" else jnp.isfinite(p)
        what = "not NaN or +inf (-inf switches a component off)" if name == "logit_weights" else "finite"
        v.check_values(ok, f"`{name}` must be {what}; got NaN or infinite values.")


def _check_min_log_scale(min_log_scale):
    value = v.check_finite_float(min_log_scale, "min_log_scale")
    if not LOWEST_MIN_LOG_SCALE <= value < MAX_LOG_SCALE:
        raise ValueError(f"`min_log_scale` must be in [{LOWEST_MIN_LOG_SCALE}, {MAX_LOG_SCALE}); got "
                         f"{min_log_scale!r}.")
    return value


def _mixture_params(logit_weights, means, log_scales):
    params = {"logit_weights": _as_float(logit_weights, "logit_weights"),
              "means": _as_float(means, "means"), "log_scales": _as_float(log_scales, "log_scales")}
    shapes = {k: p.shape for k, p in params.items()}
    if len(set(shapes.values())) != 1 or not shapes["means"]:
        raise ValueError(f"`logit_weights`, `means` and `log_scales` must share one shape (..., K) "
                         f"with K the last axis; got {shapes}.")
    _check_finite_params(params)
    return params


def _check_value(value, batch_shape, event_shape, num_components=None, name="value"):
    """A value of shape (sample axes...) + batch_shape + event_shape, as a jax array.

    A batch axis of the parameters that is 1 broadcasts against the value's (`v.check_value_shape`);
    every other batch axis must be there and equal. Rejected, because they would broadcast silently
    into a result of the wrong meaning:

    - a value with fewer axes than batch_shape + event_shape (levels of one image against a batch
      of images);
    - a value axis of size 1 against a larger batch axis (an (B, 1) array against a batch of B
      gives B x B terms);
    - with K > 1 components, a value whose trailing axes equal the parameters' whole shape
      batch_shape + (K,): that is what parameters missing their K axis look like (parameters of
      shape (B,) read as one mixture over the batch). A sample axis that happens to equal K
      meets the same rule; give the parameters an axis of size 1 (shape (1, K)) and the value
      a trailing axis of size 1 to evaluate a single mixture at K points.
    """
    value = jnp.asarray(v.check_value_shape(value, batch_shape, event_shape, name))
    if num_components is not None and num_components > 1 and not event_shape:
        whole = tuple(batch_shape) + (num_components,)
        if value.ndim >= len(whole) and value.shape[value.ndim - len(whole):] == whole:
            raise ValueError(f"`{name}` of shape {value.shape} ends with the parameters' whole shape "
                             f"{whole} (batch shape + (K,)): the parameters look as if they lack their "
                             f"K axis, which would read them as one mixture over the batch. Give "
                             f"parameters of shape batch_shape + (K,) (add [..., None] for K = 1).")
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
    return pick(params["means"]) + scale * jax.random.logistic(k2, shape, params["means"].dtype)


class DiscretizedLogisticMixture(distrax.Distribution):
    """A mixture of K logistics discretized to the levels 0..L-1 (PixelCNN++), event shape ().

    Args:
      logit_weights: the components' unnormalized log-weights, shape (..., K);
        the batch shape is (...).
      means: the components' means, shape (..., K), on the [-1, 1] scale,
        where level x sits at 2x/(L-1) - 1.
      log_scales: the components' log-scales, shape (..., K), on the same scale.
      num_levels: L >= 2 (256 for 8-bit pixels, 17 for the digits, 2 binary).
      min_log_scale: log-scales are clamped from below to this (PixelCNN++'s -7),
        and from above to MAX_LOG_SCALE.

    Parameters may be arrays, Python numbers or lists; concrete NaN or infinite
    values raise a ValueError. `log_prob` takes integer levels in [0, L) of
    shape (sample axes...) + batch_shape: every batch axis must be there, equal
    to the parameters' or against a parameter axis of size 1 (which broadcasts);
    anything else (fewer axes, a value axis of size 1 against a larger batch
    axis) is a ValueError naming `value`. It is finite, with finite
    gradients, for every level and every finite parameter value; `sample`
    draws exactly (a component, a logistic draw, its bin). K = 1 is a single
    discretized logistic.
    """

    def __init__(self, logit_weights, means, log_scales, num_levels: int,
                 min_log_scale: float = MIN_LOG_SCALE):
        self._params = _mixture_params(logit_weights, means, log_scales)
        self._num_levels = v.check_num_levels(num_levels)
        self._min_log_scale = _check_min_log_scale(min_log_scale)
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
        value = _check_value(value, self.batch_shape, (), self.num_components)
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
    `log_scales`, `coeffs` (..., 3, K). `log_prob` takes integer levels in
    [0, L) of shape (sample axes...) + batch_shape + (3,), batch axes lined up
    as in `DiscretizedLogisticMixture`. Sampling draws r, then g given r, then b.
    Log-scales are clamped to [min_log_scale, MAX_LOG_SCALE]; values and
    gradients are finite for every finite parameter value.
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
        _check_finite_params(p)
        self._params = p
        self._num_levels = v.check_num_levels(num_levels)
        self._min_log_scale = _check_min_log_scale(min_log_scale)
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

    @property
    def num_components(self) -> int:
        return self._params["logit_weights"].shape[-1]

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
        noise = jax.random.logistic(k2, mu.shape, mu.dtype) * jnp.exp(log_s)
        r = _level_of(mu[..., 0] + noise[..., 0], self._num_levels)
        g = _level_of(mu[..., 1] + c[..., 0] * self._to_scale(r) + noise[..., 1], self._num_levels)
        b = _level_of(mu[..., 2] + c[..., 1] * self._to_scale(r) + c[..., 2] * self._to_scale(g)
                      + noise[..., 2], self._num_levels)
        return jnp.stack([r, g, b], axis=-1)


# float32 bounds inside int32: samples of the integer mixture are clipped here before the cast
_INT32_LO, _INT32_HI = float(-2 ** 31), float(np.nextafter(np.float32(2 ** 31), np.float32(0)))


class IntegerLogisticMixture(distrax.Distribution):
    """A mixture of K logistics discretized to all integers (unit bins, no edges), event shape ().

    P(z) = sum_k pi_k [sigma((z + 1/2 - mu_k)/s_k) - sigma((z - 1/2 - mu_k)/s_k)]
    for every integer z, with means and log-scales in integer units (the prior
    of integer discrete flows). Log-scales are clamped to [min_log_scale,
    MAX_LOG_SCALE]; values and gradients are finite for every finite mean and
    log-scale. `log_prob` takes integers of shape (sample axes...) +
    batch_shape, batch axes lined up as in `DiscretizedLogisticMixture`, also
    as floats holding integers (values that come through a straight-through
    rounding). Samples are int32, clipped to
    its range (a mean beyond +-2^31 saturates rather than wrapping around).
    """

    def __init__(self, logit_weights, means, log_scales, min_log_scale: float = MIN_LOG_SCALE):
        self._params = _mixture_params(logit_weights, means, log_scales)
        self._min_log_scale = _check_min_log_scale(min_log_scale)
        super().__init__()

    @property
    def event_shape(self):
        return ()

    @property
    def batch_shape(self):
        return self._params["means"].shape[:-1]

    @property
    def num_components(self) -> int:
        return self._params["means"].shape[-1]

    def log_prob(self, value):
        value = _check_value(value, self.batch_shape, (), self.num_components)
        if value.dtype == jnp.bool_:
            raise ValueError("`value` must hold integers (an integer dtype, or floats holding integers); "
                             "got dtype bool.")
        if jnp.issubdtype(value.dtype, jnp.floating):
            v.check_values(value == jnp.round(value), f"`value` of dtype {value.dtype} must hold "
                           f"integers (the mixture's support); got non-integer values.")
        p = self._params
        log_scales = _clamp(p["log_scales"], self._min_log_scale, MAX_LOG_SCALE)
        z = value.astype(p["means"].dtype)[..., None]
        edges = jnp.ones(jnp.broadcast_shapes(z.shape, p["means"].shape), bool)
        per_component = _log_bin_mass(z - p["means"], 0.5, log_scales, edges, edges)
        log_weights = jax.nn.log_softmax(p["logit_weights"], axis=-1)
        return jax.scipy.special.logsumexp(log_weights + per_component, axis=-1)

    def _sample_n(self, key, n):
        values = _sample_logistic_mixture(key, n, self._params, self.batch_shape, self._min_log_scale)
        values = jnp.where(jnp.isnan(values), 0.0, jnp.round(values))
        return jnp.clip(values, _INT32_LO, _INT32_HI).astype(jnp.int32)
