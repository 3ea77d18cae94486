"""ELBO surgery (Hoffman & Johnson 2016): where the average KL of a VAE goes.

Over a dataset of n points, with the aggregated posterior q_agg(z) = (1/n) sum_j q(z|x_j):

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

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.objectives._util import as_distribution
from dgmjax.objectives.elbo import analytic_kl, check_posterior, check_prior

__all__ = ["aggregated_posterior", "elbo_surgery"]


class _AggregatedPosterior(distrax.MixtureSameFamily):
    """A `distrax.MixtureSameFamily` whose `log_prob` takes only vectors of its event shape."""

    def log_prob(self, value):
        return super().log_prob(v.check_value_shape(value, self.batch_shape, self.event_shape))


def aggregated_posterior(posterior) -> distrax.MixtureSameFamily:
    """q_agg(z) = (1/n) sum_j q(z | x_j): the equal mixture of a batch of n posteriors.

    `posterior` has batch shape (n,) and event shape (d,). The optimal prior
    of a VAE for its data; with learned pseudo-inputs in place of data it is
    the VampPrior (Tomczak & Welling 2018). The mixture has batch shape () and
    event shape (d,); its `log_prob` takes z of shape (..., d) (leading axes
    are sample axes) and any other shape is a ValueError naming `value`.
    """
    if not hasattr(posterior, "log_prob") or not hasattr(posterior, "batch_shape"):
        raise ValueError(f"`posterior` must be a distribution q(z|x); got {type(posterior).__name__}.")
    if len(posterior.batch_shape) != 1 or len(posterior.event_shape) != 1:
        raise ValueError(f"`posterior` must have batch shape (n,) and event shape (d,); got "
                         f"{posterior.batch_shape} and {posterior.event_shape}.")
    n = posterior.batch_shape[0]
    return _AggregatedPosterior(distrax.Categorical(logits=jnp.zeros(n)), posterior)


def _traced(what):
    return ValueError(f"elbo_surgery works on a whole data set, eagerly, but {what}. Its terms are estimates "
                      f"over the data set (q_agg mixes all n points), computed chunk by chunk on the host, "
                      f"so it cannot be vmapped, jitted or differentiated; call it on concrete arrays (loop "
                      f"in Python over data sets or models).")


def _estimate(key, x, n, chunk, starts, draw, log_q_against):
    """Per-sample Monte Carlo terms, chunk by chunk: float64 numpy arrays of shape (S, m) per chunk
    (the closed-form KL, where there is one, of shape (m,))."""
    mi, marg, mc_kl, closed_kl = [], [], [], []
    for a in starts:
        xi = x[a:a + chunk]
        z, log_p, closed = draw(jax.random.fold_in(key, a), xi)
        if not v.is_concrete(log_p):
            raise _traced("its results are traced: `encoder` or `prior` holds traced values, or it is called "
                          "inside a traced function")
        s, m, d = z.shape
        parts = [log_q_against(z.reshape(s * m, d), x[b:b + chunk]) for b in starts]
        # Each sample's own log q(z_i | x_i) is the pair (i, i) of the same evaluation, so the
        # identity avg KL = MI + marginal KL holds to rounding, however far apart the posteriors.
        own = parts[a // chunk].reshape(s, m, m)[:, jnp.arange(m), jnp.arange(m)]
        log_q_agg = (jax.scipy.special.logsumexp(jnp.concatenate(parts, axis=1), axis=1)
                     - math.log(n)).reshape(s, m)
        mi.append(np.asarray(own - log_q_agg, np.float64))
        marg.append(np.asarray(log_q_agg - log_p, np.float64))
        mc_kl.append(np.asarray(own - log_p, np.float64))
        if closed is not None:
            closed_kl.append(np.asarray(closed, np.float64))
    return mi, marg, mc_kl, closed_kl


def _monte_carlo_se(terms):
    """The standard error of the mean of `terms` (S, n) over the draws of z, the data held fixed.

    Each point's S draws are independent of every other point's, so the variance of the mean over
    all n points is (1/n^2) sum_i Var(term_i) / S, with Var(term_i) estimated from point i's own S
    draws. The spread *between* points is not Monte Carlo error (the data set is given) and does
    not enter. One draw per point cannot tell the two apart: None.
    """
    s, n = terms.shape
    if s < 2:
        return None
    return float(math.sqrt(terms.var(axis=0, ddof=1).sum() / s) / n)


def elbo_surgery(key, x, encoder: Callable, prior, *, num_samples: int = 2, chunk_size: int = 256,
                 reconstruction=None, kl: str = "analytic") -> dict:
    """Estimates the average KL, I_q[x, z] and KL(q_agg || p) over the n points of `x`.

    Args:
      key: PRNG key for the posterior samples.
      x: the dataset, n >= 2 points on the leading axis.
      encoder: `x_chunk -> q(z | x_chunk)`, a distribution with batch shape
        (m,) and event shape (d,) for m points; it must evaluate log q(z_r |
        x_j) for z of shape (r, m, d) (every pair at once).
      prior: p(z), a distribution of batch shape () (or a callable returning one).
      num_samples: S, samples per data point (at least 2 for the standard errors).
      chunk_size: data points per chunk (memory ~ chunk^2 * S).
      reconstruction: per-point E_q log p(x_i|z) (n,), to split the ELBO.
      kl: "analytic" takes KL(q(z|x_i) || p) in closed form where distrax has
        it for the pair, else (or with "monte_carlo") the Monte Carlo estimate
        from the same samples.

    Returns floats (nats): avg_kl, mutual_info, marginal_kl, log_n,
    identity_gap (avg_kl - mutual_info - marginal_kl), num_points,
    num_samples, and with `reconstruction`: reconstruction, elbo =
    reconstruction - avg_kl. The `*_se` fields (avg_kl_se, mutual_info_se,
    marginal_kl_se, identity_gap_se) are Monte Carlo standard errors: the
    standard deviation of the estimate over draws of z for this data set,
    estimated from each point's S draws (the spread between the points is
    not Monte Carlo error and does not enter). A closed-form avg_kl has
    standard error 0, and then identity_gap_se is that of the Monte Carlo
    average KL the identity is checked against (with the Monte Carlo KL the
    identity holds per draw and identity_gap_se is 0). With `num_samples=1`
    the Monte Carlo ones are None: one draw per point cannot estimate its
    variance.

    The terms are estimates over the whole data set (q_agg mixes all n points),
    computed chunk by chunk on the host and returned as Python floats: call it
    eagerly, on concrete arrays. Under `jax.vmap`, `jax.jit` or `jax.grad` it
    raises a ValueError (to compare several data sets or models, loop in
    Python).
    """
    for name, value in (("key", key), ("x", x), ("reconstruction", reconstruction)):
        if not v.is_concrete(value):
            raise _traced(f"`{name}` is traced (it is called inside jax.vmap, jax.jit or jax.grad)")
    v.check_key(key)
    if not callable(encoder):
        raise ValueError(f"`encoder` must be a callable x_chunk -> q(z | x_chunk); got "
                         f"{type(encoder).__name__}.")
    n = int(np.shape(x)[0]) if np.ndim(x) else 0
    if n < 2:
        raise ValueError(f"ELBO surgery needs a dataset `x` of at least 2 points; got shape {np.shape(x)}.")
    num_samples = v.check_positive_int(num_samples, "num_samples")
    chunk = min(v.check_positive_int(chunk_size, "chunk_size"), n)
    if kl not in ("analytic", "monte_carlo"):
        raise ValueError(f"`kl` must be 'analytic' or 'monte_carlo'; got {kl!r}.")
    if reconstruction is not None and np.shape(reconstruction) != (n,):
        raise ValueError(f"`reconstruction` must have one value per point, shape ({n},); got "
                         f"{np.shape(reconstruction)}.")
    x = jnp.asarray(x)
    starts = list(range(0, n, chunk))

    @jax.jit
    def draw(k, xi):
        q = encoder(xi)
        check_posterior(q, xi.shape[0], "encoder(x_chunk)")
        check_prior(prior, q, per_example=False)
        z = q.sample(seed=k, sample_shape=(num_samples,))  # (S, m, d)
        closed = analytic_kl(q, as_distribution(prior, "prior")) if kl == "analytic" else None
        return z, as_distribution(prior, "prior").log_prob(z), closed

    @jax.jit
    def log_q_against(z_flat, xj):  # log q(z_r | x_j) for every pair, (r, m_j)
        q = encoder(xj)
        m = q.batch_shape[0]
        return q.log_prob(jnp.broadcast_to(z_flat[:, None, :], (z_flat.shape[0], m, z_flat.shape[-1])))

    mi, marg, mc_kl, closed_kl = _estimate(key, x, n, chunk, starts, draw, log_q_against)
    mi, marg, mc_kl = (np.concatenate(p, axis=1) for p in (mi, marg, mc_kl))  # (S, n) each
    avg = np.concatenate(closed_kl) if closed_kl else mc_kl.mean(0)
    mc_se = _monte_carlo_se(mc_kl)
    # the identity per draw: own - log p = (own - log q_agg) + (log q_agg - log p), so with the Monte
    # Carlo KL the gap is rounding only, and with the closed form it carries that estimate's error
    out = {"avg_kl": float(avg.mean()), "mutual_info": float(mi.mean()), "marginal_kl": float(marg.mean()),
           "log_n": math.log(n), "avg_kl_se": 0.0 if closed_kl else mc_se,
           "mutual_info_se": _monte_carlo_se(mi), "marginal_kl_se": _monte_carlo_se(marg),
           "identity_gap": float(avg.mean() - mi.mean() - marg.mean()),
           "identity_gap_se": mc_se if closed_kl else 0.0, "num_points": n, "num_samples": num_samples}
    if reconstruction is not None:
        rec = np.asarray(reconstruction, np.float64)
        out.update(reconstruction=float(rec.mean()), elbo=float(rec.mean() - avg.mean()))
    return out
