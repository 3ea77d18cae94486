"""MADE: masks and path counts, the autoregressive Jacobian, integer inputs (one-hot, embedding),
the output bias, context and bad inputs."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.nn import MADE, made_degrees, made_masks, made_order


def _perturb(params, seed, scale=0.7):
    """Every parameter moved by normal noise of std scale / sqrt(first axis), drawn by numpy (no
    compile, no dependence on jax's random stream); the zero-initialized output layer included."""
    g = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda a: np.asarray(a) + (scale * g.standard_normal(a.shape) / np.sqrt(max(a.shape[0], 1))
                                   ).astype(a.dtype), params)


def perturbed_made(d, hidden=(24, 24), order="natural", context_size=0, key=0, scale=0.7):
    made = MADE(d, hidden, 2, order, order_seed=3, context_size=context_size)
    args = [jnp.zeros((1, d))] + ([jnp.zeros((1, context_size))] if context_size else [])
    params = jax.jit(made.init)(jax.random.PRNGKey(key), *args)
    return made, _perturb(params, key + 1, scale)


def positions(order, d, seed=3):
    """position[i]: where variable i comes in the order."""
    perm = made_order(order, d, seed)
    position = np.empty(d, int)
    position[perm] = np.arange(d)
    return position


# ----------------------------------------------------------------------------- masks (real inputs)
@pytest.mark.parametrize("order", ["natural", "reversed", "random", [2, 0, 4, 1, 3, 5, 6]])
@pytest.mark.parametrize("hidden", [(32,), (5, 3), (64, 64, 16)])
def test_made_path_counts_respect_the_order(order, hidden):
    d = 7
    perm = made_order(order, d, seed=3)
    masks = made_masks(d, hidden, perm, num_params=2)
    paths = masks[0]
    for m in masks[1:]:
        paths = paths @ m  # paths[i, (j, p)]: number of paths from input i to output j
    paths = paths.reshape(d, d, 2)
    position = np.empty(d, int)
    position[perm] = np.arange(d)
    wide = min(hidden) >= d - 1  # every degree present: every allowed dependency has a path
    for i in range(d):
        for j in range(d):
            if position[j] <= position[i]:
                assert paths[i, j].sum() == 0, (i, j)
            elif wide:
                assert paths[i, j].sum() > 0, (i, j)


@pytest.mark.parametrize("hidden", [(1,), (3,), (7, 2), (50, 50)])
def test_made_has_no_dead_units(hidden):
    d = 10
    masks = made_masks(d, hidden, np.arange(d))
    for m in masks[:-1]:
        assert np.all(m.sum(0) > 0)  # every hidden unit has an input
    for i in range(1, len(masks)):
        assert np.all(masks[i].sum(1) > 0)  # every hidden unit feeds something
    degrees = made_degrees(d, hidden, np.arange(d))
    assert all(deg.min() >= 1 and deg.max() <= d - 1 for deg in degrees[1:])


@pytest.mark.parametrize("order", ["natural", "random"])
def test_made_jacobian_is_autoregressive(order):
    d = 6
    made, params = perturbed_made(d, order=order)
    x = jax.random.normal(jax.random.PRNGKey(5), (d,))
    jac = jax.jit(jax.jacfwd(lambda v: made.apply(params, v)))(x)  # (d, 2, d): out d, param p, input i
    perm = made_order(order, d, 3)
    position = np.empty(d, int)
    position[perm] = np.arange(d)
    for j in range(d):
        for i in range(d):
            if position[i] >= position[j]:
                np.testing.assert_array_equal(jac[j, :, i], 0.0)


def test_made_context_and_bad_inputs():
    made, params = perturbed_made(4, context_size=3)
    x, c = jnp.ones((2, 4)), jnp.ones((2, 3))
    apply = jax.jit(made.apply)
    out = apply(params, x, c)
    assert out.shape == (2, 4, 2)
    assert not np.allclose(out, apply(params, x, 2 * c))  # the context matters
    with pytest.raises(ValueError, match="conditional"):
        made.apply(params, x)
    with pytest.raises(ValueError, match="context"):
        made.apply(params, x, jnp.ones((2, 5)))
    plain, p2 = perturbed_made(4)
    with pytest.raises(ValueError, match="unconditional"):
        plain.apply(p2, x, c)
    with pytest.raises(ValueError, match="event_size"):
        plain.apply(p2, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="permutation"):
        made_order([0, 0, 1, 2], 4)
    with pytest.raises(ValueError, match="order"):
        made_order("sideways", 4)


# ----------------------------------------------------------------------------- integer inputs
@pytest.mark.parametrize("encoding", ["one_hot", "embedding"])
@pytest.mark.parametrize("order", ["natural", "random", [3, 0, 4, 2, 1]])
def test_made_with_integer_inputs_is_autoregressive(encoding, order):
    """Changing x_j to any other level changes only the outputs of the variables after j in the
    order (and, the hidden layers holding every degree, each of those for some change)."""
    d, num_levels = 5, 4
    made = MADE(d, (16, 16), 3, order, order_seed=3, input_encoding=encoding, num_levels=num_levels,
                embedding_size=3)
    params = _perturb(jax.jit(made.init)(jax.random.PRNGKey(0), jnp.zeros((1, d), jnp.int32)), 1)
    if encoding == "embedding":
        assert params["params"]["embedding"].shape == (d, num_levels, 3)
    bases = np.random.default_rng(2).integers(0, num_levels, (3, d))
    # every base, every variable j, every other level of x_j: (3, d, L - 1) variants
    variants, which = [], []
    for b, j, level in itertools.product(range(len(bases)), range(d), range(num_levels)):
        if level != bases[b, j]:
            x = bases[b].copy()
            x[j] = level
            variants.append(x)
            which.append((b, j))
    apply = jax.jit(made.apply)
    base_out = np.asarray(apply(params, jnp.asarray(bases, jnp.int32)))  # (3, d, 3)
    out = np.asarray(apply(params, jnp.asarray(np.stack(variants), jnp.int32)))
    position = positions(order, d)
    changed = np.zeros((d, d), bool)  # changed[j, i]: some change of x_j moved output i
    for (b, j), o in zip(which, out, strict=True):
        moved = np.any(o != base_out[b], axis=-1)  # (d,)
        assert not np.any(moved & (position <= position[j])), (j, np.flatnonzero(moved))
        changed[j] |= moved
    for j in range(d):
        np.testing.assert_array_equal(changed[j], position > position[j])


@pytest.mark.parametrize("encoding", ["real", "one_hot", "embedding"])
def test_made_output_bias_sets_the_initial_outputs(encoding):
    d, num_levels, bias = 4, 5, (0.5, -1.0, 2.0)
    dtype = jnp.float32 if encoding == "real" else jnp.int32
    kwargs = dict(input_encoding=encoding, num_levels=None if encoding == "real" else num_levels)
    x = np.random.default_rng(0).integers(0, num_levels, (6, d))
    x = jnp.asarray(x, dtype)
    made = MADE(d, (16,), 3, "random", output_bias=bias, **kwargs)
    params = jax.jit(made.init)(jax.random.PRNGKey(0), x)
    out = jax.jit(made.apply)(params, x)
    # zero_init_output: the output is the tiled bias for any input
    chex.assert_trees_all_equal(out, jnp.broadcast_to(jnp.asarray(bias), (6, d, 3)))
    chex.assert_trees_all_equal(params["params"]["output"]["bias"], jnp.tile(jnp.asarray(bias), d))
    # without it, the first variable in the order (which sees no input) still starts at the bias,
    # and the others do not
    free = MADE(d, (16,), 3, "random", output_bias=bias, zero_init_output=False, **kwargs)
    out = np.asarray(jax.jit(free.apply)(jax.jit(free.init)(jax.random.PRNGKey(0), x), x))
    first = made_order("random", d, 0)[0]
    chex.assert_trees_all_equal(out[:, first], np.broadcast_to(np.asarray(bias, np.float32), (6, 3)))
    assert not np.allclose(np.delete(out, first, axis=1), np.asarray(bias, np.float32))
    # no output bias: zeros
    plain = MADE(d, (16,), 3, **kwargs)
    chex.assert_trees_all_equal(jax.jit(plain.apply)(jax.jit(plain.init)(jax.random.PRNGKey(0), x), x),
                                jnp.zeros((6, d, 3)))


@pytest.mark.parametrize("kwargs, x, match", [
    (dict(output_bias=(1.0, 2.0)), jnp.zeros((2, 4)), "output_bias"),
    (dict(input_encoding="one_hot"), jnp.zeros((2, 4), jnp.int32), "num_levels"),
    (dict(input_encoding="one_hot", num_levels=3), jnp.zeros((2, 4)), "integer dtype"),
    (dict(input_encoding="embedding", num_levels=3), jnp.full((2, 4), 3), r"\[0, 3\)"),
    (dict(input_encoding="embedding", num_levels=3, embedding_size=0), jnp.zeros((2, 4), jnp.int32),
     "embedding_size"),
    (dict(), jnp.zeros((2, 4), jnp.int32), "floating"),
    (dict(input_encoding="binary", num_levels=2), jnp.zeros((2, 4), jnp.int32), "input_encoding"),
])
def test_made_encoding_bad_inputs(kwargs, x, match):
    with pytest.raises(ValueError, match=match):
        MADE(4, (8,), 3, **kwargs).init(jax.random.PRNGKey(0), x)


# ----------------------------------------------------------------------------- conv conditioners
def test_gated_conv_resnet_against_its_definition():
    """ConvResNet(block=GatedResidualBlock, activation=concat_elu) = zero-init
    conv3x3(concat_elu(x + a * sigmoid(b))) after an input conv,
    (a, b) = conv1x1(concat_elu(conv3x3(concat_elu(h)))), written here with lax convolutions."""
    from dgmjax.nn import ConvResNet, GatedResidualBlock, concat_elu

    net = ConvResNet(4, features=6, num_blocks=1, block=GatedResidualBlock, activation=concat_elu)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 3))
    params = _perturb(net.init(jax.random.PRNGKey(1), x), 2)
    p = params["params"]

    def conv(h, q):
        out = jax.lax.conv_general_dilated(h, q["kernel"], (1, 1), "SAME",
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                           precision=jax.lax.Precision.HIGHEST)
        return out + q["bias"]

    def celu(h):
        return jnp.concatenate([jax.nn.elu(h), jax.nn.elu(-h)], -1)

    h = conv(x, p["Conv_0"])
    g = p["GatedResidualBlock_0"]
    a, b = jnp.split(conv(celu(conv(celu(h), g["Conv_0"])), g["Conv_1"]), 2, -1)
    expected = conv(celu(h + a * jax.nn.sigmoid(b)), p["Conv_1"])
    # float32 round-off of four chained convolutions of up to 9 x 12 terms each, outputs of order 1-10
    with jax.default_matmul_precision("float32"):
        np.testing.assert_allclose(net.apply(params, x), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="`block`"):
        ConvResNet(4, features=6, num_blocks=1, block="gated").init(jax.random.PRNGKey(1), x)
    from dgmjax.nn import concat_elu

    with pytest.raises(ValueError, match="`x` must be floating point"):
        concat_elu(jnp.arange(3))
