"""Expected wall times of the one-GPU jobs (experiments/configs/gpu.py), from their FLOPs.

    python experiments/benchmarks/gpu_configs.py [--jobs=glow_mnist,maf_mnist] [--out=PATH]

No GPU is needed. For each job it traces the train step (loss and gradient)
and the evaluation of one test batch, and counts their FLOPs: every
convolution and matmul in the jaxpr (2 FLOPs per multiply-add), a scan's
body as many times as it runs (XLA's own cost analysis counts a loop body
once). Elementwise work is not counted.

A GPU run measured earlier gives the rate: Glow with 2 scales x 8 steps,
128-wide conditioners, batch 128 took 170 s for 7,710 steps (22.0 ms a
step) on one H200 shared with three other jobs. Each job is estimated at that
rate of counted FLOPs per second, and at no less than 0.515 ms a step, the
measured train step of a 784-D RealNVP (5 layers, 1024 wide, batch 128) on
the same GPU: small models are bound by per-step overhead, not FLOPs. Both
are measurements on a shared GPU, so a GPU of one's own should be faster:
read the estimates as upper ones. The data is random integer images of
MNIST's shape (the FLOPs do not depend on the values).

Writes a Markdown table and JSON to experiments/benchmarks/results/gpu_configs.{md,json} (or --out):
each job's row is added to the rows there or replaces the job's row, in the order of the jobs in
experiments/configs/gpu.py; the other jobs' rows are kept (their reference must be this run's).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from results_table import kept_rows, merge_rows, read_json, read_rows, require_same  # noqa: E402

REFERENCE_MS = 170.0 / 7710 * 1e3  # Glow 2 x 8 x 128, batch 128, one shared H200
FLOOR_MS = 0.515  # 784-D RealNVP train step, batch 128, the same H200
TEST_SIZE = 10_000


def _sub_jaxprs(params):
    for value in params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if hasattr(item, "eqns"):
                yield item
            elif hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                yield item.jaxpr


def count_flops(jaxpr) -> float:
    """Convolution and matmul FLOPs of a jaxpr; a scan's body counts `length` times, a cond's
    costliest branch once (a while loop's body once: its trip count is not known when traced)."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
        elif name == "conv_general_dilated":
            rhs, spec = eqn.invars[1].aval.shape, eqn.params["dimension_numbers"].rhs_spec
            total += (2.0 * math.prod(eqn.outvars[0].aval.shape) * rhs[spec[1]]
                      * math.prod(rhs[d] for d in spec[2:]))
        subs = [count_flops(j) for j in _sub_jaxprs(eqn.params)]
        if not subs:
            continue
        if name == "scan":
            total += eqn.params["length"] * sum(subs)
        elif name == "cond":
            total += max(subs)
        else:
            total += sum(subs)
    return total


def _synthetic_data(config, directory: Path) -> None:
    """Points `config.data` at random images of the job's dataset's shape and levels."""
    levels = 2 if config.data.name == "binarized_mnist" else 256
    rng = np.random.default_rng(0)
    path = directory / f"{config.data.name}_{levels}.npz"
    if not path.exists():
        np.savez(path, train=rng.integers(0, levels, (2048, 28, 28), dtype=np.uint8),
                 test=rng.integers(0, levels, (1024, 28, 28), dtype=np.uint8))
    config.data.name, config.data.num_levels = str(path), levels
    config.data.train_split, config.data.test_split = "train", "test"


def job_flops(job: str, directory: Path) -> dict:
    from main import load_config

    config = load_config(f"{HERE.parent}/configs/gpu.py:{job}")
    steps, batch = int(config.train.num_steps), int(config.train.batch_size)
    evals = steps // int(config.train.eval_every) if config.train.eval_every else 0
    return dict(job=job, steps=steps, batch=batch, evals=evals + 1,  # + the final evaluation
                **task_flops(config, directory, batch))


def task_flops(config, directory: Path, batch_size: int) -> dict:
    import jax
    import jax.numpy as jnp
    from tasks import build_task

    _synthetic_data(config, directory)
    task = build_task(config)
    key = jax.random.PRNGKey(0)
    batch = task.make_batches(batch_size, key, None)(0)
    params = jax.eval_shape(task.init, key, batch)
    train = jax.make_jaxpr(jax.value_and_grad(lambda p: task.loss_fn(key, p, batch)[0]))(params)
    test = {k: jnp.asarray(v[:batch_size]) for k, v in task.test_arrays.items()}
    test["mask"] = jnp.ones(batch_size, bool)
    evaluation = jax.make_jaxpr(lambda p: task.eval_fn(key, p, test))(params)
    return dict(params=int(sum(math.prod(x.shape) for x in jax.tree.leaves(params))),
                train_flops=count_flops(train.jaxpr), eval_flops_per_example=count_flops(evaluation.jaxpr)
                / batch_size)


def reference_flops(directory: Path) -> float:
    """The counted FLOPs of the measured reference step: Glow 2 x 8 x 128 at batch 128."""
    from main import load_config

    config = load_config(f"{HERE.parent}/configs/glow_mnist.py")
    config.model.num_steps, config.model.features = 8, 128
    return task_flops(config, directory, 128)["train_flops"]


def estimate(row: dict, rate: float) -> dict:
    """`rate`: counted FLOPs per ms."""
    step_ms = max(row["train_flops"] / rate, FLOOR_MS)
    eval_s = row["evals"] * TEST_SIZE * row["eval_flops_per_example"] / rate / 1e3
    return dict(row, step_ms=step_ms, floor_bound=row["train_flops"] / rate < FLOOR_MS,
                train_min=row["steps"] * step_ms / 6e4, eval_min=eval_s / 60,
                total_min=row["steps"] * step_ms / 6e4 + eval_s / 60)


def table(rows: list[dict], ref: float) -> str:
    lines = [f"Reference: Glow 2 x 8 x 128 at batch 128, {ref / 1e9:.0f} GFLOP counted per train step, "
             f"measured at {REFERENCE_MS:.1f} ms a step on one shared H200, i.e. "
             f"{ref / REFERENCE_MS / 1e9:.1f} TFLOP/s of counted FLOPs; floor {FLOOR_MS} ms a step. "
             "Estimates, not measurements: none of these jobs has run on a GPU yet.", "",
             "| job | parameters | batch | steps | train GFLOP/step | est. ms/step | est. train | "
             "evaluations | est. total |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        floor = " (floor)" if r["floor_bound"] else ""
        lines.append(f"| `{r['job']}` | {r['params']:,} | {r['batch']} | {r['steps']:,} | "
                     f"{r['train_flops'] / 1e9:.1f} | {r['step_ms']:.2f}{floor} | {r['train_min']:.0f} min | "
                     f"{r['evals']} ({r['eval_min']:.1f} min) | **{r['total_min']:.0f} min** |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    from configs.gpu import JOBS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, from {list(JOBS)}")
    p.add_argument("--out", default=str(HERE / "results" / "gpu_configs"))
    args = p.parse_args(argv)
    jobs = [j for j in args.jobs.split(",") if j]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown:
        raise ValueError(f"`--jobs` has unknown jobs {unknown}; known: {list(JOBS)}.")
    out = Path(args.out)
    committed = read_json(out.with_suffix(".json"), {})
    committed_rows = read_rows(out.with_suffix(".json"), "rows")
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference_flops(Path(tmp))
        reference = {"reference_ms": REFERENCE_MS, "reference_flops": ref, "floor_ms": FLOOR_MS}
        require_same(kept_rows(committed_rows, jobs, "job"), "the reference",
                     {k: committed.get(k) for k in reference}, reference, out)
        rate = ref / REFERENCE_MS
        rows = []
        for job in jobs:
            rows.append(estimate(job_flops(job, Path(tmp)), rate))
            print(f"{job}: {rows[-1]['total_min']:.0f} min", flush=True)
    rows = merge_rows(committed_rows, rows, "job", order=list(JOBS))
    text = table(rows, ref)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {**reference, "rows": rows, "seconds": time.time() - start}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
