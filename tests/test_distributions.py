"""Discrete distributions and likelihood heads: exact sums over all levels, float64 references,
gradients, chi-square tests of the samplers, and the value/batch shape contract."""


from functools import partial

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dgmjax.distributions import (
    MAX_LOG_SCALE,
    MIN_LOG_SCALE,
    BernoulliHead,
    CategoricalHead,
    DiscretizedLogisticMixture,
    DiscretizedRGBLogisticMixture,
    GaussianHead,
    IntegerLogisticMixture,
    LogisticMixtureHead,
    RGBLogisticMixtureHead,
    log1mexp,
)

# Test inputs come from numpy's generator (no jax random stream, and no op-by-op compiles), and
# every computation runs as one jitted program: eagerly, each of log_prob's ops compiles alone.


def rng(seed):
    return np.random.default_rng(seed)


def random_params(seed, batch, k, extreme=False):
    g = rng(seed)
    shape = batch + (k,)
    if extreme:  # |mean| up to 10, log-scale over [-7, 5], very peaked weights
        lw = 10.0 * g.standard_normal(shape)
        mu = g.uniform(-10, 10, shape)
        ls = g.uniform(-7, 5, shape)
    else:
        lw = g.standard_normal(shape)
        mu = g.uniform(-1.2, 1.2, shape)
        ls = g.uniform(-4, 0, shape)
    return tuple(jnp.asarray(a, jnp.float32) for a in (lw, mu, ls))


def random_levels(seed, shape, num_levels):
    return jnp.asarray(rng(seed).integers(0, num_levels, shape), jnp.int32)


@partial(jax.jit, static_argnums=(4, 5))
def mixture_log_prob(x, lw, mu, ls, num_levels, min_log_scale=MIN_LOG_SCALE):
    return DiscretizedLogisticMixture(lw, mu, ls, num_levels, min_log_scale).log_prob(x)


@partial(jax.jit, static_argnums=(5,))
def rgb_log_prob(x, lw, mu, ls, co, num_levels):
    return DiscretizedRGBLogisticMixture(lw, mu, ls, co, num_levels).log_prob(x)


@jax.jit
def integer_log_prob(z, lw, mu, ls):
    return IntegerLogisticMixture(lw, mu, ls).log_prob(z)


@partial(jax.jit, static_argnums=(0, 1, 2))
def sample(cls, num_levels, n, key, *params):
    args = params + ((num_levels,) if num_levels else ())
    return cls(*args).sample(seed=key, sample_shape=(n,))


def _sigmoid64(t):
    return 1.0 / (1.0 + np.exp(-t))


def reference_component_probs(x, mu, ls, num_levels):
    """float64 numpy P_k(x) per component (..., K): CDF differences with explicit tails."""
    x, mu, ls = (np.asarray(a, np.float64) for a in (x, mu, ls))
    ls = np.maximum(ls, MIN_LOG_SCALE)
    w = 1.0 / (num_levels - 1)
    c = (2 * x / (num_levels - 1) - 1)[..., None]
    upper = np.where(x[..., None] == num_levels - 1, 1.0, _sigmoid64((c + w - mu) / np.exp(ls)))
    lower = np.where(x[..., None] == 0, 0.0, _sigmoid64((c - w - mu) / np.exp(ls)))
    return upper - lower


def softmax64(lw):
    lw = np.asarray(lw, np.float64)
    weights = np.exp(lw - lw.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


def reference_log_prob(x, lw, mu, ls, num_levels):
    """float64 numpy log P(x) of the discretized logistic mixture, no log-space tricks."""
    with np.errstate(divide="ignore"):  # a bin below float64's range is -inf here (masked by callers)
        return np.log(np.sum(softmax64(lw) * reference_component_probs(x, mu, ls, num_levels), -1))


def chi2_pvalue(counts, expected, min_expected=10):
    keep = expected > min_expected
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    return stats.chi2.sf(chi2, keep.sum() - 1)


# ----------------------------------------------------------------------------- DiscretizedLogisticMixture
@pytest.mark.parametrize("num_levels", [2, 17, 256])
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("extreme", [False, True])
def test_mixture_pmf_sums_to_one(num_levels, k, extreme):
    lw, mu, ls = random_params(num_levels * 31 + k, (40,), k, extreme)
    dist = DiscretizedLogisticMixture(lw, mu, ls, num_levels)
    assert dist.batch_shape == (40,) and dist.event_shape == () and dist.num_components == k
    levels = jnp.broadcast_to(jnp.arange(num_levels)[:, None], (num_levels, 40))  # a sample axis
    log_p = mixture_log_prob(levels, lw, mu, ls, num_levels)
    chex.assert_shape(log_p, (num_levels, 40))
    chex.assert_tree_all_finite(log_p)
    np.testing.assert_allclose(jnp.exp(log_p).sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_mixture_matches_float64_cdf_differences(num_levels):
    lw, mu, ls = random_params(1, (500,), 5)
    x = random_levels(2, (500,), num_levels)
    x = x.at[:3].set(0).at[3:6].set(num_levels - 1)  # the edge levels are in
    got = mixture_log_prob(x, lw, mu, ls, num_levels)
    ref = reference_log_prob(x, lw, mu, ls, num_levels)
    keep = ref > -60  # the float64 reference itself loses bins below ~1e-26 by cancellation
    np.testing.assert_allclose(got[keep], ref[keep], rtol=2e-5, atol=2e-5)


def test_underflowing_bins_stay_finite_and_accurate():
    # A sharp logistic far away: the observed bin's mass is ~1e-300, below float32's range.
    x = jnp.array([0, 100, 255])
    mu, ls = jnp.full((3, 1), 0.9), jnp.full((3, 1), -7.0)
    log_p = mixture_log_prob(x, jnp.zeros((3, 1)), mu, ls, 256)
    assert np.all(np.isfinite(log_p)) and float(log_p[0]) < -1000
    # level 0 of a logistic at 0.9 with s = e^-7: log sigma((-1 + w - 0.9)/s) ~ (-1.9 + w)/s
    np.testing.assert_allclose(log_p[0], (-1.9 + 1 / 255) / np.exp(-7.0), rtol=1e-5)


def test_min_log_scale_clamps_from_below():
    x = jnp.array([3, 8, 12])
    lw, mu = jnp.zeros((3, 2)), jnp.array([[-0.5, 0.4]] * 3)
    below = mixture_log_prob(x, lw, mu, jnp.full((3, 2), -30.0), 17)
    at = mixture_log_prob(x, lw, mu, jnp.full((3, 2), MIN_LOG_SCALE), 17)
    chex.assert_trees_all_equal(below, at)
    looser = mixture_log_prob(x, lw, mu, jnp.full((3, 2), -30.0), 17, -2.0)
    np.testing.assert_allclose(looser, reference_log_prob(x, lw, mu, jnp.full((3, 2), -2.0), 17),
                               rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_gradients_finite_everywhere(num_levels):
    lw, mu, ls = random_params(3, (300,), 10, extreme=True)
    ls = ls.at[:20].set(-30.0)  # below the clamp
    x = random_levels(4, (300,), num_levels)
    f = lambda a, b, c: mixture_log_prob(x, a, b, c, num_levels).sum()
    grads = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(lw, mu, ls)
    chex.assert_tree_all_finite(grads)


def test_k1_mixture_is_the_single_discretized_logistic_and_log1mexp():
    _, mu, ls = random_params(5, (50,), 1)
    x = random_levels(6, (50,), 256)
    single = mixture_log_prob(x, jnp.zeros((50, 1)), mu, ls, 256)
    # float64: log(sigma((c + w - mu)/s) - sigma((c - w - mu)/s)) with the edges' tails
    ref = reference_log_prob(x, jnp.zeros((50, 1)), mu, ls, 256)
    keep = ref > -60
    assert keep.sum() > 30
    np.testing.assert_allclose(single[keep], ref[keep], rtol=2e-5, atol=2e-5)
    # three identical components with any weights are that same logistic
    lw3 = jnp.asarray(rng(7).standard_normal((50, 3)), jnp.float32)
    tripled = mixture_log_prob(x, lw3, jnp.tile(mu, (1, 3)), jnp.tile(ls, (1, 3)), 256)
    np.testing.assert_allclose(tripled, single, rtol=1e-6, atol=1e-6)
    d = jnp.array([1e-8, 1e-3, 0.5, 0.7, 5.0, 50.0])
    np.testing.assert_allclose(log1mexp(d), np.log(-np.expm1(-np.asarray(d, np.float64))), rtol=1e-5,
                               atol=1e-12)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_mixture_samples_match_pmf(num_levels):
    lw = jnp.array([0.3, -0.5, 1.0])
    mu = jnp.array([-0.6, 0.1, 0.8])
    ls = jnp.array([-1.5, -2.5, -2.0])
    n = 200_000
    s = sample(DiscretizedLogisticMixture, num_levels, n, jax.random.PRNGKey(7), lw, mu, ls)
    assert s.shape == (n,) and jnp.issubdtype(s.dtype, jnp.integer)
    counts = np.bincount(np.asarray(s), minlength=num_levels)
    assert counts.size == num_levels  # no level outside [0, L)
    pmf = np.exp(mixture_log_prob(jnp.arange(num_levels), lw, mu, ls, num_levels))
    np.testing.assert_allclose(pmf.sum(), 1.0, atol=1e-5)
    assert chi2_pvalue(counts, pmf * n) > 1e-4


def test_mixture_samples_have_the_batch_shape_and_follow_each_batch_member():
    """A batch of two mixtures sampled together: each column follows its own pmf."""
    lw = jnp.array([[0.0, 0.0], [2.0, -1.0]])
    mu = jnp.array([[-0.8, 0.5], [0.2, -0.4]])
    ls = jnp.array([[-2.0, -1.5], [-2.5, -1.0]])
    n = 50_000
    s = np.asarray(sample(DiscretizedLogisticMixture, 9, n, jax.random.PRNGKey(8), lw, mu, ls))
    assert s.shape == (n, 2)
    levels = jnp.broadcast_to(jnp.arange(9)[:, None], (9, 2))
    pmf = np.exp(np.asarray(mixture_log_prob(levels, lw, mu, ls, 9)))
    for b in range(2):
        assert chi2_pvalue(np.bincount(s[:, b], minlength=9), pmf[:, b] * n) > 1e-4


def test_mean_is_in_level_units():
    dist = DiscretizedLogisticMixture(jnp.log(jnp.array([0.25, 0.75])), jnp.array([-1.0, 1.0]),
                                      jnp.zeros(2), 17)
    np.testing.assert_allclose(jax.jit(dist.mean)(), (0.25 * -1.0 + 0.75 * 1.0 + 1.0) * 16 / 2, rtol=1e-6)


# ----------------------------------------------------------------------------- RGB
def reference_rgb_log_prob(x, lw, mu, ls, co, num_levels):
    """float64: log sum_k pi_k prod_c P(x_c | mu_ck(x_<c), s_ck), the coupled means built here."""
    x = np.asarray(x, np.int64)
    mu, co = np.asarray(mu, np.float64), np.tanh(np.asarray(co, np.float64))
    xs = (2.0 * x / (num_levels - 1) - 1.0)[..., None]  # (..., 3, 1)
    r, g = xs[..., 0, :], xs[..., 1, :]
    means = np.stack(np.broadcast_arrays(mu[..., 0, :], mu[..., 1, :] + co[..., 0, :] * r,
                                         mu[..., 2, :] + co[..., 1, :] * r + co[..., 2, :] * g), axis=-2)
    per_channel = reference_component_probs(x, means, ls, num_levels)  # (..., 3, K)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(softmax64(lw) * np.prod(per_channel, axis=-2), -1))


def _rgb_params(seed, batch, k):
    g = rng(seed)
    lw = g.standard_normal(batch + (k,))
    mu = g.uniform(-1, 1, batch + (3, k))
    ls = g.uniform(-2, 0, batch + (3, k))
    co = g.standard_normal(batch + (3, k))
    return tuple(jnp.asarray(a, jnp.float32) for a in (lw, mu, ls, co))


def test_rgb_coupling_sums_to_one_orders_channels_and_samples_follow_the_pmf():
    L, K = 5, 3
    lw, mu, ls, co = _rgb_params(8, (), K)
    dist = DiscretizedRGBLogisticMixture(lw, mu, ls, co, L)
    assert dist.batch_shape == () and dist.event_shape == (3,)
    grid = jnp.stack(jnp.meshgrid(*[jnp.arange(L)] * 3, indexing="ij"), -1).reshape(-1, 3)
    log_p = rgb_log_prob(grid, lw, mu, ls, co, L)
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)
    # the coupled means of channel c are built from channels < c only (float64 reference)
    ref = reference_rgb_log_prob(grid, lw, mu, ls, co, L)
    np.testing.assert_allclose(log_p, ref, rtol=2e-5, atol=2e-5)
    # ... so the marginal of (r, g) does not depend on blue's parameters, nor that of r on green's
    pmf_of = lambda *params: np.exp(np.asarray(rgb_log_prob(grid, *params, L), np.float64)).reshape(L, L, L)
    p = np.exp(np.asarray(log_p, np.float64)).reshape(L, L, L)
    q = pmf_of(lw, mu.at[2].add(0.7), ls.at[2].add(0.5), co.at[1:].add(-1.3))
    assert np.abs(p - q).max() > 1e-2  # blue's parameters do matter for blue
    np.testing.assert_allclose(p.sum(2), q.sum(2), atol=1e-6)
    q_g = pmf_of(lw, mu.at[1].add(0.7), ls.at[1].add(0.5), co.at[0].add(-1.3))
    assert np.abs(p.sum(2) - q_g.sum(2)).max() > 1e-2  # green's parameters do matter for green
    np.testing.assert_allclose(p.sum((1, 2)), q_g.sum((1, 2)), atol=1e-6)
    # the marginal of r is the plain mixture of red's logistics
    red = mixture_log_prob(jnp.arange(L), lw, mu[0], ls[0], L)
    np.testing.assert_allclose(p.sum((1, 2)), np.exp(red), atol=1e-6)
    # and the coupling is real: tanh(coeffs) = 0 is a different distribution
    uncoupled = rgb_log_prob(grid, lw, mu, ls, jnp.zeros_like(co), L)
    assert np.abs(np.exp(uncoupled) - np.exp(log_p)).max() > 1e-2
    # samples follow the coupled pmf
    n = 100_000
    s = np.asarray(sample(DiscretizedRGBLogisticMixture, L, n, jax.random.PRNGKey(9), lw, mu, ls, co))
    assert s.shape == (n, 3) and s.min() >= 0 and s.max() < L
    counts = np.bincount(s[:, 0] * L * L + s[:, 1] * L + s[:, 2], minlength=L**3)
    assert chi2_pvalue(counts, np.exp(np.asarray(log_p)) * n) > 1e-4


def test_rgb_batched_matches_reference_at_the_edges():
    lw, mu, ls, co = _rgb_params(10, (4, 6), 2)
    x = random_levels(11, (4, 6, 3), 256)
    x = x.at[0, 0].set(0).at[0, 1].set(255)
    assert DiscretizedRGBLogisticMixture(lw, mu, ls, co, 256).batch_shape == (4, 6)
    got = rgb_log_prob(x, lw, mu, ls, co, 256)
    ref = reference_rgb_log_prob(x, lw, mu, ls, co, 256)
    keep = ref > -60
    assert keep.sum() > 20
    np.testing.assert_allclose(got[keep], ref[keep], rtol=2e-5, atol=2e-5)
    grads = jax.jit(jax.grad(lambda *a: rgb_log_prob(x, *a, 256).sum(), argnums=(0, 1, 2, 3)))(lw, mu, ls, co)
    chex.assert_tree_all_finite(grads)


# ----------------------------------------------------------------------------- integer logistics
def test_integer_logistic_sums_to_one_over_the_integers():
    z = jnp.arange(-400, 401)
    log_p = integer_log_prob(z, jnp.zeros(1), jnp.array([3.3]), jnp.array([2.5]))
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)
    ref = np.log(_sigmoid64((7 + 0.5 - 3.3) / np.exp(2.5)) - _sigmoid64((7 - 0.5 - 3.3) / np.exp(2.5)))
    np.testing.assert_allclose(log_p[407], ref, rtol=1e-5)
    # floats holding integers score the same
    np.testing.assert_allclose(integer_log_prob(z.astype(jnp.float32), jnp.zeros(1), jnp.array([3.3]),
                                                jnp.array([2.5])), log_p, rtol=1e-6)


def test_integer_logistic_mixture_matches_float64_and_sums_to_one():
    lw = jnp.array([0.5, -1.0, 0.2])
    mu = jnp.array([-20.3, 0.4, 35.0])
    ls = jnp.array([1.0, -3.0, 2.0])
    z = jnp.arange(-300, 301)
    log_p = integer_log_prob(z, lw, mu, ls)
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)
    z64, mu64 = np.asarray(z, np.float64)[:, None], np.asarray(mu, np.float64)
    s = np.exp(np.asarray(ls, np.float64))
    with np.errstate(over="ignore", divide="ignore"):
        ref = np.log(np.sum(softmax64(lw) * (_sigmoid64((z64 + 0.5 - mu64) / s)
                                             - _sigmoid64((z64 - 0.5 - mu64) / s)), -1))
    keep = ref > -30
    assert keep.sum() > 100
    np.testing.assert_allclose(log_p[keep], ref[keep], rtol=2e-5, atol=2e-5)


def test_integer_logistic_mixture_is_finite_with_finite_gradients_for_extreme_parameters():
    """A conditional prior's network can emit any values: log-scales far past float32's range
    of 1/s, means 1e4 levels away, saturated weights. Values and gradients must stay finite."""
    z = jnp.array([-3.0, 0.0, 5.0, 2e4])[:, None]
    means = jnp.array([-3e4, 0.0, 3e4])
    log_scales = jnp.array([-3000.0, 0.5, 1800.0])
    logits = jnp.array([2000.0, 0.0, -2000.0])

    def f(z, logits, means, log_scales):
        return integer_log_prob(z, logits, means, log_scales).sum()

    value, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3)))(z, logits, means, log_scales)
    assert np.isfinite(value)
    chex.assert_tree_all_finite(grads)
    assert MAX_LOG_SCALE < 1800.0  # the huge log-scale is clamped, not used


def test_integer_logistic_samples_match_pmf():
    lw = jnp.array([0.0, 0.7])
    mu = jnp.array([-4.2, 3.6])
    ls = jnp.array([0.3, 0.0])
    n = 100_000
    s = np.asarray(sample(IntegerLogisticMixture, None, n, jax.random.PRNGKey(12), lw, mu, ls))
    assert s.shape == (n,) and np.issubdtype(s.dtype, np.integer)
    support = np.arange(-60, 61)
    assert s.min() >= support[0] and s.max() <= support[-1]
    pmf = np.exp(np.asarray(integer_log_prob(jnp.asarray(support), lw, mu, ls)))
    np.testing.assert_allclose(pmf.sum(), 1.0, atol=1e-5)
    counts = np.bincount(s - support[0], minlength=support.size)
    assert chi2_pvalue(counts, pmf * n) > 1e-4


# ----------------------------------------------------------------------------- heads
def test_categorical_and_bernoulli_heads():
    logits = jnp.asarray(rng(10).standard_normal((6, 4)), jnp.float32)
    x = jnp.array([0, 1, 2, 3, 1, 0])
    cat = CategoricalHead()(logits, 4)
    assert isinstance(cat, distrax.Categorical) and cat.batch_shape == (6,)
    np.testing.assert_allclose(jax.jit(lambda p, x: CategoricalHead()(p, 4).log_prob(x))(logits, x),
                               jax.nn.log_softmax(logits)[jnp.arange(6), x], rtol=1e-6)
    lg = jnp.array([-100.0, -1.0, 0.0, 3.0, 100.0])
    bern = BernoulliHead()(lg[:, None], 2)
    assert isinstance(bern, distrax.Bernoulli) and bern.batch_shape == (5,)
    bern_log_prob = jax.jit(lambda x, t: BernoulliHead()(t[:, None], 2).log_prob(x))
    for xv in (0, 1):
        xb = jnp.full(5, xv)
        lg64 = np.asarray(lg, np.float64)
        ref = -np.logaddexp(0.0, -lg64) if xv else -np.logaddexp(0.0, lg64)  # log sigmoid(+-l)
        np.testing.assert_allclose(bern_log_prob(xb, lg), ref, rtol=1e-5, atol=1e-30)
    grad = jax.jit(jax.grad(lambda t: bern_log_prob(jnp.ones(5, jnp.int32), t).sum()))(lg)
    chex.assert_tree_all_finite(grad)


def log_softmax64(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@pytest.mark.parametrize("head, num_levels", [(CategoricalHead(), 5), (BernoulliHead(), 2)],
                         ids=["categorical", "bernoulli"])
def test_discrete_heads_score_levels_with_sample_axes_sample_and_index_as_distrax(head, num_levels):
    """The checked distributions of the discrete heads give the float64 log-probabilities of their
    logits at levels with a leading sample axis (eagerly and under jit), sample_and_log_prob's
    log-probabilities are those of its draws, and indexing a member keeps the class and its values."""
    params = jnp.asarray(rng(20).standard_normal((4, head.num_params(num_levels))), jnp.float32)
    logits = np.asarray(params, np.float64)
    table = log_softmax64(logits) if num_levels > 2 else np.stack(
        [-np.logaddexp(0.0, logits[:, 0]), -np.logaddexp(0.0, -logits[:, 0])], -1)  # log sigmoid(-+l)
    x = random_levels(21, (3, 4), num_levels)
    ref = table[np.arange(4), np.asarray(x)]
    dist = head(params, num_levels)
    np.testing.assert_allclose(dist.log_prob(x), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda p, v: head(p, num_levels).log_prob(v))(params, x), ref,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dist.prob(x), np.exp(ref), rtol=1e-5)
    draws, log_p = jax.jit(lambda p: head(p, num_levels).sample_and_log_prob(
        seed=jax.random.PRNGKey(0), sample_shape=(50,)))(params)
    draws = np.asarray(draws)
    assert draws.shape == (50, 4) and draws.min() >= 0 and draws.max() < num_levels
    np.testing.assert_allclose(log_p, table[np.arange(4), draws], rtol=1e-5, atol=1e-6)
    member = dist[2]
    assert type(member) is type(dist) and member.batch_shape == ()
    np.testing.assert_allclose(member.log_prob(x[:, 2]), ref[:, 2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=rf"`value` must hold levels in \[0, {num_levels}\)"):
        member.log_prob(num_levels)


def test_head_levels_traced_under_jit_are_checked_in_checked_mode():
    """Under jit a level cannot be read at trace time: in `checked_mode` the range check becomes a
    checkify check that names `value`; valid levels pass it and score as eagerly."""
    from jax.experimental import checkify  # noqa: PLC0415

    from dgmjax.training import checked_mode  # noqa: PLC0415

    logits = jnp.asarray(rng(22).standard_normal((4, 5)), jnp.float32)
    with checked_mode():
        scored = checkify.checkify(jax.jit(lambda p, v: CategoricalHead()(p, 5).log_prob(v)),
                                   errors=checkify.user_checks)
        err_bad, _ = scored(logits, jnp.array([0, 1, 5, 2]))
        err_good, good = scored(logits, jnp.array([0, 1, 4, 2]))
    assert "`value` must hold levels in [0, 5)" in str(err_bad.get())
    assert err_good.get() is None
    np.testing.assert_allclose(good, log_softmax64(logits)[np.arange(4), [0, 1, 4, 2]], rtol=1e-5, atol=1e-6)


def test_mixture_heads_split_their_params_in_the_documented_layout():
    k, L = 3, 17
    head = LogisticMixtureHead(k)
    assert head.num_params(L) == 3 * k
    params = jnp.asarray(rng(0).standard_normal((2, 5, 3 * k)), jnp.float32)
    dist = head(params, L)
    assert isinstance(dist, DiscretizedLogisticMixture) and dist.batch_shape == (2, 5)
    x = random_levels(1, (2, 5), L)
    ref = reference_log_prob(x, params[..., :k], params[..., k:2 * k], params[..., 2 * k:], L)
    np.testing.assert_allclose(jax.jit(lambda p, x: head(p, L).log_prob(x))(params, x), ref,
                               rtol=2e-5, atol=2e-5)
    # RGB: K logits, then per channel K means, K log-scales, K coefficients
    rgb = RGBLogisticMixtureHead(k)
    assert rgb.num_params(L) == 10 * k and rgb.event_shape == (3,)
    params = jnp.asarray(rng(2).standard_normal((4, 10 * k)), jnp.float32)
    per_channel = params[:, k:].reshape(4, 3, 3 * k)
    x = random_levels(3, (4, 3), L)
    ref = reference_rgb_log_prob(x, params[:, :k], per_channel[..., :k], per_channel[..., k:2 * k],
                                 per_channel[..., 2 * k:], L)
    np.testing.assert_allclose(jax.jit(lambda p, x: rgb(p, L).log_prob(x))(params, x), ref,
                               rtol=2e-5, atol=2e-5)


def test_gaussian_head_clips_the_log_std():
    head = GaussianHead(min_log_std=-3.0, max_log_std=2.0)
    params = jnp.array([[0.5, -10.0], [-1.0, 0.3], [2.0, 10.0]])
    dist = head(params, None)
    assert isinstance(dist, distrax.Normal)
    x = jnp.array([0.4, 0.0, 1.0])
    std = np.exp(np.clip(np.asarray(params[:, 1], np.float64), -3.0, 2.0))
    ref = stats.norm.logpdf(np.asarray(x), np.asarray(params[:, 0]), std)
    np.testing.assert_allclose(jax.jit(lambda p, x: head(p, None).log_prob(x))(params, x), ref, rtol=1e-5)


@pytest.mark.parametrize("head, num_levels", [
    (BernoulliHead(), 2), (CategoricalHead(), 6), (LogisticMixtureHead(4), 6), (RGBLogisticMixtureHead(4), 6),
])
def test_initial_params(head, num_levels):
    """Zeros, except that a mixture's components start at distinct means inside [-1, 1]."""
    init = np.asarray(head.initial_params(num_levels))
    assert init.shape == (head.num_params(num_levels),) and init.dtype == np.float32
    levels = jnp.arange(num_levels)
    values = levels if head.event_shape == () else jnp.stack([levels] * 3, -1)
    chex.assert_tree_all_finite(jax.jit(lambda p, v: head(p, num_levels).log_prob(v))(init, values))
    if isinstance(head, LogisticMixtureHead):
        means = init[4:8]
        assert np.all(np.diff(means) > 0) and means.min() > -1 and means.max() < 1
    elif isinstance(head, RGBLogisticMixtureHead):
        for c in range(3):
            means = init[4 + 12 * c: 8 + 12 * c]
            assert np.all(np.diff(means) > 0) and means.min() > -1 and means.max() < 1
    else:
        chex.assert_trees_all_equal(init, np.zeros_like(init))


# ----------------------------------------------------------------------------- bad inputs
def _mixture(batch, k=2, num_levels=256):
    z = jnp.zeros(batch + (k,))
    return DiscretizedLogisticMixture(z, z, z, num_levels)


def _rgb(batch, k=1, channels=3, num_levels=256, weights=None):
    z = jnp.zeros(batch + (channels, k))
    return DiscretizedRGBLogisticMixture(jnp.zeros(batch + (k,)) if weights is None else weights, z, z, z,
                                         num_levels)


@pytest.mark.parametrize("call, match", [
    (lambda: _mixture((1,)).log_prob(jnp.array([256])), r"\[0, 256\)"),
    (lambda: _mixture((1,)).log_prob(jnp.array([0.5])), "integer dtype"),
    (lambda: DiscretizedLogisticMixture(jnp.zeros((1, 2)), jnp.zeros((1, 3)), jnp.zeros((1, 2)), 256),
     "share one shape"),
    (lambda: _mixture((1,), num_levels=1), "num_levels"),
    (lambda: _mixture((3,)).log_prob(jnp.zeros((4,), int)), "`value`.*line up"),
    (lambda: _rgb((2,)).log_prob(jnp.zeros((2, 4), int)), r"event shape \(3,\)"),
    (lambda: _rgb((2,)).log_prob(jnp.full((2, 3), 256)), r"\[0, 256\)"),
    (lambda: _rgb((2,), channels=4), r"\(\.\.\., 3, K\)"),
    (lambda: _rgb((2,), weights=jnp.zeros((2, 2))), "logit_weights"),
    (lambda: BernoulliHead().num_params(4), "num_levels"),
    (lambda: GaussianHead().num_params(256), "num_levels"),
    (lambda: LogisticMixtureHead(0), "num_mixtures"),
    (lambda: LogisticMixtureHead(3)(jnp.zeros((2, 8)), 17), r"\(\.\.\., 9\)"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("make, event", [
    (lambda b: _mixture((b,), num_levels=17), ()),
    (lambda b: IntegerLogisticMixture(jnp.zeros((b, 2)), jnp.zeros((b, 2)), jnp.zeros((b, 2))), ()),
    (lambda b: _rgb((b,), k=2, num_levels=17), (3,)),
], ids=["mixture", "integer", "rgb"])
def test_value_must_line_up_with_the_batch_shape(make, event):
    """A (B, 1) value against a batch of B would broadcast to B x B terms: it must raise, naming `value`."""
    b = 5
    dist = make(b)
    with pytest.raises(ValueError, match="`value`"):
        dist.log_prob(jnp.zeros((b, 1) + event, jnp.int32))
    with pytest.raises(ValueError, match="`value`"):
        dist.log_prob(jnp.zeros((1,) + event, jnp.int32))
    # what does line up: the batch itself, and leading sample axes
    chex.assert_shape(jax.eval_shape(lambda v: make(b).log_prob(v), jnp.zeros((b,) + event, jnp.int32)), (b,))
    chex.assert_shape(jax.eval_shape(lambda v: make(b).log_prob(v), jnp.zeros((7, b) + event, jnp.int32)),
                      (7, b))
    # a parameter axis of size 1 broadcasts against the value's
    chex.assert_shape(jax.eval_shape(lambda v: make(1).log_prob(v), jnp.zeros((b,) + event, jnp.int32)), (b,))


@pytest.mark.parametrize("make, event", [
    (lambda batch: _mixture(batch, num_levels=17), ()),
    (lambda batch: IntegerLogisticMixture(*(jnp.zeros(batch + (2,)),) * 3), ()),
    (lambda batch: _rgb(batch, k=2, num_levels=17), (3,)),
    (lambda batch: CategoricalHead()(jnp.zeros(batch + (17,)), 17), ()),
], ids=["mixture", "integer", "rgb", "categorical-head"])
def test_value_with_fewer_axes_than_the_batch_shape_is_rejected(make, event):
    """Levels of one row (b,) against a batch (2, b) would broadcast into both rows silently: the value
    must carry every batch axis (leading sample axes may be added, none of the batch's dropped)."""
    b = 5
    with pytest.raises(ValueError, match="`value`.*line up"):
        make((2, b)).log_prob(jnp.zeros((b,) + event, jnp.int32))
    with pytest.raises(ValueError, match="`value`.*line up"):
        make((b,)).log_prob(jnp.zeros(event, jnp.int32))
    with_sample_axis = jnp.zeros((3, 2, b) + event, jnp.int32)
    chex.assert_shape(jax.eval_shape(lambda v: make((2, b)).log_prob(v), with_sample_axis), (3, 2, b))


def test_a_parameter_axis_of_size_1_scores_like_the_parameters_broadcast():
    """The one broadcast the value check allows, a parameter axis of size 1 against the value's, gives
    the log-probabilities of the parameters broadcast to the value's batch by hand."""
    lw, mu, ls = random_params(30, (1,), 3)
    x = random_levels(31, (6,), 17)
    wide = tuple(jnp.broadcast_to(a, (6, 3)) for a in (lw, mu, ls))
    np.testing.assert_allclose(mixture_log_prob(x, lw, mu, ls, 17), mixture_log_prob(x, *wide, 17), rtol=1e-6)
    np.testing.assert_allclose(mixture_log_prob(x, lw, mu, ls, 17), reference_log_prob(x, *wide, 17),
                               rtol=2e-5, atol=2e-5)
