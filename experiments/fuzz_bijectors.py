"""Fuzzing the bijectors against float64 references: finite values and gradients, float32 round-off errors.

    python experiments/fuzz_bijectors.py [--num_cases 2000] [--seed 0]

Per family, random cases (numpy RNG, fixed seed) over wide ranges: inputs, conditioner outputs and
parameters with magnitudes log-uniform over many decades (and exact zeros). Each case runs the
bijector's forward and inverse, their log-dets, and the gradients of `sum(c * out) + log_det` with
respect to every input, in float32 and, inside `jax.enable_x64(True)`, in float64 on the
same (float32-representable) values. Conditioners are fixed drawn outputs (the bijector is fuzzed,
not a network). Writes experiments/results/fuzz_bijectors.md and .json.

The error bound each case is held to (`Family.bounds`) is `K` float32 round-offs (K = 32 for values,
64 for gradients) of the magnitudes the result is computed from, written out per family: e.g. for
an affine layer x = z e^s + t, (|z| e^s (1 + |s|) + |t| + |x|) (the product's, the exp's and the
sum's round-offs; an error of u in s is one of u relative in e^s); for the 1x1 convolution, the
componentwise bounds of a product of triangular matrices and of triangular inverses
(|L^-1| |L| |L^-1| ...). The tests (tests/test_numerics_bijectors.py) assert the same bounds.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import bijectors as B

EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)
REPRESENTABLE = 1e30
K_VALUE, K_GRAD = 32.0, 64.0
RESULTS = Path(__file__).resolve().parent / "results"
# the scale functions the fuzzed layers take, by the names the cases use (the autoregressive
# layers' default tanh bound is 3)
COUPLING_SCALES = {"tanh": B.tanh_scale, "sigmoid": B.sigmoid_scale}
AUTOREGRESSIVE_SCALES = {"tanh": functools.partial(B.tanh_scale, bound=3.0), "sigmoid": B.sigmoid_scale}


# ---- drawing inputs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """An input: shape, and magnitudes log-uniform in [10^lo, 10^hi] with a random sign (`signed`),
    plus exact zeros; or "unit" values in [0, 1] with the end points."""

    shape: tuple
    lo: float = -6.0
    hi: float = 4.0
    signed: bool = True
    unit: bool = False


def draw(rng: np.random.Generator, spec: Spec) -> np.ndarray:
    n = int(np.prod(spec.shape, dtype=np.int64))
    if spec.unit:
        x = rng.uniform(0.0, 1.0, n)
        special = rng.random(n)
        x = np.where(special < 0.05, 0.0, np.where(special > 0.95, 1.0, x))
    else:
        x = 10.0 ** rng.uniform(spec.lo, spec.hi, n)
        if spec.signed:
            x *= rng.choice([-1.0, 1.0], n)
        x = np.where(rng.random(n) < 0.03, 0.0, x)
    return x.astype(np.float32).reshape(spec.shape)


# ---- families ----------------------------------------------------------------------------------


def _grads(fn, args, weights):
    """Values and the gradients of sum(weights * out) + log_det with respect to every argument."""

    def scalar(*a):
        out, ld = fn(*a)
        return jnp.sum(weights.astype(out.dtype) * out) + jnp.sum(ld)

    out, ld = fn(*args)
    grads = jax.grad(scalar, argnums=tuple(range(len(args))))(*args)
    return out, ld, grads


class Family:
    """name, `specs` (input name -> Spec), `run(case) -> dict of outputs` (jitted, any float dtype),
    `bounds(case, ref) -> dict of per-output absolute error bounds` from the float64 reference."""

    name: str
    specs: dict

    configs: list = [None]

    def __init__(self):
        self._jit = jax.jit(self._run_batch, static_argnums=1)

    def _run_batch(self, cases, only):
        """`run` vmapped over the cases' leading axis (one compile per config and batch size)."""
        return jax.vmap(lambda case: self.run(case, only))(cases)

    def _configs(self, only):
        return self.configs if only is None else [self.configs[only]]

    def prepare(self, case):
        """Makes a drawn case valid (e.g. unit data kept off the end points where they are infinite);
        elementwise, so it serves a batch of cases as well."""
        return case

    def evaluate(self, cases, config=None):
        """Runs `config` (an index into `configs`; None: all of them) on a batch of cases (every input
        with a leading axis of cases), in float32 and in float64, and each case's bounds."""
        # XLA on the CPU flushes subnormal floats to zero (FTZ/DAZ): to float32 they are zeros, and
        # the float64 reference sees the same flushed values.
        cases = {k: np.asarray(v, np.float32) for k, v in cases.items()}
        cases = self.prepare({k: np.where(np.abs(v) < TINY32, np.float32(0), v) for k, v in cases.items()})
        args32 = {k: jnp.asarray(v) for k, v in cases.items()}
        out32 = jax.tree_util.tree_map(np.asarray, self._jit(args32, config))
        with jax.enable_x64(True):
            args64 = {k: jnp.asarray(v, jnp.float64) for k, v in cases.items()}
            out64 = jax.tree_util.tree_map(np.asarray, self._jit(args64, config))
        num = len(next(iter(cases.values())))
        split = [
            tuple({k: v[i] for k, v in tree.items()} for tree in (cases, out32, out64)) for i in range(num)
        ]
        with jax.enable_x64(True):
            return [
                (case, o32, o64, self.bounds({k: v.astype(np.float64) for k, v in case.items()}, o64, config))
                for case, o32, o64 in split
            ]


def check_batch(family: Family, cases, config=None) -> list[dict]:
    """Evaluates a batch of cases (every input with a leading axis of cases) at once: one report
    per case (the same as `check` on each case alone)."""
    return [_report(*evaluated) for evaluated in family.evaluate(cases, config)]


def check(family: Family, case, config=None) -> dict:
    """Evaluates one case: counts of non-finite values / gradients, worst error and error / bound."""
    return check_batch(family, {k: np.asarray(v)[None] for k, v in case.items()}, config)[0]


def _report(case, out32, out64, bounds) -> dict:
    scale = max(float(np.max(np.abs(v))) if np.size(v) else 0.0 for v in case.values())
    report = {
        "nonfinite_values": 0,
        "nonfinite_grads": 0,
        "worst_error": 0.0,
        "worst_ratio": 0.0,
        "worst_output": None,
        "unrepresentable": 0,
    }
    for key, value in out32.items():
        ref, bound = out64[key], bounds[key]
        # Entries whose true value (the float64 reference) is beyond float32's range, or near it
        # (|ref| > 1e30, where float32 intermediates can overflow), are not float32's to compute
        # (e.g. Planar's inverse gradients near its singular set): counted, not checked.
        fits = np.isfinite(ref) & (np.abs(ref) <= REPRESENTABLE)
        report["unrepresentable"] += int((~fits).sum())
        bad = ~np.isfinite(value) & fits
        report["nonfinite_grads" if key.startswith("d") else "nonfinite_values"] += int(bad.sum())
        err = np.where(fits, np.abs(value.astype(np.float64) - np.where(fits, ref, 0.0)), 0.0)
        # Intermediates below float32's smallest normal number are flushed to zero (XLA's CPU FTZ): an
        # absolute floor of TINY32, carried through up to two products with the inputs' magnitudes.
        bound = bound + K_VALUE * TINY32 * (1.0 + scale) ** 2
        ratio = np.where(err == 0, 0.0, err / bound)
        if ratio.size and float(np.max(ratio)) > report["worst_ratio"]:
            report["worst_ratio"], report["worst_output"] = float(np.max(ratio)), key
        if err.size:
            report["worst_error"] = max(report["worst_error"], float(np.max(err)))
    return report


def _affine_bounds(z, t, s, c, k_ld_terms):
    """Bounds for x = z e^s + t (forward) given the float64 s, and its gradients (c: the weights)."""
    es = np.exp(s)
    value = K_VALUE * EPS32 * (np.abs(z) * es * (1 + np.abs(s)) + np.abs(t) + np.abs(z * es + t))
    ld = K_VALUE * EPS32 * (k_ld_terms * np.sum(np.abs(s) + 1.0))
    return value, ld, es


class AffineCoupling(Family):
    """Masked couplings (vector mask (6,), checkerboard mask (2, 2, 2)) and a split coupling ((2, 2, 4),
    Glow's channel split), each with the tanh and the sigmoid scale; the conditioner returns the drawn
    shift and raw log-scale."""

    name = "affine coupling (tanh, sigmoid; vector, image, split)"
    configs = [(kind, fn) for kind in ("vector", "image", "split") for fn in ("tanh", "sigmoid")]
    shapes = {"vector": (6,), "image": (2, 2, 2), "split": (2, 2, 4)}

    def __init__(self):
        self.specs = {}
        for kind, fn in self.configs:
            shape = self.shapes[kind]
            rest = shape[:-1] + (shape[-1] // 2,) if kind == "split" else shape
            self.specs.update(
                {
                    f"{kind}_{fn}_z": Spec(shape),
                    f"{kind}_{fn}_x": Spec(shape),
                    f"{kind}_{fn}_shift": Spec(rest, hi=3),
                    f"{kind}_{fn}_raw": Spec(rest, hi=3),
                    f"{kind}_{fn}_c": Spec(shape, lo=-2, hi=1),
                }
            )
        super().__init__()

    @staticmethod
    def _layer(kind, fn, shift, raw):
        params = jnp.stack([shift, raw], -1)
        if kind == "split":
            return B.affine_split_coupling(2, lambda kept: params, scale_fn=COUPLING_SCALES[fn])
        mask = B.alternating_mask(6) if kind == "vector" else B.checkerboard_mask((2, 2, 2))
        return B.affine_coupling(mask, lambda xm: params, scale_fn=COUPLING_SCALES[fn])

    def run(self, case, only=None):
        out = {}
        for kind, fn in self._configs(only):
            p = f"{kind}_{fn}_"
            for direction, x in (("fwd", case[p + "z"]), ("inv", case[p + "x"])):

                def f(x, shift, raw, kind=kind, fn=fn, direction=direction):
                    layer = self._layer(kind, fn, shift, raw)
                    return (
                        layer.forward_and_log_det(x) if direction == "fwd" else layer.inverse_and_log_det(x)
                    )

                y, ld, (dx, dshift, draw_) = _grads(f, (x, case[p + "shift"], case[p + "raw"]), case[p + "c"])
                out.update(
                    {
                        f"{p}{direction}": y,
                        f"{p}{direction}_ld": ld,
                        f"d{p}{direction}_x": dx,
                        f"d{p}{direction}_shift": dshift,
                        f"d{p}{direction}_raw": draw_,
                    }
                )
        return out

    def bounds(self, case, ref, only=None):
        res = {}
        for kind, fn in self._configs(only):
            p = f"{kind}_{fn}_"
            shift, raw, c = case[p + "shift"], case[p + "raw"], case[p + "c"]
            with jax.enable_x64(True):
                s = np.asarray(COUPLING_SCALES[fn](jnp.asarray(raw)))
            ds = np.ones_like(s)  # |d log s / d raw| <= 1 for both bounds
            for direction, x in (("fwd", case[p + "z"]), ("inv", case[p + "x"])):
                sign = 1.0 if direction == "fwd" else -1.0
                if kind == "split":  # the transformed part: channels 2: (the first two are kept)
                    xt, ct = x[..., 2:], c[..., 2:]
                else:
                    mask = np.asarray(
                        B.alternating_mask(6) if kind == "vector" else B.checkerboard_mask((2, 2, 2))
                    )
                    xt, ct = x, c
                t = -shift * np.exp(-s) if direction == "inv" else shift
                value, ld, es = _affine_bounds(xt, t, sign * s, ct, xt.size + 2)
                gx = K_GRAD * EPS32 * (np.abs(ct) * es * (1 + np.abs(s)) + 1 + np.abs(s))
                gshift = K_GRAD * EPS32 * (np.abs(ct) * (es if direction == "inv" else 1.0) * (1 + np.abs(s)))
                graw = (
                    K_GRAD
                    * EPS32
                    * ds
                    * (
                        np.abs(ct)
                        * (
                            np.abs(xt) * es * (1 + np.abs(s))
                            + np.abs(shift) * (es if direction == "inv" else 0.0)
                        )
                        + 1.0
                        + np.abs(s)
                    )
                )
                # Kept entries pass through exactly: y = x, and d/dx = c (the conditioner is constant).
                kept_value, kept_grad = K_VALUE * EPS32 * np.abs(x), K_GRAD * EPS32 * np.abs(c)
                if kind == "split":
                    res[p + direction] = np.concatenate([kept_value[..., :2], value], -1)
                    res[f"d{p}{direction}_x"] = np.concatenate([kept_grad[..., :2], gx], -1)
                else:
                    res[p + direction] = np.where(mask, kept_value, value)
                    res[f"d{p}{direction}_x"] = np.where(mask, kept_grad, gx)
                    gshift = np.where(mask, 0.0, gshift)
                    graw = np.where(mask, 0.0, graw)
                res[p + direction + "_ld"] = np.asarray(ld)
                res[f"d{p}{direction}_shift"] = gshift
                res[f"d{p}{direction}_raw"] = graw
        return res


class Autoregressive(Family):
    """MaskedAutoregressive (MAF: sequential forward, one-pass inverse) and InverseAutoregressive (IAF),
    tanh (bound 3) and sigmoid scales, D = 5, the conditioner returning drawn (shift, raw)."""

    name = "MAF / IAF autoregressive affine (tanh, sigmoid)"
    configs = [(cls, fn) for cls in ("maf", "iaf") for fn in ("tanh", "sigmoid")]

    def __init__(self):
        self.specs = {}
        for cls, fn in self.configs:
            p = f"{cls}_{fn}_"
            self.specs.update(
                {
                    p + "z": Spec((5,)),
                    p + "x": Spec((5,)),
                    p + "shift": Spec((5,), hi=3),
                    p + "raw": Spec((5,), hi=3),
                    p + "c": Spec((5,), lo=-2, hi=1),
                }
            )
        super().__init__()

    def run(self, case, only=None):
        out = {}
        for cls, fn in self._configs(only):
            p = f"{cls}_{fn}_"
            layer_cls = B.MaskedAutoregressive if cls == "maf" else B.InverseAutoregressive
            for direction, x in (("fwd", case[p + "z"]), ("inv", case[p + "x"])):

                def f(x, shift, raw, layer_cls=layer_cls, fn=fn, direction=direction):
                    params = jnp.stack([shift, raw], -1)
                    layer = layer_cls(lambda h: jnp.broadcast_to(params, h.shape + (2,)),
                                      scale_fn=AUTOREGRESSIVE_SCALES[fn])
                    return (
                        layer.forward_and_log_det(x) if direction == "fwd" else layer.inverse_and_log_det(x)
                    )

                y, ld, (dx, dshift, draw_) = _grads(f, (x, case[p + "shift"], case[p + "raw"]), case[p + "c"])
                out.update(
                    {
                        f"{p}{direction}": y,
                        f"{p}{direction}_ld": ld,
                        f"d{p}{direction}_x": dx,
                        f"d{p}{direction}_shift": dshift,
                        f"d{p}{direction}_raw": draw_,
                    }
                )
        return out

    def bounds(self, case, ref, only=None):
        res = {}
        for cls, fn in self._configs(only):
            p = f"{cls}_{fn}_"
            shift, raw = case[p + "shift"], case[p + "raw"]
            with jax.enable_x64(True):
                s = np.asarray(AUTOREGRESSIVE_SCALES[fn](jnp.asarray(raw)))
            for direction, x in (("fwd", case[p + "z"]), ("inv", case[p + "x"])):
                # MAF forward and IAF inverse: x = z e^s + mu; the other two: z = (x - mu) e^-s.
                sampling = (cls == "maf") == (direction == "fwd")
                s_dir = s if sampling else -s
                t = shift if sampling else -shift * np.exp(-s)
                value, ld, es = _affine_bounds(x, t, s_dir, case[p + "c"], x.size + 2)
                c = np.abs(case[p + "c"])
                res[p + direction], res[p + direction + "_ld"] = value, np.asarray(ld)
                res[f"d{p}{direction}_x"] = K_GRAD * EPS32 * (c * es * (1 + np.abs(s)) + 1)
                res[f"d{p}{direction}_shift"] = (
                    K_GRAD * EPS32 * c * (1.0 if sampling else es) * (1 + np.abs(s))
                )
                res[f"d{p}{direction}_raw"] = (
                    K_GRAD
                    * EPS32
                    * (
                        c * (np.abs(x) * es + (0.0 if sampling else np.abs(shift) * es)) * (1 + np.abs(s))
                        + 1
                        + np.abs(s)
                    )
                )
        return res


class ActNormFamily(Family):
    """ActNorm on (2, 2, 3) images: x = z e^s + loc per channel."""

    name = "ActNorm"
    specs = {
        "z": Spec((2, 2, 3)),
        "x": Spec((2, 2, 3)),
        "loc": Spec((3,), hi=3),
        "log_scale": Spec((3,), lo=-4, hi=1.4),
        "c": Spec((2, 2, 3), lo=-2, hi=1),
    }

    def run(self, case, only=None):
        out = {}
        for direction, x in (("fwd", case["z"]), ("inv", case["x"])):

            def f(x, loc, log_scale, direction=direction):
                layer = B.ActNorm(loc, log_scale)
                return layer.forward_and_log_det(x) if direction == "fwd" else layer.inverse_and_log_det(x)

            y, ld, (dx, dloc, dls) = _grads(f, (x, case["loc"], case["log_scale"]), case["c"])
            out.update(
                {
                    direction: y,
                    direction + "_ld": ld,
                    f"d{direction}_x": dx,
                    f"d{direction}_loc": dloc,
                    f"d{direction}_log_scale": dls,
                }
            )
        return out

    def bounds(self, case, ref, only=None):
        res, s, loc, c = {}, case["log_scale"], case["loc"], np.abs(case["c"])
        for direction, x in (("fwd", case["z"]), ("inv", case["x"])):
            sign = 1.0 if direction == "fwd" else -1.0
            t = loc if direction == "fwd" else -loc * np.exp(-s)
            value, _, es = _affine_bounds(x, t, sign * s, c, 1)
            res[direction] = value
            res[direction + "_ld"] = np.asarray(K_VALUE * EPS32 * (4 * np.sum(np.abs(s)) + 1))
            res[f"d{direction}_x"] = K_GRAD * EPS32 * c * es * (1 + np.abs(s))
            res[f"d{direction}_loc"] = (
                K_GRAD * EPS32 * np.sum(c * (es if direction == "inv" else 1.0) * (1 + np.abs(s)), (0, 1))
            )
            res[f"d{direction}_log_scale"] = (
                K_GRAD * EPS32 * (np.sum(c * (np.abs(x) + np.abs(loc)) * es * (1 + np.abs(s)), (0, 1)) + 4)
            )
        return res


class Conv1x1(Family):
    """Invertible1x1Conv (LU form) on (2, 2, 3) images: W = P L U, drawn strict lower / upper parts,
    log_diag and signs."""

    name = "Invertible1x1Conv (LU)"
    specs = {
        "z": Spec((2, 2, 3)),
        "x": Spec((2, 2, 3)),
        # |entries| and |log_diag| up to 10^0.5: condition numbers up to ~1e5, where the first-order
        # round-off bounds hold (at e^{+-10} diagonals, eps * cond(W) ~ 1 and no first-order bound does).
        "lower": Spec((3, 3), hi=0.5),
        "upper": Spec((3, 3), hi=0.5),
        "log_diag": Spec((3,), lo=-3, hi=0.5),
        "sign": Spec((3,), lo=0, hi=0),
        "c": Spec((2, 2, 3), lo=-2, hi=1),
    }
    perm = np.array([2, 0, 1])

    def prepare(self, case):
        case = dict(case)
        case["sign"] = np.where(case["sign"] < 0, -1.0, 1.0).astype(np.float32)
        return case

    def run(self, case, only=None):
        out = {}
        for direction, x in (("fwd", case["z"]), ("inv", case["x"])):

            def f(x, lower, upper, log_diag, direction=direction):
                layer = B.Invertible1x1Conv(self.perm, lower, upper, log_diag, case["sign"])
                return layer.forward_and_log_det(x) if direction == "fwd" else layer.inverse_and_log_det(x)

            y, ld, grads = _grads(f, (x, case["lower"], case["upper"], case["log_diag"]), case["c"])
            out.update({direction: y, direction + "_ld": ld})
            out.update(
                {
                    f"d{direction}_{n}": g
                    for n, g in zip(("x", "lower", "upper", "log_diag"), grads, strict=True)
                }
            )
        return out

    def bounds(self, case, ref, only=None):
        lo = np.tril(case["lower"], -1) + np.eye(3)
        up = np.triu(case["upper"], 1) + np.diag(case["sign"] * np.exp(case["log_diag"]))
        al, au = np.abs(lo), np.abs(up)
        li, ui = np.abs(np.linalg.inv(lo)), np.abs(np.linalg.inv(up))
        w_abs = (al @ au)[self.perm]  # |P L U| <= P |L| |U|
        inv_abs = (ui @ au @ ui @ li + ui @ li @ al @ li + ui @ li)[:, self.perm]  # Higham's bounds, summed
        kappa = float(np.max(inv_abs @ w_abs))  # >= 1: how much the inverse amplifies round-off
        # Higham's componentwise bounds carry a dimension constant gamma_n ~ n u (n = 3 channels).
        res = {
            "fwd": 3 * K_VALUE * EPS32 * np.abs(case["z"]) @ w_abs.T,
            "inv": 3 * K_VALUE * EPS32 * np.abs(case["x"]) @ inv_abs.T,
            "fwd_ld": np.asarray(K_VALUE * EPS32 * 4 * (np.sum(np.abs(case["log_diag"])) + 1)),
        }
        res["inv_ld"] = res["fwd_ld"]
        for direction, amp in (("fwd", 1.0), ("inv", kappa**2)):
            for n in ("x", "lower", "upper", "log_diag"):
                g = np.abs(ref[f"d{direction}_{n}"])
                res[f"d{direction}_{n}"] = (
                    3  # Higham's dimension constant n, as for the values
                    * K_GRAD
                    * EPS32
                    * amp
                    * (g + np.max(g) + 1.0)
                    * (1 + np.max(np.abs(case["x" if direction == "inv" else "z"])) * float(np.max(w_abs)))
                )
        return res


class SigmoidFamily(Family):
    """ScaledSigmoid (the logit preprocessing) with alpha in {0, 1e-6, 0.05, drawn in [0, 0.49]}: forward on
    logits, inverse on data in [0, 1] (end points included where finite: alpha > 0)."""

    name = "ScaledSigmoid / logit"
    configs = alphas = (0.0, 1e-6, 0.05, None)
    specs = {
        "y": Spec((8,), lo=-4, hi=2.5),
        "x": Spec((8,), unit=True),
        "alpha": Spec((), lo=-8, hi=-0.31, signed=False),
        "c": Spec((8,), lo=-2, hi=1),
    }

    def prepare(self, case):
        case = dict(case)
        tiny = np.float32(1e-30)
        case["x0"] = np.clip(case["x"], tiny, np.float32(1.0) - np.float32(2**-24))  # alpha = 0: (0, 1)
        case["alpha"] = np.clip(case["alpha"], np.float32(1e-8), np.float32(0.49))  # drawn alpha > 0
        return case

    def run(self, case, only=None):
        out = {}
        for i, a in enumerate(self.alphas):
            if only is not None and i != only:
                continue
            alpha = case["alpha"] if a is None else a
            for direction, x in (("fwd", case["y"]), ("inv", case["x0"] if a == 0.0 else case["x"])):

                def f(x, direction=direction, alpha=alpha, a=a):
                    layer = distrax.Block(B.ScaledSigmoid(0.3) if a is None else B.ScaledSigmoid(a), 1)
                    if a is None:  # a traced alpha: the same formulas with `alpha` in place
                        layer = distrax.Block(_TracedScaledSigmoid(alpha), 1)
                    return (
                        layer.forward_and_log_det(x) if direction == "fwd" else layer.inverse_and_log_det(x)
                    )

                y, ld, (dx,) = _grads(f, (x,), case["c"])
                out.update({f"{i}_{direction}": y, f"{i}_{direction}_ld": ld, f"d{i}_{direction}_x": dx})
        return out

    def bounds(self, case, ref, only=None):
        res, c = {}, np.abs(case["c"])
        for i, a in enumerate(self.alphas):
            if only is not None and i != only:
                continue
            alpha = float(case["alpha"]) if a is None else a
            y = case["y"]
            sig = 1 / (1 + np.exp(-y))
            scale = 1 / (1 - 2 * alpha)
            res[f"{i}_fwd"] = K_VALUE * EPS32 * (sig + alpha) * scale
            sp = np.logaddexp(0, y) + np.logaddexp(0, -y)
            res[f"{i}_fwd_ld"] = np.asarray(K_VALUE * EPS32 * np.sum(sp + abs(math.log1p(-2 * alpha)) + 1))
            res[f"d{i}_fwd_x"] = K_GRAD * EPS32 * (c * sig * (1 - sig) * scale + 1)
            x = case["x0"] if a == 0.0 else case["x"]
            s = alpha + (1 - 2 * alpha) * x
            cond = 1 + np.abs(np.log(s)) + np.abs(np.log1p(-s)) + 1 / s + 1 / (1 - s)
            res[f"{i}_inv"] = K_VALUE * EPS32 * cond
            res[f"{i}_inv_ld"] = np.asarray(K_VALUE * EPS32 * np.sum(cond))
            res[f"d{i}_inv_x"] = K_GRAD * EPS32 * (c + 1) * cond * (1 / s + 1 / (1 - s))
        return res


class _TracedScaledSigmoid(B.ScaledSigmoid):
    """ScaledSigmoid with a traced alpha (to draw alpha without recompiling): the class's formulas."""

    def __init__(self, alpha):  # noqa: D107 - skips the Python-number check on purpose
        self._alpha = alpha
        self._log_scale = jnp.log1p(-2.0 * alpha)
        distrax.Bijector.__init__(self, event_ndims_in=0)


class PlanarFamily(Family):
    """Planar on D = 4: u, w, b and the input drawn; forward, and the inverse by bisection."""

    name = "Planar"
    specs = {
        "z": Spec((4,), hi=3),
        "y": Spec((4,), hi=3),
        "u": Spec((4,), lo=-3, hi=1.3),
        "w": Spec((4,), lo=-3, hi=1.3),
        "b": Spec((), lo=-3, hi=1),
        "c": Spec((4,), lo=-2, hi=1),
    }

    def run(self, case, only=None):
        out = {}
        for direction, x in (("fwd", case["z"]), ("inv", case["y"])):

            def f(x, u, w, b, direction=direction):
                layer = B.Planar(u, w, b)
                return layer.forward_and_log_det(x) if direction == "fwd" else layer.inverse_and_log_det(x)

            y, ld, grads = _grads(f, (x, case["u"], case["w"], case["b"]), case["c"])
            out.update({direction: y, direction + "_ld": ld})
            out.update({f"d{direction}_{n}": g for n, g in zip(("x", "u", "w", "b"), grads, strict=True)})
        return out

    def prepare(self, case):
        case = dict(case)
        # w entries below 1e-6 in magnitude are set to 0: |w|^2 must be a normal float32 (or 0),
        # or float32 and float64 would see different w / |w|^2 (valid input, not round-off).
        case["w"] = np.where(np.abs(case["w"]) < 1e-6, 0.0, case["w"]).astype(np.float32)
        return case

    def bounds(self, case, ref, only=None):
        u, w, b = case["u"], case["w"], case["b"]
        ww, wu = np.sum(w * w), np.sum(w * u)
        corr = (np.logaddexp(0, wu) - 1 - wu) / (ww if ww > 0 else 1.0)
        u_hat = u + corr * w
        opc = np.logaddexp(0, wu) if ww > 0 else 1.0
        res = {}
        for direction, x in (("fwd", case["z"]), ("inv", case["y"])):
            z = x if direction == "fwd" else ref["inv"]
            a = np.sum(w * z) + b
            sech2 = np.exp(2 * (np.log(2) - abs(a) - np.log1p(np.exp(-2 * abs(a)))))
            g = np.tanh(a) ** 2 + opc * sech2  # 1 + c tanh'(a) > 0
            mags = np.sum(np.abs(w * z)) + abs(b) + 1
            # round-off in u_hat (its terms), in a (its terms), and the inverse's conditioning 1 / g
            u_err = np.abs(u) + (np.logaddexp(0, wu) + 1 + abs(wu)) * np.abs(w) / (ww if ww > 0 else 1.0) * (
                1 + abs(wu)
            )
            kappa = 1.0 if direction == "fwd" else (1 + abs(opc - 1)) / g
            value = np.abs(x) + u_err + np.abs(u_hat) * sech2 * mags * kappa
            ld_scale = 2 * abs(np.tanh(a)) * sech2 * (1 + opc) * mags / g + (1 + abs(wu)) + 1
            res[direction] = K_VALUE * EPS32 * kappa * value
            res[direction + "_ld"] = np.asarray(K_VALUE * EPS32 * kappa * ld_scale)
            # The inverse's root a carries the round-off of w.y + b, which cancels when w's terms do
            # (|w| |y| large, w.y small): up to EPS32 sum|w y| / g. The gradients move with a at a
            # rate up to (|y| + 1) / g (2 sum|c u_hat| + 4 (1 + opc) / g) (the derivatives in a of
            # u_hat sech^2(a) da/dw and of the log-det's g'(a)/g(a) da/dw, da/dw = y / g).
            root_drift = 0.0
            if direction == "inv":
                d_root = EPS32 * mags / g
                c_u = np.sum(np.abs(case["c"] * u_hat))
                rate = (np.max(np.abs(x)) + 1) / g * (2 * c_u + 4 * (1 + opc) / g)
                root_drift = K_GRAD * d_root * rate
            for n in ("x", "u", "w", "b"):
                gr = np.abs(ref[f"d{direction}_{n}"])
                res[f"d{direction}_{n}"] = (
                    K_GRAD
                    * EPS32
                    * kappa**3
                    * (gr + np.max(gr) + 1.0)
                    * (1 + np.max(value))
                    * (1 + np.max(np.abs(w)) * np.max(np.abs(u_err)))
                ) + root_drift * (1 + np.max(np.abs(w)) + np.max(np.abs(u_hat)))
            if ww == 0:
                # u_hat = u + (m(w.u) - w.u) w / |w|^2 has no limit at w = 0 (it depends on the
                # direction w comes from): there is no derivative in w to compare, only the guarded
                # formula's value. Values and the other gradients are still checked.
                res[f"d{direction}_w"] = np.full_like(res[f"d{direction}_w"], np.inf)
        return res


FAMILIES = {
    "coupling": AffineCoupling,
    "autoregressive": Autoregressive,
    "actnorm": ActNormFamily,
    "conv1x1": Conv1x1,
    "sigmoid": SigmoidFamily,
    "planar": PlanarFamily,
}


def draw_case(rng, family: Family) -> dict:
    return {k: draw(rng, spec) for k, spec in family.specs.items()}


def fuzz(family: Family, num_cases: int, seed: int, batch: int = 20) -> dict:
    rng = np.random.default_rng(seed)
    total = {
        "family": family.name,
        "cases": num_cases,
        "nonfinite_values": 0,
        "nonfinite_grads": 0,
        "worst_error": 0.0,
        "worst_ratio": 0.0,
        "worst_output": None,
        "unrepresentable": 0,
    }
    # The cases are drawn in order (case i runs config i mod len(configs)), then checked in batches
    # of `batch` cases sharing a config (the last batch padded with copies of its first case, whose
    # reports are dropped: fixed shapes, one compile per config).
    cases = [draw_case(rng, family) for _ in range(num_cases)]
    reports = []
    for c in range(len(family.configs)):
        config = None if family.configs == [None] else c
        mine = cases[c :: len(family.configs)]
        for start in range(0, len(mine), batch):
            chunk = mine[start : start + batch]
            padded = chunk + [chunk[0]] * (batch - len(chunk))
            stacked = {k: np.stack([case[k] for case in padded]) for k in family.specs}
            reports += check_batch(family, stacked, config)[: len(chunk)]
    for r in reports:
        total["nonfinite_values"] += r["nonfinite_values"]
        total["nonfinite_grads"] += r["nonfinite_grads"]
        total["unrepresentable"] += r["unrepresentable"]
        total["worst_error"] = max(total["worst_error"], r["worst_error"])
        if r["worst_ratio"] > total["worst_ratio"]:
            total["worst_ratio"], total["worst_output"] = r["worst_ratio"], r["worst_output"]
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_cases", type=int, default=2000, help="cases per family")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    rows = [fuzz(cls(), args.num_cases, args.seed + i) for i, cls in enumerate(FAMILIES.values())]
    elapsed = time.time() - start
    RESULTS.mkdir(exist_ok=True)
    cmd = f"python experiments/fuzz_bijectors.py --num_cases {args.num_cases} --seed {args.seed}"
    (RESULTS / "fuzz_bijectors.json").write_text(
        json.dumps({"command": cmd, "seconds": round(elapsed, 1), "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# Fuzzing the bijectors against float64 references",
        "",
        f"`{cmd}` ({elapsed:.0f} s on the CPU). Per case: forward and inverse, both log-dets, and the "
        "gradients of sum(c * out) + log_det with respect to every input and parameter, in float32 and in "
        "float64 "
        "(`jax.enable_x64(True)`) on the same float32 values; inputs and conditioner outputs drawn "
        "with magnitudes log-uniform over 10 decades (and zeros). Errors are absolute, |float32 - float64|, "
        "over every value, log-det and gradient entry. The last column is the worst error divided by the "
        "float32 bound the tests assert (32 round-offs of the magnitudes involved for values, 64 for "
        "gradients, see each family's `bounds`): below 1 means every error is float32 round-off. "
        "Entries whose float64 value exceeds 1e30 in magnitude (beyond what float32 can compute: Planar's "
        "inverse gradients near its singular set) are not checked; the column 'unrepresentable' counts "
        "them.",
        "",
        "| family | cases | non-finite values | non-finite gradients | worst abs error | "
        "worst error / float32 bound (output) | unrepresentable |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['cases']} | {r['nonfinite_values']} | {r['nonfinite_grads']} | "
            f"{r['worst_error']:.3g} | {r['worst_ratio']:.3g} ({r['worst_output']}) | "
            f"{r['unrepresentable']} |"
        )
    (RESULTS / "fuzz_bijectors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
