"""MADE masks, MAF/IAF bijectors and models: autoregressive property, round trips, log-dets, solvers."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_bijectors import jac_logdet

from dgmjax.bijectors import InverseAutoregressive, MaskedAutoregressive, Permute, ScanChain
from dgmjax.models import IAF, MAF, RealNVP
from dgmjax.nn import MADE, made_degrees, made_masks, made_order


def perturbed_made(d, hidden=(24, 24), order="natural", context_size=0, key=0, scale=0.7):
    made = MADE(d, hidden, 2, order, order_seed=3, context_size=context_size)
    args = [jnp.zeros((1, d))] + ([jnp.zeros((1, context_size))] if context_size else [])
    params = made.init(jax.random.PRNGKey(key), *args)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(key + 1), len(leaves))
    params = jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) / np.sqrt(leaf.shape[0])
               for leaf, k in zip(leaves, keys, strict=True)])
    return made, params


# ----------------------------------------------------------------------------- MADE
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
    jac = jax.jacfwd(lambda v: made.apply(params, v))(x)  # (d, 2, d): out d, param p, input i
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
    out = made.apply(params, x, c)
    assert out.shape == (2, 4, 2)
    assert not np.allclose(out, made.apply(params, x, 2 * c))  # the context matters
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


# ----------------------------------------------------------------------------- MAF / IAF bijectors
@pytest.mark.parametrize("d", [1, 5, 20])
@pytest.mark.parametrize("context_size", [0, 3])
def test_maf_round_trip_and_log_dets(d, context_size):
    made, params = perturbed_made(d, order="random", context_size=context_size)
    ctx = jax.random.normal(jax.random.PRNGKey(9), (context_size,)) if context_size else None
    cond = lambda x, c=None: made.apply(params, x, c)
    maf = MaskedAutoregressive(cond, context=ctx, scale_fn="tanh")
    z = jax.random.normal(jax.random.PRNGKey(7), (d,))
    x, ld = jax.jit(maf.forward_and_log_det)(z)
    np.testing.assert_allclose(maf.inverse(x), z, atol=1e-4)
    np.testing.assert_allclose(ld, jac_logdet(jax.jit(maf.forward), z), atol=2e-3)
    _, ild = maf.inverse_and_log_det(x)
    np.testing.assert_allclose(ild, jac_logdet(maf.inverse, x), atol=1e-3)
    np.testing.assert_allclose(ild, -ld, atol=1e-4)
    iaf = InverseAutoregressive(cond, context=ctx)
    y, ld_iaf = iaf.forward_and_log_det(z)
    np.testing.assert_allclose(y, maf.inverse(z), atol=1e-6)  # one pass
    np.testing.assert_allclose(ld_iaf, jac_logdet(iaf.forward, z), atol=1e-3)
    np.testing.assert_allclose(jax.jit(iaf.inverse)(y), z, atol=1e-4)


def test_fixed_point_equals_sequential_and_counts_iterations():
    d = 12
    made, params = perturbed_made(d, order="random", scale=0.4)
    cond = lambda x: made.apply(params, x)
    z = jax.random.normal(jax.random.PRNGKey(2), (16, d))
    seq = MaskedAutoregressive(cond, sampling="sequential")
    fp = MaskedAutoregressive(cond, sampling="fixed_point", tolerance=1e-6)
    x_seq, ld_seq, it_seq = jax.jit(seq.forward_with_iterations)(z)
    x_fp, ld_fp, it_fp = jax.jit(fp.forward_with_iterations)(z)
    assert int(it_seq) == d and 1 <= int(it_fp) <= d
    np.testing.assert_allclose(x_fp, x_seq, atol=1e-5)
    np.testing.assert_allclose(ld_fp, ld_seq, atol=1e-4)
    # a cap of D iterations with tolerance 0 is exactly the sequential solve
    exact = MaskedAutoregressive(cond, sampling="fixed_point", tolerance=0.0)
    x_ex, _, it_ex = exact.forward_with_iterations(z)
    assert int(it_ex) <= d
    np.testing.assert_allclose(x_ex, x_seq, atol=1e-6)
    # a cap of one iteration stops early and is much further from the solution
    short = MaskedAutoregressive(cond, sampling="fixed_point", tolerance=0.0, max_iterations=1)
    x_short, _, it_short = short.forward_with_iterations(z)
    assert int(it_short) == 1
    converged_error = float(jnp.abs(x_fp - x_seq).max())
    assert float(jnp.abs(x_short - x_seq).max()) > 100 * max(converged_error, 1e-7)


def test_sequential_forward_is_differentiable():
    made, params = perturbed_made(4)
    maf = lambda p: MaskedAutoregressive(lambda x: made.apply(p, x))
    z = jnp.linspace(-1, 1, 4)
    g = jax.grad(lambda p: maf(p).forward(z).sum())(params)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(g))


def test_autoregressive_bad_inputs():
    cond = lambda x: jnp.zeros(x.shape + (2,))
    with pytest.raises(ValueError, match="sampling"):
        MaskedAutoregressive(cond, sampling="newton")
    with pytest.raises(ValueError, match="scale_fn"):
        MaskedAutoregressive(cond, scale_fn="exp")
    bad = MaskedAutoregressive(lambda x: jnp.zeros(x.shape + (3,)))
    with pytest.raises(ValueError, match="conditioner"):
        bad.inverse(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="floating"):
        MaskedAutoregressive(cond).inverse(jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match="permutation"):
        Permute(jnp.array([0, 2, 2]))
    with pytest.raises(ValueError, match="last axis"):
        Permute(jnp.array([1, 0, 2])).forward(jnp.zeros((2, 4)))


def test_permute_round_trip():
    p = Permute(jnp.array([2, 0, 3, 1]))
    x = jnp.arange(8.0).reshape(2, 4)
    y, ld = p.forward_and_log_det(x)
    np.testing.assert_array_equal(y, x[:, [2, 0, 3, 1]])
    np.testing.assert_array_equal(p.inverse(y), x)
    np.testing.assert_array_equal(ld, 0.0)


def test_permute_reversal_is_a_flip_with_the_gathers_values_and_gradients():
    """A concrete reversal runs as lax.rev (no gather, and no scatter-add in its gradient)
    and gives exactly what indexing with the permutation gives."""
    d = 6
    rev = Permute(np.arange(d)[::-1])
    x = jax.random.normal(jax.random.PRNGKey(0), (3, d))
    np.testing.assert_array_equal(rev.forward(x), x[:, ::-1])
    np.testing.assert_array_equal(rev.inverse(x), x[:, ::-1])
    w = jnp.arange(1.0, d + 1)
    loss = lambda b, x: jnp.sum(jnp.sin(b.forward(x)) * w) + jnp.sum(jnp.cos(b.inverse(x)) * w)
    gathered = Permute(jnp.asarray(np.arange(d)[::-1]))  # concrete too: also takes the flip
    indexed = lambda x: jnp.sum(jnp.sin(x[:, ::-1]) * w) + jnp.sum(jnp.cos(x[:, ::-1]) * w)
    np.testing.assert_allclose(jax.grad(lambda x: loss(rev, x))(x), jax.grad(indexed)(x), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda x: loss(gathered, x))(x), jax.grad(indexed)(x), rtol=1e-6)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda x: loss(rev, x)))(x))
    assert "rev" in jaxpr and "gather" not in jaxpr and "scatter" not in jaxpr
    # a traced reversal (a ScanChain row) still gathers, with the same values
    np.testing.assert_array_equal(jax.jit(lambda p, x: Permute(p).forward(x))(np.arange(d)[::-1], x),
                                  x[:, ::-1])


def test_permute_traced_with_and_without_given_inverse():
    perm = np.array([3, 1, 0, 4, 2])
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))

    @jax.jit
    def both(perm, inv, x):  # perm and inv traced, as rows of a ScanChain's parameters are
        given, derived = Permute(perm, inv), Permute(perm)
        return given.forward(x), given.inverse(x), derived.inverse(x)

    fwd, inv_given, inv_derived = both(jnp.asarray(perm), jnp.asarray(np.argsort(perm)), x)
    np.testing.assert_array_equal(fwd, x[:, perm])
    np.testing.assert_array_equal(inv_given, x[:, np.argsort(perm)])
    np.testing.assert_array_equal(inv_derived, inv_given)
    with pytest.raises(ValueError, match="inverse_permutation"):
        Permute(perm, np.arange(4))


# ----------------------------------------------------------------------------- models
def _perturb_model(params, key, scale=0.3):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(key), len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) / np.sqrt(max(leaf.shape[-1], 1))
               for leaf, k in zip(leaves, keys, strict=True)])


@pytest.mark.parametrize("cls", [MAF, IAF])
@pytest.mark.parametrize("actnorm", [False, True])
def test_flow_models_log_prob_by_change_of_variables(cls, actnorm):
    d = 6
    model = cls(event_size=d, num_layers=3, hidden_sizes=(16,), actnorm=actnorm, permutation="random")
    x = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (32, d)) + 1.0
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    if actnorm:  # data-dependent init: the data side of every layer sees normalized inputs
        z = model.bind(params).bijector().inverse(x)
        np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
    params = _perturb_model(params, 2)
    lp = jax.jit(model.apply)(params, x[:3])

    def brute(v):
        bij = model.bind(params).bijector()
        jac = jax.jacfwd(bij.inverse)(v)
        return jnp.sum(jax.scipy.stats.norm.logpdf(bij.inverse(v))) + jnp.linalg.slogdet(jac)[1]

    np.testing.assert_allclose(lp, jax.jit(jax.vmap(brute))(x[:3]), atol=2e-3, rtol=1e-5)
    s, slp = jax.jit(lambda p, k: model.apply(p, k, 5, method=model.sample_and_log_prob))(
        params, jax.random.PRNGKey(3))
    np.testing.assert_allclose(jax.jit(model.apply)(params, s), slp, atol=2e-3, rtol=1e-5)


def test_conditional_maf_and_bad_context():
    model = MAF(event_size=3, num_layers=2, hidden_sizes=(8,), context_size=2)
    x, c = jnp.ones((4, 3)), jnp.ones((4, 2))
    params = model.init(jax.random.PRNGKey(0), x, c)
    params = _perturb_model(params, 1)
    assert not np.allclose(model.apply(params, x, c), model.apply(params, x, -c))
    s = model.apply(params, jax.random.PRNGKey(0), 4, c, method=model.sample)
    assert s.shape == (4, 3)
    with pytest.raises(ValueError, match="conditional"):
        model.apply(params, x)
    with pytest.raises(ValueError, match="last axis 2"):
        model.apply(params, x, jnp.ones((4, 5)))
    plain = MAF(event_size=3, num_layers=2, hidden_sizes=(8,))
    p2 = plain.init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="unconditional"):
        plain.apply(p2, x, c)
    with pytest.raises(ValueError, match="trailing shape"):
        plain.apply(p2, jnp.ones((4, 5)))
    with pytest.raises(ValueError, match="sampling"):
        MAF(event_size=3, sampling="magic").init(jax.random.PRNGKey(0), x)


def test_maf_sampling_solvers_agree():
    model = MAF(event_size=8, num_layers=3, hidden_sizes=(16,))
    params = _perturb_model(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8))), 4, 0.2)
    run = jax.jit(lambda p, k, m: model.apply(p, k, 32, m, method=model.sample_with_iterations),
                  static_argnums=2)
    x_seq, it_seq = run(params, jax.random.PRNGKey(1), "sequential")
    x_fp, it_fp = run(params, jax.random.PRNGKey(1), "fixed_point")
    np.testing.assert_allclose(x_fp, x_seq, atol=1e-4)
    np.testing.assert_array_equal(it_seq, 8)
    assert np.all(np.asarray(it_fp) <= 8)
    plain = jax.jit(lambda p, k: model.apply(p, k, 32, method=model.sample))(params, jax.random.PRNGKey(1))
    np.testing.assert_allclose(plain, x_seq, atol=1e-5)


def test_scanned_maf_equals_unrolled_layers():
    model = MAF(event_size=5, num_layers=4, hidden_sizes=(16,))
    params = _perturb_model(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 5))), 6)
    bound = model.bind(params)
    scanned = bound.bijector()
    assert isinstance(scanned, ScanChain)
    unrolled = distrax.Chain([scanned.layer(i) for i in range(4)][::-1])
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 5))
    z1, ld1 = scanned.inverse_and_log_det(x)
    z2, ld2 = unrolled.inverse_and_log_det(x)
    np.testing.assert_allclose(z1, z2, atol=1e-5)
    np.testing.assert_allclose(ld1, ld2, atol=1e-4)


@pytest.mark.parametrize("cls,kwargs", [
    (MAF, dict(actnorm=True, permutation="random", context_size=3)),
    (IAF, dict(permutation="reversed")),
    (RealNVP, dict(coupling="split", permutation="random")),
])
def test_scan_layers_false_is_the_same_flow(cls, kwargs):
    """scan_layers=False (per-layer params, Python loop) gives the scanned flow's numbers."""
    from dgmjax.nn import stack_layers, unstack_layers

    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    ctx = jax.random.normal(jax.random.PRNGKey(1), (6, 3)) if kwargs.get("context_size") else None
    scanned = cls(event_size=5, num_layers=3, hidden_sizes=(16,), **kwargs)
    looped = cls(event_size=5, num_layers=3, hidden_sizes=(16,), scan_layers=False, **kwargs)
    p_scan = scanned.init(jax.random.PRNGKey(2), x, ctx)
    p_loop = looped.init(jax.random.PRNGKey(2), x, ctx)
    stacked = stack_layers(p_loop["params"]["conditioners"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, stacked, p_scan["params"]["conditioners"])
    # Same parameters in the other layout (perturbed so every layer matters), same log-density.
    p_scan = _perturb_model(p_scan, 3)
    p_loop = {"params": dict(p_scan["params"],
                             conditioners=unstack_layers(p_scan["params"]["conditioners"]))}
    np.testing.assert_allclose(looped.apply(p_loop, x, ctx), scanned.apply(p_scan, x, ctx),
                               rtol=1e-5, atol=1e-4)
    key = jax.random.PRNGKey(4)
    c1 = None if ctx is None else ctx[0]
    if cls is MAF:  # samples and the fixed-point passes per layer
        x_loop, it_loop = looped.apply(p_loop, key, 4, "fixed_point", c1,
                                       method=looped.sample_with_iterations)
        x_scan, it_scan = scanned.apply(p_scan, key, 4, "fixed_point", c1,
                                        method=scanned.sample_with_iterations)
        np.testing.assert_array_equal(it_loop, it_scan)
    else:
        x_loop = looped.apply(p_loop, key, 4, c1, method=looped.sample)
        x_scan = scanned.apply(p_scan, key, 4, c1, method=scanned.sample)
    np.testing.assert_allclose(x_loop, x_scan, atol=1e-4)
