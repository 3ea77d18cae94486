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
from hypothesis import given
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


def vec(strategy, n=K):
    return st.lists(strategy, min_size=n, max_size=n).map(lambda v: np.asarray(v, np.float32))


def assert_close_to_bound(got, want, bound, what):
    """|got - want| <= bound + 1e-6 (an absolute floor: a component whose responsibility is 1e-60
    has gradients of that size, computed to absolute, not relative, float32 accuracy)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bound = np.asarray(bound, np.float64) + 1e-6
    assert np.all(np.isfinite(got)), f"{what}: non-finite {got}"
    err = np.abs(got - want)
    assert np.all(err <= bound), f"{what}: |{got} - {want}| = {err} > bound {bound}"


def check_mixture_grads(grads, ref, rel):
    """grads (lw, mu, ls) against the reference, each within rel x its natural size."""
    g_lw, g_mu, g_ls = (np.asarray(g, np.float64) for g in grads)
    r = ref["r"]
    assert_close_to_bound(g_lw, ref["g_lw"], rel.max() * (np.abs(ref["g_lw"]) + 1.0), "d/d logit_weights")
    assert_close_to_bound(g_mu, ref["g_mu"], rel * (np.abs(ref["g_mu"]) + r * ref["inv_s"]), "d/d means")
    assert_close_to_bound(
        g_ls, ref["g_ls"], rel * (np.abs(ref["g_ls"]) + r * (1.0 + ref["arg"])), "d/d log_scales"
    )


def relative(ref):
    """The relative error bound of each component's gradients: its responsibility r_k is exp of a
    log P_k computed to round-off of that component's own argument scale (|centre| + |mu_k|)/s_k."""
    return 16.0 * EPS32 * (1.0 + ref["component_scale"] + ref["scale"] + np.abs(ref["log_p"]) + ref["lw_max"])


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
@partial(jax.jit, static_argnums=4)
def mixture_value_and_grad(x, lw, mu, ls, num_levels):
    f = lambda lw, mu, ls: DiscretizedLogisticMixture(lw, mu, ls, num_levels).log_prob(x)
    return jax.value_and_grad(f, argnums=(0, 1, 2))(lw, mu, ls)


@given(st.sampled_from(LEVELS), st.data(), vec(logits), vec(means(1.0)), vec(log_scales))
def test_discretized_logistic_mixture_is_finite_and_accurate(num_levels, data, lw, mu, ls):
    x = data.draw(st.one_of(st.sampled_from([0, num_levels - 1]), st.integers(0, num_levels - 1)))
    value, grads = mixture_value_and_grad(jnp.int32(x), lw, mu, ls, num_levels)
    ref = ref_mixture(np.array([x]), lw[None], mu[None], ls[None], num_levels)
    ref = {k: v[0] for k, v in ref.items()}
    assert_close_to_bound(
        value, ref["log_p"], float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]), "log P"
    )
    check_mixture_grads(grads, ref, relative(ref))


@partial(jax.jit, static_argnums=5)
def rgb_value_and_grad(x, lw, m, ls, co, num_levels):
    f = lambda lw, m, ls, co: DiscretizedRGBLogisticMixture(lw, m, ls, co, num_levels).log_prob(x)
    return jax.value_and_grad(f, argnums=(0, 1, 2, 3))(lw, m, ls, co)


@given(
    st.sampled_from(LEVELS),
    st.data(),
    vec(logits),
    vec(means(1.0), 3 * K),
    vec(log_scales, 3 * K),
    vec(f32(-5, 5), 3 * K),
)
def test_rgb_logistic_mixture_is_finite_and_accurate(num_levels, data, lw, m, ls, co):
    x = np.asarray(
        data.draw(
            st.lists(
                st.one_of(st.sampled_from([0, num_levels - 1]), st.integers(0, num_levels - 1)),
                min_size=3,
                max_size=3,
            )
        ),
        np.int32,
    )
    m, ls, co = m.reshape(3, K), ls.reshape(3, K), co.reshape(3, K)
    value, (g_lw, g_m, g_ls, g_co) = rgb_value_and_grad(jnp.asarray(x), lw, m, ls, co, num_levels)
    ref = ref_rgb(x[None], lw[None], m[None], ls[None], co[None], num_levels)
    ref = {k: v[0] for k, v in ref.items()}
    assert_close_to_bound(
        value, ref["log_p"], float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]), "log P"
    )
    rel, r = relative(ref), ref["r"]  # rel: (K,), broadcasts against (3, K)
    assert_close_to_bound(g_lw, ref["g_lw"], rel.max() * (np.abs(ref["g_lw"]) + 1.0), "d/d logit_weights")
    assert_close_to_bound(g_m, ref["g_mu"], rel * (np.abs(ref["g_mu"]) + r * ref["inv_s"]), "d/d means")
    assert_close_to_bound(
        g_ls, ref["g_ls"], rel * (np.abs(ref["g_ls"]) + r * (1.0 + ref["arg"])), "d/d log_scales"
    )
    # a coefficient moves a later channel's mean by at most 1 (tanh' <= 1, |r|, |g| <= 1)
    assert_close_to_bound(
        g_co, ref["g_co"], rel * (np.abs(ref["g_co"]) + (r * ref["inv_s"]).sum(0)), "d/d coeffs"
    )


@jax.jit
def integer_value_and_grad(z, lw, mu, ls):
    f = lambda lw, mu, ls: IntegerLogisticMixture(lw, mu, ls).log_prob(z)
    return jax.value_and_grad(f, argnums=(0, 1, 2))(lw, mu, ls)


@given(f32(-300, 300).map(round), vec(logits), vec(means(256.0)), vec(log_scales))
def test_integer_logistic_mixture_is_finite_and_accurate(z, lw, mu, ls):
    value, grads = integer_value_and_grad(jnp.float32(z), lw, mu, ls)
    ref = ref_integer(np.array([z], np.float32), lw[None], mu[None], ls[None])
    ref = {k: v[0] for k, v in ref.items()}
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
        jax.value_and_grad(lp, argnums=(0, 1, 2))(x, loc, ls),
        jax.value_and_grad(kl, argnums=(0, 1, 2, 3))(loc, ls, loc_p, ls_p),
    )


def _fits(*values):
    return all(np.all(np.abs(np.asarray(v, np.float64)) < 1e37) for v in values)


@given(
    means(1.0, max_exp=30),
    magnitudes(3),
    f32(-150, 80),
    st.one_of(means(1.0, max_exp=30), magnitudes(1)),
    f32(-150, 80),
    st.booleans(),
)
def test_gaussian_log_density_and_kl_are_finite_and_accurate(loc, dx, ls, loc_p, ls_p, near):
    """Finite values and gradients wherever the true ones fit in float32 (log-scales from -150:
    exp(log_scale) underflows float32 below -103), within float32 round-off of the float64 values."""
    if near:  # the posterior near the prior: the KL's cancelling terms
        loc_p, ls_p = float(np.float32(loc + dx)), float(np.float32(ls + (ls_p % 3.0) - 1.5))
    x = np.float32(loc + dx)
    args = [np.asarray([t], np.float32) for t in (x, loc, ls, loc_p, ls_p)]
    (lp, (g_x, g_loc, g_ls)), (kl, kl_grads) = gaussian_value_and_grad(*args)
    x64, loc64, ls64 = (float(t[0]) for t in args[:3])
    z = (x64 - loc64) * math.exp(-ls64)
    want_lp = -0.5 * z * z - ls64 - 0.5 * math.log(2 * math.pi)
    want_g = (-z * math.exp(-ls64), z * math.exp(-ls64), z * z - 1.0)
    if _fits(want_lp, *want_g):
        rel = 16 * EPS32 * (1.0 + abs(z) + z * z + abs(ls64)) + 1e-6
        assert_close_to_bound(lp, want_lp, rel, "log N")
        for got, want in zip((g_x, g_loc, g_ls), want_g, strict=True):
            assert_close_to_bound(got, want, rel * (abs(want) + 1.0), "d log N")
    ref = ref_kl(*(t[0] for t in args[1:]))
    want_kl = (ref["g_mq"], ref["g_lq"], ref["g_mp"], ref["g_lp"])
    if _fits(ref["kl"], *want_kl):
        rel = 16 * EPS32 * ref["scale"] + 1e-6
        assert_close_to_bound(kl, ref["kl"], rel, "KL")
        for got, want in zip(kl_grads, want_kl, strict=True):
            assert_close_to_bound(got, want, rel * (abs(want) + 1.0), "d KL")


# ----------------------------------------------------------------------------- Bernoulli / categorical heads
@jax.jit
def heads_value_and_grad(xb, t, xc, logits):
    bern = lambda t: BernoulliHead()(t, 2).log_prob(xb)
    cat = lambda lg: CategoricalHead()(lg, 5).log_prob(xc)
    return jax.value_and_grad(bern)(t), jax.value_and_grad(cat)(logits)


@given(st.integers(0, 1), magnitudes(30), st.integers(0, 4), vec(f32(-1, 1), 5), f32(-3, 30))
def test_bernoulli_and_categorical_heads_are_finite_and_accurate(xb, t, xc, direction, log_size):
    logits = np.float32(direction * 10.0**log_size)
    (vb, gb), (vc, gc) = heads_value_and_grad(jnp.int32(xb), np.float32([t]), jnp.int32(xc), logits)
    t64 = float(np.float32(t))
    want_b = float(log_sigmoid(t64 if xb else -t64))
    sig = 1.0 / (1.0 + math.exp(-t64)) if t64 > -700 else 0.0
    assert_close_to_bound(vb, want_b, 16 * EPS32 * (1.0 + abs(t64)) + 1e-6, "Bernoulli log P")
    assert_close_to_bound(gb, [xb - sig], 16 * EPS32 * (1.0 + abs(t64)) + 1e-6, "Bernoulli d/d logit")
    lg = logits.astype(np.float64)
    log_softmax = lg - (lg.max() + np.log(np.sum(np.exp(lg - lg.max()))))
    size = 16 * EPS32 * (1.0 + np.abs(lg).max()) + 1e-6
    assert_close_to_bound(vc, log_softmax[xc], size, "categorical log P")
    assert_close_to_bound(gc, np.eye(5)[xc] - np.exp(log_softmax), size, "categorical d/d logits")


def test_log_scale_clamp_is_the_documented_one():
    """Above MAX_LOG_SCALE a log-scale has no effect (the references clamp at the same point)."""
    f = jax.jit(
        lambda ls: DiscretizedLogisticMixture(jnp.zeros(1), jnp.zeros(1), ls, 256).log_prob(jnp.int32(7))
    )
    assert float(f(jnp.float32([MAX_LOG_SCALE]))) == float(f(jnp.float32([100.0])))
    assert np.isfinite(float(f(jnp.float32([MAX_LOG_SCALE]))))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
