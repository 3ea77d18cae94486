"""Flow++'s variational dequantizer: a density q(u|x) on the cell, and the bounds it gives.

The model is the 2-D flow of tests/test_dequantization.py, whose exact cell
masses log P(x) come from Gauss-Legendre quadrature.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import jac_logdet
from test_dequantization import two_d_model_and_exact

from dgmjax.models import VariationalDequantizer
from dgmjax.objectives import dequantization_bound, importance_weighted_dequantization_bound

NUM_LEVELS = 4
CELLS = np.array([[0, 1], [2, 3], [3, 3]])


@pytest.fixture(scope="module")
def dequantizer():
    deq = VariationalDequantizer(image_shape=(1, 2, 1), num_levels=NUM_LEVELS, num_layers=2, features=8)
    x = jnp.asarray(CELLS, jnp.int32).reshape(3, 1, 2, 1)
    params = jax.jit(deq.init)(jax.random.PRNGKey(2), jax.random.PRNGKey(3), x)
    return deq, params, x


def test_dequantizer_density_against_change_of_variables(dequantizer):
    """u in (0, 1) of x's shape, and log q(u|x) = log N(eps) - log|det du/deps| with the Jacobian
    of eps -> sigmoid(g(eps; x)) by autodiff (eps recovered by inverting the flow, not redrawn)."""
    deq, params, x = dequantizer

    @jax.jit  # one program: the dequantizer and the reference
    def run(key):
        u, log_q = deq.apply(params, key, x)
        flow = deq.bind(params).flow(x)
        eps = flow.inverse(jax.scipy.special.logit(u))
        refs = []
        for b in range(x.shape[0]):
            one = lambda e, b=b: jax.nn.sigmoid(flow.forward(eps.at[b].set(e)))[b]
            refs.append(jnp.sum(jax.scipy.stats.norm.logpdf(eps[b])) - jac_logdet(one, eps[b]))
        return u, log_q, jnp.stack(refs)

    u, log_q, reference = run(jax.random.PRNGKey(4))
    chex.assert_shape(u, x.shape)
    chex.assert_shape(log_q, (3,))
    assert float(u.min()) > 0.0 and float(u.max()) < 1.0
    chex.assert_trees_all_close(log_q, reference, atol=1e-4)


def _log_mean_exp_groups(log_w, s):
    """The S-sample importance-weighted estimate from consecutive groups of s single draws, float64."""
    groups = log_w.reshape(-1, s, log_w.shape[-1])
    top = groups.max(1)
    return np.log(np.mean(np.exp(groups - top[:, None]), 1)) + top


def test_variational_bound_below_exact_and_importance_weighting_tightens(dequantizer):
    """The single-sample bound is below log P(x) in mean; importance weighting over S draws rises
    with S toward log P(x) and closes most of the gap by S = 64.

    The S-sample estimates for S = 1, 4, 16, 64 come from one pool of 4096 single draws per cell
    (consecutive groups of S, the estimator's definition); `importance_weighted_dequantization_bound`
    itself (S = 64 over 48 repetitions, in chunks of 16) must agree with them. One compiled program
    (each call site of the dequantizer costs seconds of XLA compile on CPU).
    """
    deq, params, x = dequantizer
    log_p, exact = two_d_model_and_exact(NUM_LEVELS)
    proposal = lambda k, xx: deq.apply(params, k, xx)
    exact_x = exact[CELLS[:, 0], CELLS[:, 1]]
    pool, reps = 4096, 48

    @jax.jit
    def run(key):
        k1, k2 = jax.random.split(key)
        # rows of the tiled batch are independent draws: x repeated `pool` times
        draws = dequantization_bound(k1, log_p, jnp.tile(x, (pool, 1, 1, 1)), NUM_LEVELS,
                                     dequantizer=proposal)
        iw = importance_weighted_dequantization_bound(k2, log_p, jnp.tile(x, (reps, 1, 1, 1)), NUM_LEVELS,
                                                      64, dequantizer=proposal, chunk_size=16)
        return draws.reshape(pool, 3), iw.reshape(reps, 3)

    draws, iw64 = run(jax.random.PRNGKey(4))
    draws = np.asarray(draws, np.float64)

    # the single-sample bound: its mean (4096 draws) is below log P(x) for every x
    mean, se = draws.mean(0), draws.std(0) / np.sqrt(pool)
    assert np.all(mean + 4 * se < exact_x), (mean, exact_x)

    # importance weighting: the estimate rises with S toward log P(x), never (in mean) above it
    means, ses = {}, {}
    for s in (1, 4, 16, 64):
        vals = _log_mean_exp_groups(draws, s)
        means[s], ses[s] = vals.mean(0), vals.std(0) / np.sqrt(vals.shape[0])
    for a, b in ((1, 4), (4, 16), (16, 64)):
        assert np.all(means[b] > means[a] - 3 * (ses[a] + ses[b])), means
    assert np.all(means[64] < exact_x + 3 * ses[64])
    assert np.all(exact_x - means[64] < 0.5 * (exact_x - means[1]))  # most of the gap closes

    # the library's chunked estimator is that estimator
    iw64 = np.asarray(iw64, np.float64)
    m, e = iw64.mean(0), iw64.std(0) / np.sqrt(reps)
    assert np.all(np.abs(m - means[64]) < 4 * (e + ses[64])), (m, means[64])
    assert np.all(m < exact_x + 3 * e)
    assert np.all(exact_x - m < 0.5 * (exact_x - means[1]))


def test_dequantizer_bad_inputs(dequantizer):
    deq, params, x = dequantizer
    with pytest.raises(ValueError, match="`x` must have shape"):
        deq.apply(params, jax.random.PRNGKey(0), x.reshape(3, 2, 1, 1))
    with pytest.raises(ValueError, match=r"`x` must hold levels in \[0, 4\)"):
        deq.apply(params, jax.random.PRNGKey(0), x + 2)
    with pytest.raises(ValueError, match="`x` must hold integer levels"):
        deq.apply(params, jax.random.PRNGKey(0), x.astype(jnp.float32))
    with pytest.raises(ValueError, match="`image_shape`"):
        VariationalDequantizer(image_shape=(2, 1), num_levels=4).init(
            jax.random.PRNGKey(0), jax.random.PRNGKey(0), jnp.zeros((1, 2, 1), jnp.int32))
    with pytest.raises(ValueError, match="`num_levels`"):
        VariationalDequantizer(image_shape=(1, 2, 1), num_levels=1).init(
            jax.random.PRNGKey(0), jax.random.PRNGKey(0), x)
