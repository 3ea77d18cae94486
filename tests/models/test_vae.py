"""The VAE and its parts: the ELBO's terms, IWAE ordering, priors and flow posteriors against
brute force, user-written Flax encoders and decoders in the objectives, bad input.

The objectives alone (KL, surgery, flows as VAEs) are checked in tests/test_objectives.py.
"""

import math

import chex
import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import jac_logdet
from scipy.special import logsumexp

from dgmjax.bijectors import Planar
from dgmjax.distributions import BernoulliHead, GaussianHead, RGBLogisticMixtureHead
from dgmjax.models import (
    IAF,
    MAF,
    VAE,
    FlowPrior,
    GaussianEncoder,
    GaussianMixturePrior,
    IAFEncoder,
    MLPDecoder,
    PlanarEncoder,
    RealNVP,
    StandardNormalPrior,
    VampPrior,
)
from dgmjax.objectives import aggregated_posterior, elbo, elbo_surgery, iwae_bound


def gaussian_log_prob(z, mean, log_std):
    """log N(z; mean, diag(exp(log_std))^2), summed over the last axis (written out, not distrax)."""
    sq = jnp.square((z - mean) / jnp.exp(log_std))
    return jnp.sum(-0.5 * sq - log_std - 0.5 * math.log(2 * math.pi), -1)


def standard_normal(d):
    return distrax.MultivariateNormalDiag(jnp.zeros(d))


def _numpy_perturb(params, seed, scale):
    """Every leaf plus scale * N(0, 1) / sqrt(its last axis), drawn with numpy: nothing to
    compile (jax's threefry draws compile for seconds per leaf shape on CPU). As `helpers.perturb`."""
    rng = np.random.default_rng(seed)
    noise = lambda shape: scale * rng.standard_normal(shape) / np.sqrt(max(shape[-1:] + (1,)))
    return jax.tree_util.tree_map(lambda leaf: leaf + jnp.asarray(noise(leaf.shape), leaf.dtype), params)


def random_params(model, x, scale=0.5, seed=0):
    """Random parameters for `model.init(key, key, x)`'s tree, every one nonzero: kernels N(0, 1 / fan-in)
    (lecun-normal), then `_numpy_perturb`. Only the shapes come from `init`, by `jax.eval_shape`
    (traced, not compiled: the models' own initializers are exercised by the fixture and bad-input test)."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jax.random.PRNGKey(0), x)
    rng = np.random.default_rng(seed + 1000)

    def leaf(path, s):
        fan_in = s.shape[-2] if "kernel" in jax.tree_util.keystr(path) and len(s.shape) >= 2 else 0
        value = rng.standard_normal(s.shape) / np.sqrt(fan_in) if fan_in else np.zeros(s.shape)
        return jnp.asarray(value, s.dtype)

    return _numpy_perturb(jax.tree_util.tree_map_with_path(leaf, shapes), seed, scale)


def log_weights(module, key, x, num_samples):
    """log p(x|z) + log p(z) - log q(z|x) for `num_samples` draws z ~ q(z|x): (num_samples, B).

    p(x|z) has batch shape (num_samples, B): x is scored with that sample axis in front."""
    z, log_q = module.posterior(x).sample_and_log_prob(seed=key, sample_shape=(num_samples,))
    log_lik = module.likelihood(z).log_prob(jnp.broadcast_to(x, (num_samples,) + x.shape))
    return log_lik + module.prior_distribution().log_prob(z) - log_q


def vae_iwae(module, key, x, num_samples, chunk_size=None):
    return iwae_bound(key, x, module.posterior(x), module.likelihood, module.prior_distribution(),
                      num_samples, chunk_size=chunk_size)


@pytest.fixture(scope="module")
def small_vae():
    model = VAE(data_shape=(4, 4, 1), num_levels=2, encoder=GaussianEncoder(3, (32,)),
                decoder=MLPDecoder((4, 4, 1), BernoulliHead(), 2, (32,)), prior=StandardNormalPrior(3))
    x = (jax.random.uniform(jax.random.PRNGKey(0), (6, 4, 4, 1)) < 0.4).astype(jnp.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(1), jax.random.PRNGKey(2), x)
    return model, _numpy_perturb(params, 3, 0.5), x


# ----------------------------------------------------------------------------- ELBO and IWAE
def test_iwae_is_above_elbo_and_non_decreasing_in_k(small_vae):
    """E[IWAE_k] from one pool of 100k log-weights split into groups of k: IWAE_1 = ELBO <= ... .

    (Draws come from `sample_shape`, not from a vmap over keys: on CPU a vmapped key compiles
    for seconds per program.)
    """
    model, params, x = small_vae

    @jax.jit
    def run(k1, k2, k3, k4):
        pool = model.apply(params, k1, x, 100_000, method=log_weights)
        # the VAE's ELBO (KL in closed form) from 20k draws, and the per-draw spread of its only
        # random term, the reconstruction, from 20k independent draws
        elbo_mean = model.apply(params, k2, x, 20_000)["elbo"]
        z = model.apply(params, x, method=model.posterior).sample(seed=k3, sample_shape=(20_000,))
        x_per_draw = jnp.broadcast_to(x, z.shape[:1] + x.shape)  # p(x|z) has the draws' axis in front
        recon = model.apply(params, z, method=model.likelihood).log_prob(x_per_draw)
        # the chunked estimator with k = 5000
        big = model.apply(params, k4, x, 5000, 500, method=vae_iwae)
        return pool, elbo_mean, recon.std(0) / np.sqrt(20_000), big

    pool, elbo_mean, elbo_se, big = run(*jax.random.split(jax.random.PRNGKey(7), 4))
    chex.assert_shape(pool, (100_000, 6))
    pool = np.asarray(pool, np.float64)
    means, ses = {}, {}
    for k in (1, 10, 100, 1000):
        groups = pool.reshape(-1, k, pool.shape[-1])
        iwae = np.log(np.mean(np.exp(groups - groups.max(1, keepdims=True)), 1)) + groups.max(1)
        means[k], ses[k] = iwae.mean(0), iwae.std(0) / np.sqrt(iwae.shape[0])
    elbo_mean, elbo_se = np.asarray(elbo_mean, np.float64), np.asarray(elbo_se, np.float64)
    assert np.all(np.abs(means[1] - elbo_mean) < 4 * (ses[1] + elbo_se))  # IWAE_1 is the ELBO
    for a, b in ((1, 10), (10, 100), (100, 1000)):
        assert np.all(means[b] > means[a] - 3 * (ses[a] + ses[b])), (a, b)
    assert np.all(means[1000] - elbo_mean > 0.1)  # strictly tighter for this (loose) posterior
    # the chunked estimator with k = 5000 lands at (or above) the k = 1000 level
    chex.assert_shape(big, (6,))
    assert np.all(np.asarray(big) > means[1000] - 4 * ses[1000] - 0.05)


def test_elbo_terms_closed_form_and_monte_carlo_kl_agree(small_vae):
    model, params, x = small_vae

    @jax.jit
    def run(k1, k2):
        terms = model.apply(params, k1, x)
        q = model.apply(params, x, method=model.posterior)
        mean, log_std = q.loc, jnp.log(q.scale_diag)
        z = mean + jnp.exp(log_std) * jax.random.normal(k2, (20_000,) + mean.shape)
        ratio = gaussian_log_prob(z, mean, log_std) - gaussian_log_prob(z, 0.0, 0.0)
        return terms, mean, log_std, ratio

    terms, mean, log_std, ratio = run(jax.random.PRNGKey(5), jax.random.PRNGKey(6))
    chex.assert_shape([terms["elbo"], terms["reconstruction"], terms["kl"]], (6,))
    chex.assert_trees_all_close(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-6)
    # the KL of a diagonal Gaussian against N(0, I), written out
    closed = jnp.sum(0.5 * (jnp.exp(2 * log_std) + mean**2 - 1.0) - log_std, -1)
    chex.assert_trees_all_close(terms["kl"], closed, rtol=1e-5, atol=1e-5)
    mc, se = np.asarray(ratio.mean(0)), np.asarray(ratio.std(0)) / np.sqrt(ratio.shape[0])
    assert np.all(np.abs(np.asarray(terms["kl"]) - mc) < 4 * se + 1e-4)


# ----------------------------------------------------------------------------- user-written modules
class UserEncoder(nn.Module):
    """A plain Flax encoder (no dgmjax): binary images -> diagonal Gaussian q(z|x)."""

    latent_size: int

    @nn.compact
    def __call__(self, x):
        d = self.latent_size
        h = nn.relu(nn.Dense(32, name="hidden")(x.reshape(x.shape[0], -1).astype(jnp.float32)))
        out = nn.Dense(2 * d, name="out")(h)
        return distrax.MultivariateNormalDiag(out[:, :d], jnp.exp(out[:, d:]))


class UserDecoder(nn.Module):
    """A plain Flax decoder (no dgmjax): z -> independent Bernoullis over a 4x4x1 image."""

    @nn.compact
    def __call__(self, z):
        logits = nn.Dense(16, name="out")(nn.relu(nn.Dense(32, name="hidden")(z)))
        return distrax.Independent(distrax.Bernoulli(logits=logits.reshape(z.shape[:-1] + (4, 4, 1))), 3)


def test_user_flax_encoder_and_decoder_plug_into_the_objectives(small_vae):
    """A user's own Flax encoder and decoder, carrying the weights of the dgmjax GaussianEncoder and
    MLPDecoder of `small_vae`, give the dgmjax VAE's numbers in `elbo`, `iwae_bound` and
    `elbo_surgery`; and the objectives behave on them: the closed-form KL is the Monte Carlo KL in
    expectation, and the importance-weighted bound is >= the ELBO and non-decreasing in k."""
    model, params, x = small_vae
    p = params["params"]
    user_enc, user_dec = UserEncoder(3), UserDecoder()
    enc_vars = {"params": {"hidden": p["encoder"]["net"]["Dense_0"], "out": p["encoder"]["net"]["Dense_1"]}}
    dec_vars = {"params": {"hidden": p["decoder"]["net"]["Dense_0"], "out": p["decoder"]["net"]["Dense_1"]}}
    encoder = lambda xx: user_enc.apply(enc_vars, xx)
    likelihood = lambda z: user_dec.apply(dec_vars, z)
    prior = standard_normal(3)
    draws = 4096

    @jax.jit
    def run(key):
        k = jax.random.split(key, 5)
        q = encoder(x)
        user = elbo(k[0], x, q, likelihood, prior)
        dg = model.apply(params, k[0], x)
        user_iw = iwae_bound(k[1], x, q, likelihood, prior, 64, chunk_size=16)
        dg_iw = model.apply(params, k[1], x, 64, 16, method=vae_iwae)
        # the KL in closed form and by Monte Carlo, from the same draws
        analytic = elbo(k[2], x, q, likelihood, prior, num_samples=draws)
        mc = elbo(k[2], x, q, likelihood, prior, num_samples=draws, kl="monte_carlo")
        # per-draw log-weights of independent draws, by hand: their spread, and IWAE_k by definition
        z, log_q = q.sample_and_log_prob(seed=k[3], sample_shape=(draws,))
        log_w = likelihood(z).log_prob(x) + prior.log_prob(z) - log_q
        return dict(user=user, dg=dg, user_iw=user_iw, dg_iw=dg_iw, analytic=analytic, mc=mc,
                    log_w=log_w, log_ratio=log_q - prior.log_prob(z), log_std=jnp.log(q.scale_diag))

    out = run(jax.random.PRNGKey(11))
    # the dgmjax encoder clips its log-std to [-7, 5]; the user's does not: make sure that is moot
    assert float(out["log_std"].min()) > -7.0 and float(out["log_std"].max()) < 5.0
    chex.assert_trees_all_close(out["user"], out["dg"], rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(out["user_iw"], out["dg_iw"], rtol=1e-5, atol=1e-5)

    # the same key draws the same z whichever KL: equal reconstructions; the KLs agree in expectation
    chex.assert_trees_all_close(out["analytic"]["reconstruction"], out["mc"]["reconstruction"], rtol=1e-6)
    chex.assert_trees_all_close(out["analytic"]["kl"], out["user"]["kl"], rtol=1e-6)
    ratio = np.asarray(out["log_ratio"], np.float64)
    se = ratio.std(0) / np.sqrt(draws)
    assert np.all(np.abs(np.asarray(out["mc"]["kl"]) - np.asarray(out["analytic"]["kl"])) < 4 * se + 1e-4)
    assert np.all(np.abs(ratio.mean(0) - np.asarray(out["analytic"]["kl"])) < 4 * se + 1e-4)

    # IWAE_k by definition from the log-weights: k = 1 is the ELBO, then >= and non-decreasing in k;
    # the library's IWAE_64 is one draw of that estimator
    log_w = np.asarray(out["log_w"], np.float64)
    elbo_mean = np.asarray(out["analytic"]["elbo"], np.float64)
    elbo_se = np.sqrt(log_w.var(0) / draws)
    means, sds = {}, {}
    for n in (1, 8, 64):
        groups = log_w.reshape(-1, n, log_w.shape[-1])
        iwae = logsumexp(groups, axis=1) - math.log(n)
        means[n], sds[n] = iwae.mean(0), iwae.std(0)
    ses = {n: sds[n] / np.sqrt(draws // n) for n in means}
    assert np.all(np.abs(means[1] - elbo_mean) < 4 * (ses[1] + elbo_se))
    for a, b in ((1, 8), (8, 64)):
        assert np.all(means[b] > means[a] - 3 * (ses[a] + ses[b])), (a, b)
    assert np.all(means[64] - elbo_mean > 4 * (ses[64] + elbo_se))
    assert np.all(np.abs(np.asarray(out["user_iw"]) - means[64]) < 4 * sds[64])

    # ELBO surgery on the 6 points: the user's encoder and the VAE's posterior give the same terms
    user_surgery = elbo_surgery(jax.random.PRNGKey(12), x, encoder, prior, num_samples=64,
                                reconstruction=out["user"]["reconstruction"])
    dg_encoder = lambda xx: model.apply(params, xx, method=model.posterior)
    dg_surgery = elbo_surgery(jax.random.PRNGKey(12), x, dg_encoder,
                              model.apply(params, method=model.prior_distribution), num_samples=64,
                              reconstruction=out["dg"]["reconstruction"])
    chex.assert_trees_all_close(user_surgery, dg_surgery, rtol=1e-5, atol=1e-5)
    user_terms = jax.tree_util.tree_map(lambda v: float(np.mean(np.asarray(v, np.float64))), out["user"])
    np.testing.assert_allclose(user_surgery["avg_kl"], user_terms["kl"], rtol=1e-5)
    np.testing.assert_allclose(user_surgery["elbo"], user_terms["elbo"], rtol=1e-5)
    assert 0.0 <= user_surgery["mutual_info"] <= math.log(6) + 4 * user_surgery["mutual_info_se"]


# ----------------------------------------------------------------------------- priors / posteriors
def gaussian_vae(latent_size, prior, encoder=None, data_size=5, hidden=(8,)):
    """A VAE on real vectors with a Gaussian decoder and the given prior (and encoder)."""
    encoder = GaussianEncoder(latent_size, hidden) if encoder is None else encoder
    return VAE(data_shape=(data_size,), num_levels=None, encoder=encoder,
               decoder=MLPDecoder((data_size,), GaussianHead(), None, hidden), prior=prior)


@pytest.mark.parametrize("bounded", [False, True])
def test_vamp_prior_equals_its_mixture_definition(bounded):
    model = gaussian_vae(2, VampPrior(num_components=7, input_size=6, bounded=bounded), data_size=6,
                         hidden=(16,))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6))
    params = random_params(model, x, 0.3)
    z = jax.random.normal(jax.random.PRNGKey(4), (10, 2))
    u = params["params"]["prior"]["pseudo_inputs"]
    chex.assert_shape(u, (7, 6))

    @jax.jit
    def run(params):
        got = model.apply(params, method=lambda m: m.prior_distribution().log_prob(z))
        features = jax.nn.sigmoid(u) if bounded else u  # bounded: pseudo-inputs squashed into [0, 1]
        q = model.apply(params, features, method=lambda m, f: m.encoder(f))
        return got, aggregated_posterior(q).log_prob(z), q.loc, jnp.log(q.scale_diag)

    got, mixture, mean, log_std = run(params)
    comps = np.stack([np.asarray(gaussian_log_prob(z, mean[k], log_std[k]), np.float64)
                      for k in range(7)], -1)
    ref = logsumexp(comps, axis=-1) - math.log(7)
    chex.assert_trees_all_close(got, jnp.asarray(ref, jnp.float32), rtol=1e-5)
    chex.assert_trees_all_close(mixture, jnp.asarray(ref, jnp.float32), rtol=1e-5)  # the equal mixture


PRIORS = {
    "realnvp": lambda: FlowPrior(RealNVP(event_size=3, num_layers=2, hidden_sizes=(8,))),
    "maf": lambda: FlowPrior(MAF(event_size=3, num_layers=2, hidden_sizes=(8,))),
    "iaf": lambda: FlowPrior(IAF(event_size=3, num_layers=2, hidden_sizes=(8,))),
    "gmm": lambda: GaussianMixturePrior(latent_size=3, num_components=4),
}


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_prior_log_density_against_brute_force(prior):
    model = gaussian_vae(3, PRIORS[prior]())
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5))
    params = random_params(model, x)
    z = jax.random.normal(jax.random.PRNGKey(4), (4, 3))

    @jax.jit
    def run(params):
        dist = model.apply(params, method=model.prior_distribution)
        got = dist.log_prob(z)
        if prior == "gmm":
            p = params["params"]["prior"]
            w = jax.nn.softmax(p["logits"])
            ref = jnp.log(sum(w[k] * jnp.exp(gaussian_log_prob(z, p["means"][k], p["log_stds"][k]))
                              for k in range(4)))
        else:  # change of variables through the flow's own bijector, Jacobian by autodiff
            bij = dist.bijector
            ref = jnp.stack([gaussian_log_prob(bij.inverse(zi), 0.0, 0.0) + jac_logdet(bij.inverse, zi)
                             for zi in z])
        # samples of the prior have the density the prior reports (flows: the same bijector both ways)
        s, log_s = dist.sample_and_log_prob(seed=jax.random.PRNGKey(5), sample_shape=(3,))
        data = model.apply(params, jax.random.PRNGKey(6), 3, method=model.sample)
        return got, ref, s, log_s, dist.log_prob(s), data

    got, ref, s, log_s, log_s_again, data = run(params)
    chex.assert_trees_all_close(got, ref, atol=2e-4, rtol=1e-5)
    chex.assert_shape(s, (3, 3))
    chex.assert_tree_all_finite(log_s)
    chex.assert_trees_all_close(log_s_again, log_s, atol=1e-4, rtol=1e-5)
    chex.assert_shape(data, (3, 5))
    chex.assert_tree_all_finite(data)


@pytest.mark.parametrize("posterior", ["iaf", "planar"])
def test_flow_posterior_density_against_change_of_variables(posterior):
    encoder = (IAFEncoder(3, (8,), num_layers=2, flow_hidden_sizes=(8,), context_size=4) if posterior == "iaf"
               else PlanarEncoder(3, (8,), num_layers=2))
    model = gaussian_vae(3, StandardNormalPrior(3), encoder)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5))
    params = random_params(model, x)

    @jax.jit
    def run(params):
        q = model.apply(params, x, method=model.posterior)
        z, log_q = q.sample_and_log_prob(seed=jax.random.PRNGKey(4), sample_shape=(3,))  # (3, 2, d)
        base, flow = q.distribution, q.bijector
        z0 = flow.inverse(z[0])
        refs = []
        for b in range(2):  # log N(z0) - log|det dz/dz0|, the Jacobian of example b's map by autodiff
            single = lambda v, b=b: flow.forward(z0.at[b].set(v))[b]
            refs.append(gaussian_log_prob(z0[b], base.loc[b], jnp.log(base.scale_diag[b]))
                        - jac_logdet(single, z0[b]))
        return z, log_q, q.log_prob(z), flow.forward(z0), jnp.stack(refs)

    z, log_q, log_q_again, z_again, ref = run(params)
    chex.assert_shape(z, (3, 2, 3))
    chex.assert_shape(log_q, (3, 2))
    # the density of the samples by inverting the flow equals the density reported while sampling
    chex.assert_trees_all_close(log_q_again, log_q, atol=1e-4)
    chex.assert_trees_all_close(z_again, z[0], atol=1e-5)
    chex.assert_trees_all_close(log_q[0], ref, atol=1e-4)


def test_planar_round_trip_and_log_det():
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    u, w, b = jax.random.normal(k[0], (3,)), jax.random.normal(k[1], (3,)), jax.random.normal(k[2], ())
    u = u - 3.0 * w  # a u with w.u << -1: the constraint must kick in
    assert float(jnp.dot(w, u)) < -1.0
    z = jax.random.normal(k[3], (3,))

    @jax.jit
    def run(u, w, b, z):
        bij = Planar(u, w, b)
        y, ld = bij.forward_and_log_det(z)
        return ld, jac_logdet(bij.forward, z), bij.inverse_and_log_det(y)

    ld, ref, (z_back, ld_back) = run(u, w, b, z)
    chex.assert_trees_all_close(ld, ref, atol=1e-5)
    chex.assert_trees_all_close(z_back, z, atol=1e-5)
    chex.assert_trees_all_close(ld_back, -ld, atol=1e-5)
    with pytest.raises(ValueError, match="Planar needs `u` and `w` of one shape"):
        Planar(jnp.zeros(3), jnp.zeros(2), 0.0)
    with pytest.raises(ValueError, match="`b` of shape"):
        Planar(jnp.zeros((2, 3)), jnp.zeros((2, 3)), 0.0)


# ----------------------------------------------------------------------------- bad input
def _init(model, x):
    return jax.jit(model.init)(jax.random.PRNGKey(0), jax.random.PRNGKey(0), x)


def test_vae_bad_inputs():
    x = jnp.zeros((1, 4), jnp.int32)
    binary = lambda **kw: VAE(**{"data_shape": (4,), "num_levels": 2, "encoder": GaussianEncoder(2, (4,)),
                                 "decoder": MLPDecoder((4,), BernoulliHead(), 2, (4,)),
                                 "prior": StandardNormalPrior(2), **kw})
    with pytest.raises(ValueError, match="BernoulliHead.*`num_levels` must be 2"):
        _init(binary(num_levels=3, decoder=MLPDecoder((4,), BernoulliHead(), 3, (4,))), x)
    with pytest.raises(ValueError, match="GaussianHead.*`num_levels` must be None"):
        _init(binary(decoder=MLPDecoder((4,), GaussianHead(), 2, (4,))), x)
    with pytest.raises(ValueError, match="per-element head"):
        _init(binary(decoder=MLPDecoder((4,), RGBLogisticMixtureHead(2), 2, (4,))), x)
    with pytest.raises(ValueError, match="`latent_size`"):
        _init(binary(encoder=GaussianEncoder(0, (4,))), x)
    with pytest.raises(ValueError, match="`latent_size`"):
        _init(binary(prior=StandardNormalPrior(0)), x)
    with pytest.raises(ValueError, match="`num_components`"):
        _init(binary(prior=GaussianMixturePrior(2, 0)), x)
    with pytest.raises(ValueError, match="`input_size`"):
        _init(binary(prior=VampPrior(3, 0)), x)
    with pytest.raises(ValueError, match="`num_layers`"):
        _init(binary(encoder=PlanarEncoder(2, (4,), num_layers=0)), x)
    with pytest.raises(ValueError, match="`x` must be floating point"):
        _init(gaussian_vae(2, StandardNormalPrior(2), data_size=4), x)
    # the decoder models the VAE's data: levels and shape must agree, named on both sides
    with pytest.raises(ValueError, match=r"`num_levels` = 17 of the VAE and `decoder.num_levels` = 256"):
        binary(num_levels=17, decoder=MLPDecoder((4,), BernoulliHead(), 256, (4,)))
    with pytest.raises(ValueError, match=r"`data_shape` = \(4,\) of the VAE and `decoder.data_shape` = \(5,"):
        binary(decoder=MLPDecoder((5,), BernoulliHead(), 2, (4,)))
    with pytest.raises(ValueError, match=r"`x` got an empty batch \(shape \(0, 4\)\)"):
        _init(binary(), x[:0])

    model = binary()
    params = _init(model, x)
    with pytest.raises(ValueError, match=r"`x` must have shape \(batch,\) \+ \(4,\)"):
        model.apply(params, jax.random.PRNGKey(0), jnp.zeros((1, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"`x` must hold levels in \[0, 2\)"):
        model.apply(params, jax.random.PRNGKey(0), jnp.full((1, 4), 2))
    with pytest.raises(ValueError, match="`x` must hold integer levels"):
        model.apply(params, jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="`num_samples`"):
        model.apply(params, jax.random.PRNGKey(0), 0, method=model.sample)
