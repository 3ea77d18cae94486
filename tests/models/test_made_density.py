"""MADEDensity: exact sums over all vectors, samples against the pmf, mixture components apart
at init (and why), bad inputs, and the fit of a 2-D image density."""

import dataclasses
import itertools
import math
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from made_pmf_fit import NUM_MIXTURES, entropy, fit, image_pmf, independent_cross_entropy
from scipy import stats

from dgmjax.distributions import (
    BernoulliHead,
    CategoricalHead,
    DiscretizedLogisticMixture,
    LogisticMixtureHead,
    RGBLogisticMixtureHead,
)
from dgmjax.models import MADEDensity


def perturb(params, seed, scale=0.5):
    """Every leaf moved by normal noise of std scale / sqrt(last axis), drawn by numpy (no compile,
    no dependence on jax's random stream); the zero-initialized output kernel included."""
    g = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda a: np.asarray(a) + (scale * g.standard_normal(a.shape) / np.sqrt(max(a.shape[-1], 1))
                                   ).astype(a.dtype), params)


def all_vectors(event_size, num_levels):
    return jnp.asarray(list(itertools.product(range(num_levels), repeat=event_size)), jnp.int32)


@pytest.mark.parametrize("head, event_size, num_levels, encoding, order", [
    (LogisticMixtureHead(3), 2, 12, "one_hot", "natural"),
    (CategoricalHead(), 2, 12, "one_hot", "reversed"),
    (BernoulliHead(), 6, 2, "one_hot", "random"),
    (LogisticMixtureHead(3), 3, 5, "embedding", "random"),
], ids=["mixture", "categorical", "bernoulli", "mixture-embedding"])
def test_made_density_pmf_sums_to_one_over_all_vectors(head, event_size, num_levels, encoding, order):
    """All 144 (64, 125) vectors of the grid: exp(log P) sums to one, at init and perturbed."""
    model = MADEDensity(event_size=event_size, num_levels=num_levels, head=head, hidden_sizes=(32, 32),
                        order=order, order_seed=1, input_encoding=encoding, embedding_size=4)
    grid = all_vectors(event_size, num_levels)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), grid[:1])
    log_prob = jax.jit(model.apply)
    for p in (params, perturb(params, 1, 1.0)):
        log_p = log_prob(p, grid)
        chex.assert_shape(log_p, (num_levels**event_size,))
        chex.assert_tree_all_finite(log_p)
        np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)
    assert np.abs(np.asarray(log_p) - np.asarray(log_prob(params, grid))).max() > 0.1  # it moved


@pytest.mark.parametrize("head, event_size, num_levels, encoding, order", [
    (LogisticMixtureHead(3), 2, 6, "one_hot", "reversed"),
    (CategoricalHead(), 3, 3, "embedding", [2, 0, 1]),
], ids=["mixture", "categorical-embedding"])
def test_made_density_samples_follow_its_pmf(head, event_size, num_levels, encoding, order):
    """Chi-square of samples (one variable at a time, in the MADE's order) against exp(log P)
    over every vector of the grid."""
    model = MADEDensity(event_size=event_size, num_levels=num_levels, head=head, hidden_sizes=(32, 32),
                        order=order, input_encoding=encoding, embedding_size=4)
    grid = all_vectors(event_size, num_levels)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), grid[:1]), 2, 1.0)
    pmf = np.exp(np.asarray(jax.jit(model.apply)(params, grid), np.float64))
    np.testing.assert_allclose(pmf.sum(), 1.0, atol=1e-5)
    n = 20_000
    sample = jax.jit(lambda p, k: model.apply(p, k, n, method=model.sample))
    s = np.asarray(sample(params, jax.random.PRNGKey(3)))
    assert s.shape == (n, event_size) and s.dtype == np.int32 and s.min() >= 0 and s.max() < num_levels
    counts = np.bincount(s @ (num_levels ** np.arange(event_size)[::-1]), minlength=pmf.size)
    expected = pmf * n
    keep = expected > 10
    assert keep.sum() >= 15  # a test with some power
    observed = np.append(counts[keep], n - counts[keep].sum())
    expect = np.append(expected[keep], n - expected[keep].sum())
    chi2 = np.sum((observed - expect) ** 2 / expect)
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-4


@dataclasses.dataclass(frozen=True)
class TiedMixtureHead(LogisticMixtureHead):
    """A mutant: the mixture head with an all-zero initial output bias (every component alike)."""

    def initial_params(self, num_levels):
        return np.zeros(self.num_params(num_levels), np.float32)


def test_made_density_starts_its_mixture_components_apart():
    """At init the K components of every dimension's mixture are distinct, the first dimension
    (whose parameters are MADE's output bias alone) included. With an all-zero output bias they
    would be tied, and the tie is real: every component gets the same gradient, so gradient
    descent never separates them."""
    k, levels, d = 4, 12, 2
    x = jnp.asarray(np.random.default_rng(0).integers(0, levels, (64, d)), jnp.int32)

    def setup(head):
        model = MADEDensity(event_size=d, num_levels=levels, head=head, hidden_sizes=(32, 32))
        params = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])

        def mixture(p):
            dist = model.apply(p, x, method=model.distribution).distribution
            assert isinstance(dist, DiscretizedLogisticMixture) and dist.batch_shape == (64, d)
            return dist.logit_weights, dist.means, dist.log_scales

        def loss(p):
            return -model.apply(p, x).mean()

        opt = optax.adam(1e-2)

        def train(p):  # 30 steps of Adam on the batch
            def step(carry, _):
                p, state = carry
                updates, state = opt.update(jax.grad(loss)(p), state)
                return (optax.apply_updates(p, updates), state), None

            return jax.lax.scan(step, (p, opt.init(p)), None, 30)[0][0]

        @jax.jit
        def run(p):
            trained = train(p)
            return mixture(p), jax.grad(loss)(p)["params"]["made"]["output"], mixture(trained)

        return params, run(params)

    params, (init, grads, trained) = setup(LogisticMixtureHead(k))
    out = params["params"]["made"]["output"]
    np.testing.assert_array_equal(out["kernel"], 0.0)  # every input: the outputs are the bias
    # the means of the K components differ, for every x and every dimension (the first included)
    means = np.asarray(init[1])  # (64, d, K)
    gaps = np.abs(means[..., :, None] - means[..., None, :]) + np.eye(k) * 10
    assert gaps.min() > 0.2
    # ... and they stay apart in training
    trained_means = np.asarray(trained[1])
    assert (np.abs(trained_means[..., :, None] - trained_means[..., None, :]) + np.eye(k) * 10).min() > 1e-2

    tied_params, (tied_init, tied_grads, tied_trained) = setup(TiedMixtureHead(k))
    for a in tied_init:  # tied: every component the same, in every dimension
        np.testing.assert_array_equal(np.asarray(a), np.broadcast_to(np.asarray(a)[..., :1], a.shape))
    # the tie is real: the gradient of the log-likelihood is the same for every component, in the
    # output bias (dimension 0 sees no input: the bias is all it has) and the output kernel
    # (dimension 1: the columns of MADE's hidden units), for each of logits, means and log-scales
    for name in ("bias", "kernel"):
        g = np.asarray(tied_grads[name]).reshape(-1, d, 3, k)  # columns: (dimension, parameter, component)
        assert np.abs(g).max() > 1e-3  # nonzero gradients ...
        # ... all alike
        np.testing.assert_allclose(g, np.broadcast_to(g[..., :1], g.shape), rtol=1e-5, atol=1e-7)
        g_apart = np.asarray(grads[name]).reshape(-1, d, 3, k)  # the real init: distinct gradients
        assert np.abs(g_apart[..., 1, :] - g_apart[..., 1, :1]).max() > 1e-3
    # so training keeps them tied (a fixed point of gradient descent), dimension 0 included
    for a in tied_trained:
        np.testing.assert_allclose(np.asarray(a), np.broadcast_to(np.asarray(a)[..., :1], a.shape),
                                   rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(tied_trained[1]) - np.asarray(tied_init[1])).max() > 1e-2  # though they moved


def test_made_density_bad_inputs():
    model = MADEDensity(event_size=3, num_levels=2, head=BernoulliHead(), hidden_sizes=(8,))
    x = jnp.zeros((2, 3), jnp.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model.apply(params, x + 2)
    with pytest.raises(ValueError, match="integer dtype"):
        model.apply(params, x.astype(jnp.float32))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        jax.eval_shape(model.apply, params, jnp.zeros((2, 4), jnp.int32))
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="input_encoding"):
        jax.eval_shape(MADEDensity(3, 4, input_encoding="real", hidden_sizes=(8,)).init, key, x)
    with pytest.raises(ValueError, match="per-element head"):
        jax.eval_shape(MADEDensity(3, 4, head=RGBLogisticMixtureHead(2), hidden_sizes=(8,)).init, key, x)
    with pytest.raises(ValueError, match="num_levels"):
        jax.eval_shape(MADEDensity(3, 4, head=BernoulliHead(), hidden_sizes=(8,)).init, key, x)
    with pytest.raises(ValueError, match="num_samples"):
        model.apply(params, key, 0, method=model.sample)


def test_made_density_fits_a_2d_image_density():
    """THE FIT: MADEDensity(event_size=2, num_levels=32, head=LogisticMixtureHead(20)), its other
    defaults ((512, 512) ReLU, one-hot inputs), fitted by Adam to the exact cross-entropy of a
    2-D pmf (scikit-learn's china.jpg in gray, block-averaged to 32 x 32) over all 1024 cells,
    reaches within 0.15 nats per point of the pmf's entropy. That pmf is close to uniform
    (log 1024 - H = 0.152 nats), so the fit must also beat the uniform by far (within a tenth of
    its gap), beat the product of the pmf's marginals (0.049 nats: the conditioning must be
    used), and put q close to the pmf in total variation. The full 128 x 128 fit:
    experiments/made_pmf_fit.py."""
    levels = 32
    pmf = image_pmf(levels)
    chex.assert_shape(pmf, (levels, levels))
    np.testing.assert_allclose(pmf.sum(), 1.0, rtol=1e-12)
    h = entropy(pmf)
    uniform_gap = math.log(levels * levels) - h
    start = time.perf_counter()
    cross_entropy, history, params = fit(pmf, steps=100, learning_rate=3e-3, chunk=50)
    elapsed = time.perf_counter() - start
    gap = cross_entropy - h
    print(f"MADE fit {levels}x{levels}, K={NUM_MIXTURES}: H {h:.4f}, CE {cross_entropy:.4f}, gap {gap:.4f} "
          f"nats (uniform's gap {uniform_gap:.4f}), 100 steps, {elapsed:.1f} s")
    assert gap >= -1e-4  # a cross-entropy is never below the entropy (up to float32 rounding)
    assert gap < 0.15
    assert gap < 0.1 * uniform_gap
    assert gap < 0.25 * (independent_cross_entropy(pmf) - h)
    model = MADEDensity(event_size=2, num_levels=levels, head=LogisticMixtureHead(NUM_MIXTURES))
    grid = all_vectors(2, levels)
    q = np.exp(np.asarray(jax.jit(model.apply)(params, grid), np.float64)).reshape(levels, levels)
    np.testing.assert_allclose(q.sum(), 1.0, atol=1e-5)
    assert 0.5 * np.abs(q - pmf).sum() < 0.05  # total variation
