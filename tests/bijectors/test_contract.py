"""The contract every dgmjax bijector keeps, checked on each of them.

- round trip: inverse(forward(z)) = z and forward(inverse(x)) = x;
- log-det: forward's equals log|det| of the autodiff Jacobian (slogdet of
  jacfwd on one example), and inverse's is its negative at the matching point;
- jit and vmap give the eager results.

The Jacobians are taken in full float32 (`default_matmul_precision`), so the
tolerances mean the same on every backend.
"""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import jac_logdet, random_conditioner

from dgmjax.bijectors import (
    ActNorm,
    DepthToSpace,
    FactorOut,
    InverseAutoregressive,
    Invertible1x1Conv,
    LayerStack,
    MaskedAutoregressive,
    Permute,
    Planar,
    Scale,
    ScaledSigmoid,
    affine_coupling,
    affine_split_coupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    multiscale_flow,
    sigmoid_scale,
)
from dgmjax.nn import MADE


def _made_conditioner(d, key=0):
    made = MADE(d, (16,), order="random")
    params = made.init(jax.random.PRNGKey(key), jnp.zeros((1, d)))
    params = jax.tree_util.tree_map(
        lambda a: a + 0.3 * jax.random.normal(jax.random.PRNGKey(key + 1), a.shape) / np.sqrt(a.shape[-1]),
        params)
    return lambda x: made.apply(params, x)


def _stack(unrolled):
    d, num = 6, 3
    keys = jax.random.split(jax.random.PRNGKey(7), num)
    weights = jax.vmap(lambda k: 0.8 * jax.random.normal(k, (d, 2 * d)) / np.sqrt(d))(keys)
    params = [weights[i] for i in range(num)] if unrolled else weights
    masks = np.stack([alternating_mask(d, i % 2) for i in range(num)])

    def layer(w, c):
        return affine_coupling(c["mask"], lambda xm: jnp.tanh(xm @ w + 0.2).reshape(xm.shape + (2,)))

    return LayerStack(layer, params, 1, constants={"mask": masks})


def _multiscale():
    cb = lambda shape, parity, key: affine_coupling(
        checkerboard_mask(shape, parity), random_conditioner(jax.random.PRNGKey(key), shape, 2.0))
    ch = lambda shape, key: affine_coupling(
        channel_mask(shape, 0), random_conditioner(jax.random.PRNGKey(key), shape, 2.0))
    return multiscale_flow((4, 4, 1), [Scale(cb((4, 4, 1), 0, 1), True, ch((2, 2, 4), 2)),
                                       Scale(cb((2, 2, 2), 1, 3), False)])


def _conv():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    return Invertible1x1Conv(jax.random.permutation(k1, 3), 0.5 * jax.random.normal(k2, (3, 3)),
                             0.5 * jax.random.normal(k3, (3, 3)), 0.3 * jax.random.normal(k4, (3,)))


def _planar():
    k1, k2 = jax.random.split(jax.random.PRNGKey(4))
    return Planar(jax.random.normal(k1, (5,)), jax.random.normal(k2, (5,)), jnp.asarray(0.3))


# name -> (bijector factory, event shape, where forward's inputs live: "normal" or "unit")
CASES = {
    "scaled_sigmoid": (lambda: distrax.Block(ScaledSigmoid(0.05), 1), (5,), "normal"),
    "coupling_vector_tanh": (lambda: affine_coupling(
        alternating_mask(7, 1), random_conditioner(jax.random.PRNGKey(0), (7,), 3.0)), (7,), "normal"),
    "coupling_vector_sigmoid": (lambda: affine_coupling(
        alternating_mask(7, 0), random_conditioner(jax.random.PRNGKey(0), (7,), 3.0), scale_fn=sigmoid_scale),
        (7,), "normal"),
    "coupling_checkerboard": (lambda: affine_coupling(
        checkerboard_mask((4, 4, 2), 1), random_conditioner(jax.random.PRNGKey(2), (4, 4, 2), 3.0)),
        (4, 4, 2), "normal"),
    "coupling_channel": (lambda: affine_coupling(
        channel_mask((2, 2, 4), 1), random_conditioner(jax.random.PRNGKey(2), (2, 2, 4), 3.0)),
        (2, 2, 4), "normal"),
    "split_coupling": (lambda: affine_split_coupling(
        2, random_conditioner(jax.random.PRNGKey(3), (2, 2, 2), 3.0)), (2, 2, 4), "normal"),
    "masked_autoregressive": (lambda: MaskedAutoregressive(_made_conditioner(5)), (5,), "normal"),
    "masked_autoregressive_fixed_point": (lambda: MaskedAutoregressive(
        _made_conditioner(5), solver="fixed_point", tolerance=0.0), (5,), "normal"),
    "inverse_autoregressive": (lambda: InverseAutoregressive(_made_conditioner(5, 3)), (5,), "normal"),
    "permute_reversal": (lambda: Permute(np.arange(6)[::-1]), (6,), "normal"),
    "permute_random": (lambda: Permute(np.array([3, 0, 5, 1, 4, 2])), (6,), "normal"),
    "actnorm_image": (lambda: ActNorm(jnp.linspace(-1, 1, 3), jnp.linspace(-0.5, 0.7, 3)), (2, 3, 3),
                      "normal"),
    "actnorm_vector": (lambda: ActNorm(jnp.linspace(-1, 1, 4), jnp.linspace(-0.5, 0.7, 4), 1), (4,),
                       "normal"),
    "invertible_1x1_conv": (_conv, (2, 2, 3), "normal"),
    "depth_to_space": (lambda: DepthToSpace(), (2, 3, 8), "normal"),
    "factor_out": (lambda: FactorOut(affine_coupling(
        channel_mask((2, 2, 2), 0), random_conditioner(jax.random.PRNGKey(4), (2, 2, 2), 2.0)), 2),
        (2, 2, 4), "normal"),
    "planar": (_planar, (5,), "normal"),
    "layer_stack_scanned": (lambda: _stack(False), (6,), "normal"),
    "layer_stack_unrolled": (lambda: _stack(True), (6,), "normal"),
    "multiscale_flow": (_multiscale, (4, 4, 1), "normal"),
}


@pytest.fixture(autouse=True)
def _full_precision():
    with jax.default_matmul_precision("float32"):
        yield


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_log_det_jit_and_vmap(name):
    make, event_shape, _ = CASES[name]
    bij = make()
    z = jax.random.normal(jax.random.PRNGKey(11), (3,) + event_shape)
    x, ld = bij.forward_and_log_det(z)
    z_back, ild = bij.inverse_and_log_det(x)
    np.testing.assert_allclose(z_back, z, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ild, -ld, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(bij.forward(bij.inverse(x)), x, atol=1e-4, rtol=1e-4)
    for i in range(2):
        np.testing.assert_allclose(ld[i], jac_logdet(bij.forward, z[i]), atol=2e-3, rtol=1e-5)
        np.testing.assert_allclose(ild[i], jac_logdet(bij.inverse, x[i]), atol=2e-3, rtol=1e-5)
    xj, ldj = jax.jit(lambda v: make().forward_and_log_det(v))(z)
    xv, ldv = jax.vmap(bij.forward_and_log_det)(z)
    zv, ildv = jax.vmap(bij.inverse_and_log_det)(x)
    for got, want in ((xj, x), (ldj, ld), (xv, x), (ldv, ld), (zv, z_back), (ildv, ild)):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
