"""Integer discrete flows: exact round trips on integers, likelihood = prior of the latent (exact
sums), the prior's data-dependent init and training rate, samples against the likelihood."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from dgmjax.bijectors import merge_latent, split_latent
from dgmjax.models import IntegerDiscreteFlow


def perturb(params, seed, scale):
    """Every leaf moved by normal noise of std scale / sqrt(last axis), drawn by numpy: no compile
    (a jitted jax draw of an IDF's leaves took as long to compile as its likelihood), and no
    dependence on jax's random stream."""
    g = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda a: np.asarray(a) + (scale * g.standard_normal(a.shape) / np.sqrt(max(a.shape[-1], 1))
                                   ).astype(a.dtype), params)


def test_integer_flow_round_trips_integers_exactly():
    model = IntegerDiscreteFlow(image_shape=(8, 8, 1), num_levels=17, num_scales=2, num_layers=2,
                                features=8)
    x = jnp.asarray(np.random.default_rng(0).integers(0, 17, (6, 8, 8, 1)), jnp.int32)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x), 2, 2.0)

    def loss(p):
        log_p = model.apply(p, x)
        return -log_p.mean(), log_p

    @jax.jit  # one program: every compile of the flow costs seconds
    def run(p):
        # the likelihood and its gradient (run eagerly, op by op, the gradient through the
        # scanned couplings took most of this test's minute)
        (_, log_p), grads = jax.value_and_grad(loss, has_aux=True)(p)
        z = model.apply(p, x, method=model.latent)
        back = model.apply(p, z, method=model.image)
        # the bijector: forward = latent -> image, inverse = image -> latent, no Jacobian
        fwd, fwd_ld = model.apply(p, z, method=lambda m, z: m.bijector().forward_and_log_det(z))
        inv, inv_ld = model.apply(p, x.astype(jnp.float32),
                                  method=lambda m, x: m.bijector().inverse_and_log_det(x))
        return log_p, grads, z, back, fwd, fwd_ld, inv, inv_ld

    log_p, grads, z, back, fwd, fwd_ld, inv, inv_ld = run(params)
    assert np.all(np.asarray(z) == np.round(np.asarray(z)))  # integers
    assert not np.array_equal(np.asarray(z), np.asarray(x, np.float32))  # a real transformation
    np.testing.assert_array_equal(back, x)
    chex.assert_trees_all_equal(fwd, back)
    chex.assert_trees_all_equal(inv, z)
    np.testing.assert_array_equal(fwd_ld, 0.0)
    np.testing.assert_array_equal(inv_ld, 0.0)
    assert np.all(np.isfinite(log_p)) and np.all(log_p < 0)
    coupling_grads = jax.tree_util.tree_leaves(grads["params"]["coupling_0"])
    chex.assert_tree_all_finite(coupling_grads)
    assert any(np.any(g != 0) for g in coupling_grads)  # straight-through reaches the couplings


def test_integer_flow_likelihood_is_the_prior_of_the_latent():
    """log P(x) = log P_Z(f(x)): summing P over a small image space gives at most 1."""
    model = IntegerDiscreteFlow(image_shape=(2, 2, 1), num_levels=3, num_scales=1, num_layers=2,
                                features=4, num_mixtures=2)
    grid = jnp.array(list(itertools.product(range(3), repeat=4))).reshape(81, 2, 2, 1)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), grid), 1, 2.0)

    @jax.jit
    def run(p, x):
        z = model.apply(p, x, method=model.latent)
        return model.apply(p, x), z, model.apply(p, z, method=model.latent_log_prob)

    log_p, z, log_p_z = run(params, grid)
    total = float(jnp.exp(log_p).sum())
    assert 0 < total <= 1.0 + 1e-6  # a bijection of Z^4 maps distinct images to distinct latents
    chex.assert_trees_all_equal(log_p, log_p_z)
    assert len({tuple(row) for row in np.asarray(z).reshape(81, -1).tolist()}) == 81
    with pytest.raises(ValueError, match="`z` must have shape"):
        model.apply(params, jnp.zeros((2, 2, 2, 3)), method=model.latent_log_prob)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        model.apply(params, grid + 1)


def test_split_and_merge_latent_are_inverse_and_partition_the_latent():
    """The multi-scale latent in parts: every element of z in exactly one part, and back."""
    shape, squeezes = (4, 4, 2), [True, True]
    z = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape((1,) + shape)
    parts = split_latent(z, shape, squeezes)
    assert [p.shape for p in parts] == [(1, 2, 2, 4), (1, 1, 1, 16)]
    values = np.concatenate([np.asarray(p).reshape(-1) for p in parts])
    np.testing.assert_array_equal(np.sort(values), np.arange(np.prod(shape)))
    chex.assert_trees_all_equal(merge_latent(parts, shape, squeezes), z)


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
    np.testing.assert_allclose(float(jax.jit(loss)(prior0, zeros)), -np.log(0.7616), atol=1e-3)
    (prior, _), losses = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, 600))(prior0)
    assert float(losses[0]) > 50.0  # the latent of the all-100 images is ~100 levels away
    assert float(jax.jit(loss)(prior, hundreds)) < 0.5  # mass > 0.6 per pixel on it after 600 steps


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
    latent = jax.jit(lambda p, x: model.apply(p, x, method=model.latent))
    refit = jax.jit(lambda p, z: model.apply(p, z, method=lambda m, z: m._data_dependent_init(z),
                                             mutable="params")[1])
    log_prob = jax.jit(model.apply)
    x = jnp.asarray(images)
    z0 = np.asarray(latent(params0, x)).reshape(len(images), -1)
    for k in range(1, 33):
        inner = dict(params0["params"])
        for i, name in enumerate(sorted(inner)):
            if name != "prior":
                inner[name] = perturb(inner[name], (k, i), scale)
        params = refit({"params": inner}, latent({"params": inner}, batch))
        moved = np.mean(np.any(np.asarray(latent(params, x)).reshape(len(images), -1) != z0, axis=1))
        log_p = np.asarray(log_prob(params, x), np.float64)
        if moved >= min_moved and np.exp(log_p).sum() >= min_mass:
            return params, log_p
    raise AssertionError("no perturbation key gave a testable integer flow")


def test_integer_flow_samples_follow_its_likelihood():
    """Chi-square of samples against exp(log P) enumerated over all 2^16 binary 4x4 images,
    binned by (first four pixels, number of ones in the other twelve), with every non-binary
    image in one more bin: sampling (the deepest latent, then each factored-out half given the
    kept half, then the inverse flow) must draw from the distribution the likelihood scores."""
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
