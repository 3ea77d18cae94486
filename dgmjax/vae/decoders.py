"""Decoder likelihoods log p(x|z) for VAEs: Bernoulli, categorical, discretized mixture, Gaussian.

A decoder network outputs `param_size(kind, ...)` numbers per data dimension;
`decoder_log_prob` turns them into log p(x|z) summed over the data
dimensions, and `decoder_sample` draws x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dgmjax.likelihoods import (
    bernoulli_log_prob,
    categorical_log_prob,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_sample,
)
from dgmjax.vae.objectives import LOG_2PI

DECODERS = ("bernoulli", "categorical", "mixture", "gaussian")


def param_size(kind: str, num_levels: int | None, num_mixtures: int = 5) -> int:
    """Outputs per data dimension of a decoder of this kind."""
    if kind not in DECODERS:
        raise ValueError(f"`decoder` must be one of {DECODERS}; got {kind!r}.")
    if kind == "gaussian":
        if num_levels is not None:
            raise ValueError("the gaussian decoder models continuous data; num_levels must be None.")
        return 2
    if num_levels is None:
        raise ValueError(f"the {kind} decoder models discrete data; pass num_levels.")
    if kind == "bernoulli":
        if num_levels != 2:
            raise ValueError(f"the bernoulli decoder needs num_levels = 2; got {num_levels}.")
        return 1
    if kind == "categorical":
        return num_levels
    return 3 * num_mixtures


def decoder_log_prob(kind: str, x, params, num_levels: int | None, num_mixtures: int = 5):
    """log p(x|z) summed over data dims. x: (B, D) (ints, or floats for gaussian);
    params: (..., B, D, P) with any leading sample axes."""
    if kind == "bernoulli":
        per_dim = bernoulli_log_prob(x, params[..., 0])
    elif kind == "categorical":
        per_dim = categorical_log_prob(x, params)
    elif kind == "mixture":
        k = num_mixtures
        per_dim = discretized_logistic_mixture_log_prob(
            x, params[..., :k], params[..., k:2 * k], params[..., 2 * k:], num_levels)
    else:
        mean, log_std = params[..., 0], jnp.clip(params[..., 1], -7.0, 7.0)
        per_dim = -0.5 * jnp.square((x - mean) * jnp.exp(-log_std)) - log_std - 0.5 * LOG_2PI
    return jnp.sum(per_dim, -1)


def decoder_sample(kind: str, key, params, num_levels: int | None, num_mixtures: int = 5):
    """A draw of x from the decoder's distribution; params (..., D, P)."""
    if kind == "bernoulli":
        return jax.random.bernoulli(key, jax.nn.sigmoid(params[..., 0])).astype(jnp.int32)
    if kind == "categorical":
        return jax.random.categorical(key, params, axis=-1).astype(jnp.int32)
    if kind == "mixture":
        k = num_mixtures
        return discretized_logistic_mixture_sample(key, params[..., :k], params[..., k:2 * k],
                                                   params[..., 2 * k:], num_levels)
    mean, log_std = params[..., 0], jnp.clip(params[..., 1], -7.0, 7.0)
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def decoder_mean(kind: str, params, num_levels: int | None, num_mixtures: int = 5):
    """A display summary of p(x|z): the mean (probability for bernoulli), in data units."""
    if kind == "bernoulli":
        return jax.nn.sigmoid(params[..., 0])
    if kind == "categorical":
        return jnp.sum(jax.nn.softmax(params, -1) * jnp.arange(num_levels), -1)
    if kind == "mixture":
        k = num_mixtures
        w = jax.nn.softmax(params[..., :k], -1)
        centre = jnp.sum(w * params[..., k:2 * k], -1)
        return jnp.clip((centre + 1.0) * (num_levels - 1) / 2.0, 0, num_levels - 1)
    return params[..., 0]
