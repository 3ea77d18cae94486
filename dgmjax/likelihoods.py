"""Log-likelihoods of discrete data: discretized logistic (mixture), categorical, Bernoulli.

Discretizing a continuous model (the lecture): P(y) = F(y + 1/2) - F(y - 1/2),
with the edge levels taking the whole tails. In PixelCNN++'s parameterization
the levels y = 0..L-1 of a pixel sit at c = 2y/(L-1) - 1 in [-1, 1], each bin
has half-width w = 1/(L-1), and a mixture of K logistics gives

    P(y) = sum_k pi_k [sigma((c + w - mu_k)/s_k) - sigma((c - w - mu_k)/s_k)],

with -inf as the lower edge of level 0 and +inf as the upper edge of level L-1.

The bin mass is computed in log space with the identity

    sigma(b) - sigma(a) = sigma(b) sigma(-a) (1 - exp(-(b - a))),   b > a,

so log P_k(y) = log_sigmoid(b) + log_sigmoid(-a) + log1mexp(b - a): three
terms that are each finite and accurate for every level and every parameter
value, down to bins whose mass underflows float32 (no sigma difference is
ever formed, so there is no cancellation, no log(0), and no fallback branch
whose gradient could be NaN). At an infinite edge the terms that involve it
are dropped: level 0 keeps log_sigmoid(b), level L-1 keeps log_sigmoid(-a).
Log-scales are clamped from below (`min_log_scale`, PixelCNN++'s -7). Only
the observed level is evaluated: nothing of shape (..., K, num_levels) is
ever built.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _validation as v

__all__ = [
    "MAX_LOG_SCALE",
    "MIN_LOG_SCALE",
    "bernoulli_log_prob",
    "categorical_log_prob",
    "discretized_logistic_log_prob",
    "discretized_logistic_mixture_log_prob",
    "discretized_logistic_mixture_sample",
    "discretized_logistic_rgb_log_prob",
    "discretized_logistic_rgb_sample",
    "integer_logistic_log_prob",
    "integer_logistic_mixture_log_prob",
    "integer_logistic_mixture_sample",
    "log1mexp",
    "rgb_coupled_means",
]

MIN_LOG_SCALE = -7.0
# Upper clamp of the integer logistics' log-scales (and of the samplers'): past e^20 every
# integer bin's width 1/s underflows against float32 and log(0) would give a NaN gradient.
MAX_LOG_SCALE = 20.0


def log1mexp(d):
    """log(1 - exp(-d)) for d > 0, accurate for small and large d (Maechler 2012)."""
    d = jnp.asarray(d)
    small = d < np.log(2.0)
    safe_small = jnp.where(small, d, 1.0)
    safe_large = jnp.where(small, 1.0, d)
    return jnp.where(small, jnp.log(-jnp.expm1(-safe_small)), jnp.log1p(-jnp.exp(-safe_large)))


def _log_bin_mass(a, b, has_lower, has_upper):
    """log(sigma(b) - sigma(a)) with a = -inf where not has_lower, b = +inf where not has_upper.

    `a < b` are finite arrays; the edge flags select which terms enter, so no
    infinity (and no NaN in any gradient) is ever produced.
    """
    upper = jnp.where(has_upper, jax.nn.log_sigmoid(b), 0.0)
    lower = jnp.where(has_lower, jax.nn.log_sigmoid(-a), 0.0)
    width = jnp.where(has_lower & has_upper, log1mexp(b - a), 0.0)
    return upper + lower + width


def _check_levels_and_params(x, num_levels, params: dict, k_axis: bool = True):
    num_levels = v.check_num_levels(num_levels)
    x = x if hasattr(x, "dtype") else jnp.asarray(x)
    v.check_integer_levels(x, num_levels, "x")
    shapes = {name: jnp.shape(p) for name, p in params.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"the parameters must share one shape; got {shapes}.")
    shape = next(iter(shapes.values()))
    batch = shape[:-1] if k_axis else shape
    try:
        jnp.broadcast_shapes(jnp.shape(x), batch)
    except ValueError:
        raise ValueError(
            f"`x` of shape {jnp.shape(x)} does not broadcast against the parameters' leading shape "
            f"{batch} (parameters {shape}{', last axis K' if k_axis else ''})."
        ) from None
    return x, num_levels


def discretized_logistic_log_prob(x, means, log_scales, num_levels: int = 256,
                                  min_log_scale: float = MIN_LOG_SCALE):
    """log P(x) of single discretized logistics (no mixture), elementwise.

    Args:
      x: integer levels in [0, num_levels).
      means, log_scales: logistic location and log-scale in the [-1, 1]
        scale (level y at 2y/(num_levels-1) - 1), broadcastable with `x`.
    """
    x, num_levels = _check_levels_and_params(x, num_levels, {"means": means, "log_scales": log_scales},
                                             k_axis=False)
    return _discretized_logistic(x, means, log_scales, num_levels, min_log_scale)


def _discretized_logistic(x, means, log_scales, num_levels, min_log_scale):
    log_scales = jnp.maximum(log_scales, min_log_scale)
    inv_scale = jnp.exp(-log_scales)
    half_width = 1.0 / (num_levels - 1)
    centre = 2.0 * x.astype(means.dtype) / (num_levels - 1) - 1.0
    a = (centre - half_width - means) * inv_scale
    b = (centre + half_width - means) * inv_scale
    return _log_bin_mass(a, b, x > 0, x < num_levels - 1)


def discretized_logistic_mixture_log_prob(x, logit_weights, means, log_scales, num_levels: int = 256,
                                          min_log_scale: float = MIN_LOG_SCALE):
    """log P(x) under a mixture of K discretized logistics (PixelCNN++), in nats.

    Args:
      x: integer levels in [0, num_levels), shape (...).
      logit_weights, means, log_scales: shape (..., K) (leading axes
        broadcasting with x.shape); means and log-scales in the [-1, 1] scale.
      num_levels: L >= 2 (256 for 8-bit pixels, 17 for the digits, 2 binary).
      min_log_scale: log-scales are clamped from below to this.

    Returns log P(x), shape (...). K = 1 is the single discretized logistic.
    """
    x, num_levels = _check_levels_and_params(
        x, num_levels, {"logit_weights": logit_weights, "means": means, "log_scales": log_scales})
    per_component = _discretized_logistic(x[..., None], means, log_scales, num_levels, min_log_scale)
    log_weights = jax.nn.log_softmax(logit_weights, axis=-1)
    return jax.scipy.special.logsumexp(log_weights + per_component, axis=-1)


def _level_of(values, num_levels):
    """The level whose bin contains a value of the [-1, 1] scale (edge bins take the tails)."""
    level = jnp.round((values + 1.0) * (num_levels - 1) / 2.0)
    return jnp.clip(level, 0, num_levels - 1).astype(jnp.int32)


def _logistic_noise(key, shape, dtype=jnp.float32):
    u = jax.random.uniform(key, shape, dtype, minval=1e-7, maxval=1.0 - 1e-7)
    return jnp.log(u) - jnp.log1p(-u)


def discretized_logistic_mixture_sample(key, logit_weights, means, log_scales, num_levels: int = 256,
                                        min_log_scale: float = MIN_LOG_SCALE):
    """Exact samples of the discretized mixture: a component, a logistic draw, its bin.

    Parameters of shape (..., K); returns int32 levels of shape (...).
    """
    num_levels = v.check_num_levels(num_levels)
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, logit_weights, axis=-1)
    pick = lambda p: jnp.take_along_axis(p, comp[..., None], axis=-1)[..., 0]
    scale = jnp.exp(jnp.clip(pick(log_scales), min_log_scale, MAX_LOG_SCALE))
    values = pick(means) + scale * _logistic_noise(k2, comp.shape, means.dtype)
    return _level_of(values, num_levels)


def rgb_coupled_means(means, coeffs, x, num_levels: int):
    """PixelCNN++'s channel coupling: each channel's mean is linear in the channels before it.

    means, coeffs: (..., 3, K) (coeffs are squashed with tanh, as in PixelCNN++);
    x: integer levels (..., 3) of the pixel. Returns the means of
    (r, g + a r, b + b' r + c g) with r, g in the [-1, 1] scale: mean c
    depends only on channels < c of the same pixel.
    """
    batch = jnp.broadcast_shapes(jnp.shape(x)[:-1], jnp.shape(means)[:-2], jnp.shape(coeffs)[:-2])
    means = jnp.broadcast_to(means, batch + jnp.shape(means)[-2:])
    c = jnp.tanh(jnp.broadcast_to(coeffs, batch + jnp.shape(coeffs)[-2:]))
    xs = (2.0 * x.astype(means.dtype) / (num_levels - 1) - 1.0)[..., None]  # (..., 3, 1)
    r, g = xs[..., 0, :], xs[..., 1, :]
    m_r = means[..., 0, :]
    m_g = means[..., 1, :] + c[..., 0, :] * r
    m_b = means[..., 2, :] + c[..., 1, :] * r + c[..., 2, :] * g
    return jnp.stack([m_r, m_g, m_b], axis=-2)


def discretized_logistic_rgb_log_prob(x, logit_weights, means, log_scales, coeffs, num_levels: int = 256,
                                      min_log_scale: float = MIN_LOG_SCALE):
    """log P(pixel) for RGB pixels under PixelCNN++'s coupled mixture.

    One mixture indicator per pixel, shared by the three channels:
    P(x) = sum_k pi_k prod_c P(x_c | mu_ck(x_<c), s_ck).

    Args:
      x: integer levels (..., 3).
      logit_weights: (..., K); means, log_scales, coeffs: (..., 3, K).
    Returns log P(x), shape (...).
    """
    if jnp.shape(x)[-1:] != (3,):
        raise ValueError(f"`x` must have a last axis of 3 channels (RGB); got shape {jnp.shape(x)}.")
    shapes = {"means": jnp.shape(means), "log_scales": jnp.shape(log_scales), "coeffs": jnp.shape(coeffs)}
    if len(set(shapes.values())) != 1 or shapes["means"][-2:-1] != (3,):
        raise ValueError(f"means, log_scales and coeffs must share a shape (..., 3, K); got {shapes}.")
    if jnp.shape(logit_weights)[-1] != shapes["means"][-1]:
        raise ValueError(f"`logit_weights` must have last axis K={shapes['means'][-1]}; got "
                         f"{jnp.shape(logit_weights)}.")
    num_levels = v.check_num_levels(num_levels)
    v.check_integer_levels(x, num_levels, "x")
    mu = rgb_coupled_means(means, coeffs, x, num_levels)
    per_channel = _discretized_logistic(x[..., None], mu, log_scales, num_levels, min_log_scale)
    log_weights = jax.nn.log_softmax(logit_weights, axis=-1)
    return jax.scipy.special.logsumexp(log_weights + per_channel.sum(-2), axis=-1)


def discretized_logistic_rgb_sample(key, logit_weights, means, log_scales, coeffs, num_levels: int = 256,
                                    min_log_scale: float = MIN_LOG_SCALE):
    """Exact samples of `discretized_logistic_rgb_log_prob`: r, then g given r, then b."""
    num_levels = v.check_num_levels(num_levels)
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, logit_weights, axis=-1)
    pick = lambda p: jnp.take_along_axis(p, comp[..., None, None], axis=-1)[..., 0]  # (..., 3)
    mu, log_s, c = pick(means), jnp.maximum(pick(log_scales), min_log_scale), jnp.tanh(pick(coeffs))
    noise = _logistic_noise(k2, mu.shape, mu.dtype) * jnp.exp(log_s)
    to_value = lambda level: 2.0 * level.astype(mu.dtype) / (num_levels - 1) - 1.0
    r = _level_of(mu[..., 0] + noise[..., 0], num_levels)
    g = _level_of(mu[..., 1] + c[..., 0] * to_value(r) + noise[..., 1], num_levels)
    b = _level_of(mu[..., 2] + c[..., 1] * to_value(r) + c[..., 2] * to_value(g) + noise[..., 2],
                  num_levels)
    return jnp.stack([r, g, b], axis=-1)


def integer_logistic_log_prob(z, means, log_scales, min_log_scale: float = MIN_LOG_SCALE):
    """log P(z) of a logistic discretized to all integers (no edge levels), for integer flows.

    P(z) = sigma((z + 1/2 - mu)/s) - sigma((z - 1/2 - mu)/s) for every integer z,
    with `means` and `log_scales` in integer units.
    """
    z = jnp.asarray(z)  # integers, or floats holding integers (straight-through rounding)
    # Clamped from above too: past e^20 every bin's width 1/s underflows against float32
    # and log(0) would give a NaN gradient (a conditional prior's network can ask for that).
    log_scales = jnp.clip(log_scales, min_log_scale, MAX_LOG_SCALE)
    inv_scale = jnp.exp(-log_scales)
    zf = z.astype(means.dtype)
    a = (zf - 0.5 - means) * inv_scale
    b = (zf + 0.5 - means) * inv_scale
    true = jnp.ones(jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b)), bool)
    return _log_bin_mass(a, b, true, true)


def integer_logistic_mixture_log_prob(z, logit_weights, means, log_scales,
                                      min_log_scale: float = MIN_LOG_SCALE):
    """log P(z) of a mixture of K logistics discretized to all integers; parameters (..., K)."""
    per_component = integer_logistic_log_prob(jnp.asarray(z)[..., None], means, log_scales, min_log_scale)
    log_weights = jax.nn.log_softmax(logit_weights, axis=-1)
    return jax.scipy.special.logsumexp(log_weights + per_component, axis=-1)


def integer_logistic_mixture_sample(key, logit_weights, means, log_scales,
                                    min_log_scale: float = MIN_LOG_SCALE):
    """Exact integer samples (int32) of `integer_logistic_mixture_log_prob`."""
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, logit_weights, axis=-1)
    pick = lambda p: jnp.take_along_axis(p, comp[..., None], axis=-1)[..., 0]
    scale = jnp.exp(jnp.clip(pick(log_scales), min_log_scale, MAX_LOG_SCALE))
    return jnp.round(pick(means) + scale * _logistic_noise(k2, comp.shape, means.dtype)).astype(jnp.int32)


def categorical_log_prob(x, logits):
    """log P(x) under Categorical(softmax(logits)): x integer levels (...), logits (..., L)."""
    logits = jnp.asarray(logits)
    num_levels = logits.shape[-1]
    x = x if hasattr(x, "dtype") else jnp.asarray(x)
    v.check_integer_levels(x, max(num_levels, 2), "x")
    log_p = jax.nn.log_softmax(logits, axis=-1)
    x_b = jnp.broadcast_to(x, jnp.broadcast_shapes(x.shape, logits.shape[:-1]))
    log_p = jnp.broadcast_to(log_p, x_b.shape + (num_levels,))
    return jnp.take_along_axis(log_p, x_b[..., None].astype(jnp.int32), axis=-1)[..., 0]


def bernoulli_log_prob(x, logits):
    """log P(x) under Bernoulli(sigmoid(logits)) for x in {0, 1}: stable for any logit."""
    x = x if hasattr(x, "dtype") else jnp.asarray(x)
    v.check_integer_levels(x, 2, "x")
    logits = jnp.asarray(logits)
    return jnp.where(x > 0, jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits))
