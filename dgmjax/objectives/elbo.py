"""The ELBO, its terms and IWAE, for any posterior, likelihood and prior given as distributions.

    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x)

`posterior` is q(z|x) for a batch of x (a distrax distribution with batch
shape (B,) and event shape (latent,)), `likelihood` maps z to p(x|z) (a
callable returning a distribution; z carries leading sample axes), and
`prior` is p(z) (a distribution, event shape (latent,)). They can come from
any Flax, Equinox or plain-JAX encoder and decoder.

A normalizing flow is the deterministic case (`deterministic_flow_elbo`):
with q(z|x) = delta(z - f(x)) and p(x|z) = delta(x - f^-1(z)) the ratio of
the two deltas is |det df/dx| (Nielsen et al. 2020, SurVAE flows), so the
ELBO is the flow's exact log-likelihood, the lecture's theorem.
"""

from __future__ import annotations

import distrax
import jax.numpy as jnp

from dgmjax import _checks as v
from dgmjax.distributions.gaussian import diag_gaussian_kl, gaussian_log_scale
from dgmjax.objectives._util import as_distribution, as_log_prob
from dgmjax.objectives.importance import importance_weighted_bound

__all__ = ["analytic_kl", "deterministic_flow_elbo", "elbo", "iwae_bound"]


def analytic_kl(posterior, prior):
    """KL(posterior || prior) in closed form when there is one for the pair, else None.

    Two diagonal Gaussians (`dgmjax.distributions.LogScaleNormal` or distrax's
    `MultivariateNormalDiag`) use `diag_gaussian_kl` from their log-scales, finite for
    every log standard deviation whose KL fits in float32; other pairs use distrax's.

    The two must have the same event shape, and batch shapes that broadcast together (a prior of
    batch shape () against a batch of posteriors); otherwise a ValueError names both and their
    shapes.
    """
    event_q, event_p = tuple(posterior.event_shape), tuple(prior.event_shape)
    if event_q != event_p:
        raise ValueError(f"`posterior` of event shape {event_q} and `prior` of event shape {event_p} must "
                         f"have the same event shape (the latent size).")
    v.check_broadcast({"posterior": posterior.batch_shape, "prior": prior.batch_shape}, "batch shape")
    log_scale_q, log_scale_p = gaussian_log_scale(posterior), gaussian_log_scale(prior)
    if log_scale_q is not None and log_scale_p is not None:
        return jnp.sum(diag_gaussian_kl(posterior.loc, log_scale_q, prior.loc, log_scale_p), axis=-1)
    try:
        return posterior.kl_divergence(prior)
    except (NotImplementedError, TypeError, ValueError):
        return None


def check_posterior(posterior, batch: int, name: str = "posterior"):
    """q(z|x) must be a distribution over latent vectors with one member per example."""
    if not hasattr(posterior, "sample_and_log_prob"):
        raise ValueError(f"`{name}` must be a distribution q(z|x); got {type(posterior).__name__}.")
    if len(posterior.event_shape) != 1 or tuple(posterior.batch_shape) != (batch,):
        raise ValueError(f"`{name}` must have batch shape ({batch},) (one q(z|x) per example) and event "
                         f"shape (latent_size,); got batch shape {posterior.batch_shape}, event shape "
                         f"{posterior.event_shape}.")


def check_prior(prior, posterior, *, per_example: bool = True):
    """p(z) must be a distribution over the posterior's latent vectors: its event shape, and batch
    shape () (one p(z) for every example) or, with `per_example`, the posterior's batch shape (one
    p(z) per example, e.g. a conditional prior)."""
    prior = as_distribution(prior, "prior")
    if tuple(prior.event_shape) != tuple(posterior.event_shape):
        raise ValueError(f"`prior` must have the posterior's event shape {posterior.event_shape} (the latent "
                         f"size); got {prior.event_shape}.")
    batch, batch_q = tuple(prior.batch_shape), tuple(posterior.batch_shape)
    if per_example and batch not in ((), batch_q):
        raise ValueError(f"`prior` must have batch shape () (one p(z) for every example) or the posterior's "
                         f"batch shape {batch_q} (one p(z) per example); got batch shape {batch}.")
    if not per_example and batch != ():
        raise ValueError(f"`prior` must have batch shape () (one p(z) for the whole data set); got batch "
                         f"shape {batch}.")
    return prior


def _log_likelihood(likelihood, z, x):
    """log p(x|z) for z of shape (..., B, d): `likelihood(z)` must be one distribution per z (batch
    shape z.shape[:-1]) over one example (event shape x.shape[1:]); x is broadcast over z's sample
    axes before it is scored."""
    dist = likelihood(z) if callable(likelihood) else None
    if not hasattr(dist, "log_prob"):
        got = type(likelihood).__name__ + ("" if dist is None else f" returning {type(dist).__name__}")
        raise ValueError(f"`likelihood` must be a callable z -> p(x|z) returning a distribution; got {got}.")
    batch, event = tuple(z.shape[:-1]), tuple(x.shape[1:])
    if tuple(dist.batch_shape) != batch or tuple(dist.event_shape) != event:
        raise ValueError(f"`likelihood` must return p(x|z) of batch shape {batch} (z's leading axes: one "
                         f"distribution per draw) and event shape {event} (one example of `x` of shape "
                         f"{tuple(x.shape)}); got batch shape {tuple(dist.batch_shape)} and event shape "
                         f"{tuple(dist.event_shape)}.")
    return dist.log_prob(jnp.broadcast_to(x, batch + event))


def elbo(key, x, posterior, likelihood, prior, *, num_samples: int = 1, kl: str = "analytic") -> dict:
    """The ELBO and its terms per example, in nats, from `num_samples` draws of z ~ q(z|x).

    Args:
      key: PRNG key for the posterior samples (reparameterized).
      x: a batch of data (B, ...), B >= 1, as the likelihood takes it.
      posterior: q(z|x), batch shape (B,), event shape (d,).
      likelihood: `z -> p(x|z)`, a callable returning a distribution whose
        batch shape is z's leading axes (z has shape (S, B, d)) and whose
        event shape is one example's, x.shape[1:].
      prior: p(z), event shape (d,) and batch shape () (one p(z) for every
        example) or (B,) (one per example); a distribution or a callable
        returning one.
      num_samples: S.
      kl: "analytic" uses KL(q || p) in closed form when distrax has one for
        the pair (diagonal Gaussians), and the Monte Carlo estimate
        log q(z|x) - log p(z) at the same draws otherwise; "monte_carlo"
        always uses the estimate.

    Returns {"elbo", "reconstruction", "kl"}, each of shape (B,):
    reconstruction = E_q log p(x|z), elbo = reconstruction - kl.
    """
    x = v.check_batch(v.as_array(x, "x"))
    check_posterior(posterior, x.shape[0])
    num_samples = v.check_positive_int(num_samples, "num_samples")
    if kl not in ("analytic", "monte_carlo"):
        raise ValueError(f"`kl` must be 'analytic' or 'monte_carlo'; got {kl!r}.")
    prior = check_prior(prior, posterior)
    z, log_q = posterior.sample_and_log_prob(seed=key, sample_shape=(num_samples,))
    reconstruction = _log_likelihood(likelihood, z, x).mean(0)
    closed = analytic_kl(posterior, prior) if kl == "analytic" else None
    kl_value = (log_q - prior.log_prob(z)).mean(0) if closed is None else closed
    return {"elbo": reconstruction - kl_value, "reconstruction": reconstruction, "kl": kl_value}


def iwae_bound(key, x, posterior, likelihood, prior, num_samples: int, *, chunk_size: int | None = None):
    """The k-sample importance-weighted bound (Burda et al. 2016) per example, in nats.

        log (1/k) sum_s p(x | z_s) p(z_s) / q(z_s | x),   z_s ~ q(z|x),

    which is >= the ELBO in expectation and non-decreasing in k. Arguments as `elbo`;
    draws go `chunk_size` at a time (k = 5000 fits with a chunk of a few
    hundred). Returns shape (B,).
    """
    x = v.check_batch(v.as_array(x, "x"))
    check_posterior(posterior, x.shape[0])
    prior = check_prior(prior, posterior)
    v.check_positive_int(num_samples, "num_samples")

    def log_weight(k):
        z, log_q = posterior.sample_and_log_prob(seed=k)
        log_lik = _log_likelihood(likelihood, z, x)
        return log_lik + prior.log_prob(z) - log_q

    return importance_weighted_bound(key, log_weight, num_samples, chunk_size=chunk_size)


def deterministic_flow_elbo(bijector: distrax.Bijector, prior, x) -> dict:
    """The ELBO of a flow read as a VAE with deterministic encoder f and decoder g = f^-1.

    Returns per example {"prior": log p(z) at z = f(x), "log_ratio": log p(x|z)
    - log q(z|x) = log|det df/dx|, "elbo": their sum}, which is the flow's
    log-likelihood exactly. `bijector.forward` is g (noise -> data). The prior's log p(z) must
    have the shape of the log-determinant (one number per example).
    """
    z, log_det = bijector.inverse_and_log_det(x)
    prior_log_prob = as_log_prob(prior, "prior")(z)
    if jnp.shape(prior_log_prob) != jnp.shape(log_det):
        raise ValueError(f"`prior` must give log p(z) of the log-determinant's shape {jnp.shape(log_det)} "
                         f"(one number per example of `x` of shape {jnp.shape(x)}); got shape "
                         f"{jnp.shape(prior_log_prob)}.")
    return {"prior": prior_log_prob, "log_ratio": log_det, "elbo": prior_log_prob + log_det}
