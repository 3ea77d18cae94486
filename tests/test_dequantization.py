"""Uniform dequantization: its range and log-det, and the bound against the exact discrete likelihood."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from dgmjax.dequantization import bits_per_dim, uniform_dequantize
from dgmjax.models import RealNVP


def test_uniform_dequantize_range_log_det_and_levels():
    x = jax.random.randint(jax.random.PRNGKey(0), (16, 4, 4, 3), 0, 256).astype(jnp.uint8)
    xc, log_det = uniform_dequantize(jax.random.PRNGKey(1), x, 256)
    assert xc.dtype == jnp.float32 and xc.shape == x.shape and log_det.shape == (16,)
    assert float(xc.min()) >= 0.0 and float(xc.max()) < 1.0
    np.testing.assert_array_equal(jnp.floor(xc * 256).astype(jnp.int32), x)
    np.testing.assert_allclose(log_det, -48 * math.log(256), rtol=1e-6)
    again, _ = uniform_dequantize(jax.random.PRNGKey(1), x, 256)
    np.testing.assert_array_equal(again, xc)
    other, _ = uniform_dequantize(jax.random.PRNGKey(2), x, 256)
    assert not np.array_equal(other, xc)


def test_uniform_dequantize_top_level_stays_below_one():
    x = jnp.full((10_000,), 255, jnp.int32)
    xc, _ = uniform_dequantize(jax.random.PRNGKey(3), x, 256, event_ndims=0)
    assert float(xc.max()) < 1.0


def test_uniform_dequantize_event_ndims_and_jit():
    x = jnp.ones((2, 3, 5), jnp.int32)
    _, ld = uniform_dequantize(jax.random.PRNGKey(0), x, 17, event_ndims=1)
    assert ld.shape == (2, 3)
    np.testing.assert_allclose(ld, -5 * math.log(17), rtol=1e-6)
    xc, ld2 = jax.jit(lambda k, v: uniform_dequantize(k, v, 17))(jax.random.PRNGKey(0), x)
    assert ld2.shape == (2,)


@pytest.mark.parametrize(
    "x, num_levels, match",
    [
        (np.zeros((2, 3), np.float32), 4, "integer dtype"),
        (np.full((2, 3), 4, np.int32), 4, r"\[0, 4\); got values in \[4, 4\]"),
        (np.full((2, 3), -1, np.int32), 4, "got values in"),
        (np.zeros((2, 3), np.int32), 1, "num_levels"),
        (np.zeros((2, 3), np.int32), 2.0, "num_levels"),
        (np.zeros((2, 3), bool), 2, "integer dtype"),
    ],
)
def test_uniform_dequantize_bad_input(x, num_levels, match):
    with pytest.raises(ValueError, match=match):
        uniform_dequantize(jax.random.PRNGKey(0), x, num_levels)


def test_bits_per_dim():
    np.testing.assert_allclose(bits_per_dim(-10 * math.log(2.0), 10), 1.0, rtol=1e-6)
    np.testing.assert_allclose(bits_per_dim(jnp.array([0.0, -784 * math.log(256)]), 784), [0, 8],
                               atol=1e-5)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="num_dims"):
            bits_per_dim(1.0, bad)


def _gauss_legendre_cell(lo, hi, n):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    pts = lo + (hi - lo) * (nodes + 1) / 2
    return pts, weights * (hi - lo) / 2


def _two_d_log_density():
    """log p on R^2: a RealNVP with perturbed parameters, evaluated at 6 (x - 0.5) (Jacobian
    6^2), so the unit square holds most of its mass and the density varies within cells.

    Each parameter moves by 0.5 / sqrt(fan-in) standard normals: enough to make the flow
    clearly non-Gaussian, and small enough that no random stream gives a degenerate density
    (unscaled noise gave log p near -1400 under jax_threefry_partitionable=False).
    """
    model = RealNVP(event_size=2, num_layers=4, hidden_sizes=(16,))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    fan_in = lambda path, leaf: leaf.shape[-2] if "kernel" in jax.tree_util.keystr(path) else 1
    params = jax.tree_util.tree_unflatten(tree, [
        leaf + 0.5 * jax.random.normal(k, leaf.shape) / np.sqrt(fan_in(path, leaf))
        for (path, leaf), k in zip(leaves, keys, strict=True)])
    return jax.jit(lambda x: model.apply(params, 6.0 * (x - 0.5)) + 2 * math.log(6.0))


def test_uniform_bound_below_exact_discrete_log_likelihood():
    """For a 2-D flow and K = 4 levels, E_u[log p((y+u)/K)] - D log K <= log P(y) for every y.

    P(y) is the flow's mass on the cell [y/K, (y+1)/K)^2, by Gauss-Legendre
    quadrature; the bound's expectation uses the same nodes, and the Monte
    Carlo estimate from `uniform_dequantize` must agree with it.
    """
    num_levels, d = 4, 2
    log_p = _two_d_log_density()

    n = 24
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
    gap = exact - quad_bound
    assert np.all(gap >= 0.0), gap
    assert gap.max() > 1e-3  # the density varies within cells, so the bound is strict

    # The Monte Carlo bound from uniform_dequantize matches its expectation.
    i, j = np.unravel_index(np.argmax(gap), gap.shape)
    y = jnp.tile(jnp.array([[i, j]], jnp.int32), (8192, 1))
    xc, log_det = uniform_dequantize(jax.random.PRNGKey(5), y, num_levels)
    samples = np.asarray(log_p(xc) + log_det, np.float64)
    se = samples.std() / np.sqrt(samples.size)
    assert abs(samples.mean() - quad_bound[i, j]) < 4 * se + 1e-4
    assert samples.mean() < exact[i, j]


def _two_d_model_and_exact(num_levels=4, n=24):
    """A 2-D density on [0,1)^2 (a perturbed RealNVP) and its exact cell masses log P(y)."""
    log_p_vec = _two_d_log_density()
    exact = np.zeros((num_levels, num_levels))
    for i in range(num_levels):
        for j in range(num_levels):
            px, wx = _gauss_legendre_cell(i / num_levels, (i + 1) / num_levels, n)
            py, wy = _gauss_legendre_cell(j / num_levels, (j + 1) / num_levels, n)
            grid = np.stack(np.meshgrid(px, py, indexing="ij"), -1).reshape(-1, 2)
            lp = np.asarray(log_p_vec(jnp.asarray(grid, jnp.float32)), np.float64)
            exact[i, j] = logsumexp(lp, b=np.outer(wx, wy).reshape(-1))
    # images of shape (1, 2, 1) hold the two coordinates
    log_p_img = lambda x: log_p_vec(x.reshape(x.shape[0], 2))
    return log_p_img, exact


def test_variational_bound_below_exact_and_importance_weighting_tightens():
    from dgmjax.dequantization import (
        VariationalDequantizer,
        dequantization_bound,
        importance_weighted_log_likelihood,
    )

    num_levels = 4
    log_p, exact = _two_d_model_and_exact(num_levels)
    deq = VariationalDequantizer(image_shape=(1, 2, 1), num_levels=num_levels, num_layers=2, features=8)
    cells = np.array([[0, 1], [2, 3], [3, 3]])
    y = jnp.asarray(cells, jnp.int32).reshape(3, 1, 2, 1)
    params = jax.jit(deq.init)(jax.random.PRNGKey(2), jax.random.PRNGKey(3), y)
    proposal = lambda k, yy: deq.apply(params, k, yy)
    exact_y = exact[cells[:, 0], cells[:, 1]]

    # the single-sample bound: its mean (4096 draws) is below log P(y) for every y
    keys = jax.random.split(jax.random.PRNGKey(4), 4096)
    draws = jax.jit(jax.vmap(lambda k: dequantization_bound(log_p, y, *proposal(k, y), num_levels)))(keys)
    draws = np.asarray(draws, np.float64)
    mean, se = draws.mean(0), draws.std(0) / np.sqrt(draws.shape[0])
    assert np.all(mean + 4 * se < exact_y), (mean, exact_y)

    # importance weighting: the estimate rises with S toward log P(y), never (in mean) above it
    iw = jax.jit(lambda k, s: importance_weighted_log_likelihood(k, y, s, proposal, log_p, num_levels,
                                                                 chunk_size=16), static_argnums=1)
    reps = jax.random.split(jax.random.PRNGKey(5), 48)
    means, ses = [], []
    for s in (1, 4, 16, 64):
        vals = np.stack([np.asarray(iw(k, s)) for k in reps]).astype(np.float64)
        means.append(vals.mean(0))
        ses.append(vals.std(0) / np.sqrt(len(reps)))
    means, ses = np.array(means), np.array(ses)
    for a in range(3):
        assert np.all(means[a + 1] > means[a] - 3 * (ses[a] + ses[a + 1])), means
    assert np.all(means[-1] < exact_y + 3 * ses[-1])
    assert np.all(exact_y - means[-1] < 0.5 * (exact_y - means[0]))  # most of the gap closes


def test_importance_weighted_uniform_proposal_and_bad_inputs():
    from dgmjax.dequantization import importance_weighted_log_likelihood, uniform_proposal

    num_levels = 4
    log_p, exact = _two_d_model_and_exact(num_levels)
    y = jnp.array([[0, 1]], jnp.int32).reshape(1, 1, 2, 1)
    est = importance_weighted_log_likelihood(jax.random.PRNGKey(0), y, 2000, uniform_proposal, log_p,
                                             num_levels, chunk_size=500)
    # uniform weights p/q on one cell: the mean is the cell mass itself, so 2000 samples get close
    assert abs(float(est[0]) - exact[0, 1]) < 0.05
    with pytest.raises(ValueError, match="num_samples"):
        importance_weighted_log_likelihood(jax.random.PRNGKey(0), y, 0, uniform_proposal, log_p, num_levels)
