"""Glow pieces: ActNorm (data-dependent init), LU 1x1 convolution, split coupling, the Glow model."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_bijectors import jac_logdet, random_conditioner

from dgmjax.bijectors import ActNorm, Invertible1x1Conv, actnorm_init, affine_split_coupling
from dgmjax.models import Glow


def test_actnorm_data_dependent_init_normalizes():
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(0), (64, 4, 4, 3)) + jnp.array([1.0, -2.0, 5.0])
    an = ActNorm(*actnorm_init(x))
    z = an.inverse(x)
    np.testing.assert_allclose(z.mean((0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std((0, 1, 2)), 1.0, atol=1e-4)
    np.testing.assert_allclose(an.forward(z), x, atol=1e-4)


@pytest.mark.parametrize("event_ndims, shape", [(3, (2, 3, 2)), (1, (5,))])
def test_actnorm_log_det(event_ndims, shape):
    c = shape[-1]
    an = ActNorm(jnp.linspace(-1, 1, c), jnp.linspace(-0.5, 0.7, c), event_ndims)
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    _, ld = an.forward_and_log_det(x)
    np.testing.assert_allclose(ld, jac_logdet(an.forward, x), atol=1e-5)
    with pytest.raises(ValueError, match="last of size"):
        an.forward(jnp.zeros(shape[:-1] + (c + 1,)))


def _random_conv(key, c):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return Invertible1x1Conv(jax.random.permutation(k1, c), 0.5 * jax.random.normal(k2, (c, c)),
                             0.5 * jax.random.normal(k3, (c, c)), 0.3 * jax.random.normal(k4, (c,)))


def test_invertible_1x1_conv_log_det_and_round_trip():
    conv = _random_conv(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 4))
    y, ld = conv.forward_and_log_det(x)
    np.testing.assert_allclose(conv.inverse(y), x, atol=1e-5)
    np.testing.assert_allclose(ld[0], jac_logdet(conv.forward, x[0]), atol=1e-4)
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


def test_split_coupling_round_trip_and_log_det():
    shape = (2, 2, 4)
    base_cond = random_conditioner(jax.random.PRNGKey(3), (2, 2, 2), 3.0)
    coupling = affine_split_coupling(2, base_cond)
    x = jax.random.normal(jax.random.PRNGKey(4), (3,) + shape)
    y, ld = coupling.forward_and_log_det(x)
    np.testing.assert_array_equal(y[..., :2], x[..., :2])
    np.testing.assert_allclose(coupling.inverse(y), x, atol=1e-5)
    np.testing.assert_allclose(ld[2], jac_logdet(coupling.forward, x[2]), atol=1e-4)
    bad = affine_split_coupling(2, lambda k: jnp.zeros(k.shape + (3,)))
    with pytest.raises(ValueError, match="conditioner"):
        bad.forward(x)


@pytest.fixture(scope="module")
def glow_and_params():
    model = Glow(image_shape=(4, 4, 1), num_scales=2, num_steps=2, features=8)
    x = jax.random.uniform(jax.random.PRNGKey(0), (16, 4, 4, 1))
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    return model, params, x


def test_glow_data_dependent_init(glow_and_params):
    model, params, x = glow_and_params
    # the data side of the first scale's first-applied step normalizes the squeezed data
    an = params["params"]["actnorm_0"]
    from dgmjax.bijectors import Squeeze

    squeezed = Squeeze().forward(x)
    np.testing.assert_allclose(an["loc"][-1], squeezed.mean((0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(jnp.exp(an["log_scale"][-1]), squeezed.std((0, 1, 2)), rtol=1e-4)
    assert not np.allclose(an["loc"][0], 0.0)  # every step got data-dependent values


def test_glow_log_prob_by_change_of_variables(glow_and_params):
    model, params, x = glow_and_params
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(5), len(leaves))
    params = jax.tree_util.tree_unflatten(
        tree, [leaf + 0.2 * jax.random.normal(k, leaf.shape) / np.sqrt(max(leaf.shape[-1], 1))
               for leaf, k in zip(leaves, keys, strict=True)])

    @jax.jit
    def brute(v):
        bij = model.bind(params).bijector()
        flat = lambda u: bij.inverse(u.reshape(v.shape)).reshape(-1)
        jac = jax.jacfwd(flat)(v.reshape(-1))
        return jnp.sum(jax.scipy.stats.norm.logpdf(flat(v.reshape(-1)))) + jnp.linalg.slogdet(jac)[1]

    lp = jax.jit(model.apply)(params, x[:2])
    for i in range(2):
        np.testing.assert_allclose(lp[i], brute(x[i]), atol=2e-3, rtol=1e-5)
    round_trip = jax.jit(lambda p, v: (lambda b: b.forward(b.inverse(v)))(model.bind(p).bijector()))
    np.testing.assert_allclose(round_trip(params, x), x, atol=1e-4)
    s = jax.jit(lambda p, k: model.apply(p, k, 3, method=model.sample))(params, jax.random.PRNGKey(2))
    assert s.shape == (3, 4, 4, 1) and np.all(np.isfinite(s))


def test_glow_scanned_steps_equal_unrolled(glow_and_params):
    model, params, x = glow_and_params
    steps = model.bind(params)._steps(0)
    unrolled = distrax.Chain([steps.layer(i) for i in range(steps.num_layers)][::-1])
    from dgmjax.bijectors import Squeeze

    h = Squeeze().forward(x[:3])
    z1, ld1 = steps.inverse_and_log_det(h)
    z2, ld2 = unrolled.inverse_and_log_det(h)
    np.testing.assert_allclose(z1, z2, atol=1e-5)
    np.testing.assert_allclose(ld1, ld2, atol=1e-4)


def test_glow_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        Glow(image_shape=(6, 6, 1), num_scales=2).init(jax.random.PRNGKey(0), jnp.zeros((1, 6, 6, 1)))
