"""VAEs: KL closed form, IWAE ordering, ELBO surgery identities, priors and posteriors, flow-as-VAE."""

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_bijectors import jac_logdet

from dgmjax.bijectors import Planar
from dgmjax.models import RealNVP
from dgmjax.vae import (
    VAE,
    aggregated_posterior_log_prob,
    deterministic_flow_elbo,
    elbo_surgery,
    gaussian_elbo_surgery,
    gaussian_kl,
    gaussian_log_prob,
    iwae_bound,
    linear_gaussian_vae_elbo,
    mixture_of_gaussians_log_prob,
)


def perturb(params, key, scale=0.3):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) / np.sqrt(max(leaf.shape[-1], 1))
               for leaf, k in zip(leaves, keys, strict=True)])


def test_gaussian_kl_against_monte_carlo():
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    mq, lq = jax.random.normal(k[0], (3, 4)), 0.5 * jax.random.normal(k[1], (3, 4))
    mp, lp = jax.random.normal(k[2], (3, 4)), 0.5 * jax.random.normal(k[3], (3, 4))
    z = mq + jnp.exp(lq) * jax.random.normal(k[4], (200_000, 3, 4))
    mc = jnp.mean(gaussian_log_prob(z, mq, lq) - gaussian_log_prob(z, mp, lp), 0)
    np.testing.assert_allclose(gaussian_kl(mq, lq, mp, lp), mc, atol=0.03)
    np.testing.assert_allclose(gaussian_kl(mq, lq), gaussian_kl(mq, lq, 0.0, 0.0))
    with pytest.raises(ValueError, match="share a shape"):
        gaussian_kl(jnp.zeros(3), jnp.zeros(4))


@pytest.fixture(scope="module")
def small_vae():
    model = VAE(data_shape=(4, 4, 1), num_levels=2, latent_size=3, hidden_sizes=(32,))
    x = (jax.random.uniform(jax.random.PRNGKey(0), (6, 4, 4, 1)) < 0.4).astype(jnp.int32)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2)),
                     jax.random.PRNGKey(3), 0.5)
    return model, params, x


def test_iwae_is_above_elbo_and_non_decreasing_in_k(small_vae):
    """E[IWAE_k] from one pool of 100k log-weights split into groups of k: IWAE_1 = ELBO <= ... ."""
    model, params, x = small_vae
    pool = jax.jit(lambda k: model.apply(params, x, k, 100_000, method=model.log_weights))(
        jax.random.PRNGKey(7))
    pool = np.asarray(pool, np.float64)  # (100000, B)
    means, ses = {}, {}
    for k in (1, 10, 100, 1000):
        groups = pool.reshape(-1, k, pool.shape[-1])
        iwae = np.log(np.mean(np.exp(groups - groups.max(1, keepdims=True)), 1)) + groups.max(1)
        means[k], ses[k] = iwae.mean(0), iwae.std(0) / np.sqrt(iwae.shape[0])
    terms = jax.jit(jax.vmap(lambda k: model.apply(params, x, k)["elbo"]))(
        jax.random.split(jax.random.PRNGKey(8), 20_000))
    elbo, elbo_se = np.asarray(terms).mean(0), np.asarray(terms).std(0) / np.sqrt(20_000)
    assert np.all(np.abs(means[1] - elbo) < 4 * (ses[1] + elbo_se))  # IWAE_1 is the ELBO
    for a, b in ((1, 10), (10, 100), (100, 1000)):
        assert np.all(means[b] > means[a] - 3 * (ses[a] + ses[b])), (a, b)
    assert np.all(means[1000] - elbo > 0.1)  # strictly tighter for this (loose) posterior
    # the chunked estimator with k = 5000 lands at (or above) the k = 1000 level
    big = iwae_bound(jax.random.PRNGKey(9), jax.jit(lambda kk: model.apply(params, x, kk, 500,
                                                                            method=model.log_weights)),
                     5000, chunk_size=500)
    assert np.all(np.asarray(big) > means[1000] - 4 * ses[1000] - 0.05)


def test_iwae_chunking_matches_one_shot():
    log_w = lambda k: jax.random.normal(k, (7, 3)) * 2.0
    keys = [jax.random.fold_in(jax.random.PRNGKey(0), c) for c in range(3)]
    allw = jnp.concatenate([log_w(k) for k in keys])[:20]
    ref = jax.scipy.special.logsumexp(allw, 0) - math.log(20)
    np.testing.assert_allclose(iwae_bound(jax.random.PRNGKey(0), log_w, 20, chunk_size=7), ref, rtol=1e-6)
    with pytest.raises(ValueError, match="num_samples"):
        iwae_bound(jax.random.PRNGKey(0), log_w, 0)


def test_elbo_terms_closed_form_and_monte_carlo_kl_agree(small_vae):
    model, params, x = small_vae
    terms = jax.jit(model.apply)(params, x, jax.random.PRNGKey(5))
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-6)
    mean, log_std, _ = model.apply(params, x, method=model.encode)
    keys = jax.random.split(jax.random.PRNGKey(6), 20000)
    z = jax.vmap(lambda k: mean + jnp.exp(log_std) * jax.random.normal(k, mean.shape))(keys)
    ratio = gaussian_log_prob(z, mean, log_std) - model.apply(params, z, method=model.prior_log_prob)
    mc, se = np.asarray(ratio.mean(0)), np.asarray(ratio.std(0)) / np.sqrt(ratio.shape[0])
    assert np.all(np.abs(np.asarray(terms["kl"]) - mc) < 4 * se + 1e-4)


# ----------------------------------------------------------------------------- surgery
def test_surgery_identity_and_bounds_on_random_posteriors():
    k = jax.random.split(jax.random.PRNGKey(1), 2)
    n, d = 300, 3
    means = 1.5 * jax.random.normal(k[0], (n, d))
    log_stds = -1.0 + 0.3 * jax.random.normal(k[1], (n, d))
    prior = lambda z: jnp.sum(jax.scipy.stats.norm.logpdf(z), -1)
    closed = gaussian_kl(means, log_stds)
    out = gaussian_elbo_surgery(jax.random.PRNGKey(2), means, log_stds, prior, num_samples=16,
                                chunk_size=64, kl_per_point=closed)
    # avg KL = MI + marginal KL within Monte Carlo error
    assert abs(out["identity_gap"]) < 4 * (out["mutual_info_se"] + out["marginal_kl_se"])
    assert 0.0 <= out["mutual_info"] <= math.log(n)
    assert out["marginal_kl"] > 0
    mc = gaussian_elbo_surgery(jax.random.PRNGKey(2), means, log_stds, prior, num_samples=16, chunk_size=64)
    assert abs(mc["identity_gap"]) < 1e-6  # same samples: exactly
    # identical posteriors carry no information; well-separated sharp ones carry ~log n
    same = gaussian_elbo_surgery(jax.random.PRNGKey(3), jnp.zeros((50, 2)), jnp.zeros((50, 2)), prior)
    assert abs(same["mutual_info"]) < 1e-6 and abs(same["marginal_kl"]) < 1e-6
    spread = 100.0 * jnp.arange(50.0)[:, None] * jnp.ones((1, 2))
    far = gaussian_elbo_surgery(jax.random.PRNGKey(4), spread, jnp.full((50, 2), -3.0), prior)
    np.testing.assert_allclose(far["mutual_info"], math.log(50), atol=1e-4)


def test_surgery_in_1d_against_numerical_integration():
    means = jnp.array([[-1.5], [0.2], [0.4], [2.0]])
    log_stds = jnp.log(jnp.array([[0.4], [0.3], [0.6], [0.5]]))
    prior = lambda z: jnp.sum(jax.scipy.stats.norm.logpdf(z), -1)
    out = gaussian_elbo_surgery(jax.random.PRNGKey(0), means, log_stds, prior, num_samples=40000,
                                chunk_size=4)
    grid = np.linspace(-8, 8, 40001)
    dz = grid[1] - grid[0]
    q = np.stack([np.exp(-0.5 * ((grid - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
                  for m, s in zip(np.asarray(means[:, 0]), np.exp(np.asarray(log_stds[:, 0])), strict=True)])
    q_agg = q.mean(0)
    p = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    mi = np.mean([np.sum(qi * np.log(qi / q_agg + 1e-300)) * dz for qi in q])
    marginal = np.sum(q_agg * np.log(q_agg / p + 1e-300)) * dz
    np.testing.assert_allclose(out["mutual_info"], mi, atol=4 * out["mutual_info_se"] + 1e-3)
    np.testing.assert_allclose(out["marginal_kl"], marginal, atol=4 * out["marginal_kl_se"] + 1e-3)
    agg = aggregated_posterior_log_prob(jnp.asarray(grid[::1000, None]), means, log_stds, chunk_size=3)
    np.testing.assert_allclose(np.exp(agg), q_agg[::1000], rtol=1e-4, atol=1e-10)


def test_surgery_bad_inputs():
    prior = lambda z: jnp.zeros(z.shape[:-1])
    with pytest.raises(ValueError, match="at least 2 points"):
        gaussian_elbo_surgery(jax.random.PRNGKey(0), jnp.zeros((1, 2)), jnp.zeros((1, 2)), prior)
    with pytest.raises(ValueError, match="share a shape"):
        gaussian_elbo_surgery(jax.random.PRNGKey(0), jnp.zeros((3, 2)), jnp.zeros((3, 4)), prior)
    with pytest.raises(ValueError, match="num_samples"):
        elbo_surgery(jax.random.PRNGKey(0), 5, None, None, prior, num_samples=0)
    with pytest.raises(ValueError, match="latent size"):
        aggregated_posterior_log_prob(jnp.zeros((4, 3)), jnp.zeros((5, 2)), jnp.zeros((5, 2)))


# ----------------------------------------------------------------------------- priors / posteriors
def test_vamp_prior_equals_its_mixture_definition():
    model = VAE(data_shape=(6,), num_levels=None, latent_size=2, hidden_sizes=(16,), decoder="gaussian",
                prior="vamp", prior_components=7)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6))
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2))
    params = perturb(params, jax.random.PRNGKey(3))
    z = jax.random.normal(jax.random.PRNGKey(4), (10, 2))
    got = model.apply(params, z, method=model.prior_log_prob)
    u = params["params"]["pseudo_inputs"]
    mean, log_std, _ = model.apply(params, u, method=model.encode)  # continuous data: u as is
    comps = np.stack([np.asarray(gaussian_log_prob(z, mean[k], log_std[k])) for k in range(7)], -1)
    ref = np.log(np.mean(np.exp(comps), -1))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    np.testing.assert_allclose(mixture_of_gaussians_log_prob(z, mean, log_std), ref, rtol=1e-5)


@pytest.mark.parametrize("prior", ["realnvp", "maf", "iaf", "gmm"])
def test_prior_log_density_against_brute_force(prior):
    model = VAE(data_shape=(5,), num_levels=None, latent_size=3, hidden_sizes=(8,), decoder="gaussian",
                prior=prior, prior_components=4, prior_flow_layers=2, prior_flow_hidden=(8,))
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5))
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2)),
                     jax.random.PRNGKey(3), 0.5)
    z = jax.random.normal(jax.random.PRNGKey(4), (4, 3))
    got = model.apply(params, z, method=model.prior_log_prob)
    bound = model.bind(params)
    if prior == "gmm":
        p = params["params"]["prior_module"]
        w = jax.nn.softmax(p["logits"])
        ref = jnp.log(sum(w[k] * jnp.exp(gaussian_log_prob(z, p["means"][k], p["log_stds"][k]))
                          for k in range(4)))
    else:
        bij = bound.prior_module.model.bijector()
        ref = jnp.stack([jnp.sum(jax.scipy.stats.norm.logpdf(bij.inverse(zi))) + jac_logdet(bij.inverse, zi)
                         for zi in z])
    np.testing.assert_allclose(got, ref, atol=2e-4, rtol=1e-5)
    # samples of the prior have the density the prior reports (flows: the same bijector both ways)
    s = model.apply(params, jax.random.PRNGKey(5), 3, method=model.prior_sample)
    assert s.shape == (3, 3) and np.all(np.isfinite(model.apply(params, s, method=model.prior_log_prob)))


@pytest.mark.parametrize("posterior", ["iaf", "planar"])
def test_flow_posterior_density_against_change_of_variables(posterior):
    model = VAE(data_shape=(5,), num_levels=None, latent_size=3, hidden_sizes=(8,), decoder="gaussian",
                posterior=posterior, posterior_flow_layers=2, posterior_flow_hidden=(8,), posterior_context=4)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5))
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2)),
                     jax.random.PRNGKey(3), 0.5)
    bound = model.bind(params)
    enc = bound.encode(x)
    z, log_q = bound.posterior_sample(jax.random.PRNGKey(4), enc, 3)  # (3, 2, d)
    # density of the samples by inverting the flow equals the density reported while sampling
    np.testing.assert_allclose(bound.posterior_log_prob(z, enc), log_q, atol=1e-4)
    # and matches log N(z0) - log|det dz/dz0| with the Jacobian by autodiff
    flow = bound._posterior_flow(enc[2])
    mean, log_std = enc[0], enc[1]
    for b in range(2):
        single = lambda z0, b=b: flow.forward(jnp.broadcast_to(z0, (2, 3)))[b]
        z0 = flow.inverse(z[0])[b]
        ref = gaussian_log_prob(z0, mean[b], log_std[b]) - jac_logdet(single, z0)
        np.testing.assert_allclose(log_q[0, b], ref, atol=1e-4)


def test_planar_round_trip_and_log_det():
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    u, w, b = jax.random.normal(k[0], (3,)), jax.random.normal(k[1], (3,)), jax.random.normal(k[2], ())
    u = u - 3.0 * w  # a u with w.u << -1: the constraint must kick in
    bij = Planar(u, w, b)
    z = jax.random.normal(k[3], (3,))
    y, ld = bij.forward_and_log_det(z)
    np.testing.assert_allclose(ld, jac_logdet(bij.forward, z), atol=1e-5)
    np.testing.assert_allclose(bij.inverse(y), z, atol=1e-5)
    with pytest.raises(ValueError, match="Planar"):
        Planar(jnp.zeros(3), jnp.zeros(2), 0.0)


# ----------------------------------------------------------------------------- flow as VAE
def test_flow_as_vae_elbo_equals_its_log_likelihood():
    model = RealNVP(event_size=4, num_layers=3, hidden_sizes=(16,))
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    params = perturb(model.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 0.5)
    bij = model.bind(params).bijector()
    prior = lambda z: jnp.sum(jax.scipy.stats.norm.logpdf(z), -1)
    terms = deterministic_flow_elbo(bij, prior, x)
    np.testing.assert_allclose(terms["elbo"], model.apply(params, x), rtol=1e-5)
    ref_logdet = jnp.stack([jac_logdet(bij.inverse, xi) for xi in x])
    np.testing.assert_allclose(terms["log_ratio"], ref_logdet, atol=1e-4)


def test_gaussian_vae_elbo_tends_to_the_affine_flow_likelihood():
    a = jnp.array([[1.5, 0.3], [-0.4, 0.8]])
    b = jnp.array([0.5, -1.0])
    x = jnp.array([[0.7, 0.1], [2.0, -1.5]])
    flow = distrax.Transformed(distrax.MultivariateNormalDiag(jnp.zeros(2)),
                               distrax.UnconstrainedAffine(a, b))
    exact = flow.log_prob(x)
    gaps = []
    for sigma in (0.3, 0.03, 0.003):
        elbo = linear_gaussian_vae_elbo(jax.random.PRNGKey(1), x, a, b, sigma, num_samples=4000)
        gaps.append(np.abs(np.asarray(elbo - exact)))
        assert np.all(np.asarray(elbo) <= np.asarray(exact) + 1e-3)  # always a bound
    assert np.all(gaps[-1] < 1e-3) and np.all(gaps[0] > gaps[-1])


def test_vae_bad_inputs():
    with pytest.raises(ValueError, match="posterior"):
        VAE(data_shape=(4,), num_levels=None, decoder="gaussian", posterior="nf").init(
            jax.random.PRNGKey(0), jnp.zeros((1, 4)), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="prior"):
        VAE(data_shape=(4,), num_levels=None, decoder="gaussian", prior="flat").init(
            jax.random.PRNGKey(0), jnp.zeros((1, 4)), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="bernoulli decoder needs num_levels = 2"):
        VAE(data_shape=(4,), num_levels=3).init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32),
                                                jax.random.PRNGKey(0))
    model = VAE(data_shape=(4,), num_levels=2, latent_size=2, hidden_sizes=(4,))
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="shape"):
        model.apply(params, jnp.zeros((1, 5), jnp.int32), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model.apply(params, jnp.full((1, 4), 2), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="latent_size"):
        model.apply(params, jnp.zeros((3, 5)), method=model.prior_log_prob)
