"""Glow's flow-step pieces: ActNorm's data-dependent init and the LU 1x1 convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.bijectors import ActNorm, Invertible1x1Conv, actnorm_init


def test_actnorm_data_dependent_init_normalizes():
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(0), (64, 4, 4, 3)) + jnp.array([1.0, -2.0, 5.0])
    an = ActNorm(*actnorm_init(x))
    z = an.inverse(x)
    np.testing.assert_allclose(z.mean((0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std((0, 1, 2)), 1.0, atol=1e-4)
    np.testing.assert_allclose(an.forward(z), x, atol=1e-4)
    with pytest.raises(ValueError, match="last of size"):
        an.forward(jnp.zeros((2, 4, 4, 4)))


def test_invertible_1x1_conv_is_a_channel_matrix_with_the_lu_log_det():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    conv = Invertible1x1Conv(jax.random.permutation(k1, 4), 0.5 * jax.random.normal(k2, (4, 4)),
                             0.5 * jax.random.normal(k3, (4, 4)), 0.3 * jax.random.normal(k4, (4,)))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 4))
    with jax.default_matmul_precision("float32"):
        y, ld = conv.forward_and_log_det(x)
        # log|det| is H W log|det W|, against slogdet of the dense channel matrix
        np.testing.assert_allclose(ld[0], 9 * jnp.linalg.slogdet(conv.matrix())[1], atol=1e-4)
        np.testing.assert_allclose(conv.inverse_matrix() @ conv.matrix(), jnp.eye(4), atol=1e-5)
        # per pixel it is x W^T: the channel mixing of a 1x1 convolution
        np.testing.assert_allclose(y[1, 2, 0], conv.matrix() @ x[1, 2, 0], atol=1e-5)


def test_invertible_1x1_conv_starts_orthogonal():
    perm = jnp.array([2, 0, 1])
    conv = Invertible1x1Conv(perm, jnp.zeros((3, 3)), jnp.zeros((3, 3)), jnp.zeros(3))
    np.testing.assert_allclose(conv.matrix() @ conv.matrix().T, jnp.eye(3), atol=1e-6)
    with pytest.raises(ValueError, match="permutation"):
        Invertible1x1Conv(perm, jnp.zeros((3, 3)), jnp.zeros((2, 2)), jnp.zeros(3))
