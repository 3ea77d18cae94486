"""A normalizing flow is a VAE with a deterministic encoder and decoder (the lecture's theorem).

With q(z|x) = delta(z - f(x)) and p(x|z) = delta(x - g(z)), g = f^-1, the
ratio p(x|z) / q(z|x) of the two deltas is |det df/dx| (Nielsen et al. 2020,
SurVAE flows), so

    ELBO(x) = E_q[log p(x|z) + log p(z) - log q(z|x)] = log p(f(x)) + log|det df/dx| = log p(x):

the ELBO is the flow's exact log-likelihood, and training the flow by maximum
likelihood is maximizing this ELBO. `deterministic_flow_elbo` computes it in
the VAE's terms from a bijector. `linear_gaussian_vae_elbo` shows it as a
limit: a VAE with Gaussian encoder N(f(x), sigma^2 (A^T A)^-1) and decoder
N(A z + b, sigma^2 I) around an affine flow x = A z + b has, in closed form,
ELBO = E_q[log p(z)] - log|det A|, which tends to log p(x) as sigma -> 0.
"""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp


def deterministic_flow_elbo(bijector: distrax.Bijector, prior_log_prob, x):
    """Terms of the ELBO of a flow read as a deterministic VAE, per example.

    Returns {"prior": log p(z) at z = f(x), "log_ratio": log p(x|z) - log q(z|x)
    = log|det df/dx|, "elbo": their sum}; `bijector.forward` is the decoder g
    (noise -> data), its inverse the encoder f.
    """
    z, log_det = bijector.inverse_and_log_det(x)
    prior = prior_log_prob(z)
    return {"prior": prior, "log_ratio": log_det, "elbo": prior + log_det}


def linear_gaussian_vae_elbo(key, x, matrix, bias, sigma: float, num_samples: int = 256):
    """Monte Carlo ELBO of the Gaussian VAE around the affine flow x = A z + b (standard normal prior).

    Encoder q(z|x) = N(A^-1 (x - b), sigma^2 (A^T A)^-1); decoder p(x|z) =
    N(A z + b, sigma^2 I). Both terms are estimated from the same samples, with
    no closed forms used, so this is an independent check of the limit.
    """
    d = x.shape[-1]
    a_inv = jnp.linalg.inv(matrix)
    z_star = (x - bias) @ a_inv.T
    eps = jax.random.normal(key, (num_samples,) + x.shape)
    z = z_star + sigma * eps @ a_inv.T  # covariance sigma^2 A^-1 A^-T = sigma^2 (A^T A)^-1
    recon = jnp.sum(-0.5 * jnp.square((x - z @ matrix.T - bias) / sigma) - math.log(sigma)
                    - 0.5 * math.log(2 * math.pi), -1)
    prior = jnp.sum(-0.5 * z * z - 0.5 * math.log(2 * math.pi), -1)
    cov = sigma**2 * a_inv @ a_inv.T
    log_q = jax.scipy.stats.multivariate_normal.logpdf(z, z_star, cov)
    del d
    return jnp.mean(recon + prior - log_q, 0)
