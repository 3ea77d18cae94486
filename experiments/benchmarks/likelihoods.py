"""Discretized logistic mixture benchmark: log-prob + gradient throughput and peak memory.

    python experiments/benchmarks/likelihoods.py [--batch=64] [--rounds=5] [--steps=3]

A 64x32x32x3 batch of 8-bit pixels (256 levels) under a K = 10 mixture, as a
PixelCNN++ head produces it. Two implementations, timed interleaved in one run:

  dgmjax   `dgmjax.distributions.DiscretizedLogisticMixture(...).log_prob`: the
           two CDF values at the observed level only, log(sigmoid(b) - sigmoid(a))
           in a stable form.
  naive    the straightforward version: the CDF at all 257 bin edges of every
           component, the pmf of every level by differences, then the observed
           level picked out, so an (N, H, W, C, K, 256) tensor is materialized.

Each is timed as jit(value_and_grad) of the summed log-likelihood with respect
to (logit weights, means, log-scales). Peak memory is XLA's own account of the
compiled program (arguments + outputs + temporaries, from memory_analysis()).
Also printed: the largest difference between the two log-likelihoods.
Writes experiments/benchmarks/results/likelihoods.md (and .json), or --out.md
(and .json) when --out is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax.distributions import DiscretizedLogisticMixture

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS, K = 256, 10


def dgmjax_log_prob(x, logit_weights, means, log_scales, num_levels=LEVELS):
    """The library's distribution: log P(x) at the observed level only."""
    return DiscretizedLogisticMixture(logit_weights, means, log_scales, num_levels).log_prob(x)


def naive_log_prob(x, logit_weights, means, log_scales, num_levels=LEVELS):
    """Every level's probability, by CDF differences at all bin edges; then the observed one."""
    scale = jnp.exp(jnp.maximum(log_scales, -7.0))[..., None]  # (..., K, 1)
    half = 1.0 / (num_levels - 1)
    centers = jnp.linspace(-1.0, 1.0, num_levels)
    inner = centers[:-1] + half  # the L - 1 inner edges, in [-1, 1] units
    cdf = jax.nn.sigmoid((inner - means[..., None]) / scale)  # (..., K, L-1)
    zeros, ones = jnp.zeros_like(cdf[..., :1]), jnp.ones_like(cdf[..., :1])
    cdf = jnp.concatenate([zeros, cdf, ones], axis=-1)  # edges -inf and +inf at the ends
    pmf = cdf[..., 1:] - cdf[..., :-1]  # (..., K, L)
    log_pmf = jnp.log(jnp.maximum(pmf, 1e-12))
    picked = jnp.take_along_axis(log_pmf, x[..., None, None].astype(jnp.int32), axis=-1)[..., 0]
    return jax.scipy.special.logsumexp(jax.nn.log_softmax(logit_weights, -1) + picked, axis=-1)


def float64_log_prob(x, logit_weights, means, log_scales, num_levels=LEVELS):
    """An independent float64 NumPy reference: CDF differences taken on the side of the mean where
    they do not cancel (mass above the mean as differences of the upper tail)."""
    from scipy.special import expit, logsumexp

    x, w, m, ls = (np.asarray(a, np.float64) for a in (x, logit_weights, means, log_scales))
    s = np.exp(np.maximum(ls, -7.0))
    c = (2.0 * x / (num_levels - 1) - 1.0)[..., None]
    half = 1.0 / (num_levels - 1)
    lo = np.where(x[..., None] == 0, -np.inf, (c - half - m) / s)
    hi = np.where(x[..., None] == num_levels - 1, np.inf, (c + half - m) / s)
    upper = lo > 0  # both edges above the mean: use the upper tails
    mass = np.where(upper, expit(-lo) - expit(-hi), expit(hi) - expit(lo))
    log_w = w - logsumexp(w, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return logsumexp(log_w + np.log(mass), axis=-1)


def make_inputs(batch: int):
    shape = (batch, 32, 32, 3)
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.randint(k[0], shape, 0, LEVELS)
    logits = jax.random.normal(k[1], shape + (K,))
    # Means near the pixel (as a trained model puts them) with some far away; scales from sharp to broad.
    centre = (2.0 * x / (LEVELS - 1) - 1.0)[..., None]
    means = centre + 0.3 * jax.random.normal(k[2], shape + (K,))
    log_scales = jax.random.uniform(k[3], shape + (K,), minval=-6.0, maxval=0.0)
    return x, (logits, means, log_scales)


def step_fn(log_prob):
    def loss(params, x):
        return -jnp.sum(log_prob(x, *params))

    return jax.jit(jax.value_and_grad(loss))


def peak_bytes(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - getattr(m, "alias_size_in_bytes", 0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "likelihoods"),
                        help="writes OUT.md and OUT.json")
    args = parser.parse_args()

    x, params = make_inputs(args.batch)
    entries = []
    contestants = (("dgmjax", dgmjax_log_prob), ("naive (all levels)", naive_log_prob))
    for name, fn in contestants:
        f = step_fn(fn)
        t = time.perf_counter()
        compiled = f.lower(params, x).compile()
        compile_s = time.perf_counter() - t
        jax.block_until_ready(compiled(params, x))
        entries.append(dict(name=name, f=compiled, times=[], compile_s=compile_s, peak=peak_bytes(compiled)))
    for _ in range(args.rounds):
        for e in entries:
            t = time.perf_counter()
            for _ in range(args.steps):
                out = e["f"](params, x)
            jax.block_until_ready(out)
            e["times"].append((time.perf_counter() - t) / args.steps)

    lp_dgmjax = jax.jit(dgmjax_log_prob)(x, *params)
    lp_naive = jax.jit(naive_log_prob)(x, *params)
    max_diff = float(jnp.max(jnp.abs(lp_dgmjax - lp_naive)))
    # Both against float64 on the first image (3,072 pixels) and on the pixels where they disagree most.
    worst = np.argsort(np.abs(np.asarray(lp_dgmjax - lp_naive)).ravel())[-2000:]
    flat = lambda a: np.asarray(a).reshape(-1, *np.asarray(a).shape[4:])
    idx = np.concatenate([np.arange(3072), worst])
    ref = float64_log_prob(flat(x)[idx], *(flat(p)[idx] for p in params))
    err = {name: float(np.max(np.abs(np.asarray(lp).ravel()[idx] - ref)))
           for name, lp in (("dgmjax", lp_dgmjax), ("naive (all levels)", lp_naive))}
    finite = bool(jnp.all(jnp.isfinite(lp_dgmjax)))

    pixels = args.batch * 32 * 32 * 3
    ref = statistics.median(entries[0]["times"])
    rows = []
    for e in entries:
        sec = statistics.median(e["times"])
        rows.append(dict(implementation=e["name"], ms=1e3 * sec, mpixels_per_s=pixels / sec / 1e6,
                         peak_mib=None if e["peak"] is None else e["peak"] / 2**20,
                         compile_s=e["compile_s"], slowdown_vs_dgmjax=sec / ref,
                         max_err_vs_float64=err[e["name"]]))
    head = (f"Discretized logistic mixture, log-prob + gradient: batch {args.batch}x32x32x3, K = {K}, "
            f"{LEVELS} levels; {jax.devices()[0].device_kind} ({platform.node()}), median of "
            f"{args.rounds} rounds x {args.steps} steps, interleaved")
    lines = [head, "", "| implementation | ms / step | Mpixels/s | peak memory (MiB) | compile (s) "
             "| time vs dgmjax | max abs error vs float64 (nats) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(f"| {r['implementation']} | {r['ms']:.1f} | {r['mpixels_per_s']:.2f} | {mem} | "
                     f"{r['compile_s']:.2f} | {r['slowdown_vs_dgmjax']:.2f}x | "
                     f"{r['max_err_vs_float64']:.2e} |")
    lines += ["", f"max |log P difference| between the two: {max_diff:.2e} nats (dgmjax all finite: "
              f"{finite}); "
              "errors against a float64 NumPy reference on the first image and on the 2,000 pixels where "
              "the two disagree most."]
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    summary = dict(rows=rows, max_abs_diff=max_diff, batch=args.batch, K=K, levels=LEVELS)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
