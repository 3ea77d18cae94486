"""One-command device check: does dgmjax give the right answers, at what speed, on this accelerator?

    python experiments/device_check.py --mnist_dir=DIR [--out=PATH] [--dry_run]

On whatever device JAX finds (GPU, TPU, or the CPU), in this order, each part
in its own process with its own time limit:

1. tests: the test suite (`pytest -n <cores>`), passed / failed / skipped;
2. throughput: the throughput section of experiments/benchmarks/flows.py
   (784-D RealNVP and MAF train steps against plain distrax + flax);
3. bf16: one ImageRealNVP train step on MNIST-sized images with float32 and
   with bfloat16 conditioners, side by side: ms per step and the losses;
4. deterministic: the float32 step of part 3 timed in two processes, with
   XLA's default GPU kernels and with `--xla_gpu_deterministic_ops=true`
   (what `--config.deterministic=True` sets): the speed cost of bit-for-bit
   reproducible runs (none on a CPU, where the flag changes nothing);
5. mnist: the one-GPU Glow job (configs/gpu.py:glow_mnist) for a fixed wall
   time (`--mnist_seconds`, 300 by default), stopped by SIGTERM, which saves a
   checkpoint. Reports the steps reached, the last logged train loss in
   bits/dim, the examples per second and the ms per step beside the
   FLOP-based estimate of experiments/benchmarks/gpu_configs.py.

Needs jax, flax, optax and distrax (plus ml_collections and absl for part
5), no TensorFlow and no network: MNIST's four original .gz files come from
`--mnist_dir`. Without it, part 5 is skipped and the report says so.
`--dry_run` makes every part tiny (a few tests, one round, the digits
instead of MNIST) to try the script on a CPU. The whole check is sized to
finish within 8 minutes on one H100.

Writes one report, Markdown and JSON, named after the device, to
experiments/benchmarks/results/device_check_<device>.{md,json} (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BF16_STEP = r'''
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
from dgmjax.dequantization import uniform_dequantize
from dgmjax.models import ImageRealNVP
from dgmjax.objectives import bits_per_dim, dequantization_bound
from dgmjax.training import TrainState, make_optimizer, make_train_step
shape, batch, steps = json.loads(sys.argv[1])
dtypes = json.loads(sys.argv[2]) if len(sys.argv) > 2 else [None, "bfloat16"]
images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch,) + tuple(shape)), jnp.uint8)
out = {}
for dtype in dtypes:
    model = ImageRealNVP(image_shape=tuple(shape), num_scales=3 if shape[0] % 4 == 0 else 2, features=64,
                         num_blocks=2, compute_dtype=dtype)
    params = model.init(jax.random.PRNGKey(0), uniform_dequantize(jax.random.PRNGKey(1), images, 256)[0])
    def loss_fn(key, params, batch, model=model):
        bound = dequantization_bound(key, lambda x: model.apply(params, x), batch, 256)
        return bits_per_dim(bound, int(np.prod(shape))).mean(), {}
    state = TrainState.create(params=params, tx=make_optimizer(1e-3, num_steps=100, warmup_steps=1))
    step = jax.jit(make_train_step(loss_fn, jax.random.PRNGKey(2)))
    state, metrics = step(state, images)  # compile
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, images)
    jax.block_until_ready(state)
    out[dtype or "float32"] = {"ms_per_step": 1e3 * (time.perf_counter() - t0) / steps,
                               "loss_bpd": float(metrics["loss"])}
print(json.dumps(out))
'''


def _device() -> dict:
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "kind": getattr(d, "device_kind", d.platform),
            "count": jax.device_count(), "jax": jax.__version__, "python": sys.version.split()[0]}


def _run(cmd, timeout, env=None, cwd=ROOT) -> tuple[int, str, float]:
    t0 = time.time()
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env={**os.environ, **(env or {})})
        return proc.returncode, proc.stdout + proc.stderr, time.time() - t0
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return 124, out, time.time() - t0


def check_tests(dry_run: bool, timeout: int) -> dict:
    cores = max(1, min(8, os.cpu_count() or 1))
    targets = ["tests/test_precision.py", "tests/bijectors/test_coupling.py"] if dry_run else []
    rc, out, wall = _run([sys.executable, "-m", "pytest", "-rfE", "-p", "no:cacheprovider", "-n", str(cores),
                          *targets], timeout)
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    failed = re.findall(r"^FAILED (\S+)", out, flags=re.M)
    return {"rc": rc, "wall_s": wall, "summary": summary, **counts, "failed_tests": failed}


def check_throughput(dry_run: bool, timeout: int, workdir: Path) -> dict:
    out_base = workdir / "flows"
    rounds, steps = ("1", "2") if dry_run else ("3", "10")
    rc, out, wall = _run([sys.executable, HERE / "benchmarks" / "flows.py", "--sections=throughput",
                          f"--rounds={rounds}", f"--steps={steps}", f"--out={out_base}"], timeout)
    table = out_base.with_suffix(".md").read_text() if out_base.with_suffix(".md").exists() else ""
    return {"rc": rc, "wall_s": wall, "table": table, "tail": "" if rc == 0 else out[-2000:]}


def _step_size(dry_run: bool) -> tuple[list[int], int, int]:
    """Image shape, batch and timed steps of the bf16 and deterministic parts' train step."""
    return ([8, 8, 1], 16, 3) if dry_run else ([28, 28, 1], 128, 20)


def check_bf16(dry_run: bool, timeout: int) -> dict:
    shape, batch, steps = _step_size(dry_run)
    rc, out, wall = _run([sys.executable, "-c", BF16_STEP, json.dumps([shape, batch, steps])], timeout)
    result = {"rc": rc, "wall_s": wall, "image_shape": shape, "batch": batch, "timed_steps": steps}
    if rc == 0:
        result.update(json.loads(out.strip().splitlines()[-1]))
        result["bf16_speedup"] = result["float32"]["ms_per_step"] / result["bfloat16"]["ms_per_step"]
    else:
        result["tail"] = out[-2000:]
    return result


def check_deterministic(dry_run: bool, timeout: int) -> dict:
    """The float32 step of `check_bf16` without and with XLA's deterministic GPU kernels, each in its
    own process (XLA reads its flags when the backend starts)."""
    from dgmjax.training.determinism import DETERMINISTIC_FLAG

    shape, batch, steps = _step_size(dry_run)
    result = {"image_shape": shape, "batch": batch, "timed_steps": steps}
    others = [f for f in os.environ.get("XLA_FLAGS", "").split() if f != DETERMINISTIC_FLAG]
    for name, flags in (("default", others), ("deterministic", [*others, DETERMINISTIC_FLAG])):
        rc, out, wall = _run([sys.executable, "-c", BF16_STEP, json.dumps([shape, batch, steps]), "[null]"],
                             timeout, env={"XLA_FLAGS": " ".join(flags)})
        result[name] = ({"rc": rc, "wall_s": wall, **json.loads(out.strip().splitlines()[-1])["float32"]}
                        if rc == 0 else {"rc": rc, "wall_s": wall, "tail": out[-2000:]})
    if "ms_per_step" in result["default"] and "ms_per_step" in result["deterministic"]:
        result["slowdown"] = result["deterministic"]["ms_per_step"] / result["default"]["ms_per_step"]
    return result


def check_mnist(mnist_dir: str, dry_run: bool, seconds: int, workdir: Path) -> dict:
    if dry_run:
        config, data = "default.py", []
    elif not mnist_dir:
        return {"skipped": "no --mnist_dir given"}
    else:
        config, data = "gpu.py:glow_mnist", [f"--config.data.manual_dir={mnist_dir}"]
    run_dir = workdir / "mnist"
    cmd = [sys.executable, HERE / "main.py", f"--config={HERE / 'configs' / config}", f"--workdir={run_dir}",
           "--config.train.num_steps=100000", "--config.train.log_every=20", "--config.train.sample_every=0",
           "--config.train.checkpoint_every=0", "--config.train.eval_every=0", "--compilation_cache=", *data]
    t0 = time.time()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the loop saves a checkpoint and exits with 143
        out, _ = proc.communicate(timeout=120)
    records = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train = [r for r in records if r["split"] == "train"]
    last = train[-1] if train else {}
    config_file = run_dir / "config.json"
    batch = json.loads(config_file.read_text())["train"]["batch_size"] if config_file.exists() else None
    speed = last.get("examples_per_sec")
    return {"config": config, "rc": proc.returncode, "wall_s": time.time() - t0, "steps": last.get("step", 0),
            "last_train_loss_bpd": last.get("loss"), "examples_per_sec": speed,
            "ms_per_step": 1e3 * batch / speed if batch and speed else None,
            "estimated_ms_per_step": _estimate(config),
            "tail": "" if proc.returncode in (0, 143) else out[-2000:]}


def _estimate(config: str) -> float | None:
    """The FLOP-based ms per step of a gpu.py job (experiments/benchmarks/results/gpu_configs.json)."""
    path = HERE / "benchmarks" / "results" / "gpu_configs.json"
    if not config.startswith("gpu.py:") or not path.exists():
        return None
    rows = {r["job"]: r for r in json.loads(path.read_text())["rows"]}
    return rows.get(config.split(":", 1)[1], {}).get("step_ms")


def _step_table(what: str, part: dict, keys) -> list[str]:
    """Markdown rows of a timed step under each setting in `keys`: ms per step and the loss."""
    return [f"| {what} | ms / step | loss (bits/dim) |", "|---|---|---|",
            *(f"| {k} | {part[k]['ms_per_step']:.2f} | {part[k]['loss_bpd']:.4f} |" for k in keys)]


def report(result: dict) -> str:
    d = result["device"]
    lines = [f"# Device check: {d['kind']} ({d['platform']}, {d['count']} device(s))", "",
             f"jax {d['jax']}, Python {d['python']}, {result['date']}; total {result['wall_s']:.0f} s"
             + (" (dry run)" if result["dry_run"] else ""), ""]
    t = result.get("tests", {})
    lines += ["## Tests", "", f"{t.get('summary', 'not run')} ({t.get('wall_s', 0):.0f} s)", ""]
    lines += [f"- FAILED {name}" for name in t.get("failed_tests", [])]
    lines += ["", "## Flow train-step throughput", "",
              result.get("throughput", {}).get("table", "") or "not run", "",
              "## bfloat16 vs float32 conditioners (ImageRealNVP train step)", ""]
    b = result.get("bf16", {})
    if "float32" in b:
        lines += [f"images {b['image_shape']}, batch {b['batch']}, {b['timed_steps']} timed steps", "",
                  *_step_table("conditioners", b, ("float32", "bfloat16")),
                  "", f"bfloat16 speedup: {b['bf16_speedup']:.2f}x"]
    else:
        lines += ["failed: " + b.get("tail", "")[-500:]]
    det = result.get("deterministic", {})
    lines += ["", "## Deterministic kernels (`--config.deterministic=True`)", ""]
    if "slowdown" in det:
        lines += [f"the float32 step above, {det['timed_steps']} timed steps", "",
                  *_step_table("XLA kernels", det, ("default", "deterministic")),
                  "", f"deterministic / default: {det['slowdown']:.2f}x the time per step"]
    else:
        tails = "".join(det.get(k, {}).get("tail", "") for k in ("default", "deterministic"))
        lines += ["failed: " + tails[-500:]]
    m = result.get("mnist", {})
    lines += ["", "## Image flow for a fixed time", ""]
    if "skipped" in m:
        lines += [f"skipped: {m['skipped']}"]
    else:
        lines += [f"{m['config']}: {m['steps']} steps in {m['wall_s']:.0f} s (exit {m['rc']}), last train "
                  f"loss {m['last_train_loss_bpd']} bits/dim, {m['examples_per_sec']} examples/s"]
        if m.get("ms_per_step"):
            estimate = m.get("estimated_ms_per_step")
            lines += ["", f"{m['ms_per_step']:.1f} ms per step"
                      + (f" (estimated from its FLOPs: {estimate:.1f} ms, experiments/benchmarks/"
                         "results/gpu_configs.md)" if estimate else "")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist_dir", default="", help="a folder with the four original MNIST .gz files")
    parser.add_argument("--mnist_seconds", type=int, default=300)
    parser.add_argument("--tests_timeout", type=int, default=240)
    parser.add_argument("--dry_run", action="store_true", help="tiny sizes, to try the script on a CPU")
    parser.add_argument("--out", default="", help="report path without suffix")
    args = parser.parse_args(argv)
    t0 = time.time()
    result = {"device": _device(), "date": time.strftime("%Y-%m-%d"), "dry_run": args.dry_run}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, fn in (("tests", lambda: check_tests(args.dry_run, args.tests_timeout)),
                         ("throughput", lambda: check_throughput(args.dry_run, 120, tmp)),
                         ("bf16", lambda: check_bf16(args.dry_run, 120)),
                         ("deterministic", lambda: check_deterministic(args.dry_run, 90)),
                         ("mnist", lambda: check_mnist(args.mnist_dir, args.dry_run,
                                                       30 if args.dry_run else args.mnist_seconds, tmp))):
            print(f"device check: {name} ...", flush=True)
            result[name] = fn()
    result["wall_s"] = time.time() - t0
    device = re.sub(r"[^a-z0-9]+", "_", result["device"]["kind"].lower()).strip("_")
    out = Path(args.out) if args.out else HERE / "benchmarks" / "results" / f"device_check_{device}"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = report(result)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
