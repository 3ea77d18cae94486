"""ScaledSigmoid: the logit preprocessing run noise -> data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.bijectors import ScaledSigmoid


@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05, 0.3])
def test_inverse_is_the_logit_preprocessing_and_forward_its_inverse(alpha):
    x = jax.random.uniform(jax.random.PRNGKey(0), (50,), minval=0.01, maxval=0.99)
    b = ScaledSigmoid(alpha)
    y, ld = b.inverse_and_log_det(x)
    x64 = np.asarray(x, np.float64)
    s = alpha + (1 - 2 * alpha) * x64
    np.testing.assert_allclose(y, np.log(s) - np.log1p(-s), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, np.log(1 - 2 * alpha) - np.log(s) - np.log1p(-s), rtol=1e-5, atol=1e-5)
    x_back, fld = b.forward_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=2e-6)
    grad = jax.vmap(jax.grad(b.forward))(y)  # forward: logit space -> data
    np.testing.assert_allclose(fld, jnp.log(grad), rtol=1e-5, atol=1e-5)


def test_forward_is_finite_for_extreme_inputs():
    x, ld = ScaledSigmoid(0.05).forward_and_log_det(jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4]))
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(ld))
    # sigmoid's range (0, 1), mapped through (s - alpha) / (1 - 2 alpha)
    lo, hi = -0.05 / 0.9, 0.95 / 0.9
    assert lo - 1e-6 <= float(x.min()) and float(x.max()) <= hi + 1e-6


def test_alpha_checks():
    assert ScaledSigmoid(np.float32(0.05)).alpha == pytest.approx(0.05)
    for alpha in (-0.1, 0.5, 1.0, "a", True):
        with pytest.raises(ValueError, match="alpha"):
            ScaledSigmoid(alpha)
