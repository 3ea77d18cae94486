"""Uniform dequantization: its range and log-det, and the bound against the exact discrete likelihood.

The bounds themselves live in `dgmjax.objectives` (`dequantization_bound`,
`importance_weighted_dequantization_bound`); here they are checked with the
uniform dequantizer on a 2-D flow whose exact cell masses come from
Gauss-Legendre quadrature. `two_d_model_and_exact` is shared with
tests/models/test_dequantizer.py (the variational dequantizer).
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from dgmjax.dequantization import to_levels, uniform_dequantize, uniform_noise
from dgmjax.models import RealNVP
from dgmjax.objectives import dequantization_bound, importance_weighted_dequantization_bound


def test_uniform_dequantize_range_log_det_and_levels():
    x = jax.random.randint(jax.random.PRNGKey(0), (16, 4, 4, 3), 0, 256).astype(jnp.uint8)
    xc, log_det = uniform_dequantize(jax.random.PRNGKey(1), x, 256)
    chex.assert_type(xc, jnp.float32)
    chex.assert_shape(xc, x.shape)
    chex.assert_shape(log_det, (16,))
    assert float(xc.min()) >= 0.0 and float(xc.max()) < 1.0
    chex.assert_trees_all_equal(jnp.floor(xc * 256).astype(jnp.int32), x.astype(jnp.int32))
    chex.assert_trees_all_equal(to_levels(xc, 256), x.astype(jnp.int32))  # the inverse up to the noise
    chex.assert_trees_all_close(log_det, jnp.full((16,), -48 * math.log(256)), rtol=1e-6)
    again, _ = uniform_dequantize(jax.random.PRNGKey(1), x, 256)
    chex.assert_trees_all_equal(again, xc)
    other, _ = uniform_dequantize(jax.random.PRNGKey(2), x, 256)
    assert not np.array_equal(other, xc)


def test_uniform_dequantize_top_level_stays_below_one():
    x = jnp.full((10_000,), 255, jnp.int32)
    xc, _ = uniform_dequantize(jax.random.PRNGKey(3), x, 256, event_ndims=0)
    assert float(xc.max()) < 1.0
    chex.assert_trees_all_equal(to_levels(xc, 256), x)
    # the noise itself, as a dequantizer: u in [0, 1) of x's shape and log q = 0 per example
    u, log_q = uniform_noise(jax.random.PRNGKey(3), x.reshape(100, 100))
    chex.assert_shape(u, (100, 100))
    chex.assert_trees_all_equal(log_q, jnp.zeros(100))
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0


def test_uniform_dequantize_event_ndims_and_jit():
    x = jnp.ones((2, 3, 5), jnp.int32)
    _, ld = uniform_dequantize(jax.random.PRNGKey(0), x, 17, event_ndims=1)
    chex.assert_shape(ld, (2, 3))
    chex.assert_trees_all_close(ld, jnp.full((2, 3), -5 * math.log(17)), rtol=1e-6)
    xc, ld2 = jax.jit(lambda k, v: uniform_dequantize(k, v, 17))(jax.random.PRNGKey(0), x)
    chex.assert_shape(ld2, (2,))
    chex.assert_trees_all_close(ld2, jnp.full((2,), -15 * math.log(17)), rtol=1e-6)
    for bad in (4, -1, 1.0, True):
        with pytest.raises(ValueError, match="`event_ndims`"):
            uniform_dequantize(jax.random.PRNGKey(0), x, 17, event_ndims=bad)


@pytest.mark.parametrize(
    "x, num_levels, match",
    [
        (np.zeros((2, 3), np.float32), 4, "`x` must hold integer levels.*integer dtype"),
        (np.full((2, 3), 4, np.int32), 4, r"`x` must hold levels in \[0, 4\); got values in \[4, 4\]"),
        (np.full((2, 3), -1, np.int32), 4, "`x` must hold levels.*got values in"),
        (np.zeros((2, 3), np.int32), 1, "`num_levels`"),
        (np.zeros((2, 3), np.int32), 2.0, "`num_levels`"),
        (np.zeros((2, 3), bool), 2, "`x` must hold integer levels.*integer dtype"),
    ],
)
def test_uniform_dequantize_bad_input(x, num_levels, match):
    with pytest.raises(ValueError, match=match):
        uniform_dequantize(jax.random.PRNGKey(0), x, num_levels)


def _gauss_legendre_cell(lo, hi, n):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    pts = lo + (hi - lo) * (nodes + 1) / 2
    return pts, weights * (hi - lo) / 2


@functools.cache  # deterministic; built once per module that uses it
def _two_d_log_density():
    """log p on R^2: a RealNVP with perturbed parameters, evaluated at 6 (x - 0.5) (Jacobian
    6^2), so the unit square holds most of its mass and the density varies within cells.

    Each parameter moves by 0.5 / sqrt(fan-in) standard normals: enough to make the flow
    clearly non-Gaussian, and small enough that no random stream gives a degenerate density
    (unscaled noise gave log p near -1400 under jax_threefry_partitionable=False).
    """
    model = RealNVP(event_size=2, num_layers=4, hidden_sizes=(16,))

    @jax.jit  # one program: drawn leaf by leaf eagerly, every draw would compile on its own
    def perturbed_params():
        params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
        leaves, tree = jax.tree_util.tree_flatten_with_path(params)
        keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
        fan_in = lambda path, leaf: leaf.shape[-2] if "kernel" in jax.tree_util.keystr(path) else 1
        return jax.tree_util.tree_unflatten(tree, [
            leaf + 0.5 * jax.random.normal(k, leaf.shape) / np.sqrt(fan_in(path, leaf))
            for (path, leaf), k in zip(leaves, keys, strict=True)])

    params = perturbed_params()
    return jax.jit(lambda x: model.apply(params, 6.0 * (x - 0.5)) + 2 * math.log(6.0))


def _cell_quadrature(log_p, num_levels, n=24):
    """Per cell (i, j): log P(cell) and E_U[log p] - D log K over the cell, by n x n Gauss-Legendre."""
    d = 2
    exact, quad_bound = np.zeros((num_levels, num_levels)), np.zeros((num_levels, num_levels))
    for i in range(num_levels):
        for j in range(num_levels):
            px, wx = _gauss_legendre_cell(i / num_levels, (i + 1) / num_levels, n)
            py, wy = _gauss_legendre_cell(j / num_levels, (j + 1) / num_levels, n)
            grid = np.stack(np.meshgrid(px, py, indexing="ij"), -1).reshape(-1, 2)
            w = np.outer(wx, wy).reshape(-1)
            lp = np.asarray(log_p(jnp.asarray(grid, jnp.float32)), np.float64)
            exact[i, j] = logsumexp(lp, b=w)
            vol = 1.0 / num_levels**d
            quad_bound[i, j] = np.sum(w * lp) / vol - d * math.log(num_levels)
    return exact, quad_bound


@functools.cache
def two_d_model_and_exact(num_levels=4, n=24):
    """A 2-D density on [0,1)^2 (a perturbed RealNVP) as a callable on images of shape (B, 1, 2, 1)
    holding the two coordinates, and its exact cell masses log P(x), shape (K, K)."""
    log_p_vec = _two_d_log_density()
    exact, _ = _cell_quadrature(log_p_vec, num_levels, n)
    log_p_img = lambda x: log_p_vec(x.reshape(x.shape[0], 2))
    return log_p_img, exact


def test_uniform_bound_below_exact_discrete_log_likelihood():
    """For a 2-D flow and K = 4 levels, E_u[log p((x+u)/K)] - D log K <= log P(x) for every x.

    P(x) is the flow's mass on the cell [x/K, (x+1)/K)^2, by Gauss-Legendre
    quadrature; the bound's expectation uses the same nodes, and the Monte
    Carlo estimate from `uniform_dequantize` (and `dequantization_bound`,
    which must give the same numbers from the same key) must agree with it.
    """
    num_levels = 4
    log_p = _two_d_log_density()
    exact, quad_bound = _cell_quadrature(log_p, num_levels)
    gap = exact - quad_bound
    assert np.all(gap >= 0.0), gap
    assert gap.max() > 1e-3  # the density varies within cells, so the bound is strict

    # The Monte Carlo bound from uniform_dequantize matches its expectation.
    i, j = np.unravel_index(np.argmax(gap), gap.shape)
    x = jnp.tile(jnp.array([[i, j]], jnp.int32), (8192, 1))
    xc, log_det = uniform_dequantize(jax.random.PRNGKey(5), x, num_levels)
    samples = np.asarray(log_p(xc) + log_det, np.float64)
    se = samples.std() / np.sqrt(samples.size)
    assert abs(samples.mean() - quad_bound[i, j]) < 4 * se + 1e-4
    assert samples.mean() < exact[i, j]
    # the objective is the same estimator: a model given as a callable, uniform noise by default
    bound = dequantization_bound(jax.random.PRNGKey(5), log_p, x, num_levels)
    chex.assert_trees_all_close(bound, jnp.asarray(samples, jnp.float32), rtol=1e-6, atol=1e-5)


def test_importance_weighted_uniform_proposal_and_bad_inputs():
    num_levels = 4
    log_p, exact = two_d_model_and_exact(num_levels)
    x = jnp.array([[0, 1]], jnp.int32).reshape(1, 1, 2, 1)
    est = importance_weighted_dequantization_bound(jax.random.PRNGKey(0), log_p, x, num_levels, 2000,
                                                   chunk_size=500)
    chex.assert_shape(est, (1,))
    # uniform weights p/q on one cell: the mean is the cell mass itself, so 2000 samples get close
    assert abs(float(est[0]) - exact[0, 1]) < 0.05
    with pytest.raises(ValueError, match="`num_samples`"):
        importance_weighted_dequantization_bound(jax.random.PRNGKey(0), log_p, x, num_levels, 0)
    with pytest.raises(ValueError, match="`chunk_size`"):  # (chunk_size=0: see test_objectives.py)
        importance_weighted_dequantization_bound(jax.random.PRNGKey(0), log_p, x, num_levels, 4,
                                                 chunk_size=-1)
    with pytest.raises(ValueError, match="`model`"):
        dequantization_bound(jax.random.PRNGKey(0), "flow", x, num_levels)
    with pytest.raises(ValueError, match="`dequantizer`"):
        dequantization_bound(jax.random.PRNGKey(0), log_p, x, num_levels,
                             dequantizer=lambda k, xx: (jnp.zeros((1, 2)), jnp.zeros(1)))
    with pytest.raises(ValueError, match=r"`x` must hold levels in \[0, 4\)"):
        dequantization_bound(jax.random.PRNGKey(0), log_p, x + 3, num_levels)
    with pytest.raises(ValueError, match="`x` must hold integer levels"):
        dequantization_bound(jax.random.PRNGKey(0), log_p, x.astype(jnp.float32), num_levels)
    with pytest.raises(ValueError, match="`event_ndims`"):
        dequantization_bound(jax.random.PRNGKey(0), log_p, x, num_levels, event_ndims=5)
