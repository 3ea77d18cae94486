"""ELBO surgery (Hoffman & Johnson 2016): where the average KL of a VAE goes.

Over a dataset of n points, with q_agg(z) = (1/n) sum_j q(z|x_j):

    (1/n) sum_i KL(q(z|x_i) || p(z)) = I_q[x, z] + KL(q_agg(z) || p(z))
    I_q[x, z] = (1/n) sum_i KL(q(z|x_i) || q_agg(z)),    0 <= I_q <= log n

and the average ELBO is reconstruction - I_q - KL(q_agg || p): the prior
only enters the last term, so the optimal prior is q_agg itself.

`elbo_surgery` estimates the terms by Monte Carlo over z_i ~ q(z|x_i),
evaluating q_agg at every sample as the mixture over all n points (never a
minibatch), chunk by chunk so that n x n x samples never sits in memory. Per
sample, log q_i - log p = (log q_i - log q_agg) + (log q_agg - log p), so the
estimates satisfy the identity exactly when the average KL is estimated with
the same samples, and within Monte Carlo error when it is in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _validation as v
from dgmjax.vae.objectives import gaussian_log_prob

__all__ = ["aggregated_posterior_log_prob", "elbo_surgery", "gaussian_elbo_surgery"]


def aggregated_posterior_log_prob(z, means, log_stds, *, chunk_size: int = 1024):
    """log q_agg(z) = log (1/n) sum_j N(z; means_j, diag(exp(log_stds_j))^2), z (..., d).

    The mixture over all n posteriors (the optimal prior), in chunks of components.
    """
    means, log_stds = jnp.asarray(means), jnp.asarray(log_stds)
    n = means.shape[0]
    if means.ndim != 2 or log_stds.shape != means.shape:
        raise ValueError(f"`means` and `log_stds` must share a shape (n, d); got {means.shape}, "
                         f"{log_stds.shape}.")
    if z.shape[-1] != means.shape[-1]:
        raise ValueError(f"`z` must have last axis {means.shape[-1]} (the posteriors' latent size); got "
                         f"{z.shape}.")
    chunk = min(chunk_size, n)
    pad = -n % chunk
    mp = jnp.pad(means, ((0, pad), (0, 0)))
    lp = jnp.pad(log_stds, ((0, pad), (0, 0)))
    valid = jnp.arange(n + pad) < n

    def one(c):
        sl = lambda a: jax.lax.dynamic_slice_in_dim(a, c * chunk, chunk)
        comp = gaussian_log_prob(z[..., None, :], sl(mp), sl(lp))  # (..., chunk)
        return jax.scipy.special.logsumexp(jnp.where(sl(valid), comp, -jnp.inf), axis=-1)

    per_chunk = jax.lax.map(one, jnp.arange((n + pad) // chunk))
    return jax.scipy.special.logsumexp(per_chunk, axis=0) - math.log(n)


def elbo_surgery(key, num_points: int, sample_fn: Callable, log_q_fn: Callable,
                 prior_log_prob: Callable, *, num_samples: int = 1, chunk_size: int = 256,
                 kl_per_point=None, reconstruction=None) -> dict:
    """Estimates average KL, I_q[x, z] and KL(q_agg || p) over n points (see module docstring).

    Args:
      key: PRNG key for the posterior samples.
      num_points: n >= 2, the size of the dataset the posteriors belong to.
      sample_fn: `(key, idx) -> (z, log_q)`: for data indices `idx` (m,),
        z (m, S, d) ~ q(z|x_idx) and their own log q (m, S).
      log_q_fn: `(z, idx) -> log q(z | x_idx)`: z (r, d), idx (m,), result (r, m).
      prior_log_prob: `z (r, d) -> log p(z)` (r,).
      num_samples: S, samples per data point.
      chunk_size: data points per chunk (memory ~ chunk^2 * S).
      kl_per_point: closed-form KL(q(z|x_i) || p) (n,), if available; else the
        Monte Carlo estimate from the same samples is used.
      reconstruction: per-point E_q log p(x_i|z) (n,), to split the ELBO.

    Returns a dict of floats (nats): avg_kl, mutual_info, marginal_kl,
    log_n, their Monte Carlo standard errors (*_se), and with
    `reconstruction`: reconstruction, elbo = reconstruction - avg_kl.
    """
    n = v.check_positive_int(num_points, "num_points")
    if n < 2:
        raise ValueError(f"ELBO surgery needs a dataset of at least 2 points; got num_points={n}.")
    num_samples = v.check_positive_int(num_samples, "num_samples")
    chunk = min(v.check_positive_int(chunk_size, "chunk_size"), n)
    starts = list(range(0, n, chunk))

    @jax.jit
    def log_q_against(z_flat, idx):
        return log_q_fn(z_flat, idx)

    @jax.jit
    def sample(k, idx):
        return sample_fn(k, idx)

    mi, marg, mc_kl = [], [], []
    for a in starts:
        idx_i = jnp.arange(a, min(a + chunk, n))
        z, log_q_own = sample(jax.random.fold_in(key, a), idx_i)  # (m, S, d), (m, S)
        m, s, d = z.shape
        flat = z.reshape(m * s, d)
        parts = [log_q_against(flat, jnp.arange(b, min(b + chunk, n))) for b in starts]
        log_q_agg = jax.scipy.special.logsumexp(jnp.concatenate(parts, axis=1), axis=1) - math.log(n)
        log_q_agg = log_q_agg.reshape(m, s)
        log_p = prior_log_prob(flat).reshape(m, s)
        mi.append(np.asarray(jnp.mean(log_q_own - log_q_agg, 1), np.float64))
        marg.append(np.asarray(jnp.mean(log_q_agg - log_p, 1), np.float64))
        mc_kl.append(np.asarray(jnp.mean(log_q_own - log_p, 1), np.float64))
    mi, marg, mc_kl = (np.concatenate(p) for p in (mi, marg, mc_kl))
    kl = mc_kl if kl_per_point is None else np.asarray(kl_per_point, np.float64)
    se = lambda a: float(a.std(ddof=1) / math.sqrt(a.size))
    out = {"avg_kl": float(kl.mean()), "mutual_info": float(mi.mean()), "marginal_kl": float(marg.mean()),
           "log_n": math.log(n), "avg_kl_se": se(kl), "mutual_info_se": se(mi),
           "marginal_kl_se": se(marg), "identity_gap": float(kl.mean() - mi.mean() - marg.mean()),
           "num_points": n, "num_samples": num_samples}
    if reconstruction is not None:
        rec = np.asarray(reconstruction, np.float64)
        out.update(reconstruction=float(rec.mean()), elbo=float(rec.mean() - kl.mean()))
    return out


def gaussian_elbo_surgery(key, means, log_stds, prior_log_prob: Callable, **kwargs) -> dict:
    """`elbo_surgery` for diagonal Gaussian posteriors given by their means and log-stds (n, d)."""
    means, log_stds = jnp.asarray(means), jnp.asarray(log_stds)
    if means.ndim != 2 or log_stds.shape != means.shape:
        raise ValueError(f"`means` and `log_stds` must share a shape (n, d); got {means.shape}, "
                         f"{log_stds.shape}.")
    num_samples = kwargs.pop("num_samples", 1)

    def sample_fn(k, idx):
        mu, ls = means[idx], log_stds[idx]
        z = mu[:, None] + jnp.exp(ls)[:, None] * jax.random.normal(k, (idx.shape[0], num_samples,
                                                                        mu.shape[-1]))
        return z, gaussian_log_prob(z, mu[:, None], ls[:, None])

    def log_q_fn(z, idx):
        return gaussian_log_prob(z[:, None, :], means[idx][None], log_stds[idx][None])

    return elbo_surgery(key, means.shape[0], sample_fn, log_q_fn, prior_log_prob,
                        num_samples=num_samples, **kwargs)
