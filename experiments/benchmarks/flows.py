"""Flow benchmarks: train-step throughput against the machine's matmul peak and against peers,
compile time against depth, and MAF sampling (sequential vs fixed point vs an IAF's single pass).

    python experiments/benchmarks/flows.py [--maf_workdir=runs/maf_mnist] [--sections=...]
        [--rounds=9] [--steps=10] [--compile_depths=4,16,64] [--compile_repeats=N] [--num_samples=64]

Prints one table per section and writes them to
experiments/benchmarks/results/flows.md (and flows.json), or to --out.md (and
.json): each section run replaces its section there, the others are kept as
they are (they must come from the same machine). Everything in a section is
timed in the same process, interleaved round-robin, so ratios compare like
with like on a shared, noisy machine. The persistent compilation cache is off
so compile times are real.

Sections:
  throughput  784-D RealNVP and MAF (5 layers, MLP/MADE conditioners 1024 wide,
              batch 128): dgmjax scanned (the default) and with
              scan_layers=False vs plain distrax + flax (a Python list of
              layers in distrax.Chain) vs flowjax; examples/s and
              achieved GFLOP/s (matmul FLOPs of the step) beside the measured
              peak of a large jnp.dot. Every contestant's step is the
              library's (`dgmjax.training.make_train_step` on a `TrainState`
              with Adam, skipping non-finite steps as by default), so the
              contestants differ only in their log-density. Every step but the scanned one donates its state
              (each at its faster setting on CPU). Also timed, in the same
              rounds: the step's matmuls alone, the dgmjax gradient alone and
              the Adam update alone, which bound what any implementation of
              the step can reach on this machine.
  compile     train-step compile time at 4, 16 and 64 layers (dgmjax scanned,
              dgmjax with scan_layers=False, and the plain loop), median of 3
              fresh compiles (1 on a GPU or TPU, to stay within a minute there),
              each after the parameters are on the device (--compile_depths, --compile_repeats).
  sampling    a trained MNIST MAF (--maf_workdir): D-step sequential vs
              fixed-point (iterations used, max |dx| against sequential) vs the
              single pass of an IAF of the same size.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dgmjax.bijectors import MaskedAutoregressive, Permute, affine_split_coupling
from dgmjax.models import IAF, MAF, RealNVP
from dgmjax.nn import MADE, MLP
from dgmjax.training import TrainState, load_params, make_train_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results_table import markdown_sections, merge_sections, read_json, require_same  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
D, WIDTH, LAYERS, BATCH = 784, 1024, 5, 128
# Each section's Markdown heading starts with its title.
TITLES = {"throughput": "## Train-step throughput", "compile": "## Compile time", "sampling": "## Sampling"}


# ----------------------------------------------------------------------------- helpers
def block(tree):
    return jax.tree_util.tree_map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a,
                                  tree)


def matmul_peak(n: int = 4096, repeats: int = 10) -> float:
    """GFLOP/s of a large float32 jnp.dot, best of `repeats`."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    block(f(a))
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        block(f(a))
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class PeakTracker:
    """The matmul peak, re-measured in every round of the throughput section and kept as
    the best seen: measured once up front, a busy moment understated it (132 against
    134-147 GFLOP/s reached by the step's own matmuls later in the same run)."""

    def __init__(self):
        self.best = matmul_peak()

    def sample(self, repeats: int = 2) -> None:
        self.best = max(self.best, matmul_peak(repeats=repeats))


def matmul_flops_per_step(kind: str, layers: int = LAYERS, batch: int = BATCH) -> float:
    """Dense matmul FLOPs of one train step: 3x the forward (forward, input grads, weight grads)."""
    if kind == "realnvp":  # split coupling: D/2 -> W -> (D/2) * 2
        fwd = 2 * batch * (D // 2 * WIDTH + WIDTH * D)
    else:  # MADE: D -> W -> 2D (masked weights are dense matmuls)
        fwd = 2 * batch * (D * WIDTH + WIDTH * 2 * D)
    return 3.0 * fwd * layers


def train_step_factory(log_prob, params, lr=1e-4, donate=True):
    """The library's train step on -mean log_prob(params, x), jitted, and its initial state.

    `dgmjax.training.make_train_step` on a `TrainState` with Adam, as every contestant
    trains: `step(state, x) -> (state, metrics)`, skipping non-finite steps as it does by
    default (an elementwise select fused into the update). With `donate` the step's
    output reuses its input state's buffers; without it every step allocates fresh buffers
    for the parameters and both Adam moments, which on CPU doubles the time of the
    (memory-bound) Adam update alone.
    """

    def loss_fn(key, p, x):
        del key  # the flows' log-densities draw no randomness
        return -jnp.mean(log_prob(p, x)), {}

    state = TrainState.create(params=params, tx=optax.adam(lr))
    step = make_train_step(loss_fn, jax.random.PRNGKey(0))
    return jax.jit(step, donate_argnums=(0,) if donate else ()), state


def conditioner_shapes(kind: str, layers: int = LAYERS) -> list[tuple[int, int, int]]:
    """(in, hidden, out) of each layer's conditioner MLP in the throughput models."""
    return [(D // 2, WIDTH, D) if kind == "realnvp" else (D, WIDTH, 2 * D)] * layers


def matmuls_alone(kind: str):
    """The step's dense matmuls and nothing else (same shapes, same FLOPs as
    `matmul_flops_per_step`): per layer the two forward products, the two weight
    gradients and the two input gradients, written as the contractions autodiff emits
    (no explicit transposes). The outputs go into donated buffers, so nothing is
    allocated or reduced: the ceiling of any implementation of the step."""
    key = jax.random.PRNGKey(2)
    weights = [(0.01 * jax.random.normal(key, (i, h)), 0.01 * jax.random.normal(key, (h, o)))
               for i, h, o in conditioner_shapes(kind)]
    i, _, o = conditioner_shapes(kind)[0]
    x, g = jax.random.normal(key, (BATCH, i)), jax.random.normal(key, (BATCH, o))

    def f(ws, x, g, outs):
        del outs  # only their buffers are used
        res = []
        for w1, w2 in ws:
            h = jnp.einsum("bi,ih->bh", x, w1)
            gh = jnp.einsum("bo,ho->bh", g, w2)
            res.append((jnp.einsum("bh,ho->bo", h, w2), jnp.einsum("bh,ih->bi", gh, w1),
                        jnp.einsum("bh,bo->ho", h, g), jnp.einsum("bi,bh->ih", x, gh)))
        return res

    f = jax.jit(f, donate_argnums=3)
    box = [jax.eval_shape(f, weights, x, g, None)]
    box[0] = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), box[0])

    def run():
        box[0] = f(weights, x, g, box[0])
        return box[0]

    return run


def gradient_alone(log_prob, params, x):
    """value_and_grad of the loss, no optimizer (the gradients are the output)."""
    f = jax.jit(jax.value_and_grad(lambda q: -jnp.mean(log_prob(q, x))))
    return lambda: f(params)


def adam_alone(params, lr=1e-4):
    """The Adam update and its application, donated, on fixed gradients of `params`' shapes."""
    tx = optax.adam(lr)
    grads = jax.tree_util.tree_map(lambda a: 1e-3 * jnp.ones_like(a), params)

    def update(state, g):
        p, opt = state
        u, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, u), opt

    f = jax.jit(update, donate_argnums=(0,))
    box = [(jax.tree_util.tree_map(jnp.copy, params), tx.init(params))]

    def run():
        box[0] = f(box[0], grads)
        return box[0]

    return run


# ----------------------------------------------------------------------------- the contestants
def dgmjax_model(kind: str, layers: int, scan_layers: bool = True):
    if kind == "realnvp":
        model = RealNVP(event_size=D, num_layers=layers, hidden_sizes=(WIDTH,), coupling="split",
                        permutation="reversed", scan_layers=scan_layers)
    else:
        model = MAF(event_size=D, num_layers=layers, hidden_sizes=(WIDTH,), permutation="reversed",
                    scan_layers=scan_layers)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, D)))
    return model.apply, params


def plain_model(kind: str, layers: int):
    """The obvious distrax + flax version: a Python list of layers in distrax.Chain."""
    keys = jax.random.split(jax.random.PRNGKey(0), layers)
    if kind == "realnvp":
        net = MLP((D - D // 2, 2), (WIDTH,))
        params = [net.init(k, jnp.zeros((1, D // 2))) for k in keys]

        def bijector(ps):
            return distrax.Chain([
                affine_split_coupling(D // 2, (lambda p: lambda h: net.apply(p, h))(p), event_ndims=1,
                                      swap=bool(i % 2))
                for i, p in enumerate(ps)][::-1])
    else:
        made = MADE(D, (WIDTH,), 2)
        params = [made.init(k, jnp.zeros((1, D))) for k in keys]
        reverse = jnp.arange(D)[::-1]

        def bijector(ps):
            return distrax.Chain([
                distrax.Chain([Permute(reverse),
                               MaskedAutoregressive((lambda p: lambda x: made.apply(p, x))(p))])
                for p in ps][::-1])

    base = distrax.MultivariateNormalDiag(jnp.zeros(D))
    return (lambda ps, x: distrax.Transformed(base, bijector(ps)).log_prob(x)), params


def flowjax_model(kind: str, layers: int):
    import equinox as eqx
    import paramax
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow

    make = coupling_flow if kind == "realnvp" else masked_autoregressive_flow
    flow = make(jax.random.PRNGKey(0), base_dist=Normal(jnp.zeros(D)), flow_layers=layers,
                nn_width=WIDTH, nn_depth=1)
    params, static = eqx.partition(flow, eqx.is_inexact_array,
                                   is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))

    def log_prob(p, x):
        return paramax.unwrap(eqx.combine(p["flow"], static)).log_prob(x)

    # In a dict: TrainState (flax's) takes a mapping of parameters, not an equinox module.
    return log_prob, {"flow": params}


def dgmjax_loop_model(kind: str, layers: int):
    return dgmjax_model(kind, layers, scan_layers=False)


def contestants():
    out = {"dgmjax": dgmjax_model, "dgmjax scan_layers=False": dgmjax_loop_model,
           "distrax+flax loop": plain_model}
    try:
        import flowjax  # noqa: F401

        out["flowjax"] = flowjax_model
    except ImportError:
        print("flowjax is not installed (pip install flowjax); its rows are skipped.")
    return out


# ----------------------------------------------------------------------------- sections
def bench_throughput(rounds: int, steps: int) -> dict:
    peak_tracker = PeakTracker()
    x = jax.random.normal(jax.random.PRNGKey(1), (BATCH, D))
    entries = []

    def add(kind, name, run, part=False, **extra):
        block(run())  # compile (and a first call) outside the timing
        entries.append(dict(kind=kind, name=name, run=run, times=[], part=part, **extra))

    for kind in ("realnvp", "maf"):
        for name, build in contestants().items():
            log_prob, params = build(kind, LAYERS)
            # Each contestant at its faster setting: donation made the Python-loop steps
            # 5-8% faster on CPU and the scanned MAF's 1.2x slower (measured interleaved).
            step, state = train_step_factory(log_prob, params, donate=name != "dgmjax")
            block(state)  # let the (asynchronous) parameter init finish before timing
            box = [state]
            t = time.perf_counter()
            box[0], metrics = block(step(box[0], x))
            compile_s = time.perf_counter() - t

            def run(step=step, box=box):
                box[0], metrics = step(box[0], x)
                return metrics["loss"]

            entries.append(dict(kind=kind, name=name, run=run, times=[], part=False,
                                compile_s=compile_s, loss0=float(metrics["loss"])))
        # Where a step's time goes: its parts timed alone, in the same rounds.
        log_prob, params = dgmjax_loop_model(kind, LAYERS)
        block(params)
        add(kind, "part: the matmuls alone", matmuls_alone(kind), part=True)
        add(kind, "part: dgmjax gradient alone (no optimizer)", gradient_alone(log_prob, params, x),
            part=True)
        add(kind, "part: Adam update alone (donated)", adam_alone(params), part=True)
    for _ in range(rounds):  # round-robin: every contestant in every round
        peak_tracker.sample()
        for e in entries:
            t = time.perf_counter()
            for _ in range(steps):
                out = e["run"]()
            block(out)
            e["times"].append((time.perf_counter() - t) / steps)
    peak_tracker.sample()
    peak = peak_tracker.best
    rows = []
    for e in entries:
        sec = statistics.median(e["times"])
        row = dict(model=f"{e['kind']} 784-D, {LAYERS} layers x {WIDTH}", implementation=e["name"],
                   step_ms=1e3 * sec, times_ms=[1e3 * t for t in e["times"]],
                   compile_s=e.get("compile_s"))
        if not e["name"].startswith("part: Adam"):
            flops = matmul_flops_per_step(e["kind"])
            row.update(examples_per_s=None if e["part"] else BATCH / sec, gflops=flops / sec / 1e9,
                       fraction_of_peak=flops / sec / 1e9 / peak)
        rows.append(row)
    for kind in ("realnvp", "maf"):
        mine = [r for r in rows if r["model"].startswith(kind)]
        ref = next(r for r in mine if r["implementation"] == "dgmjax")
        loop = next(r for r in mine if r["implementation"] == "dgmjax scan_layers=False")
        plain = next(r for r in mine if r["implementation"] == "distrax+flax loop")
        for r in mine:
            if not r["implementation"].startswith("part:"):
                r["dgmjax_speedup"] = r["step_ms"] / ref["step_ms"]
                # Paired by round (the same seconds of the shared machine): the median of the
                # per-round ratios, and its range.
                ratios = [a / b for a, b in zip(r["times_ms"], plain["times_ms"], strict=True)]
                r["vs_plain"] = statistics.median(ratios)
                r["vs_plain_range"] = f"{min(ratios):.2f}-{max(ratios):.2f}"
        grad = next(r for r in mine if r["implementation"].startswith("part: dgmjax gradient"))
        adam = next(r for r in mine if r["implementation"].startswith("part: Adam"))
        both = grad["step_ms"] + adam["step_ms"]
        flops = matmul_flops_per_step(kind)
        rows.append(dict(model=loop["model"], implementation="sum: gradient alone + Adam alone",
                         step_ms=both, gflops=flops / both / 1e6, fraction_of_peak=flops / both / 1e6 / peak))
    return dict(matmul_peak_gflops=peak, rows=rows)


def bench_compile(depths=(4, 16, 64), plain_depths=None, repeats: int = 3) -> dict:
    """Median over `repeats` fresh compiles (the depths interleaved in each round)."""
    plain_depths = depths if plain_depths is None else plain_depths
    x = jax.random.normal(jax.random.PRNGKey(1), (BATCH, D))
    rows = []
    for kind in ("realnvp", "maf"):
        for name, build, ds in (("dgmjax", dgmjax_model, depths),
                                ("dgmjax scan_layers=False", dgmjax_loop_model, plain_depths),
                                ("distrax+flax loop", plain_model, plain_depths)):
            times = {depth: [] for depth in ds}
            for _ in range(repeats):
                for depth in ds:
                    log_prob, params = build(kind, depth)
                    step, state = train_step_factory(log_prob, params)  # a new jit: no cache hit
                    # Wait for the parameter init, which jit dispatches asynchronously: at 64
                    # layers (220M parameters) it ran for about a second on the same cores as
                    # the compile and made compile time look like it grew with depth.
                    block(state)
                    t = time.perf_counter()
                    step.lower(state, x).compile()
                    times[depth].append(time.perf_counter() - t)
                    del params, state
            for depth in ds:
                rows.append(dict(model=kind, implementation=name, layers=depth,
                                 compile_s=statistics.median(times[depth])))
    for r in rows:
        base = next(q for q in rows if q["model"] == r["model"] and
                    q["implementation"] == r["implementation"] and q["layers"] == min(depths))
        r["ratio_to_4_layers"] = r["compile_s"] / base["compile_s"]
    return dict(rows=rows)


def bench_sampling(workdir: str, num_samples: int, tolerances=(1e-3, 1e-4, 1e-5, 1e-6, 0.0)) -> dict:
    config = json.loads((Path(workdir) / "config.json").read_text())
    # The solver is chosen per call below; a config's own ("solver", or "sampling" in workdirs
    # written before the rename) names the MAF's sampling direction but the IAF's density one.
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config["model"].items()
          if k not in ("name", "solver", "sampling")}
    if config["model"]["name"] != "maf":
        raise ValueError(f"--maf_workdir must hold a trained MAF; its model is {config['model']['name']!r}.")
    params = load_params(workdir)
    maf = MAF(event_size=D, **kw)
    iaf = IAF(event_size=D, **kw)
    key = jax.random.PRNGKey(0)

    def timed(fn, *args, repeats=3):
        block(fn(*args))
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = block(fn(*args))
            times.append(time.perf_counter() - t)
        return out, statistics.median(times)

    sample = lambda model, tol, solver: jax.jit(lambda p, k: model.clone(tolerance=tol).apply(
        p, k, num_samples, solver=solver, method="sample_with_iterations"))
    (x_seq, it_seq), t_seq = timed(sample(maf, 1e-5, "sequential"), params, key)
    alpha = float(config.get("objective", {}).get("logit_alpha", 1e-6))
    # The same difference in pixel units: the logit map undone, times 256 levels.
    to_levels = lambda x: (jax.nn.sigmoid(x) - alpha) / (1 - 2 * alpha) * 256
    rows = [dict(method="MAF sequential", tolerance=None, seconds=t_seq,
                 passes_per_layer=np.asarray(it_seq).tolist(), max_abs_dx=0.0, max_abs_dx_levels=0.0,
                 speedup=1.0)]
    for tol in tolerances:
        (x_fp, it_fp), t_fp = timed(sample(maf, tol, "fixed_point"), params, key)
        rows.append(dict(method="MAF fixed point", tolerance=tol, seconds=t_fp,
                         passes_per_layer=np.asarray(it_fp).tolist(),
                         max_abs_dx=float(jnp.max(jnp.abs(x_fp - x_seq))),
                         max_abs_dx_levels=float(jnp.max(jnp.abs(to_levels(x_fp) - to_levels(x_seq)))),
                         speedup=t_seq / t_fp))
    iaf_sample = jax.jit(lambda p, k: iaf.apply(p, k, num_samples, method=iaf.sample))
    _, t_iaf = timed(iaf_sample, params, key)
    rows.append(dict(method="IAF single pass (same size)", tolerance=None, seconds=t_iaf,
                     passes_per_layer=[1] * len(np.asarray(it_seq)), max_abs_dx=None,
                     speedup=t_seq / t_iaf))
    return dict(workdir=workdir, num_samples=num_samples, rows=rows)


# ----------------------------------------------------------------------------- report
def fmt_table(rows, columns):
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return "" if v is None else str(v)

    head = "| " + " | ".join(c for c, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(k)) for _, k in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_results(out: str | Path, machine: str, new: dict, blocks: dict) -> str:
    """Merges the sections run into OUT.json and OUT.md and returns the Markdown written.

    `new` maps each section run to its results, `blocks` to its Markdown (from its `## ` heading
    on). A section run replaces the committed section of its name; the sections not run are kept,
    their JSON and their Markdown as the files have them, in their order (the caller checks that
    they come from `machine`). The heading's command names every section in the file.
    """
    out = Path(out)
    md = out.with_suffix(".md")
    _, committed_blocks = markdown_sections(md.read_text() if md.exists() else "")
    blocks = {**{name: b for b in committed_blocks for name, title in TITLES.items() if b.startswith(title)},
              **blocks}
    results = merge_sections(read_json(out.with_suffix(".json"), {}), {"machine": machine, **new})
    sections = [name for name in results if name != "machine"]
    missing = [name for name in sections if name not in blocks]
    if missing:
        raise ValueError(f"{md} has no Markdown for the sections {missing} of {out.with_suffix('.json')}.")
    text = (f"# Flow benchmarks\n\nMachine: {machine}. Command: "
            f"`python experiments/benchmarks/flows.py --sections={','.join(sections)}`\n\n"
            + "".join(blocks[name] for name in sections))
    out.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="throughput,compile,sampling")
    parser.add_argument("--maf_workdir", default="runs/maf_mnist")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile_depths", default="4,16,64", help="layers, comma-separated")
    parser.add_argument("--compile_repeats", type=int, default=None,
                        help="fresh compiles per point (default 3 on a CPU; 1 on a GPU or TPU, where "
                             "compiling is slower and the section must stay within a minute)")
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--out", default=str(RESULTS / "flows"))
    args = parser.parse_args()
    jax.config.update("jax_enable_compilation_cache", False)
    sections = args.sections.split(",")
    if "sampling" in sections and not (Path(args.maf_workdir) / "config.json").exists():
        print(f"no trained MAF in {args.maf_workdir}; skipping the sampling section "
              "(train one with experiments/configs/maf_mnist.py).")
        sections.remove("sampling")
    device = jax.devices()[0]
    machine = (f"{platform.processor() or platform.machine()}, {device.platform} "
               f"({device.device_kind}), {jax.device_count()} device(s), jax {jax.__version__}")
    out = Path(args.out)
    committed = read_json(out.with_suffix(".json"), {})
    require_same([name for name in committed if name != "machine" and name not in sections], "the machine",
                 committed.get("machine"), machine, out.with_suffix(".json"))
    results, blocks = {}, {}
    if "throughput" in sections:
        r = results["throughput"] = bench_throughput(args.rounds, args.steps)
        blocks["throughput"] = [
            f"{TITLES['throughput']} (batch {BATCH})\n",
            f"Matmul peak (jnp.dot 4096x4096 float32, best of every round): "
            f"**{r['matmul_peak_gflops']:.1f} GFLOP/s**. "
            "GFLOP/s counts the step's dense matmul FLOPs (3x forward). Every contestant trains "
            "with the library's step (`make_train_step` on a `TrainState`, Adam).\n",
            fmt_table(r["rows"], [("model", "model"), ("implementation", "implementation"),
                                  ("step ms", "step_ms"), ("examples/s", "examples_per_s"),
                                  ("GFLOP/s", "gflops"), ("of peak", "fraction_of_peak"),
                                  ("time / dgmjax", "dgmjax_speedup"),
                                  ("time / plain loop (paired by round)", "vs_plain"),
                                  ("range over rounds", "vs_plain_range"),
                                  ("compile s", "compile_s")]),
            "\nRows marked `part:` time one piece of the dgmjax (scan_layers=False) step alone, in "
            "the same rounds; their GFLOP/s still count the whole step's matmul FLOPs, so the "
            "`sum:` row is the best a step made of those pieces run one after the other could do.\n", ""]
    if "compile" in sections:
        depths = tuple(int(d) for d in args.compile_depths.split(","))
        repeats = args.compile_repeats or (3 if device.platform == "cpu" else 1)
        r = results["compile"] = bench_compile(depths, repeats=repeats)
        blocks["compile"] = [
            f"{TITLES['compile']} of the train step against depth (median of {repeats} on "
            f"{device.platform})\n",
            fmt_table(r["rows"], [("model", "model"), ("implementation", "implementation"),
                                  ("layers", "layers"), ("compile s", "compile_s"),
                                  ("ratio to 4 layers", "ratio_to_4_layers")]), ""]
    if "sampling" in sections:
        r = results["sampling"] = bench_sampling(args.maf_workdir, args.num_samples)
        blocks["sampling"] = [
            f"{TITLES['sampling']} {r['num_samples']} MNIST images from the trained MAF ({r['workdir']})\n",
            fmt_table(r["rows"], [("method", "method"), ("tolerance", "tolerance"),
                                  ("seconds", "seconds"), ("passes per layer", "passes_per_layer"),
                                  ("max abs dx vs sequential (logit space)", "max_abs_dx"),
                                  ("same, in pixel levels (of 256)", "max_abs_dx_levels"),
                                  ("speedup vs sequential", "speedup")]), ""]
    text = write_results(out, machine, results,
                         {name: "\n".join(lines) + "\n" for name, lines in blocks.items()})
    print(text)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
