"""Discrete likelihoods: exact sums over all levels, float64 references, gradients, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dgmjax.likelihoods import (
    bernoulli_log_prob,
    categorical_log_prob,
    discretized_logistic_log_prob,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_sample,
    discretized_logistic_rgb_log_prob,
    discretized_logistic_rgb_sample,
    integer_logistic_log_prob,
    integer_logistic_mixture_log_prob,
    log1mexp,
    rgb_coupled_means,
)


def random_params(key, batch, k, extreme=False):
    k1, k2, k3 = jax.random.split(key, 3)
    if extreme:  # |mean| up to 10, log-scale over [-7, 5], very peaked weights
        lw = 10.0 * jax.random.normal(k1, batch + (k,))
        mu = jax.random.uniform(k2, batch + (k,), minval=-10, maxval=10)
        ls = jax.random.uniform(k3, batch + (k,), minval=-7, maxval=5)
    else:
        lw = jax.random.normal(k1, batch + (k,))
        mu = jax.random.uniform(k2, batch + (k,), minval=-1.2, maxval=1.2)
        ls = jax.random.uniform(k3, batch + (k,), minval=-4, maxval=0)
    return lw, mu, ls


def reference_log_prob(x, lw, mu, ls, num_levels):
    """float64 numpy: CDF differences with explicit tails, no log-space tricks."""
    x, lw, mu, ls = (np.asarray(a, np.float64) for a in (x, lw, mu, ls))
    ls = np.maximum(ls, -7.0)
    w = 1.0 / (num_levels - 1)
    c = (2 * x / (num_levels - 1) - 1)[..., None]
    cdf = lambda t: 1.0 / (1.0 + np.exp(-t))
    upper = np.where(x[..., None] == num_levels - 1, 1.0, cdf((c + w - mu) / np.exp(ls)))
    lower = np.where(x[..., None] == 0, 0.0, cdf((c - w - mu) / np.exp(ls)))
    weights = np.exp(lw - lw.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.log(np.sum(weights * (upper - lower), -1))


@pytest.mark.parametrize("num_levels", [2, 17, 256])
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("extreme", [False, True])
def test_mixture_pmf_sums_to_one(num_levels, k, extreme):
    lw, mu, ls = random_params(jax.random.PRNGKey(num_levels * 31 + k), (40,), k, extreme)
    levels = jnp.arange(num_levels)[:, None]
    log_p = discretized_logistic_mixture_log_prob(levels, lw[None], mu[None], ls[None], num_levels)
    assert np.all(np.isfinite(log_p))
    np.testing.assert_allclose(jnp.exp(log_p).sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_mixture_matches_float64_cdf_differences(num_levels):
    lw, mu, ls = random_params(jax.random.PRNGKey(1), (500,), 5)
    x = jax.random.randint(jax.random.PRNGKey(2), (500,), 0, num_levels)
    x = x.at[:3].set(0).at[3:6].set(num_levels - 1)  # the edge levels are in
    got = discretized_logistic_mixture_log_prob(x, lw, mu, ls, num_levels)
    ref = reference_log_prob(x, lw, mu, ls, num_levels)
    keep = ref > -60  # the float64 reference itself loses bins below ~1e-26 by cancellation
    np.testing.assert_allclose(got[keep], ref[keep], rtol=2e-5, atol=2e-5)


def test_underflowing_bins_stay_finite_and_accurate():
    # A sharp logistic far away: the observed bin's mass is ~1e-300, below float32's range.
    x = jnp.array([0, 100, 255])
    mu, ls = jnp.full((3, 1), 0.9), jnp.full((3, 1), -7.0)
    log_p = discretized_logistic_mixture_log_prob(x, jnp.zeros((3, 1)), mu, ls, 256)
    assert np.all(np.isfinite(log_p)) and float(log_p[0]) < -1000
    # level 0 of a logistic at 0.9 with s = e^-7: log sigma((-1 + w - 0.9)/s) ~ (-1.9 + w)/s
    np.testing.assert_allclose(log_p[0], (-1.9 + 1 / 255) / np.exp(-7.0), rtol=1e-5)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_gradients_finite_everywhere(num_levels):
    lw, mu, ls = random_params(jax.random.PRNGKey(3), (300,), 10, extreme=True)
    ls = ls.at[:20].set(-30.0)  # below the clamp
    x = jax.random.randint(jax.random.PRNGKey(4), (300,), 0, num_levels)
    f = lambda a, b, c: discretized_logistic_mixture_log_prob(x, a, b, c, num_levels).sum()
    grads = jax.grad(f, argnums=(0, 1, 2))(lw, mu, ls)
    for g in grads:
        assert np.all(np.isfinite(g))


def test_single_logistic_is_k1_and_log1mexp():
    _, mu, ls = random_params(jax.random.PRNGKey(5), (50,), 1)
    x = jax.random.randint(jax.random.PRNGKey(6), (50,), 0, 256)
    np.testing.assert_allclose(
        discretized_logistic_log_prob(x, mu[:, 0], ls[:, 0], 256),
        discretized_logistic_mixture_log_prob(x, jnp.zeros((50, 1)), mu, ls, 256), rtol=1e-6)
    d = jnp.array([1e-8, 1e-3, 0.5, 0.7, 5.0, 50.0])
    np.testing.assert_allclose(log1mexp(d), np.log(-np.expm1(-np.asarray(d, np.float64))), rtol=1e-5,
                               atol=1e-12)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_mixture_samples_match_pmf(num_levels):
    lw = jnp.array([0.3, -0.5, 1.0])
    mu = jnp.array([-0.6, 0.1, 0.8])
    ls = jnp.array([-1.5, -2.5, -2.0])
    n = 200_000
    bcast = lambda p: jnp.broadcast_to(p, (n, 3))
    s = discretized_logistic_mixture_sample(jax.random.PRNGKey(7), bcast(lw), bcast(mu), bcast(ls),
                                            num_levels)
    counts = np.bincount(np.asarray(s), minlength=num_levels)
    pmf = np.exp(discretized_logistic_mixture_log_prob(jnp.arange(num_levels)[:, None],
                                                       lw, mu, ls, num_levels)).reshape(-1)
    expected = pmf * n
    keep = expected > 10
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


def test_rgb_coupling_sums_to_one_and_orders_channels():
    L, K = 5, 3
    key = jax.random.split(jax.random.PRNGKey(8), 4)
    lw = jax.random.normal(key[0], (K,))
    mu = jax.random.uniform(key[1], (3, K), minval=-1, maxval=1)
    ls = jax.random.uniform(key[2], (3, K), minval=-2, maxval=0)
    co = jax.random.normal(key[3], (3, K))
    grid = jnp.stack(jnp.meshgrid(*[jnp.arange(L)] * 3, indexing="ij"), -1).reshape(-1, 3)
    log_p = discretized_logistic_rgb_log_prob(grid, lw, mu, ls, co, L)
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)
    # mean of channel c depends only on channels < c
    jac = jax.jacfwd(lambda xf: rgb_coupled_means(mu, co, xf, L))(jnp.array([1.0, 2.0, 3.0]))
    jac = np.asarray(jac)  # (3, K, 3): channel, component, input channel
    for c in range(3):
        assert np.all(jac[c, :, c:] == 0) and (c == 0 or np.any(jac[c, :, :c] != 0))
    # samples follow the coupled pmf
    n = 100_000
    bc = lambda p: jnp.broadcast_to(p, (n,) + p.shape)
    s = np.asarray(discretized_logistic_rgb_sample(jax.random.PRNGKey(9), bc(lw), bc(mu), bc(ls), bc(co), L))
    counts = np.bincount(s[:, 0] * L * L + s[:, 1] * L + s[:, 2], minlength=L**3)
    expected = np.exp(np.asarray(log_p)) * n
    keep = expected > 10
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


def test_integer_logistic_sums_to_one_over_the_integers():
    z = jnp.arange(-400, 401)
    log_p = integer_logistic_log_prob(z, jnp.array(3.3), jnp.array(2.5))
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)
    cdf = lambda t: 1 / (1 + np.exp(-t))
    ref = np.log(cdf((7 + 0.5 - 3.3) / np.exp(2.5)) - cdf((7 - 0.5 - 3.3) / np.exp(2.5)))
    np.testing.assert_allclose(log_p[407], ref, rtol=1e-5)


def test_integer_logistic_mixture_is_finite_with_finite_gradients_for_extreme_parameters():
    """A conditional prior's network can emit any values: log-scales far past float32's range
    of 1/s, means 1e4 levels away, saturated weights. Values and gradients must stay finite."""
    z = jnp.array([-3.0, 0.0, 5.0, 2e4])[:, None]
    means = jnp.array([-3e4, 0.0, 3e4])
    log_scales = jnp.array([-3000.0, 0.5, 1800.0])
    logits = jnp.array([2000.0, 0.0, -2000.0])

    def f(z, logits, means, log_scales):
        return integer_logistic_mixture_log_prob(z, logits, means, log_scales).sum()

    value, grads = jax.value_and_grad(f, argnums=(0, 1, 2, 3))(z, logits, means, log_scales)
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_categorical_and_bernoulli():
    logits = jax.random.normal(jax.random.PRNGKey(10), (6, 4))
    x = jnp.array([0, 1, 2, 3, 1, 0])
    np.testing.assert_allclose(categorical_log_prob(x, logits),
                               jax.nn.log_softmax(logits)[jnp.arange(6), x], rtol=1e-6)
    lg = jnp.array([-100.0, -1.0, 0.0, 3.0, 100.0])
    for xv in (0, 1):
        xb = jnp.full(5, xv)
        lg64 = np.asarray(lg, np.float64)
        ref = -np.logaddexp(0.0, -lg64) if xv else -np.logaddexp(0.0, lg64)  # log sigmoid(+-l)
        np.testing.assert_allclose(bernoulli_log_prob(xb, lg), ref, rtol=1e-5, atol=1e-30)
    assert np.all(np.isfinite(jax.grad(lambda t: bernoulli_log_prob(jnp.ones(5, int), t).sum())(lg)))


@pytest.mark.parametrize("call, match", [
    (lambda: discretized_logistic_mixture_log_prob(jnp.array([256]), jnp.zeros((1, 2)), jnp.zeros((1, 2)),
                                                   jnp.zeros((1, 2)), 256), r"\[0, 256\)"),
    (lambda: discretized_logistic_mixture_log_prob(jnp.array([0.5]), jnp.zeros((1, 2)), jnp.zeros((1, 2)),
                                                   jnp.zeros((1, 2))), "integer dtype"),
    (lambda: discretized_logistic_mixture_log_prob(jnp.array([1]), jnp.zeros((1, 2)), jnp.zeros((1, 3)),
                                                   jnp.zeros((1, 2))), "share one shape"),
    (lambda: discretized_logistic_mixture_log_prob(jnp.array([1]), jnp.zeros((1, 2)), jnp.zeros((1, 2)),
                                                   jnp.zeros((1, 2)), 1), "num_levels"),
    (lambda: discretized_logistic_mixture_log_prob(jnp.zeros((4,), int), jnp.zeros((3, 2)), jnp.zeros((3, 2)),
                                                   jnp.zeros((3, 2))), "broadcast"),
    (lambda: categorical_log_prob(jnp.array([4]), jnp.zeros((1, 4))), r"\[0, 4\)"),
    (lambda: bernoulli_log_prob(jnp.array([2]), jnp.zeros(1)), r"\[0, 2\)"),
    (lambda: discretized_logistic_rgb_log_prob(jnp.zeros((2, 4), int), jnp.zeros((2, 1)),
                                               jnp.zeros((2, 3, 1)), jnp.zeros((2, 3, 1)),
                                               jnp.zeros((2, 3, 1))), "3 channels"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
