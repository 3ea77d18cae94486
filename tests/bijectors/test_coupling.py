"""Affine couplings: masks, the bounded scale, identity at a zero conditioner, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.bijectors import (
    SIGMOID_MAX_LOG_SCALE,
    affine_coupling,
    affine_split_coupling,
    alternating_mask,
    bounded_log_scale,
    channel_mask,
    checkerboard_mask,
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


def test_bounded_log_scale_is_bounded_on_the_density_side_and_zero_at_zero():
    raw = jnp.linspace(-1e3, 1e3, 101)
    raw64 = np.asarray(raw, np.float64)
    for fn in ("tanh", "sigmoid"):
        assert float(bounded_log_scale(jnp.zeros(()), fn)) == pytest.approx(0.0, abs=1e-7)
        ls = bounded_log_scale(raw, fn)
        assert np.all(np.isfinite(ls))
        # data -> noise scales by exp(-ls): at most e^2 (tanh) or 2 (sigmoid), whatever `raw` is.
        assert float((-ls).max()) <= (2.0 if fn == "tanh" else np.log(2.0)) + 1e-6
    np.testing.assert_allclose(bounded_log_scale(raw, "tanh"), 2.0 * np.tanh(raw64 / 2.0), rtol=1e-6)
    # Glow: the density side multiplies by 2 sigmoid(raw) (float64, written independently), floored
    # at exp(-SIGMOID_MAX_LOG_SCALE) so that the sampling side's 1 / (2 sigmoid(raw)) stays finite.
    log_inverse_scale = np.maximum(np.log(2.0) - np.logaddexp(0.0, -raw64), -SIGMOID_MAX_LOG_SCALE)
    np.testing.assert_allclose(-bounded_log_scale(raw, "sigmoid"), log_inverse_scale, rtol=1e-6, atol=1e-6)
    assert SIGMOID_MAX_LOG_SCALE == 10.0 and float(bounded_log_scale(jnp.float32(-10.0), "sigmoid")) < 10.0
    with pytest.raises(ValueError, match="scale_fn"):
        bounded_log_scale(raw, "exp")


@pytest.mark.parametrize("scale_fn", ["tanh", "sigmoid"])
def test_coupling_density_side_stays_bounded_for_any_conditioner_output(scale_fn):
    """A conditioner emitting +-1e4 cannot make data -> noise expand past the bound."""
    d = 6
    raw = jnp.array([1e4, -1e4, -1e4, 1e4, -1e4, -1e4])
    layer = affine_coupling(alternating_mask(d, 0),
                            lambda kept: jnp.stack([jnp.zeros_like(kept), raw + 0 * kept], -1),
                            scale_fn=scale_fn)
    x = jax.random.normal(jax.random.PRNGKey(7), (5, d))
    z, ld = layer.inverse_and_log_det(x)
    bound = 2.0 if scale_fn == "tanh" else np.log(2.0)
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
