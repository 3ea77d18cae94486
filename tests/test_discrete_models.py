"""PixelCNN (autoregressive property, exact sums) and integer discrete flows (exact round trips)."""

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dgmjax.models import IntegerDiscreteFlow, PixelCNN


@partial(jax.jit, static_argnums=2)  # one program: eagerly, every leaf's draw compiled its own
def perturb(params, key, scale=0.3):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) / np.sqrt(max(leaf.shape[-1], 1))
               for leaf, k in zip(leaves, keys, strict=True)])


@pytest.mark.parametrize("channels, head", [(1, "mixture"), (3, "mixture"), (1, "bernoulli")])
def test_pixelcnn_outputs_depend_only_on_earlier_pixels(channels, head):
    h, w = 5, 4
    levels = 2 if head == "bernoulli" else 8
    model = PixelCNN(image_shape=(h, w, channels), num_levels=levels, features=8, num_blocks=2,
                     head=head, num_mixtures=2)
    x = jax.random.randint(jax.random.PRNGKey(0), (1, h, w, channels), 0, levels)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2))
    net = lambda xf: model.apply(params, xf, method=model.network)[0]  # (h, w, out)
    jac = jax.jacrev(net)(x.astype(jnp.float32))  # (h, w, out, 1, h, w, C)
    dep = np.abs(np.asarray(jac)).sum(axis=(2, 3, 6)) > 0  # (h, w, h, w): output pixel <- input pixel
    for (i, j), (k, m) in itertools.product(itertools.product(range(h), range(w)), repeat=2):
        if (k, m) >= (i, j):  # the pixel itself and everything after it in raster order
            assert not dep[i, j, k, m], ((i, j), (k, m))
    assert dep[h - 1, w - 1, 0, 0] and dep[h - 1, w - 1, h - 1, w - 2]  # it does see the past


def test_pixelcnn_rgb_log_prob_orders_the_channels_of_a_pixel():
    """With the coupled head, log p(x_c at pixel i) depends on channels < c of pixel i, not >= c."""
    model = PixelCNN(image_shape=(2, 2, 3), num_levels=4, features=8, num_blocks=1, num_mixtures=2)
    x = jax.random.randint(jax.random.PRNGKey(3), (1, 2, 2, 3), 0, 4)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(4), x), jax.random.PRNGKey(5))
    out = model.apply(params, x, method=model.network)
    from dgmjax.likelihoods import rgb_coupled_means

    lw, mu, ls, co = model._split_head(out)  # noqa: F841 (module helper on unbound instance)
    jac = jax.jacfwd(lambda xf: rgb_coupled_means(mu[0, 1, 1], co[0, 1, 1], xf, 4))(
        x[0, 1, 1].astype(jnp.float32))  # (3 channels, K, 3 inputs)
    for c in range(3):
        assert np.all(np.asarray(jac)[c, :, c:] == 0)


def test_pixelcnn_pmf_sums_to_one_over_all_images():
    """A 2x2 binary image has 16 values: their probabilities sum to 1 exactly."""
    model = PixelCNN(image_shape=(2, 2, 1), num_levels=2, features=8, num_blocks=1, head="bernoulli")
    grid = jnp.array(list(itertools.product([0, 1], repeat=4))).reshape(16, 2, 2, 1)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), grid), jax.random.PRNGKey(1), 1.0)
    np.testing.assert_allclose(jnp.exp(model.apply(params, grid)).sum(), 1.0, atol=1e-5)
    mix = PixelCNN(image_shape=(1, 2, 1), num_levels=5, features=8, num_blocks=1, num_mixtures=3)
    grid = jnp.array(list(itertools.product(range(5), repeat=2))).reshape(25, 1, 2, 1)
    p2 = perturb(jax.jit(mix.init)(jax.random.PRNGKey(2), grid), jax.random.PRNGKey(3), 1.0)
    np.testing.assert_allclose(jnp.exp(mix.apply(p2, grid)).sum(), 1.0, atol=1e-5)


def test_pixelcnn_sampling_context_and_bad_inputs():
    model = PixelCNN(image_shape=(3, 3, 1), num_levels=4, features=8, num_blocks=1, context_size=2)
    x = jnp.zeros((2, 3, 3, 1), jnp.int32)
    c = jnp.ones((2, 2))
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), x, c), jax.random.PRNGKey(1))
    assert not np.allclose(model.apply(params, x, c), model.apply(params, x, -c))
    s = jax.jit(lambda p, k: model.apply(p, k, 2, c, method=model.sample))(params, jax.random.PRNGKey(2))
    assert s.shape == (2, 3, 3, 1) and int(s.min()) >= 0 and int(s.max()) < 4
    with pytest.raises(ValueError, match="conditional"):
        model.apply(params, x)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.apply(params, x + 4, c)
    with pytest.raises(ValueError, match="shape"):
        model.apply(params, jnp.zeros((2, 3, 2, 1), jnp.int32), c)
    with pytest.raises(ValueError, match="bernoulli head needs num_levels = 2"):
        PixelCNN(image_shape=(3, 3, 1), num_levels=4, head="bernoulli").init(jax.random.PRNGKey(0), x)


def test_integer_flow_round_trips_integers_exactly():
    model = IntegerDiscreteFlow(image_shape=(8, 8, 1), num_levels=17, num_scales=2, num_layers=2,
                                features=8)
    x = jax.random.randint(jax.random.PRNGKey(0), (6, 8, 8, 1), 0, 17)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2), 2.0)
    encode = jax.jit(lambda p, v: model.apply(p, v, method=model.encode))
    decode = jax.jit(lambda p, v: model.apply(p, v, method=model.decode))
    z = encode(params, x)
    assert np.all(np.asarray(z) == np.round(np.asarray(z)))  # integers
    assert not np.array_equal(np.asarray(z), np.asarray(x, np.float32))  # a real transformation
    np.testing.assert_array_equal(decode(params, z), x)
    def loss(p):
        log_p = model.apply(p, x)
        return -log_p.mean(), log_p

    # one jitted program for the likelihood and its gradient (run eagerly, op by op, the
    # gradient through the scanned couplings took most of this test's minute)
    (_, log_p), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    assert np.all(np.isfinite(log_p)) and np.all(log_p < 0)
    coupling_grads = jax.tree_util.tree_leaves(grads["params"]["coupling_0"])
    assert all(np.all(np.isfinite(g)) for g in coupling_grads)
    assert any(np.any(g != 0) for g in coupling_grads)  # straight-through reaches the couplings


def test_integer_flow_likelihood_is_the_prior_of_the_latent():
    """log P(x) = log P_Z(f(x)): summing P over a small image space gives at most 1."""
    model = IntegerDiscreteFlow(image_shape=(2, 2, 1), num_levels=3, num_scales=1, num_layers=2,
                                features=4, num_mixtures=2)
    grid = jnp.array(list(itertools.product(range(3), repeat=4))).reshape(81, 2, 2, 1)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), grid), jax.random.PRNGKey(1), 2.0)
    total = float(jnp.exp(model.apply(params, grid)).sum())
    assert 0 < total <= 1.0 + 1e-6  # a bijection of Z^4 maps distinct images to distinct latents
    z = model.apply(params, grid, method=model.encode).reshape(81, -1)
    assert len({tuple(row) for row in np.asarray(z).tolist()}) == 81
    with pytest.raises(ValueError, match="`z` must have shape"):
        model.apply(params, jnp.zeros((2, 2, 2, 3)), method=model.latent_log_prob)


def test_integer_flow_prior_starts_on_the_data_and_its_means_move_at_the_training_rate():
    """Init fits the prior to the init batch's latents; after that, Adam at lr 1e-3 must carry
    the means across the level range (they are stored on a num_levels scale): fitted alone to
    images that are all level 100, a prior initialized on all-zero images finds their latent."""
    model = IntegerDiscreteFlow(image_shape=(2, 2, 1), num_levels=256, num_scales=1,
                                num_layers=1, features=4, num_mixtures=3)
    zeros, hundreds = jnp.zeros((8, 2, 2, 1), jnp.int32), jnp.full((8, 2, 2, 1), 100, jnp.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), zeros)
    opt = optax.adam(1e-3)

    def loss(prior, x):
        p = {"params": {**params["params"], "prior": prior}}
        return -model.apply(p, x).mean() / 4  # nats per pixel

    def step(carry, _):
        prior, state = carry
        value, g = jax.value_and_grad(loss)(prior, hundreds)
        updates, state = opt.update(g, state)
        return (optax.apply_updates(prior, updates), state), value

    prior0 = params["params"]["prior"]
    # A logistic of scale 1/4 centred on the latent gives it sigmoid(2) - sigmoid(-2) = 0.76.
    np.testing.assert_allclose(float(loss(prior0, zeros)), -np.log(0.7616), atol=1e-3)
    (prior, _), losses = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, 600))(prior0)
    assert float(losses[0]) > 50.0  # the latent of the all-100 images is ~100 levels away
    assert float(loss(prior, hundreds)) < 0.5  # mass > 0.6 per pixel on it after 600 steps


def _idf_with_moving_couplings(model, batch, images, scale=0.4, min_mass=0.05, min_moved=0.5):
    """Parameters of `model` whose couplings move most of `images` and whose exact mass on
    them is large enough to test, with log P of every image.

    Random couplings that move many images also carry the latents away from the prior; so
    the coupling and prior-net parameters are perturbed, the prior is refitted on the
    perturbed flow's latents of `batch` (the model's own data-dependent init), and the
    first of a fixed list of perturbation keys that meets both thresholds is used. The
    choice looks only at the model, never at samples, so it cannot bias the test; it makes
    the test independent of the random stream (jax_threefry_partitionable either way).
    """
    params0 = jax.jit(model.init)(jax.random.PRNGKey(0), batch)
    encode = jax.jit(lambda p, x: model.apply(p, x, method=model.encode))
    refit = jax.jit(lambda p, z: model.apply(p, z, method=lambda m, z: m._data_dependent_init(z),
                                             mutable="params")[1])
    log_prob = jax.jit(model.apply)
    x = jnp.asarray(images)
    z0 = np.asarray(encode(params0, x)).reshape(len(images), -1)
    for k in range(1, 33):
        inner = dict(params0["params"])
        for i, name in enumerate(sorted(inner)):
            if name != "prior":
                inner[name] = perturb(inner[name], jax.random.fold_in(jax.random.PRNGKey(k), i), scale)
        params = refit({"params": inner}, encode({"params": inner}, batch))
        moved = np.mean(np.any(np.asarray(encode(params, x)).reshape(len(images), -1) != z0, axis=1))
        log_p = np.asarray(log_prob(params, x), np.float64)
        if moved >= min_moved and np.exp(log_p).sum() >= min_mass:
            return params, log_p
    raise AssertionError("no perturbation key gave a testable integer flow")


def test_integer_flow_samples_follow_its_likelihood():
    """Chi-square of samples against exp(log P) enumerated over all 2^16 binary 4x4 images,
    binned by (first four pixels, number of ones in the other twelve), with every non-binary
    image in one more bin: sampling (the deepest latent, then each factored-out half given the
    kept half, then the inverse flow) must draw from the distribution the likelihood scores."""
    from scipy import stats

    model = IntegerDiscreteFlow(image_shape=(4, 4, 1), num_levels=2, num_scales=2, num_layers=1,
                                features=4, num_mixtures=2)
    rng = np.random.default_rng(0)
    batch = jnp.asarray(rng.random((64, 4, 4, 1)) < np.linspace(0.1, 0.9, 16).reshape(4, 4, 1),
                        jnp.int32)
    bits = (np.arange(2**16)[:, None] >> np.arange(16)) & 1
    params, log_p = _idf_with_moving_couplings(model, batch, bits.reshape(-1, 4, 4, 1))

    def bin_of(b):  # (N, 16) binary -> 16 * 13 bins
        return (b[:, :4] << np.arange(4)).sum(1) + 16 * b[:, 4:].sum(1)

    num_bins = 16 * 13
    expected = np.bincount(bin_of(bits), weights=np.exp(log_p), minlength=num_bins)
    n = 40000
    samples = np.asarray(jax.jit(lambda p, k: model.apply(p, k, n, method=model.sample))(
        params, jax.random.PRNGKey(2))).reshape(n, 16)
    binary = np.all((samples == 0) | (samples == 1), axis=1)
    counts = np.bincount(bin_of(samples[binary]), minlength=num_bins)
    expected = expected * n
    keep = expected > 20
    assert keep.sum() >= 20 and expected[keep].sum() > 0.02 * n  # a test with some power
    observed = np.append(counts[keep], n - counts[keep].sum())
    expect = np.append(expected[keep], n - expected[keep].sum())
    chi2 = np.sum((observed - expect) ** 2 / expect)
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-4
