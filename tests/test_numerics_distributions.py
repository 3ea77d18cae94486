"""Property tests of the likelihoods at the edges: for every family, values AND gradients are finite
and agree with an independent float64 reference (experiments/fuzz_distributions.py), over means far
outside the data range (|mu| up to 1e6) and log-scales in [-30, 100].

Tolerance (`float32_bound`): 16 float32 unit round-offs of the magnitudes the computation goes
through, plus 1e-6 nats. The computation forms d = centre - mean (one rounding, of |centre| + |mu|),
scales it by 1/s (one more), and sums a few log-space terms (each rounded to its own size); log P
moves by at most one nat per unit shift of the logistic arguments a and b together, so each step
adds at most one round-off of (|centre| + |mu|)/s, of |log P| or of the logits: the bound is the
sum of those magnitudes times 16 eps. Gradients: the same relative bound times the gradient's
natural size (1/s for a mean, 1 + |a| + |b| for a log-scale, 1 for a logit). The fuzz script
reports the worst ratio of error to this bound (0.25 over 45,000 cases).

Batches: each hypothesis example checks R = 20 independent cases at once (every drawn array has a
leading axis of R, each element drawn from the same per-element strategy as a single case's; the
float32 function is vmapped over the cases, so each case has its own parameters and its own
gradients, and jit compiles once per shape), and every tolerance is applied case by case. Each
property test runs N = ceil(1000 / R) = 50 examples: N examples x R cases = 1000 (>= 1000) cases per
family (the reliability issue's minimum), at 1/R of the per-call overhead.

Precision: pure float32 elementwise arithmetic (no matmuls); CPU and GPU alike.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from fuzz_distributions import (
    EPS32,
    MAX_LOG_SCALE,
    float32_bound,
    log_sigmoid,
    ref_integer,
    ref_kl,
    ref_log_bin,
    ref_mixture,
    ref_rgb,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgmjax.distributions import (
    BernoulliHead,
    CategoricalHead,
    DiscretizedLogisticMixture,
    DiscretizedRGBLogisticMixture,
    IntegerLogisticMixture,
    LogScaleNormal,
)

K = 3
LEVELS = (2, 17, 256, 4096, 65536)
R = 20  # independent cases per hypothesis example
EXAMPLES = math.ceil(1000 / R)  # examples per property test: EXAMPLES x R >= 1000 cases per family
assert EXAMPLES * R >= 1000
# The session profile (conftest.py), with fewer examples; an example's smallest input is R cases'
# worth of draws, large by design (hence large_base_example).
batched = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.large_base_example],
)


def f32(lo, hi):
    return st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False)


def magnitudes(max_exp):
    """float32 values whose magnitudes span 1e-3 .. 10^max_exp, either sign."""
    return st.builds(
        lambda s, e: float(np.float32(s * 10.0**e)), st.sampled_from([-1.0, 1.0]), f32(-3, max_exp)
    )


def means(data_range, max_exp=6):
    return st.one_of(f32(-1.5 * data_range, 1.5 * data_range), magnitudes(max_exp))


log_scales = st.one_of(f32(-30, 100), f32(-8, 3))
logits = f32(-30, 30)


def vec(strategy, *shape, dtype=np.float32):
    """An array of the given shape (default (K,)) whose every element is drawn from `strategy`
    independently (st.lists, not hnp.arrays: no shared fill value)."""
    shape = shape or (K,)
    n = math.prod(shape)
    return st.lists(strategy, min_size=n, max_size=n).map(lambda v: np.asarray(v, dtype).reshape(shape))


def levels(num_levels, *shape):
    """Data levels in [0, num_levels), the two edge levels often."""
    level = st.one_of(st.sampled_from([0, num_levels - 1]), st.integers(0, num_levels - 1))
    return vec(level, *shape, dtype=np.int32)


def assert_close_to_bound(got, want, bound, what):
    """|got - want| <= bound + 1e-6 elementwise (an absolute floor: a component whose responsibility
    is 1e-60 has gradients of that size, computed to absolute, not relative, float32 accuracy). The
    leading axis is the case: a failure names its cases."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bound = np.asarray(bound, np.float64) + 1e-6
    got, want, bound = np.broadcast_arrays(got, want, bound)
    finite = np.isfinite(got)
    bad = np.argwhere(~finite)[:5]
    assert finite.all(), f"{what}: non-finite at (case, ...) {bad.tolist()}: {got[tuple(bad.T)]}"
    err = np.abs(got - want)
    ok = err <= bound
    bad = tuple(np.argwhere(~ok)[:5].T)
    assert ok.all(), (
        f"{what}: at (case, ...) {np.argwhere(~ok)[:5].tolist()}: |{got[bad]} - {want[bad]}| = {err[bad]}"
        f" > bound {bound[bad]}"
    )


def check_mixture_grads(grads, ref, rel):
    """grads (lw, mu, ls), (R, K) each, against the reference, each within rel x its natural size."""
    g_lw, g_mu, g_ls = (np.asarray(g, np.float64) for g in grads)
    r = ref["r"]
    lw_rel = rel.max(-1, keepdims=True)  # each case's own largest
    assert_close_to_bound(g_lw, ref["g_lw"], lw_rel * (np.abs(ref["g_lw"]) + 1.0), "d/d logit_weights")
    assert_close_to_bound(g_mu, ref["g_mu"], rel * (np.abs(ref["g_mu"]) + r * ref["inv_s"]), "d/d means")
    assert_close_to_bound(
        g_ls, ref["g_ls"], rel * (np.abs(ref["g_ls"]) + r * (1.0 + ref["arg"])), "d/d log_scales"
    )


def relative(ref):
    """The relative error bound of each component's gradients, (R, K): its responsibility r_k is exp
    of a log P_k computed to round-off of that component's own argument scale (|centre| + |mu_k|)/s_k."""
    per_case = ref["scale"] + np.abs(ref["log_p"]) + ref["lw_max"]  # (R,)
    return 16.0 * EPS32 * (1.0 + ref["component_scale"] + per_case[:, None])


# ----------------------------------------------------------------------------- the reference itself
def test_float64_reference_matches_mpmath():
    """The float64 reference's bin masses agree with 60-digit mpmath (no log-space tricks) to 1e-12
    relative, including bins far in the tails and much narrower than the scale."""
    mpmath.mp.dps = 60
    g = np.random.default_rng(0)
    d = np.concatenate(
        [g.uniform(-2, 2, 100), np.sign(g.standard_normal(100)) * 10.0 ** g.uniform(-3, 6, 100)]
    )
    ls = g.uniform(-7, 20, 200)
    hw = 1.0 / 255
    lower, upper = g.random(200) < 0.8, g.random(200) < 0.8
    got = ref_log_bin(d, hw, ls, lower, upper)[0]
    for i in range(200):
        s = mpmath.exp(mpmath.mpf(float(ls[i])))
        a, b = (mpmath.mpf(float(d[i])) - hw) / s, (mpmath.mpf(float(d[i])) + hw) / s

        def sig(t):
            return 1 / (1 + mpmath.exp(-t))

        hi = sig(b) if upper[i] else mpmath.mpf(1)
        lo = sig(a) if lower[i] else mpmath.mpf(0)
        if a > 0 and lower[i] and upper[i]:  # same value, without cancellation at 60 digits
            want = mpmath.log(sig(-a) - sig(-b))
        else:
            want = mpmath.log(hi - lo)
        assert abs(got[i] - float(want)) <= 1e-12 * (1 + abs(float(want))), (i, got[i], want)


# ----------------------------------------------------------------------------- the three mixtures
# Each jitted function is vmapped over the cases (the leading axis): every case has its own parameters,
# its own log P and its own gradients.
@partial(jax.jit, static_argnums=4)
def mixture_value_and_grad(x, lw, mu, ls, num_levels):
    f = lambda x, lw, mu, ls: DiscretizedLogisticMixture(lw, mu, ls, num_levels).log_prob(x)
    return jax.vmap(jax.value_and_grad(f, argnums=(1, 2, 3)))(x, lw, mu, ls)


@batched
@given(st.sampled_from(LEVELS), st.data(), vec(logits, R, K), vec(means(1.0), R, K), vec(log_scales, R, K))
def test_discretized_logistic_mixture_is_finite_and_accurate(num_levels, data, lw, mu, ls):
    x = data.draw(levels(num_levels, R))
    value, grads = mixture_value_and_grad(jnp.asarray(x), lw, mu, ls, num_levels)
    ref = ref_mixture(x, lw, mu, ls, num_levels)
    assert_close_to_bound(
        value, ref["log_p"], float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]), "log P"
    )
    check_mixture_grads(grads, ref, relative(ref))


@partial(jax.jit, static_argnums=5)
def rgb_value_and_grad(x, lw, m, ls, co, num_levels):
    f = lambda x, lw, m, ls, co: DiscretizedRGBLogisticMixture(lw, m, ls, co, num_levels).log_prob(x)
    return jax.vmap(jax.value_and_grad(f, argnums=(1, 2, 3, 4)))(x, lw, m, ls, co)


@batched
@given(
    st.sampled_from(LEVELS),
    st.data(),
    vec(logits, R, K),
    vec(means(1.0), R, 3, K),
    vec(log_scales, R, 3, K),
    vec(f32(-5, 5), R, 3, K),
)
def test_rgb_logistic_mixture_is_finite_and_accurate(num_levels, data, lw, m, ls, co):
    x = data.draw(levels(num_levels, R, 3))
    value, (g_lw, g_m, g_ls, g_co) = rgb_value_and_grad(jnp.asarray(x), lw, m, ls, co, num_levels)
    ref = ref_rgb(x, lw, m, ls, co, num_levels)
    assert_close_to_bound(
        value, ref["log_p"], float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]), "log P"
    )
    rel, r = relative(ref), ref["r"]  # (R, K) each
    lw_rel = rel.max(-1, keepdims=True)  # each case's own largest
    rel, r = rel[:, None], r[:, None]  # (R, 1, K): broadcast against each case's (3, K)
    assert_close_to_bound(g_lw, ref["g_lw"], lw_rel * (np.abs(ref["g_lw"]) + 1.0), "d/d logit_weights")
    assert_close_to_bound(g_m, ref["g_mu"], rel * (np.abs(ref["g_mu"]) + r * ref["inv_s"]), "d/d means")
    assert_close_to_bound(
        g_ls, ref["g_ls"], rel * (np.abs(ref["g_ls"]) + r * (1.0 + ref["arg"])), "d/d log_scales"
    )
    # a coefficient moves a later channel's mean by at most 1 (tanh' <= 1, |r|, |g| <= 1)
    moved = (r * ref["inv_s"]).sum(1, keepdims=True)  # each case's sum over its channels, (R, 1, K)
    assert_close_to_bound(g_co, ref["g_co"], rel * (np.abs(ref["g_co"]) + moved), "d/d coeffs")


@jax.jit
def integer_value_and_grad(z, lw, mu, ls):
    f = lambda z, lw, mu, ls: IntegerLogisticMixture(lw, mu, ls).log_prob(z)
    return jax.vmap(jax.value_and_grad(f, argnums=(1, 2, 3)))(z, lw, mu, ls)


@batched
@given(vec(f32(-300, 300).map(round), R), vec(logits, R, K), vec(means(256.0), R, K), vec(log_scales, R, K))
def test_integer_logistic_mixture_is_finite_and_accurate(z, lw, mu, ls):
    value, grads = integer_value_and_grad(jnp.asarray(z), lw, mu, ls)
    ref = ref_integer(z, lw, mu, ls)
    assert_close_to_bound(
        value, ref["log_p"], float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]), "log P"
    )
    check_mixture_grads(grads, ref, relative(ref))


# ----------------------------------------------------------------------------- Gaussian log-density and KL
@jax.jit
def gaussian_value_and_grad(x, loc, ls, loc_p, ls_p):
    lp = lambda x, loc, ls: LogScaleNormal(loc, ls).log_prob(x)
    kl = lambda loc, ls, loc_p, ls_p: LogScaleNormal(loc, ls).kl_divergence(LogScaleNormal(loc_p, ls_p))
    return (
        jax.vmap(jax.value_and_grad(lp, argnums=(0, 1, 2)))(x, loc, ls),
        jax.vmap(jax.value_and_grad(kl, argnums=(0, 1, 2, 3)))(loc, ls, loc_p, ls_p),
    )


def _fits(*values):
    """Per case (the leading axis): every value fits in float32 (with room for its round-off)."""
    with np.errstate(invalid="ignore"):
        return np.all([np.abs(np.asarray(v, np.float64)) < 1e37 for v in values], 0)


@batched
@given(
    vec(means(1.0, max_exp=30), R),
    vec(magnitudes(3), R),
    vec(f32(-150, 80), R),
    vec(st.one_of(means(1.0, max_exp=30), magnitudes(1)), R),
    vec(f32(-150, 80), R),
    vec(st.booleans(), R, dtype=bool),
)
def test_gaussian_log_density_and_kl_are_finite_and_accurate(loc, dx, ls, loc_p, ls_p, near):
    """Finite values and gradients wherever the true ones fit in float32 (log-scales from -150:
    exp(log_scale) underflows float32 below -103), within float32 round-off of the float64 values."""
    loc64, dx64, ls64 = (t.astype(np.float64) for t in (loc, dx, ls))
    x = (loc64 + dx64).astype(np.float32)
    # where near: the posterior near the prior (the KL's cancelling terms)
    loc_p = np.where(near, x, loc_p)
    ls_p = np.where(near, (ls64 + np.mod(ls_p.astype(np.float64), 3.0) - 1.5).astype(np.float32), ls_p)
    args = [np.asarray(t, np.float32)[:, None] for t in (x, loc, ls, loc_p, ls_p)]  # (R, 1): d = 1
    (lp, (g_x, g_loc, g_ls)), (kl, kl_grads) = gaussian_value_and_grad(*args)
    x64, loc64, ls64 = (t[:, 0].astype(np.float64) for t in args[:3])
    z = (x64 - loc64) * np.exp(-ls64)
    want_lp = -0.5 * z * z - ls64 - 0.5 * math.log(2 * math.pi)
    want_g = (-z * np.exp(-ls64), z * np.exp(-ls64), z * z - 1.0)
    fit = _fits(want_lp, *want_g)  # the cases whose true value and gradients fit in float32
    rel = (16 * EPS32 * (1.0 + np.abs(z) + z * z + np.abs(ls64)) + 1e-6)[fit]
    assert_close_to_bound(np.asarray(lp)[fit], want_lp[fit], rel, "log N")
    for got, want in zip((g_x, g_loc, g_ls), want_g, strict=True):
        assert_close_to_bound(np.asarray(got)[fit, 0], want[fit], rel * (np.abs(want[fit]) + 1.0), "d log N")
    ref = ref_kl(*(t[:, 0] for t in args[1:]))
    want_kl = (ref["g_mq"], ref["g_lq"], ref["g_mp"], ref["g_lp"])
    fit = _fits(ref["kl"], *want_kl)
    rel = (16 * EPS32 * ref["scale"] + 1e-6)[fit]
    assert_close_to_bound(np.asarray(kl)[fit], ref["kl"][fit], rel, "KL")
    for got, want in zip(kl_grads, want_kl, strict=True):
        assert_close_to_bound(np.asarray(got)[fit, 0], want[fit], rel * (np.abs(want[fit]) + 1.0), "d KL")


# ----------------------------------------------------------------------------- Bernoulli / categorical heads
@jax.jit
def heads_value_and_grad(xb, t, xc, logits):
    bern = lambda xb, t: BernoulliHead()(t, 2).log_prob(xb)
    cat = lambda xc, lg: CategoricalHead()(lg, 5).log_prob(xc)
    return (
        jax.vmap(jax.value_and_grad(bern, argnums=1))(xb, t),
        jax.vmap(jax.value_and_grad(cat, argnums=1))(xc, logits),
    )


@batched
@given(
    vec(st.integers(0, 1), R, dtype=np.int32),
    vec(magnitudes(30), R),
    vec(st.integers(0, 4), R, dtype=np.int32),
    vec(f32(-1, 1), R, 5),
    vec(f32(-3, 30), R),
)
def test_bernoulli_and_categorical_heads_are_finite_and_accurate(xb, t, xc, direction, log_size):
    # each case's float32 direction times its size (a float32 scalar: the product rounds in float32)
    logits = direction * (10.0 ** log_size.astype(np.float64)).astype(np.float32)[:, None]
    (vb, gb), (vc, gc) = heads_value_and_grad(jnp.asarray(xb), t[:, None], jnp.asarray(xc), logits)
    t64 = t.astype(np.float64)
    want_b = log_sigmoid(np.where(xb == 1, t64, -t64))
    with np.errstate(over="ignore"):
        sig = np.where(t64 > -700, 1.0 / (1.0 + np.exp(-np.maximum(t64, -700.0))), 0.0)
    size_b = 16 * EPS32 * (1.0 + np.abs(t64)) + 1e-6
    assert_close_to_bound(vb, want_b, size_b, "Bernoulli log P")
    assert_close_to_bound(np.asarray(gb)[:, 0], xb - sig, size_b, "Bernoulli d/d logit")
    lg = logits.astype(np.float64)
    top = lg.max(-1, keepdims=True)
    log_softmax = lg - (top + np.log(np.sum(np.exp(lg - top), -1, keepdims=True)))
    size = 16 * EPS32 * (1.0 + np.abs(lg).max(-1)) + 1e-6  # (R,): each case's own
    assert_close_to_bound(vc, log_softmax[np.arange(R), xc], size, "categorical log P")
    assert_close_to_bound(gc, np.eye(5)[xc] - np.exp(log_softmax), size[:, None], "categorical d/d logits")


def test_log_scale_clamp_is_the_documented_one():
    """Above MAX_LOG_SCALE a log-scale has no effect (the references clamp at the same point)."""
    f = jax.jit(
        lambda ls: DiscretizedLogisticMixture(jnp.zeros(1), jnp.zeros(1), ls, 256).log_prob(jnp.int32(7))
    )
    assert float(f(jnp.float32([MAX_LOG_SCALE]))) == float(f(jnp.float32([100.0])))
    assert np.isfinite(float(f(jnp.float32([MAX_LOG_SCALE]))))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
