"""MAF and IAF models: log_prob by change of variables, context, solvers, both parameter layouts."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import brute_force_log_prob, perturb

from dgmjax.bijectors import LayerStack
from dgmjax.models import IAF, MAF, RealNVP


@pytest.mark.parametrize("cls", [MAF, IAF])
@pytest.mark.parametrize("actnorm", [False, True])
def test_log_prob_by_change_of_variables(cls, actnorm):
    d = 6
    model = cls(event_size=d, num_layers=3, hidden_sizes=(16,), actnorm=actnorm, permutation="random")
    x = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (32, d)) + 1.0
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    if actnorm:  # data-dependent init: the data side of every layer sees normalized inputs
        z = model.bind(params).bijector().inverse(x)
        np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
    params = perturb(params, 2)
    lp = jax.jit(model.apply)(params, x[:3])
    np.testing.assert_allclose(lp[:3], brute_force_log_prob(lambda: model.bind(params).bijector(), x[:3]),
        atol=2e-3, rtol=1e-5)
    s, slp = jax.jit(lambda p, k: model.apply(p, k, 5, method=model.sample_and_log_prob))(
        params, jax.random.PRNGKey(3))
    np.testing.assert_allclose(jax.jit(model.apply)(params, s), slp, atol=2e-3, rtol=1e-5)


def test_conditional_maf_and_bad_context():
    model = MAF(event_size=3, num_layers=2, hidden_sizes=(8,), context_size=2)
    x, c = jnp.ones((4, 3)), jnp.ones((4, 2))
    params = perturb(model.init(jax.random.PRNGKey(0), x, c), 1)
    assert not np.allclose(model.apply(params, x, c), model.apply(params, x, -c))
    assert model.apply(params, jax.random.PRNGKey(0), 4, c, method=model.sample).shape == (4, 3)
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
    with pytest.raises(ValueError, match="solver"):
        MAF(event_size=3, solver="magic").init(jax.random.PRNGKey(0), x)


def test_maf_sampling_solvers_agree():
    model = MAF(event_size=8, num_layers=3, hidden_sizes=(16,))
    params = perturb(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8))), 4, 0.2)
    run = jax.jit(lambda p, k, m: model.apply(p, k, 32, solver=m, method=model.sample_with_iterations),
                  static_argnums=2)
    x_seq, it_seq = run(params, jax.random.PRNGKey(1), "sequential")
    x_fp, it_fp = run(params, jax.random.PRNGKey(1), "fixed_point")
    np.testing.assert_allclose(x_fp, x_seq, atol=1e-4)
    np.testing.assert_array_equal(it_seq, 8)
    assert np.all(np.asarray(it_fp) <= 8)
    plain = jax.jit(lambda p, k: model.apply(p, k, 32, method=model.sample))(params, jax.random.PRNGKey(1))
    np.testing.assert_allclose(plain, x_seq, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [
    (MAF, dict(actnorm=True, permutation="random", context_size=3)),
    (IAF, dict(permutation="reversed")),
    (RealNVP, dict(coupling="split", permutation="random")),
])
def test_scan_layers_false_is_the_same_flow(cls, kwargs):
    """scan_layers=False (per-layer params, unrolled) gives the scanned flow's numbers."""
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    ctx = jax.random.normal(jax.random.PRNGKey(1), (6, 3)) if kwargs.get("context_size") else None
    scanned = cls(event_size=5, num_layers=3, hidden_sizes=(16,), **kwargs)
    unrolled = cls(event_size=5, num_layers=3, hidden_sizes=(16,), scan_layers=False, **kwargs)
    p_scan = scanned.init(jax.random.PRNGKey(2), x, ctx)
    p_loop = unrolled.init(jax.random.PRNGKey(2), x, ctx)
    per_layer = p_loop["params"]["conditioners"]
    assert isinstance(per_layer, list) and len(per_layer) == 3
    chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda *a: jnp.stack(a), *per_layer),
                                p_scan["params"]["conditioners"])
    # The same (perturbed) parameters in the other layout give the same log-density and samples.
    p_scan = perturb(p_scan, 3)
    stacked = p_scan["params"]["conditioners"]
    p_loop = {"params": dict(p_scan["params"], conditioners=[
        jax.tree_util.tree_map(lambda a, i=i: a[i], stacked) for i in range(3)])}
    assert isinstance(unrolled.bind(p_loop).bijector(ctx), LayerStack)
    np.testing.assert_allclose(unrolled.apply(p_loop, x, ctx), scanned.apply(p_scan, x, ctx),
                               rtol=1e-5, atol=1e-4)
    key = jax.random.PRNGKey(4)
    c1 = None if ctx is None else ctx[0]
    if cls is MAF:  # samples and the fixed-point passes per layer
        args, kw = (key, 4, c1), {"solver": "fixed_point"}
        x_loop, it_loop = unrolled.apply(p_loop, *args, **kw, method=unrolled.sample_with_iterations)
        x_scan, it_scan = scanned.apply(p_scan, *args, **kw, method=scanned.sample_with_iterations)
        np.testing.assert_array_equal(it_loop, it_scan)
    else:
        x_loop = unrolled.apply(p_loop, key, 4, c1, method=unrolled.sample)
        x_scan = scanned.apply(p_scan, key, 4, c1, method=scanned.sample)
    np.testing.assert_allclose(x_loop, x_scan, atol=1e-4)


@pytest.mark.parametrize("kwargs", [dict(), dict(actnorm=True, context_size=2, remat=True)],
                         ids=["plain", "actnorm_context_remat"])
def test_iaf_trains_through_the_fixed_point_solver(kwargs):
    """IAF's density runs the sequential direction; with solver="fixed_point" its gradient comes
    from the implicit function theorem and equals the sequential solver's (tolerance 0: both
    solves converged, so they agree to float32 round-off)."""
    d = 6
    x = 1.5 * jax.random.normal(jax.random.PRNGKey(0), (16, d))
    ctx = jax.random.normal(jax.random.PRNGKey(5), (16, 2)) if kwargs.get("context_size") else None
    make = lambda solver: IAF(event_size=d, num_layers=3, hidden_sizes=(16,), permutation="random",
                              solver=solver, tolerance=0.0, **kwargs)
    params = perturb(make("sequential").init(jax.random.PRNGKey(1), x, ctx), 2)

    def value_and_grad(solver):
        model = make(solver)
        return jax.jit(jax.value_and_grad(lambda p: -jnp.mean(model.apply(p, x, ctx))))(params)

    (loss_seq, g_seq), (loss_fp, g_fp) = value_and_grad("sequential"), value_and_grad("fixed_point")
    np.testing.assert_allclose(loss_fp, loss_seq, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(g_seq), jax.tree_util.tree_leaves(g_fp), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(jnp.abs(a).max()))


def test_fixed_point_reports_a_non_finite_example_and_solves_the_others():
    """IAF density and MAF sampling (the bijector's forward) with solver="fixed_point": an example
    with a NaN or inf gets NaN, every other one the sequential solver's value."""
    d = 5
    x = jax.random.normal(jax.random.PRNGKey(0), (6, d))
    bad = x.at[1, 2].set(jnp.nan).at[4, 4].set(-jnp.inf)
    good = np.array([i not in (1, 4) for i in range(6)])
    for cls in (IAF, MAF):
        make = lambda solver, cls=cls: cls(event_size=d, num_layers=2, hidden_sizes=(16,), solver=solver,
                                           tolerance=0.0)
        params = perturb(make("sequential").init(jax.random.PRNGKey(1), x), 2)
        if cls is IAF:
            out_seq = make("sequential").apply(params, x)
            out_fp = jax.jit(make("fixed_point").apply)(params, bad)
        else:
            forward = lambda solver, v: make(solver).bind(params).bijector().forward(v)
            out_seq, out_fp = forward("sequential", x), jax.jit(lambda v: forward("fixed_point", v))(bad)
        np.testing.assert_allclose(out_fp[good], out_seq[good], rtol=1e-5, atol=1e-5)
        assert np.all(np.isnan(out_fp[~good]))
