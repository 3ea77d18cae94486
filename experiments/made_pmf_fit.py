"""Can MADE + a discretized logistic mixture fit a 2-D density exactly? A grayscale photo as a pmf.

    python experiments/made_pmf_fit.py [--levels=128] [--steps=600] [--learning_rate=3e-3]
                                       [--out=experiments/results/made_pmf_fit]

The target is a 2-D pmf over an L x L grid: the photo `china.jpg` shipped with
scikit-learn, converted to gray (ITU-R 601 luma), centre-cropped to a square
and block-averaged to L x L, normalized to sum to one (x = (row, column)).
The model is `dgmjax.models.MADEDensity(event_size=2, num_levels=L,
head=LogisticMixtureHead(20))` with its other defaults: P(row) is a K = 20
mixture from MADE's output bias, P(column | row) a K = 20 mixture from MADE's
one-hot-encoded row. It is fitted by minimizing the exact cross-entropy

    CE(q) = sum_x pmf(x) (-log q(x))

over all L * L cells (full batch, Adam: the loss is deterministic), and
reports CE - H(pmf) = KL(pmf || q) in nats per point beside H and the
uniform's log(L * L) and the product of the pmf's marginals (what a model
that ignored the conditioning would reach). `tests/models/test_made_density.py` runs the same fit
(these functions) on a 32 x 32 grid. Writes a Markdown table and a JSON list of
rows, one per number of levels: the fit's row is added to those at --out, or
replaces the row of the same levels there; the others are kept.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from results_table import merge_rows, read_json

from dgmjax.distributions import LogisticMixtureHead
from dgmjax.models import MADEDensity

NUM_MIXTURES = 20


def image_pmf(levels: int) -> np.ndarray:
    """scikit-learn's china.jpg in gray, centre-cropped square, block-averaged to (levels, levels),
    normalized to a pmf (float64, sums to one)."""
    from sklearn.datasets import load_sample_image

    rgb = load_sample_image("china.jpg").astype(np.float64)
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    block = min(gray.shape) // levels
    if block < 1:
        raise ValueError(f"`levels` must be at most {min(gray.shape)}; got {levels}.")
    side = block * levels
    top, left = (gray.shape[0] - side) // 2, (gray.shape[1] - side) // 2
    crop = gray[top:top + side, left:left + side]
    small = crop.reshape(levels, block, levels, block).mean(axis=(1, 3))
    return small / small.sum()


def entropy(pmf: np.ndarray) -> float:
    p = pmf[pmf > 0]
    return float(-(p * np.log(p)).sum())


def independent_cross_entropy(pmf: np.ndarray) -> float:
    """Cross-entropy of `pmf` under the product of its own marginals, P(row) P(column): the best
    a model that ignores the conditioning can do."""
    product = np.outer(pmf.sum(1), pmf.sum(0))
    return float(-(pmf * np.log(product)).sum())


def make_model(levels: int) -> MADEDensity:
    return MADEDensity(event_size=2, num_levels=levels, head=LogisticMixtureHead(NUM_MIXTURES))


def fit(pmf: np.ndarray, steps: int, learning_rate: float, seed: int = 0, chunk: int = 100):
    """Adam on the exact cross-entropy of `pmf` under a fresh MADEDensity.

    Returns (final cross-entropy in nats per point, the cross-entropy every `chunk` steps, params).
    """
    levels = pmf.shape[0]
    model = make_model(levels)
    grid = jnp.stack(jnp.meshgrid(jnp.arange(levels), jnp.arange(levels), indexing="ij"), -1).reshape(-1, 2)
    weights = jnp.asarray(pmf.reshape(-1), jnp.float32)
    params = jax.jit(model.init)(jax.random.PRNGKey(seed), grid[:1])
    opt = optax.adam(learning_rate)

    def cross_entropy(p):
        return -jnp.sum(weights * model.apply(p, grid))

    def step(carry, _):
        p, state = carry
        value, grads = jax.value_and_grad(cross_entropy)(p)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), value

    @jax.jit
    def run_chunk(carry):
        carry, values = jax.lax.scan(step, carry, None, chunk)
        return carry, values[-1]

    carry, history = (params, opt.init(params)), []
    for _ in range(-(-steps // chunk)):
        carry, value = run_chunk(carry)
        history.append(float(value))
    final = float(jax.jit(cross_entropy)(carry[0]))
    return final, history, carry[0]


def to_markdown(rows: list[dict]) -> str:
    """The table of fits, one line per row (per number of levels)."""
    lines = [
        f"MADEDensity(event_size=2, num_levels=L, head=LogisticMixtureHead({NUM_MIXTURES})), other defaults; "
        "exact cross-entropy over all L x L cells of china.jpg (gray, block-averaged), Adam at each row's "
        "learning rate, full batch; L is the row's levels. Nats per point.",
        "",
        "| levels | entropy H | cross-entropy | gap CE - H | uniform's gap | product of marginals' gap "
        "| steps | learning rate | wall (s) | devices |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        h, ce = r["entropy"], r["cross_entropy"]
        lines.append(f"| {r['levels']} | {h:.4f} | {ce:.4f} | {ce - h:.4f} | {r['uniform'] - h:.4f} "
                     f"| {r['independent_marginals'] - h:.4f} | {r['steps']} | {r['learning_rate']:g} "
                     f"| {r['wall_s']:.1f} | {r['devices']} |")
    return "\n".join(lines) + "\n"


def write_results(out: str | Path, result: dict | None) -> list[dict]:
    """Merges `result` (a fit's row; None: none) into the rows of OUT.json by "levels" and writes
    them to OUT.json and their table to OUT.md. A JSON holding one row as an object (not a list of
    rows) is read as that row. Returns the rows written."""
    out = Path(out)
    committed = read_json(out.with_suffix(".json"), [])
    rows = merge_rows([committed] if isinstance(committed, dict) else committed,
                      [] if result is None else [result], "levels")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(to_markdown(rows))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, default=128)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "made_pmf_fit"),
                        help="output path without extension: writes OUT.md and OUT.json")
    args = parser.parse_args(argv)
    chunk = min(100, args.steps)
    steps = chunk * -(-args.steps // chunk)

    pmf = image_pmf(args.levels)
    h = entropy(pmf)
    independent = independent_cross_entropy(pmf)
    start = time.perf_counter()
    ce, history, _ = fit(pmf, steps, args.learning_rate, chunk=chunk)
    wall = time.perf_counter() - start
    result = {"levels": args.levels, "num_mixtures": NUM_MIXTURES, "entropy": h, "cross_entropy": ce,
              "gap": ce - h, "uniform": math.log(args.levels**2),
              "independent_marginals": independent, "steps": steps,
              "learning_rate": args.learning_rate, "wall_s": wall, "devices": str(jax.devices()),
              "cross_entropy_every_chunk": history, "chunk": chunk}
    print(to_markdown(write_results(args.out, result)))
    return result


if __name__ == "__main__":
    main()
