"""VAE objectives: the ELBO term by term, the IWAE bound, and the ELBO gap.

For a data point x, an encoder q(z|x), a prior p(z) and a decoder p(x|z):

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))       (reconstruction - KL)
    IWAE_k(x) = E[log (1/k) sum_s p(x, z_s) / q(z_s|x)],  z_s ~ q(z|x)

IWAE_1 = ELBO <= IWAE_k <= IWAE_{k+1} <= log p(x) (in expectation, Burda et
al. 2016), so IWAE with large k estimates the negative log-likelihood and
IWAE_k - ELBO estimates the gap log p(x) - ELBO = KL(q(z|x) || p(z|x)).
All values are nats per example.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from dgmjax import _validation as v

__all__ = ["gaussian_kl", "gaussian_log_prob", "iwae_bound", "log_mean_exp"]

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(z, mean, log_std):
    """log N(z; mean, diag(exp(log_std))^2), summed over the last axis."""
    return jnp.sum(-0.5 * jnp.square((z - mean) * jnp.exp(-log_std)) - log_std - 0.5 * LOG_2PI, -1)


def gaussian_kl(mean_q, log_std_q, mean_p=0.0, log_std_p=0.0):
    """KL(N(mean_q, s_q^2) || N(mean_p, s_p^2)) for diagonal Gaussians, summed over the last axis.

    Closed form: sum log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2.
    """
    mean_q, log_std_q = jnp.asarray(mean_q), jnp.asarray(log_std_q)
    if mean_q.shape != log_std_q.shape:
        raise ValueError(f"`mean_q` and `log_std_q` must share a shape; got {mean_q.shape} and "
                         f"{log_std_q.shape}.")
    var_ratio = jnp.exp(2.0 * (log_std_q - log_std_p))
    sq = jnp.square((mean_q - mean_p) * jnp.exp(-log_std_p))
    return 0.5 * jnp.sum(var_ratio + sq - 1.0 - 2.0 * (log_std_q - log_std_p), -1)


def log_mean_exp(values, axis: int = 0):
    """log (1/k) sum exp(values) along `axis`, stably."""
    return jax.scipy.special.logsumexp(values, axis=axis) - math.log(values.shape[axis])


def iwae_bound(key, log_weight_fn: Callable[[jax.Array], jax.Array], num_samples: int, *,
               chunk_size: int | None = None):
    """The k-sample importance-weighted bound log (1/k) sum_s w_s, drawn `chunk_size` at a time.

    Args:
      key: PRNG key; chunk c uses `fold_in(key, c)`.
      log_weight_fn: `key -> log w` of shape (chunk, B): log p(x, z) - log q(z|x)
        for `chunk` fresh posterior samples of every example of the batch.
      num_samples: k >= 1.
      chunk_size: samples drawn per call of `log_weight_fn` (memory is
        O(chunk_size * B)); k = 5000 fits with a chunk of a few hundred.
        `log_weight_fn` must return exactly this many rows.

    Returns the bound per example, shape (B,), in nats.
    """
    num_samples = v.check_positive_int(num_samples, "num_samples")
    chunk = v.check_positive_int(chunk_size or num_samples, "chunk_size")
    chunk = min(chunk, num_samples)
    num_chunks = -(-num_samples // chunk)

    def one(c):
        log_w = log_weight_fn(jax.random.fold_in(key, c))
        if log_w.ndim < 1 or log_w.shape[0] != chunk:
            raise ValueError(f"`log_weight_fn` must return {chunk} rows (one per sample); got "
                             f"shape {log_w.shape}.")
        valid = (c * chunk + jnp.arange(chunk)) < num_samples
        valid = valid.reshape((chunk,) + (1,) * (log_w.ndim - 1))
        return jax.scipy.special.logsumexp(jnp.where(valid, log_w, -jnp.inf), axis=0)

    per_chunk = jax.lax.map(one, jnp.arange(num_chunks))
    return jax.scipy.special.logsumexp(per_chunk, axis=0) - math.log(num_samples)
