"""MaskedAutoregressive / InverseAutoregressive solvers, and Permute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import perturb

from dgmjax.bijectors import InverseAutoregressive, MaskedAutoregressive, Permute
from dgmjax.nn import MADE


def perturbed_made(d, order="natural", context_size=0, scale=0.5):
    made = MADE(d, (32,), 2, order, context_size=context_size)
    args = [jnp.zeros((1, d))] + ([jnp.zeros((1, context_size))] if context_size else [])
    return made, perturb(made.init(jax.random.PRNGKey(0), *args), 1, scale)


def test_iaf_is_the_inverse_of_maf_with_one_pass_sampling():
    made, params = perturbed_made(5, order="random", context_size=2)
    ctx = jax.random.normal(jax.random.PRNGKey(9), (2,))
    cond = lambda x, c=None: made.apply(params, x, c)
    maf = MaskedAutoregressive(cond, context=ctx)
    iaf = InverseAutoregressive(cond, context=ctx)
    z = jax.random.normal(jax.random.PRNGKey(7), (4, 5))
    np.testing.assert_allclose(iaf.forward(z), maf.inverse(z), atol=1e-6)  # one pass
    np.testing.assert_allclose(iaf.inverse(z), maf.forward(z), atol=1e-6)


def test_fixed_point_equals_sequential_and_counts_iterations():
    d = 12
    made, params = perturbed_made(d, order="random", scale=0.4)
    cond = lambda x: made.apply(params, x)
    z = jax.random.normal(jax.random.PRNGKey(2), (16, d))
    seq = MaskedAutoregressive(cond, solver="sequential")
    fp = MaskedAutoregressive(cond, solver="fixed_point", tolerance=1e-6)
    x_seq, ld_seq, it_seq = jax.jit(seq.forward_with_iterations)(z)
    x_fp, ld_fp, it_fp = jax.jit(fp.forward_with_iterations)(z)
    assert int(it_seq) == d and 1 <= int(it_fp) <= d
    np.testing.assert_allclose(x_fp, x_seq, atol=1e-5)
    np.testing.assert_allclose(ld_fp, ld_seq, atol=1e-4)
    # a cap of D iterations with tolerance 0 is exactly the sequential solve
    exact = MaskedAutoregressive(cond, solver="fixed_point", tolerance=0.0)
    x_ex, _, it_ex = exact.forward_with_iterations(z)
    assert int(it_ex) <= d
    np.testing.assert_allclose(x_ex, x_seq, atol=1e-6)
    # a cap of one iteration stops early and is much further from the solution
    short = MaskedAutoregressive(cond, solver="fixed_point", tolerance=0.0, max_iterations=1)
    x_short, _, it_short = short.forward_with_iterations(z)
    assert int(it_short) == 1
    converged_error = float(jnp.abs(x_fp - x_seq).max())
    assert float(jnp.abs(x_short - x_seq).max()) > 100 * max(converged_error, 1e-7)


def test_fixed_point_solves_every_finite_row_and_reports_a_non_finite_one():
    """A NaN or inf in one row neither stops the iteration for the others nor holds it up: every
    finite row equals the sequential solve, and the bad rows come back NaN (log-det too). With
    tolerance 0 the iteration runs until nothing moves (exact after at most D iterations), so the
    two solvers agree to float32 round-off."""
    d = 12
    made, params = perturbed_made(d, order="random", scale=0.4)
    cond = lambda x: made.apply(params, x)
    z = jax.random.normal(jax.random.PRNGKey(2), (8, d))
    bad = z.at[2, 5].set(jnp.nan).at[6, 0].set(jnp.inf)
    good = np.array([i not in (2, 6) for i in range(8)])
    x_seq, ld_seq, _ = MaskedAutoregressive(cond).forward_with_iterations(z)
    fp = MaskedAutoregressive(cond, solver="fixed_point", tolerance=0.0)
    x_fp, ld_fp, it_fp = jax.jit(fp.forward_with_iterations)(bad)
    np.testing.assert_allclose(x_fp[good], x_seq[good], atol=1e-6)
    np.testing.assert_allclose(ld_fp[good], ld_seq[good], atol=1e-5)
    assert np.all(np.isnan(x_fp[~good])) and np.all(np.isnan(ld_fp[~good]))
    _, _, it_good = fp.forward_with_iterations(z[good])
    assert int(it_fp) == int(it_good) > 1  # the bad rows changed nothing about when the loop stopped
    # rows that are all bad do not keep the loop going: one iteration, all NaN
    x_nan, _, it_nan = fp.forward_with_iterations(jnp.full((3, d), jnp.nan))
    assert int(it_nan) == 1 and np.all(np.isnan(x_nan))
    # IAF's density runs the same solve: the finite rows' log-densities are the sequential ones
    iaf = lambda solver: InverseAutoregressive(cond, solver=solver, tolerance=0.0)
    z_fp, ild_fp = iaf("fixed_point").inverse_and_log_det(bad)
    z_seq, ild_seq = iaf("sequential").inverse_and_log_det(z)
    np.testing.assert_allclose(z_fp[good], z_seq[good], atol=1e-6)
    np.testing.assert_allclose(ild_fp[good], ild_seq[good], atol=1e-5)
    assert np.all(np.isnan(z_fp[~good])) and np.all(np.isnan(ild_fp[~good]))


def _chain_conditioner(x):
    """shift_d = x_{d-1}, log-scale 0: forward is x = cumsum(z), which the Jacobi iteration
    reaches one entry per iteration (a row z = e_0 needs all D - 1 steps, z = 0 none)."""
    shift = jnp.concatenate([jnp.zeros_like(x[..., :1]), x[..., :-1]], -1)
    return jnp.stack([shift, jnp.zeros_like(x)], -1)


def test_fixed_point_runs_until_the_slowest_finite_row_has_converged():
    d = 7
    fp = MaskedAutoregressive(_chain_conditioner, solver="fixed_point")
    fast, slow = np.zeros(d, np.float32), np.eye(d, dtype=np.float32)[0]
    z = jnp.asarray(np.stack([fast, slow, np.full(d, np.nan, np.float32)]))
    x, log_det, iters = fp.forward_with_iterations(z)
    np.testing.assert_array_equal(x[:2], np.cumsum(z[:2], -1))  # exact: sums of 0s and 1s
    np.testing.assert_array_equal(log_det[:2], 0.0)
    assert np.all(np.isnan(x[2]))
    assert int(iters) == d  # the slow row moves at every one of the D - 1 steps, the D-th confirms
    _, _, fast_alone = fp.forward_with_iterations(jnp.asarray(fast[None]))
    assert int(fast_alone) == 1


def test_fixed_point_derivatives_equal_the_sequential_solvers():
    """Reverse mode (implicit function theorem, adjoint solved by the same Jacobi iteration) and
    forward mode through the fixed point give the sequential solve's derivatives, in the
    parameters and in z, to float32 round-off (tolerance 0: converged solves)."""
    d = 8
    made, params = perturbed_made(d, order="random", context_size=2, scale=0.5)
    ctx = jax.random.normal(jax.random.PRNGKey(3), (5, 2))
    z = jax.random.normal(jax.random.PRNGKey(4), (5, d))

    def loss(p, z, solver):
        layer = MaskedAutoregressive(lambda x, c: made.apply(p, x, c), context=ctx, solver=solver,
                                     tolerance=0.0)
        x, log_det = layer.forward_and_log_det(z)
        return jnp.sum(jnp.sin(x) * jnp.arange(1.0, d + 1)) + jnp.sum(log_det ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
    (gp_seq, gz_seq), (gp_fp, gz_fp) = grad(params, z, "sequential"), grad(params, z, "fixed_point")
    for a, b in zip(jax.tree_util.tree_leaves(gp_seq), jax.tree_util.tree_leaves(gp_fp), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(jnp.abs(a).max()))
    np.testing.assert_allclose(gz_fp, gz_seq, rtol=1e-5, atol=1e-5 * float(jnp.abs(gz_seq).max()))
    jac = lambda solver: jax.jit(jax.jacfwd(lambda v: loss(params, v, solver)))(z)
    np.testing.assert_allclose(jac("fixed_point"), jac("sequential"), rtol=1e-5,
                               atol=1e-5 * float(jnp.abs(gz_seq).max()))


def test_sequential_forward_is_differentiable():
    made, params = perturbed_made(4)
    maf = lambda p: MaskedAutoregressive(lambda x: made.apply(p, x))
    z = jnp.linspace(-1, 1, 4)
    g = jax.grad(lambda p: maf(p).forward(z).sum())(params)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(g))


def test_a_shared_point_under_a_batch_of_contexts_is_solved_per_context():
    """The sequential solve at one z with a context per example: one exact solution each."""
    made, params = perturbed_made(4, context_size=3)
    ctx = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    maf = MaskedAutoregressive(lambda x, c: made.apply(params, x, c), context=ctx)
    z = jax.random.normal(jax.random.PRNGKey(2), (4,))
    x, ld = maf.forward_and_log_det(z)
    assert x.shape == (5, 4) and ld.shape == (5,)
    for i in range(5):
        one = MaskedAutoregressive(lambda x, c: made.apply(params, x, c), context=ctx[i])
        np.testing.assert_allclose(x[i], one.forward(z), atol=1e-6)


def test_autoregressive_bad_inputs():
    cond = lambda x: jnp.zeros(x.shape + (2,))
    with pytest.raises(ValueError, match="solver"):
        MaskedAutoregressive(cond, solver="newton")
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
    # a traced reversal (a scanned row) still gathers, with the same values
    np.testing.assert_array_equal(jax.jit(lambda p, x: Permute(p).forward(x))(np.arange(d)[::-1], x),
                                  x[:, ::-1])


def test_permute_traced_with_and_without_given_inverse():
    perm = np.array([3, 1, 0, 4, 2])
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))

    @jax.jit
    def both(perm, inv, x):  # perm and inv traced, as rows of a scanned stack's constants are
        given, derived = Permute(perm, inv), Permute(perm)
        return given.forward(x), given.inverse(x), derived.inverse(x)

    fwd, inv_given, inv_derived = both(jnp.asarray(perm), jnp.asarray(np.argsort(perm)), x)
    np.testing.assert_array_equal(fwd, x[:, perm])
    np.testing.assert_array_equal(inv_given, x[:, np.argsort(perm)])
    np.testing.assert_array_equal(inv_derived, inv_given)
    with pytest.raises(ValueError, match="inverse_permutation"):
        Permute(perm, np.arange(4))
