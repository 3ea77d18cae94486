"""What holds the image flows back? Controlled ablations on MNIST, one `main.py` run per row.

    python experiments/image_flow_ablation.py --manual_dir=DIR [--rows=glow_old,glow_logit]
        [--num_steps=400] [--test_split='test[:2000]'] [--out=experiments/results/image_flow_ablation]

Every row is `experiments/main.py` with its config and a few `--config.*`
overrides on top of the same screening budget (steps, batch 64, seed 0,
warmup, EMA, test split), so rows differ only in what the row names. Each row
prints its command; the table gives the test bound in bits/dim (uniform or
variational dequantization as the row says), the parameter count, the
training wall time and the command. Rows whose workdir already holds a
finished run are read back, not rerun. Each row run is added to the Markdown
table and JSON file at --out, or replaces its row there; the other rows in
them are kept (their budget must be this call's), in the order of ROWS.

DIR holds the four original MNIST .gz files (offline); with a network, leave
it out and tfds downloads them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from results_table import kept_rows, merge_rows, read_json, read_rows, require_same  # noqa: E402

GLOW = "experiments/configs/glow_mnist.py"
REALNVP = "experiments/configs/mnist.py"

# Every row names each setting the ablation varies, so its command reproduces it whatever the configs'
# defaults are. The Glow rows start from Glow as configured before this ablation (`glow_old`) plus the
# logit preprocessing (`glow_logit`); each later row changes what it says from there.
GLOW_BEFORE = {"model.conditioner": "residual", "model.num_steps": 6, "model.features": 48,
               "model.num_blocks": 1, "model.scale_fn": "sigmoid", "optimizer.name": "adamw",
               "optimizer.learning_rate": 1e-3}
GLOW_LOGIT = {**GLOW_BEFORE, "model.logit_alpha": 0.05}
REALNVP_BEFORE = {"model.conditioner": "residual", "optimizer.learning_rate": 1e-3}


def _glow(what: str, **changes) -> tuple[str, dict, str]:
    return GLOW, {**GLOW_LOGIT, **{k.replace("__", "."): val for k, val in changes.items()}}, what


# name -> (config, overrides, what the row changes)
ROWS: dict[str, tuple[str, dict, str]] = {
    "glow_old": (GLOW + ":pixels", GLOW_BEFORE,
                 "Glow as configured before: pixels in [0, 1) (the first ActNorm centres them), 6 steps per "
                 "scale, ConvResNet 48 wide, sigmoid scale, AdamW at 1e-3"),
    "glow_logit": _glow("+ logit preprocessing, alpha 0.05"),
    "glow_logit_lr3": _glow("+ logit, learning rate 3e-3 instead of 1e-3", optimizer__learning_rate=3e-3),
    "glow_logit_adamax": _glow("+ logit, Adamax at 3e-3 (Flow++'s optimizer) instead of AdamW at 1e-3",
                               optimizer__name="adamax", optimizer__learning_rate=3e-3),
    "glow_logit_gated": _glow("+ logit, gated residual conv with concat-ELU (Flow++) instead of ConvResNet",
                              model__conditioner="gated"),
    "glow_logit_tanh": _glow("+ logit, tanh-bounded scale (log s within +-2) instead of Glow's sigmoid",
                             model__scale_fn="tanh"),
    "glow_logit_deep": _glow("+ logit, 10 steps per scale instead of 6", model__num_steps=10),
    "glow_logit_wide": _glow("+ logit, conditioners 96 wide instead of 48", model__features=96),
    "glow_logit_noema": _glow("+ logit, raw parameters evaluated (no EMA)", train__ema_decay=0.0),
    "glow_logit_nowarmup": _glow("+ logit, no warmup", optimizer__warmup_steps=0),
    "glow_logit_init512": _glow("+ logit, ActNorm's data-dependent init on 512 images instead of 64",
                                train__init_batch_size=512),
    "glow_logit_vardeq": _glow("+ logit, variational dequantization (bound on the same pixels)",
                               objective__dequantization="variational"),
    "glow_logit_tanh_lr3": _glow("+ logit, tanh scale and learning rate 3e-3 together",
                                 model__scale_fn="tanh", optimizer__learning_rate=3e-3),
    "glow_logit_tanh_lr3_deep": _glow(
        "+ logit, tanh scale, learning rate 3e-3 and 10 steps per scale together",
        model__scale_fn="tanh", optimizer__learning_rate=3e-3, model__num_steps=10),
    "glow_logit_tanh_lr5": _glow("+ logit, tanh scale and learning rate 5e-3 together",
                                 model__scale_fn="tanh", optimizer__learning_rate=5e-3),
    "glow_logit_tanh_lr3_gated": _glow(
        "+ logit, tanh scale, learning rate 3e-3 and the gated concat-ELU conditioner together",
        model__scale_fn="tanh", optimizer__learning_rate=3e-3, model__conditioner="gated"),
    "realnvp_old": (REALNVP, REALNVP_BEFORE,
                    "ImageRealNVP as configured (3 scales, 3 checkerboard + 3 channel couplings, "
                    "ConvResNet 32 wide, logit 0.05, tanh scale, AdamW at 1e-3)"),
    "realnvp_lr3": (REALNVP, {**REALNVP_BEFORE, "optimizer.learning_rate": 3e-3},
                    "ImageRealNVP as configured, learning rate 3e-3 instead of 1e-3"),
}


def screening_overrides(args) -> dict:
    """The budget every row shares."""
    return {"train.num_steps": args.num_steps, "train.batch_size": 64, "seed": 0,
            "optimizer.warmup_steps": args.warmup_steps, "train.ema_decay": args.ema_decay,
            "data.test_split": args.test_split, "train.eval_every": 0, "train.sample_every": 0,
            "train.checkpoint_every": 0, "train.log_every": 50}


def command(config: str, overrides: dict, workdir: Path, manual_dir: str | None) -> list[str]:
    cmd = [sys.executable, "experiments/main.py", f"--config={config}", f"--workdir={workdir}"]
    if manual_dir:
        cmd.append(f"--config.data.manual_dir={manual_dir}")
    for key, value in overrides.items():
        cmd.append(f"--config.{key}={'None' if value is None else value}")
    return cmd


def run_row(name: str, args) -> dict:
    config, own, what = ROWS[name]
    overrides = {**screening_overrides(args), **own}
    workdir = Path(args.workdir_root) / name
    cmd = command(config, overrides, workdir, args.manual_dir)
    shown = " ".join(shlex.quote(c) for c in ["python"] + cmd[1:])
    if args.manual_dir:  # the table names no path outside the repository
        shown = shown.replace(f"--config.data.manual_dir={args.manual_dir}", "--config.data.manual_dir=DIR")
    final = workdir / "final_metrics.json"
    wall = None
    if not final.exists():
        print(f"[{name}] {shown}", flush=True)
        start = time.time()
        log = workdir.parent / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            proc = subprocess.run(cmd, cwd=_ROOT, stdout=f, stderr=subprocess.STDOUT)
        wall = time.time() - start
        if proc.returncode != 0:
            raise SystemExit(f"row {name} failed (exit {proc.returncode}); see {log}")
        (workdir / "wall_s.txt").write_text(f"{wall:.1f}\n")
    elif (workdir / "wall_s.txt").exists():
        wall = float((workdir / "wall_s.txt").read_text())
    metrics = json.loads(final.read_text())
    params = None
    log = workdir.parent / f"{name}.log"
    if log.exists():
        for line in log.read_text().splitlines():
            if " parameters, " in line:
                params = int(line.split(": ")[-1].split(" parameters")[0].replace(",", ""))
    return {"row": name, "what": what, "bpd": float(metrics["bpd_bound"]), "params": params,
            "wall_s": wall, "command": shown}


def write_table(results: list[dict], args) -> str:
    lines = [f"Screening budget: {args.num_steps} steps x 64, seed 0, warmup {args.warmup_steps}, "
             f"EMA {args.ema_decay}, test split `{args.test_split}`; test bound in bits/dim.", "",
             "| row | change | bits/dim | parameters | wall |", "|---|---|---|---|---|"]
    for r in results:
        wall = "" if r["wall_s"] is None else f"{r['wall_s'] / 60:.1f} min"
        params = "" if r["params"] is None else f"{r['params']:,}"
        lines.append(f"| `{r['row']}` | {r['what']} | {r['bpd']:.4f} | {params} | {wall} |")
    lines += ["", "Commands:", ""] + [f"- `{r['row']}`: `{r['command']}`" for r in results]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {list(ROWS)}")
    p.add_argument("--num_steps", type=int, default=400)
    p.add_argument("--warmup_steps", type=int, default=50)
    p.add_argument("--ema_decay", type=float, default=0.99)
    p.add_argument("--test_split", default="test[:2000]")
    p.add_argument("--manual_dir", default=None)
    p.add_argument("--workdir_root", default="runs/image_flow_ablation")
    p.add_argument("--out", default="experiments/results/image_flow_ablation")
    args = p.parse_args(argv)
    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise ValueError(f"`--rows` has unknown rows {unknown}; known: {list(ROWS)}.")
    out = Path(args.out)
    committed = read_json(out.with_suffix(".json"), {})
    committed_rows = read_rows(out.with_suffix(".json"), "rows")
    budget = {**vars(args), "manual_dir": "DIR" if args.manual_dir else None}  # no outside path
    kept = kept_rows(committed_rows, names, "row")
    shared = lambda b: {k: b.get(k) for k in ("num_steps", "warmup_steps", "ema_decay", "test_split")}
    require_same(kept, "the screening budget", shared(committed.get("budget", {})), shared(budget), out)
    if kept:  # the budget its rows share (checked above), as the file has it
        budget = committed["budget"]
    done, results = [], committed_rows
    for name in names:
        r = run_row(name, args)
        print(f"[{name}] {r['bpd']:.4f} bits/dim"
              + ("" if r["wall_s"] is None else f", {r['wall_s'] / 60:.1f} min"), flush=True)
        # Written after every row: the committed rows, each row finished so far in its place.
        done.append(r)
        results = merge_rows(committed_rows, done, "row", order=list(ROWS))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(write_table(results, args))
        out.with_suffix(".json").write_text(json.dumps({"budget": budget, "rows": results}, indent=2) + "\n")
    print(write_table(results, args))
    return results


if __name__ == "__main__":
    main()
