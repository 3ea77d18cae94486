"""Affine couplings: masks, the bounded scale, identity at a zero conditioner, bad input."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.bijectors import (
    SIGMOID_MAX_LOG_SCALE,
    affine_coupling,
    affine_split_coupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    sigmoid_scale,
    tanh_scale,
)


def test_masks_are_complementary_and_halve_the_event():
    for make, shape in ((checkerboard_mask, (5, 4, 3)), (channel_mask, (3, 3, 4))):
        np.testing.assert_array_equal(make(shape, 0), ~make(shape, 1))
        assert make(shape, 0).sum() * 2 == make(shape, 0).size
    np.testing.assert_array_equal(alternating_mask(5, 0), ~alternating_mask(5, 1))


def test_coupling_keeps_the_masked_entries_and_is_the_identity_at_a_zero_conditioner():
    mask = checkerboard_mask((4, 4, 1))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 1))
    layer = affine_coupling(mask, lambda xm: jnp.zeros(xm.shape + (2,)))
    y, ld = layer.forward_and_log_det(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(ld, 0.0)
    shifted = affine_coupling(mask, lambda xm: jnp.ones(xm.shape + (2,)))
    y = shifted.forward(x)
    np.testing.assert_array_equal(y[:, mask], x[:, mask])
    assert not np.allclose(y[:, ~mask], x[:, ~mask])
    split = affine_split_coupling(2, lambda kept: jnp.ones(kept.shape + (2,)))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 2, 2, 4))
    np.testing.assert_array_equal(split.forward(x)[..., :2], x[..., :2])


def test_scale_functions_are_bounded_on_the_density_side_and_zero_at_zero():
    raw = jnp.linspace(-1e3, 1e3, 101)
    raw64 = np.asarray(raw, np.float64)
    for fn in (tanh_scale, sigmoid_scale):
        assert float(fn(jnp.zeros(()))) == pytest.approx(0.0, abs=1e-7)
        ls = fn(raw)
        assert np.all(np.isfinite(ls))
        # data -> noise scales by exp(-ls): at most e^2 (tanh) or 2 (sigmoid), whatever `raw` is.
        assert float((-ls).max()) <= (2.0 if fn is tanh_scale else np.log(2.0)) + 1e-6
    np.testing.assert_allclose(tanh_scale(raw), 2.0 * np.tanh(raw64 / 2.0), rtol=1e-6)
    np.testing.assert_allclose(tanh_scale(raw, bound=3.0), 3.0 * np.tanh(raw64 / 3.0), rtol=1e-6)
    # Glow: the density side multiplies by 2 sigmoid(raw) (float64, written independently), floored
    # at exp(-SIGMOID_MAX_LOG_SCALE) so that the sampling side's 1 / (2 sigmoid(raw)) stays finite.
    log_inverse_scale = np.maximum(np.log(2.0) - np.logaddexp(0.0, -raw64), -SIGMOID_MAX_LOG_SCALE)
    np.testing.assert_allclose(-sigmoid_scale(raw), log_inverse_scale, rtol=1e-6, atol=1e-6)
    assert SIGMOID_MAX_LOG_SCALE == 10.0 and float(sigmoid_scale(jnp.float32(-10.0))) < 10.0
    with pytest.raises(ValueError, match="`bound`"):
        tanh_scale(raw, bound=0.0)


@pytest.mark.parametrize("scale_fn", [tanh_scale, sigmoid_scale], ids=["tanh", "sigmoid"])
def test_coupling_density_side_stays_bounded_for_any_conditioner_output(scale_fn):
    """A conditioner emitting +-1e4 cannot make data -> noise expand past the bound."""
    d = 6
    raw = jnp.array([1e4, -1e4, -1e4, 1e4, -1e4, -1e4])
    layer = affine_coupling(alternating_mask(d, 0),
                            lambda kept: jnp.stack([jnp.zeros_like(kept), raw + 0 * kept], -1),
                            scale_fn=scale_fn)
    x = jax.random.normal(jax.random.PRNGKey(7), (5, d))
    z, ld = layer.inverse_and_log_det(x)
    bound = 2.0 if scale_fn is tanh_scale else np.log(2.0)
    assert np.all(np.isfinite(z)) and np.all(np.isfinite(ld))
    assert np.all(np.abs(z) <= np.exp(bound) * np.abs(x) + 1e-5)
    assert np.all(ld <= (d // 2) * bound + 1e-4)


def test_coupling_bad_inputs():
    with pytest.raises(ValueError, match="mask"):
        affine_coupling(jnp.ones(4), lambda x: x)
    with pytest.raises(ValueError, match="scale_fn"):
        affine_coupling(jnp.ones(4, bool), lambda x: x, scale_fn="exp")
    bad = affine_coupling(alternating_mask(4), lambda x: jnp.zeros(x.shape + (3,)))
    with pytest.raises(ValueError, match="conditioner"):
        bad.forward(jnp.zeros((2, 4)))
    bad_split = affine_split_coupling(2, lambda k: jnp.zeros(k.shape + (3,)))
    with pytest.raises(ValueError, match="conditioner"):
        bad_split.forward(jnp.zeros((1, 2, 2, 4)))
    with pytest.raises(ValueError, match="even number of channels"):
        channel_mask((4, 4, 3))
    with pytest.raises(ValueError, match="shape"):
        checkerboard_mask((4, 4))


def test_an_equinox_module_conditions_couplings_trained_by_the_library_step():
    """Composability beyond Flax: checkerboard couplings on the digits whose conditioners are
    Equinox MLPs (the coupling takes any callable), trained with dgmjax's train step on the
    Equinox idiom (arrays partitioned from the static parts). The flow starts as the identity (zero
    last layers), training lowers the bound, and the trained flow's log_prob equals the change of
    variables with an autodiff Jacobian."""
    import equinox as eqx
    from helpers import brute_force_log_prob

    from dgmjax.data import load_images
    from dgmjax.objectives import bits_per_dim, dequantization_bound
    from dgmjax.training import TrainState, make_optimizer, make_train_step

    images = load_images("digits", "train").images[:512]
    masks = [checkerboard_mask((8, 8, 1), i % 2) for i in range(4)]

    def zero_last(mlp):
        return eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp, replace_fn=jnp.zeros_like)

    nets = [zero_last(eqx.nn.MLP(64, 128, 64, 1, key=k)) for k in jax.random.split(jax.random.key(0), 4)]
    arrays, static = eqx.partition(nets, eqx.is_array)
    base = distrax.Independent(distrax.Normal(jnp.zeros((8, 8, 1)), 1.0), 3)

    def bijector(arrays):
        def cond(net):
            return lambda xm: jax.vmap(net)(xm.reshape(-1, 64)).reshape(xm.shape + (2,))

        nets = eqx.combine(arrays, static)
        layers = [affine_coupling(m, cond(net)) for m, net in zip(masks, nets, strict=True)]
        return distrax.Chain([distrax.Block(distrax.Sigmoid(), 3), *layers[::-1]])

    def loss(key, arrays, batch):
        bound = dequantization_bound(key, distrax.Transformed(base, bijector(arrays)), batch, 17)
        return bits_per_dim(bound, 64).mean(), {}

    u = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1), minval=0.05, maxval=0.95)
    np.testing.assert_allclose(bijector(arrays).inverse(u), jnp.log(u) - jnp.log1p(-u), atol=1e-5)  # identity
    state = TrainState.create(params=arrays, tx=make_optimizer(3e-3, num_steps=60, warmup_steps=1))
    step = jax.jit(make_train_step(loss, jax.random.key(2)))
    first = None
    for i in range(60):
        state, metrics = step(state, images[i % 4 * 128:][:128])
        first = float(metrics["loss"]) if first is None else first
    assert float(metrics["loss"]) < first - 0.5, (first, float(metrics["loss"]))  # it learned
    flow = distrax.Transformed(base, bijector(state.params))
    with jax.default_matmul_precision("float32"):
        expected = brute_force_log_prob(lambda: distrax.Chain(bijector(state.params).bijectors[1:]),
                                        jnp.log(u) - jnp.log1p(-u))
    sigmoid_log_det = -jnp.sum(jnp.log(u) + jnp.log1p(-u), axis=(1, 2, 3))  # d logit(u) / du
    np.testing.assert_allclose(flow.log_prob(u), expected + sigmoid_log_det, rtol=1e-4, atol=1e-3)
