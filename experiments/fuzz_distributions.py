"""Fuzzes dgmjax's likelihoods against float64 references: finite values, finite gradients, accuracy.

    python experiments/fuzz_distributions.py [--num_cases 45000] [--out experiments/results]

Draws random cases per family (numpy RNG, fixed seed): the discretized
logistic mixture (L in {2, 17, 256, 4096, 65536}, K in {1, 3, 10}), the RGB
mixture, the integer logistic mixture, the diagonal Gaussian (log-density and
KL), and the Bernoulli / categorical heads; means across many orders of
magnitude (up to 1e30, and 3e38 for finiteness), log-scales in [-20, 20] and
beyond ([-30, 100]). For each family it counts non-finite values and gradients
and the worst absolute error against the float64 reference (nats), over all
cases and over the cases near the data range (|mean| <= 2 on the data's
scale, log-scale in [-7, 3]); and the worst error in units of the float32
error bound `float32_bound` (the one tests/test_numerics_distributions.py
asserts). Writes fuzz_distributions.md and .json.

The references are float64 numpy, written independently of the code under
test: a bin's mass is reflected so that its midpoint is <= 0 and then taken
as log(sigma(b) - sigma(a)) = b + log(-expm1(-(b - a))) - softplus(a) - softplus(b),
with the width b - a = 2w/s exact; gradients are the analytic ones.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

EPS32 = float(np.finfo(np.float32).eps)
MIN_LOG_SCALE, MAX_LOG_SCALE, MAX_ARG = -7.0, 20.0, 1e30
LEVELS = (2, 17, 256, 4096, 65536)
COMPONENTS = (1, 3, 10)


# ------------------------------------------------------------------------------ float64 references
def softplus(t):
    return np.logaddexp(0.0, t)


def log_sigmoid(t):
    return -np.logaddexp(0.0, -t)


def clamp(x, lo, hi):
    return np.where(x < lo, lo, np.where(x > hi, hi, x))


def ref_log_bin(d, half_width, log_scale, has_lower, has_upper):
    """log P and d log P / d(a, b) of the bin [d - w, d + w] of a standard logistic scaled by e^ls.

    Returns (log_p, dlp_da, dlp_db, a, b); a is -inf where not has_lower, b +inf where not has_upper.
    """
    d, log_scale = np.asarray(d, np.float64), np.asarray(log_scale, np.float64)
    inv_s = np.exp(-log_scale)
    a = np.clip((d - half_width) * inv_s, -MAX_ARG, MAX_ARG)
    b = np.clip((d + half_width) * inv_s, -MAX_ARG, MAX_ARG)
    width = 2.0 * half_width * inv_s
    # reflect (a, b) -> (-b, -a) so that the midpoint is <= 0: no sigma near 1 is formed
    flip = (a + b) > 0
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    lo_open = np.where(flip, ~has_upper, ~has_lower)  # the reflected bin's lower edge is -inf
    hi_open = np.where(flip, ~has_lower, ~has_upper)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        interior = hi + np.log(-np.expm1(-width)) - softplus(lo) - softplus(hi)
        log_p = np.where(
            lo_open & hi_open,
            0.0,
            np.where(lo_open, log_sigmoid(hi), np.where(hi_open, log_sigmoid(-lo), interior)),
        )
        # d log P / db = sigma(b) sigma(-b) / P, d log P / da = -sigma(a) sigma(-a) / P
        dlp_db = np.where(has_upper, np.exp(log_sigmoid(b) + log_sigmoid(-b) - log_p), 0.0)
        dlp_da = np.where(has_lower, -np.exp(log_sigmoid(a) + log_sigmoid(-a) - log_p), 0.0)
    return log_p, dlp_da, dlp_db, a, b


def ref_mixture(x, lw, mu, ls, num_levels, min_log_scale=MIN_LOG_SCALE):
    """float64 log P and gradients (d/dlw, d/dmu, d/dls) of the discretized logistic mixture.

    x (N,) int levels; lw, mu, ls (N, K). Also returns the error scale S = sum_k r_k (|c| + |mu_k|
    + w) / s_k (the magnitude of the logistic arguments, weighted by responsibility).
    """
    x = np.asarray(x, np.float64)[:, None]
    lw, mu, ls = (np.asarray(t, np.float64) for t in (lw, mu, ls))
    lsc = clamp(ls, min_log_scale, MAX_LOG_SCALE)
    hw = 1.0 / (num_levels - 1)
    centre = (2.0 * x - (num_levels - 1)) / (num_levels - 1)
    lp_k, da, db, a, b = ref_log_bin(centre - mu, hw, lsc, x > 0, x < num_levels - 1)
    return _mix(
        lw, lp_k, da, db, a, b, lsc, ls, min_log_scale, (np.abs(centre) + np.abs(mu) + hw) * np.exp(-lsc)
    )


def _mix(lw, lp_k, da, db, a, b, lsc, ls, min_log_scale, arg_scale):
    log_pi = lw - logsumexp(lw, axis=-1, keepdims=True)
    joint = log_pi + lp_k
    log_p = logsumexp(joint, axis=-1)
    r = np.exp(joint - log_p[:, None])
    inv_s = np.exp(-lsc)
    g_mu = -r * (da + db) * inv_s
    inside = (ls >= min_log_scale) & (ls <= MAX_LOG_SCALE)
    with np.errstate(invalid="ignore"):
        g_ls = np.where(inside, -r * (np.where(da != 0, a * da, 0.0) + np.where(db != 0, b * db, 0.0)), 0.0)
    g_lw = r - np.exp(log_pi)
    scale = np.sum(r * np.minimum(arg_scale, MAX_ARG), -1)
    return {
        "log_p": log_p,
        "g_lw": g_lw,
        "g_mu": g_mu,
        "g_ls": g_ls,
        "r": r,
        "inv_s": inv_s,
        "component_scale": np.minimum(arg_scale, MAX_ARG),
        "arg": np.minimum(np.abs(a), MAX_ARG) + np.minimum(np.abs(b), MAX_ARG),
        "scale": scale,
        "lw_max": np.max(np.abs(np.where(np.isfinite(lw), lw, 0.0)), -1),
    }


def ref_integer(z, lw, mu, ls, min_log_scale=MIN_LOG_SCALE):
    """float64 log P and gradients of the integer logistic mixture (unit bins on Z)."""
    z = np.asarray(z, np.float64)[:, None]
    lw, mu, ls = (np.asarray(t, np.float64) for t in (lw, mu, ls))
    lsc = clamp(ls, min_log_scale, MAX_LOG_SCALE)
    edges = np.ones(np.broadcast_shapes(z.shape, mu.shape), bool)
    lp_k, da, db, a, b = ref_log_bin(z - mu, 0.5, lsc, edges, edges)
    return _mix(lw, lp_k, da, db, a, b, lsc, ls, min_log_scale, (np.abs(z) + np.abs(mu) + 0.5) * np.exp(-lsc))


def ref_rgb(x, lw, m, ls, co, num_levels, min_log_scale=MIN_LOG_SCALE):
    """float64 log P and gradients of the RGB mixture: x (N, 3); lw (N, K); m, ls, co (N, 3, K)."""
    x = np.asarray(x, np.float64)
    lw, m, ls, co = (np.asarray(t, np.float64) for t in (lw, m, ls, co))
    t = np.tanh(co)
    hw = 1.0 / (num_levels - 1)
    centre = (2.0 * x - (num_levels - 1)) / (num_levels - 1)  # (N, 3)
    r_, g_ = centre[:, 0:1], centre[:, 1:2]
    mu = np.stack([m[:, 0], m[:, 1] + t[:, 0] * r_, m[:, 2] + t[:, 1] * r_ + t[:, 2] * g_], 1)
    lsc = clamp(ls, min_log_scale, MAX_LOG_SCALE)
    xe = x[:, :, None]
    lp_c, da, db, a, b = ref_log_bin(centre[:, :, None] - mu, hw, lsc, xe > 0, xe < num_levels - 1)
    lp_k = lp_c.sum(1)
    log_pi = lw - logsumexp(lw, axis=-1, keepdims=True)
    joint = log_pi + lp_k
    log_p = logsumexp(joint, axis=-1)
    r = np.exp(joint - log_p[:, None])  # (N, K)
    inv_s = np.exp(-lsc)
    dmu = -(da + db) * inv_s  # d lp_c / d mu_c, (N, 3, K)
    g_m = r[:, None] * dmu
    inside = (ls >= min_log_scale) & (ls <= MAX_LOG_SCALE)
    g_ls = np.where(
        inside, -r[:, None] * (np.where(da != 0, a * da, 0.0) + np.where(db != 0, b * db, 0.0)), 0.0
    )
    sech2 = 1.0 - t**2
    g_co = np.stack(
        [g_m[:, 1] * r_ * sech2[:, 0], g_m[:, 2] * r_ * sech2[:, 1], g_m[:, 2] * g_ * sech2[:, 2]], 1
    )
    arg = (np.abs(centre[:, :, None]) + np.abs(mu) + hw) * inv_s
    return {
        "log_p": log_p,
        "g_lw": r - np.exp(log_pi),
        "g_mu": g_m,
        "g_ls": g_ls,
        "g_co": g_co,
        "r": r,
        "inv_s": inv_s,
        "arg": np.minimum(np.abs(a), MAX_ARG) + np.minimum(np.abs(b), MAX_ARG),
        "scale": np.sum(r * np.minimum(arg, MAX_ARG).sum(1), -1),
        "component_scale": np.minimum(arg, MAX_ARG).sum(1),
        "lw_max": np.max(np.abs(lw), -1),
    }


def ref_gaussian(x, loc, ls):
    """float64 log N(x; loc, e^{2 ls}) per dimension and its gradients (d/dx, d/dloc, d/dls)."""
    x, loc, ls = (np.asarray(t, np.float64) for t in (x, loc, ls))
    z = (x - loc) * np.exp(-ls)
    return {
        "log_p": -0.5 * z**2 - ls - 0.5 * math.log(2 * math.pi),
        "g_loc": z * np.exp(-ls),
        "g_ls": z**2 - 1.0,
        "z": z,
    }


def ref_kl(mq, lq, mp, lp):
    """float64 KL(N(mq, e^{2lq}) || N(mp, e^{2lp})) per dimension and gradients in (mq, lq, mp, lp)."""
    mq, lq, mp, lp = (np.asarray(t, np.float64) for t in (mq, lq, mp, lp))
    ratio = np.exp(2.0 * (lq - lp))
    r = (mq - mp) * np.exp(-lp)
    kl = lp - lq + 0.5 * ratio + 0.5 * r**2 - 0.5
    return {
        "kl": kl,
        "g_mq": r * np.exp(-lp),
        "g_lq": ratio - 1.0,
        "g_mp": -r * np.exp(-lp),
        # the error scale: each term's size, the ratio's times 1 + 2|lq - lp| (exp(2(lq - lp))
        # amplifies the round-off of the difference: the KL's own condition in lq and lp)
        "g_lp": 1.0 - ratio - r**2,
        "scale": np.abs(lp - lq) + 0.5 * ratio * (1.0 + 2.0 * np.abs(lq - lp)) + 0.5 * r**2 + 1.0,
    }


def float32_bound(scale, value, lw_max=0.0):
    """The float32 error bound (nats) the tests assert: 16 unit round-offs of the magnitudes the
    computation goes through (the logistic arguments |a|, |b| weighted by responsibility, the
    result, the mixture logits), plus 1e-6 absolute. Each of the few rounding steps (the centred
    difference, the scaling by 1/s, each log-space term, log_softmax/logsumexp) contributes at
    most one unit round-off of its own magnitude, and log P moves by at most one nat per unit
    shift of a and b together."""
    return 16.0 * EPS32 * (1.0 + scale + np.abs(value) + lw_max) + 1e-6


# ------------------------------------------------------------------------------ random cases
def draw_means(g, n, data_scale=1.0):
    """Means across many orders of magnitude: a third near the data, the rest log-uniform in
    magnitude 1e-3 .. 1e30, and a few at +-3e38."""
    near = g.uniform(-1.2, 1.2, n) * data_scale
    far = np.sign(g.standard_normal(n)) * 10.0 ** g.uniform(-3, 30, n)
    huge = np.sign(g.standard_normal(n)) * 3e38
    kind = g.choice(3, n, p=[0.34, 0.64, 0.02])
    return np.where(kind == 0, near, np.where(kind == 1, far, huge)).astype(np.float32)


def draw_log_scales(g, n):
    """Log-scales in [-20, 20] mostly, [-30, 100] for a quarter."""
    inner, outer = g.uniform(-20, 20, n), g.uniform(-30, 100, n)
    return np.where(g.random(n) < 0.75, inner, outer).astype(np.float32)


def _jit_family():
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from dgmjax.distributions import (  # noqa: PLC0415
        BernoulliHead,
        CategoricalHead,
        DiscretizedLogisticMixture,
        DiscretizedRGBLogisticMixture,
        IntegerLogisticMixture,
        LogScaleNormal,
    )

    def grad_of(f, argnums):
        return jax.jit(jax.vmap(jax.value_and_grad(f, argnums=argnums)), static_argnums=())

    fns = {}
    for num_levels in LEVELS:
        fns[("dlm", num_levels)] = grad_of(
            lambda x, lw, mu, ls, L=num_levels: DiscretizedLogisticMixture(lw, mu, ls, L).log_prob(x),
            (1, 2, 3),
        )
        fns[("rgb", num_levels)] = grad_of(
            lambda x, lw, m, ls, co, L=num_levels: DiscretizedRGBLogisticMixture(lw, m, ls, co, L).log_prob(
                x
            ),
            (1, 2, 3, 4),
        )
    fns["integer"] = grad_of(lambda z, lw, mu, ls: IntegerLogisticMixture(lw, mu, ls).log_prob(z), (1, 2, 3))
    fns["gaussian"] = grad_of(lambda x, m, ls: LogScaleNormal(m, ls).log_prob(x), (0, 1, 2))
    fns["kl"] = grad_of(
        lambda mq, lq, mp, lp: LogScaleNormal(mq, lq).kl_divergence(LogScaleNormal(mp, lp)), (0, 1, 2, 3)
    )
    fns["bernoulli"] = grad_of(lambda x, t: BernoulliHead()(t, 2).log_prob(x), (1,))
    fns["categorical"] = {
        L: grad_of(lambda x, t, L=L: CategoricalHead()(t, L).log_prob(x), (1,)) for L in (2, 17, 256)
    }
    return fns, jnp


def _fits(*grads):
    """True where every reference gradient fits in float32 (with room for its round-off)."""
    with np.errstate(invalid="ignore"):
        return np.all([np.abs(np.asarray(g, np.float64)) < 1e38 for g in grads], 0)


def _tally(rows, name, cases, values, grads, err, near, bound_ratio):
    values = np.asarray(values, np.float64)
    finite_grad = np.all([np.all(np.isfinite(np.asarray(gr).reshape(len(values), -1)), 1) for gr in grads], 0)
    ok = np.isfinite(err)
    row = rows.setdefault(
        name,
        {
            "family": name,
            "cases": 0,
            "nonfinite_values": 0,
            "nonfinite_gradients": 0,
            "worst_abs_error": 0.0,
            "worst_abs_error_near_data": 0.0,
            "worst_error_over_float32_bound": 0.0,
            "compared": 0,
            "near_data": 0,
        },
    )
    row["cases"] += cases
    row["nonfinite_values"] += int(np.sum(~np.isfinite(values)))
    row["nonfinite_gradients"] += int(np.sum(~finite_grad))
    row["compared"] += int(ok.sum())
    if ok.any():
        row["worst_abs_error"] = max(row["worst_abs_error"], float(np.max(err[ok])))
        row["worst_error_over_float32_bound"] = max(
            row["worst_error_over_float32_bound"], float(np.max(bound_ratio[ok]))
        )
    row["near_data"] += int(np.sum(ok & near))
    if (ok & near).any():
        row["worst_abs_error_near_data"] = max(
            row["worst_abs_error_near_data"], float(np.max(err[ok & near]))
        )


def run(num_cases: int, seed: int = 0) -> list[dict]:
    fns, jnp = _jit_family()
    g = np.random.default_rng(seed)
    rows: dict = {}
    per_family = max(num_cases // 5, 1)
    batch = 500

    def comparable(ref_value):  # the true value fits in float32 (|a|, |b| below the clip)
        return np.isfinite(ref_value) & (np.abs(ref_value) < 1e29)

    # discretized logistic mixture: every (L, K) pair gets an equal share
    combos = [(L, K) for L in LEVELS for K in COMPONENTS]
    for L, K in combos:
        n = max(per_family // len(combos), 1)
        for start in range(0, n, batch):
            m = min(batch, n - start)
            x = g.integers(0, L, m).astype(np.int32)
            x[: m // 4] = g.choice([0, L - 1], m // 4)  # edge levels often
            lw = (3.0 * g.standard_normal((m, K))).astype(np.float32)
            mu = draw_means(g, m * K).reshape(m, K)
            ls = draw_log_scales(g, m * K).reshape(m, K)
            value, grads = fns[("dlm", L)](jnp.asarray(x), jnp.asarray(lw), jnp.asarray(mu), jnp.asarray(ls))
            ref = ref_mixture(x, lw, mu, ls, L)
            err = np.abs(np.asarray(value, np.float64) - ref["log_p"])
            err = np.where(comparable(ref["log_p"]), err, np.nan)
            near = np.all((np.abs(mu) <= 2) & (ls >= -7) & (ls <= 3), 1) & (ref["log_p"] > -100)
            _tally(
                rows,
                "discretized logistic mixture",
                m,
                value,
                grads,
                err,
                near,
                err / float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]),
            )

    # RGB mixture
    for L in LEVELS:
        n = max(per_family // len(LEVELS), 1)
        for start in range(0, n, batch):
            m, K = min(batch, n - start), 3
            x = g.integers(0, L, (m, 3)).astype(np.int32)
            lw = (3.0 * g.standard_normal((m, K))).astype(np.float32)
            mu = draw_means(g, m * 3 * K).reshape(m, 3, K)
            ls = draw_log_scales(g, m * 3 * K).reshape(m, 3, K)
            co = (2.0 * g.standard_normal((m, 3, K))).astype(np.float32)
            value, grads = fns[("rgb", L)](*(jnp.asarray(t) for t in (x, lw, mu, ls, co)))
            ref = ref_rgb(x, lw, mu, ls, co, L)
            err = np.where(
                comparable(ref["log_p"]), np.abs(np.asarray(value, np.float64) - ref["log_p"]), np.nan
            )
            near = np.all((np.abs(mu) <= 2) & (ls >= -7) & (ls <= 3), (1, 2)) & (ref["log_p"] > -100)
            _tally(
                rows,
                "RGB logistic mixture",
                m,
                value,
                grads,
                err,
                near,
                err / float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]),
            )

    # integer logistic mixture (integer units: data within +-256)
    for start in range(0, per_family, batch):
        m, K = min(batch, per_family - start), int(g.choice(COMPONENTS))
        z = g.integers(-256, 257, m).astype(np.float32)
        lw = (3.0 * g.standard_normal((m, K))).astype(np.float32)
        mu = draw_means(g, m * K, data_scale=256.0).reshape(m, K)
        ls = draw_log_scales(g, m * K).reshape(m, K)
        value, grads = fns["integer"](*(jnp.asarray(t) for t in (z, lw, mu, ls)))
        ref = ref_integer(z, lw, mu, ls)
        err = np.where(comparable(ref["log_p"]), np.abs(np.asarray(value, np.float64) - ref["log_p"]), np.nan)
        near = np.all((np.abs(mu) <= 300) & (ls >= -7) & (ls <= 8), 1) & (ref["log_p"] > -100)
        _tally(
            rows,
            "integer logistic mixture",
            m,
            value,
            grads,
            err,
            near,
            err / float32_bound(ref["scale"], ref["log_p"], ref["lw_max"]),
        )

    # diagonal Gaussian: log-density (d = 1) and KL (d = 1)
    half = per_family // 2
    for start in range(0, half, batch):
        m = min(batch, half - start)
        loc = draw_means(g, m)[:, None]
        x = (loc[:, 0] + g.standard_normal(m) * 10.0 ** g.uniform(-3, 3, m)).astype(np.float32)[:, None]
        ls = g.uniform(-150, 80, m).astype(np.float32)[:, None]
        value, grads = fns["gaussian"](*(jnp.asarray(t) for t in (x, loc, ls)))
        ref = ref_gaussian(x[:, 0], loc[:, 0], ls[:, 0])
        # a Gaussian's value or gradient can be too large for float32 (z^2 / 2 past 3e38): only those
        # whose true value and gradients fit must be finite, and are counted
        fits = comparable(ref["log_p"]) & _fits(ref["g_loc"], ref["g_ls"])
        err = np.where(fits, np.abs(np.asarray(value, np.float64) - ref["log_p"]), np.nan)
        near = (np.abs(loc[:, 0]) <= 10) & (np.abs(ls[:, 0]) <= 5) & (np.abs(ref["z"]) <= 10)
        _tally(
            rows,
            "Gaussian log-density",
            int(fits.sum()),
            np.asarray(value)[fits],
            [np.asarray(gr)[fits] for gr in grads],
            err[fits],
            near[fits],
            (err / float32_bound(np.abs(ref["z"]) + ref["z"] ** 2 + np.abs(ls[:, 0]), ref["log_p"]))[fits],
        )
        mq, mp = draw_means(g, m)[:, None], draw_means(g, m)[:, None]
        mp = np.where(g.random((m, 1)) < 0.5, mq + g.standard_normal((m, 1)).astype(np.float32), mp)
        lq, lp = (g.uniform(-150, 80, (m, 1)).astype(np.float32) for _ in range(2))
        lq = np.where(g.random((m, 1)) < 0.5, lp + g.uniform(-20, 20, (m, 1)).astype(np.float32), lq)
        value, grads = fns["kl"](*(jnp.asarray(t) for t in (mq, lq, mp, lp)))
        ref = ref_kl(mq[:, 0], lq[:, 0], mp[:, 0], lp[:, 0])
        fits = comparable(ref["kl"]) & _fits(ref["g_mq"], ref["g_lq"], ref["g_mp"], ref["g_lp"])
        err = np.where(fits, np.abs(np.asarray(value, np.float64) - ref["kl"]), np.nan)
        near = (
            (np.abs(mq[:, 0]) <= 10)
            & (np.abs(mp[:, 0]) <= 10)
            & (np.abs(lq[:, 0]) <= 5)
            & (np.abs(lp[:, 0]) <= 5)
            & (ref["kl"] < 100)
        )
        _tally(
            rows,
            "Gaussian KL",
            int(fits.sum()),
            np.asarray(value)[fits],
            [np.asarray(gr)[fits] for gr in grads],
            err[fits],
            near[fits],
            (err / float32_bound(ref["scale"], ref["kl"]))[fits],
        )

    # Bernoulli and categorical heads
    for start in range(0, half, batch):
        m = min(batch, half - start)
        t = (np.sign(g.standard_normal(m)) * 10.0 ** g.uniform(-3, 38, m)).astype(np.float32)[:, None]
        x = g.integers(0, 2, m).astype(np.int32)
        value, grads = fns["bernoulli"](jnp.asarray(x), jnp.asarray(t))
        ref = np.where(
            x == 1, log_sigmoid(t[:, 0].astype(np.float64)), log_sigmoid(-t[:, 0].astype(np.float64))
        )
        err = np.where(comparable(ref), np.abs(np.asarray(value, np.float64) - ref), np.nan)
        _tally(
            rows,
            "Bernoulli / categorical heads",
            m,
            value,
            grads,
            err,
            np.abs(t[:, 0]) <= 10,
            err / float32_bound(0.0, ref, np.abs(t[:, 0])),
        )
        L = int(g.choice([2, 17, 256]))
        logits = (g.standard_normal((m, L)) * 10.0 ** g.uniform(-2, 30, (m, 1))).astype(np.float32)
        x = g.integers(0, L, m).astype(np.int32)
        value, grads = fns["categorical"][L](jnp.asarray(x), jnp.asarray(logits))
        lg = logits.astype(np.float64)
        ref = lg[np.arange(m), x] - logsumexp(lg, axis=-1)
        err = np.where(comparable(ref), np.abs(np.asarray(value, np.float64) - ref), np.nan)
        _tally(
            rows,
            "Bernoulli / categorical heads",
            m,
            value,
            grads,
            err,
            np.abs(lg).max(-1) <= 10,
            err / float32_bound(0.0, ref, np.abs(lg).max(-1)),
        )
    return list(rows.values())


def to_markdown(rows, command, seconds):
    lines = [
        "# Fuzzing the likelihoods against float64 references",
        "",
        f"`{command}` ({seconds:.0f} s on the CPU). Errors are |float32 result - float64 reference| in nats, "
        "over the cases whose true value fits in float32 (|log P| < 1e29; for the Gaussians, whose value "
        "and gradients fit: only those are counted); near the data: means within the data's range (|mu| <= 2 "
        "on [-1, 1]; |mu| <= 300 integer units; |mu| <= 10 and |z| <= 10 Gaussian), ordinary log-scales, "
        "log P > -100. The last column is the worst error divided by the float32 bound the tests assert "
        "(16 round-offs of the magnitudes involved, see `float32_bound`): below 1 everywhere means every "
        "error is float32 round-off of the value's own size.",
        "",
        "| family | cases | non-finite values | non-finite gradients | worst abs error (nats) | "
        "worst abs error near the data | worst error / float32 bound |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['cases']} | {r['nonfinite_values']} | {r['nonfinite_gradients']} | "
            f"{r['worst_abs_error']:.3g} | "
            f"{r['worst_abs_error_near_data']:.3g} ({r['near_data']} cases) | "
            f"{r['worst_error_over_float32_bound']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_cases", type=int, default=45000, help="cases in all, split over the families")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.num_cases < 1:
        parser.error("--num_cases must be >= 1")
    start = time.time()
    rows = run(args.num_cases, args.seed)
    seconds = time.time() - start
    command = f"python experiments/fuzz_distributions.py --num_cases {args.num_cases} --seed {args.seed}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz_distributions.md").write_text(to_markdown(rows, command, seconds))
    (out / "fuzz_distributions.json").write_text(
        json.dumps(
            {
                "command": command,
                "seconds": seconds,
                "num_cases": args.num_cases,
                "seed": args.seed,
                "rows": rows,
            },
            indent=1,
        )
    )
    print(to_markdown(rows, command, seconds))


if __name__ == "__main__":
    main()
