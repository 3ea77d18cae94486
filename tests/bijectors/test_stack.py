"""LayerStack: the same chain scanned or unrolled, equal to distrax.Chain, with remat and constants."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.bijectors import LayerStack, Permute, affine_coupling, alternating_mask


def _parts(num=5, d=6):
    keys = jax.random.split(jax.random.PRNGKey(7), num)
    weights = jax.vmap(lambda k: 0.8 * jax.random.normal(k, (d, 2 * d)) / np.sqrt(d))(keys)
    masks = np.stack([alternating_mask(d, i % 2) for i in range(num)])
    perms = np.stack([np.random.default_rng(i).permutation(d) for i in range(num)])

    def layer(w, c):
        cond = lambda xm: jnp.tanh(xm @ w + 0.2).reshape(xm.shape + (2,))
        return distrax.Chain([Permute(c["perm"]), affine_coupling(c["mask"], cond)])

    return layer, weights, {"mask": masks, "perm": perms}


def test_scanned_and_unrolled_stacks_equal_the_chain():
    layer, weights, consts = _parts()
    num = weights.shape[0]
    layers = [layer(weights[i], {k: c[i] for k, c in consts.items()}) for i in range(num)]
    chain = distrax.Chain(layers[::-1])  # Chain applies its last element first
    scanned = LayerStack(layer, weights, 1, constants=consts)
    unrolled = LayerStack(layer, [weights[i] for i in range(num)], 1, constants=consts)
    assert not scanned.unrolled and unrolled.unrolled and scanned.num_layers == num
    x = jax.random.normal(jax.random.PRNGKey(8), (3, 6))
    for stack in (scanned, unrolled):
        for got, want in ((stack.forward_and_log_det(x), chain.forward_and_log_det(x)),
                          (stack.inverse_and_log_det(x), chain.inverse_and_log_det(x))):
            np.testing.assert_allclose(got[0], want[0], atol=1e-6)
            np.testing.assert_allclose(got[1], want[1], atol=1e-5)
        np.testing.assert_allclose(stack.layer(2).forward(x), layers[2].forward(x))


def test_remat_gives_the_same_values_and_gradients():
    layer, weights, consts = _parts()
    x = jax.random.normal(jax.random.PRNGKey(9), (6,))

    def loss(w, remat):
        return LayerStack(layer, w, 1, constants=consts, remat=remat).forward(x).sum()

    np.testing.assert_allclose(loss(weights, True), loss(weights, False), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(loss)(weights, True), jax.grad(loss)(weights, False),
                               rtol=1e-5, atol=1e-6)


def test_shared_constants_stay_compile_time_constants():
    """A constant equal across layers is not scanned over: a shared reversal stays a flip."""
    d, num = 6, 3
    rev = np.tile(np.arange(d)[::-1], (num, 1))
    stack = LayerStack(lambda w, c: Permute(c["perm"]), jnp.zeros((num, 1)), 1, constants={"perm": rev})
    x = jax.random.normal(jax.random.PRNGKey(0), (2, d))
    np.testing.assert_array_equal(stack.forward(x), x[:, ::-1])  # three reversals
    jaxpr = str(jax.make_jaxpr(stack.forward)(x))
    assert "rev" in jaxpr and "gather" not in jaxpr


def test_scan_over_layers_walks_in_layer_order():
    layer, weights, consts = _parts(num=4)
    for params in (weights, [weights[i] for i in range(4)]):
        stack = LayerStack(layer, params, 1, constants=consts)
        _, up = stack.scan(lambda c, p, k: (c + 1, c), 0)
        _, down = stack.scan(lambda c, p, k: (c + 1, c), 0, reverse=True)
        np.testing.assert_array_equal(up, [0, 1, 2, 3])
        np.testing.assert_array_equal(down, [3, 2, 1, 0])


def test_bad_params():
    ident = lambda p, c: distrax.Lambda(lambda x: x)
    with pytest.raises(ValueError, match="leading"):
        LayerStack(ident, {"a": jnp.zeros((3, 2)), "b": jnp.zeros((4,))}, 1)
    with pytest.raises(ValueError, match="leading"):
        LayerStack(ident, {}, 1)
    with pytest.raises(ValueError, match="at least one layer"):
        LayerStack(ident, [], 1)
    with pytest.raises(ValueError, match="one row per layer"):
        LayerStack(ident, jnp.zeros((3, 2)), 1, constants={"m": np.zeros((2, 4))})
