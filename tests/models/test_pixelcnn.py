"""PixelCNN: the autoregressive property, exact sums over all images, the heads (RGB coupling
against a float64 reference), samples against the pmf, context and bad inputs."""

import itertools
from functools import partial

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from test_distributions import reference_rgb_log_prob

from dgmjax.distributions import (
    BernoulliHead,
    CategoricalHead,
    DiscretizedRGBLogisticMixture,
    LogisticMixtureHead,
    RGBLogisticMixtureHead,
)
from dgmjax.models import PixelCNN


def init(model, x, *args, scale=0.3, seed=0):
    """Random parameters of `model`: every leaf nonzero (the zero-initialized ones included),
    normal with std scale / sqrt(last axis). The properties tested hold for any parameters;
    only the shapes come from `model.init`, traced (`jax.eval_shape`), not compiled: a
    PixelCNN's jitted init takes seconds to compile. numpy draws them, so the tests do not
    depend on jax's random stream."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, *args)
    g = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(scale * g.standard_normal(a.shape) / np.sqrt(max(a.shape[-1], 1)), a.dtype),
        shapes)


def all_images(shape, num_levels):
    return jnp.asarray(list(itertools.product(range(num_levels), repeat=int(np.prod(shape)))),
                       jnp.int32).reshape((-1,) + tuple(shape))


@pytest.mark.parametrize("channels, head", [
    (1, LogisticMixtureHead(2)), (3, RGBLogisticMixtureHead(2)), (1, BernoulliHead()),
], ids=["mixture", "rgb", "bernoulli"])
def test_pixelcnn_outputs_depend_only_on_earlier_pixels(channels, head):
    h, w = 5, 4
    levels = 2 if isinstance(head, BernoulliHead) else 8
    model = PixelCNN(image_shape=(h, w, channels), num_levels=levels, features=8, num_blocks=2, head=head)
    x = jnp.asarray(np.random.default_rng(0).integers(0, levels, (1, h, w, channels)), jnp.int32)
    params = init(model, x)
    net = lambda xf: model.apply(params, xf, method=model.network)[0]  # (h, w, out)
    jac = jax.jit(jax.jacrev(net))(x.astype(jnp.float32))  # (h, w, out, 1, h, w, C)
    dep = np.abs(np.asarray(jac)).sum(axis=(2, 3, 6)) > 0  # (h, w, h, w): output pixel <- input pixel
    for (i, j), (k, m) in itertools.product(itertools.product(range(h), range(w)), repeat=2):
        if (k, m) >= (i, j):  # the pixel itself and everything after it in raster order
            assert not dep[i, j, k, m], ((i, j), (k, m))
    assert dep[h - 1, w - 1, 0, 0] and dep[h - 1, w - 1, h - 1, w - 2]  # it does see the past


def test_pixelcnn_rgb_head_orders_the_channels_of_a_pixel():
    """With the coupled head, each pixel's distribution is PixelCNN++'s: the mean of channel c
    is linear in the channels < c of that same pixel (float64 reference from the network's
    outputs in the head's documented layout), its 64 values sum to one, and log P(x) is the
    sum of the pixels' terms."""
    k, L = 2, 4
    head = RGBLogisticMixtureHead(k)
    model = PixelCNN(image_shape=(2, 2, 3), num_levels=L, features=8, num_blocks=1, head=head)
    x = jnp.asarray(np.random.default_rng(3).integers(0, L, (2, 2, 2, 3)), jnp.int32)
    params = init(model, x)

    kinds = []

    @jax.jit
    def run(params, x, values):
        out = model.apply(params, x, method=model.network)
        dist = model.apply(params, x, method=model.distribution)
        kinds.append((type(dist.distribution), dist.batch_shape, dist.event_shape))
        return out, dist.distribution.log_prob(values), model.apply(params, x)

    grid = all_images((3,), L)  # (64, 3): every value of one pixel
    values = jnp.broadcast_to(grid[:, None, None, None, :], (64, 2, 2, 2, 3))  # a sample axis in front
    out, per_pixel, log_p = run(params, x, values)
    assert kinds == [(DiscretizedRGBLogisticMixture, (2,), (2, 2, 3))]
    out = np.asarray(out, np.float64)
    rest = out[..., k:].reshape(out.shape[:-1] + (3, 3 * k))
    ref = reference_rgb_log_prob(np.asarray(values), out[..., :k], rest[..., :k], rest[..., k:2 * k],
                                 rest[..., 2 * k:], L)
    np.testing.assert_allclose(per_pixel, ref, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.exp(np.asarray(per_pixel, np.float64)).sum(0), 1.0, atol=1e-5)
    # the coupling coefficients are not all zero: the ordering is exercised
    assert np.abs(np.tanh(rest[..., 2 * k:])).min() > 1e-3
    # log P(x): the terms of the pixels at their observed values
    at_x = reference_rgb_log_prob(np.asarray(x), out[..., :k], rest[..., :k], rest[..., k:2 * k],
                                  rest[..., 2 * k:], L)
    np.testing.assert_allclose(log_p, at_x.sum((1, 2)), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("shape, levels, head", [
    ((2, 2, 1), 2, BernoulliHead()),
    ((1, 2, 1), 5, LogisticMixtureHead(3)),
    ((1, 2, 1), 5, CategoricalHead()),
    ((1, 2, 3), 3, RGBLogisticMixtureHead(2)),
], ids=["bernoulli", "mixture", "categorical", "rgb"])
def test_pixelcnn_pmf_sums_to_one_over_all_images(shape, levels, head):
    """Every image of a tiny space (16, 25, 25 and 729 of them): their probabilities sum to 1."""
    model = PixelCNN(image_shape=shape, num_levels=levels, features=8, num_blocks=1, head=head)
    grid = all_images(shape, levels)
    params = init(model, grid, scale=1.0)
    log_p = jax.jit(model.apply)(params, grid)
    chex.assert_shape(log_p, (levels ** int(np.prod(shape)),))
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)


def test_pixelcnn_samples_follow_its_pmf():
    """Chi-square of samples against exp(log P) over all 81 images of shape (2, 1, 2), 3 levels:
    pixel by pixel, the two channels of a pixel drawn independently given the pixels before."""
    shape, levels = (2, 1, 2), 3
    model = PixelCNN(image_shape=shape, num_levels=levels, features=8, num_blocks=1,
                     head=LogisticMixtureHead(2))
    grid = all_images(shape, levels)
    params = init(model, grid, scale=1.0)
    pmf = np.exp(np.asarray(jax.jit(model.apply)(params, grid), np.float64))
    np.testing.assert_allclose(pmf.sum(), 1.0, atol=1e-5)
    n = 10_000
    s = np.asarray(jax.jit(partial(model.apply, method=model.sample), static_argnums=2)(
        params, jax.random.PRNGKey(2), n)).reshape(n, -1)
    assert s.min() >= 0 and s.max() < levels
    index = s @ (levels ** np.arange(s.shape[1])[::-1])  # the row of `grid` (itertools.product order)
    counts = np.bincount(index, minlength=pmf.size)
    expected = pmf * n
    keep = expected > 10
    assert keep.sum() >= 20  # a test with some power
    observed = np.append(counts[keep], n - counts[keep].sum())
    expect = np.append(expected[keep], n - expected[keep].sum())
    chi2 = np.sum((observed - expect) ** 2 / expect)
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-4


def test_pixelcnn_sampling_context_and_bad_inputs():
    model = PixelCNN(image_shape=(3, 3, 1), num_levels=4, features=8, num_blocks=1, context_size=2)
    x = jnp.zeros((2, 3, 3, 1), jnp.int32)
    c = jnp.ones((2, 2))
    params = init(model, x, c)
    log_prob = jax.jit(model.apply)
    assert not np.allclose(log_prob(params, x, c), log_prob(params, x, -c))
    s = jax.jit(lambda p, k: model.apply(p, k, 2, c, method=model.sample))(params, jax.random.PRNGKey(2))
    assert s.shape == (2, 3, 3, 1) and s.dtype == jnp.int32 and int(s.min()) >= 0 and int(s.max()) < 4
    kinds = []

    def log_prob_of_distribution(p):
        dist = model.apply(p, x, c, method=model.distribution)
        kinds.append((type(dist), dist.batch_shape, dist.event_shape))
        return dist.log_prob(x)

    jax.eval_shape(log_prob_of_distribution, params)  # traced only: its shapes, no compile
    assert kinds == [(distrax.Independent, (2,), (3, 3, 1))]
    with pytest.raises(ValueError, match="conditional"):
        model.apply(params, x)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.apply(params, x + 4, c)
    with pytest.raises(ValueError, match="shape"):
        model.apply(params, jnp.zeros((2, 3, 2, 1), jnp.int32), c)
    with pytest.raises(ValueError, match="integer dtype"):
        model.apply(params, x.astype(jnp.float32), c)
    # configuration errors are raised while tracing (eval_shape: nothing runs)
    with pytest.raises(ValueError, match="BernoulliHead models binary data"):
        jax.eval_shape(PixelCNN(image_shape=(3, 3, 1), num_levels=4, head=BernoulliHead()).init,
                       jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="3 channels"):
        jax.eval_shape(PixelCNN(image_shape=(3, 3, 1), num_levels=4, head=RGBLogisticMixtureHead(2)).init,
                       jax.random.PRNGKey(0), x)
    # the levels of a categorical head are checked too
    cat = PixelCNN(image_shape=(3, 3, 1), num_levels=4, features=8, num_blocks=1, head=CategoricalHead())
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        cat.init(jax.random.PRNGKey(0), x + 4)
