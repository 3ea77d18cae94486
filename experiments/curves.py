"""Learning curves of one or more trained workdirs, side by side: a PNG and a Markdown table.

    python experiments/curves.py --workdirs=runs/glow_mnist,runs/glow_mnist_gated \
        --labels=residual,gated --out=experiments/results/figures/glow_mnist_curves [--ymax=2.2] \
        [--target=1.3]

Reads each workdir's `metrics.jsonl` (what experiments/main.py logs), plots the metric of the
train records (each the mean over its `log_every` steps) as lines and of the test records as
markers, writes OUT.png and OUT.md, and prints the table: one row per run and split, one column
per `--every` steps (and per test evaluation).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from absl import flags
except ImportError as err:
    raise ImportError("experiments/curves.py needs 'absl-py': install the application's extra with "
                      "`pip install -e '.[experiments]'` in the repository.") from err

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Directories written by experiments/main.py.")
_LABELS = flags.DEFINE_list("labels", None, "A label per workdir (default: the directories' names).")
_METRIC = flags.DEFINE_string("metric", "bpd_bound", "The metric to plot (a key of the records).")
_EVERY = flags.DEFINE_integer("every", 500, "The table's train columns: every this many steps.")
_YMAX = flags.DEFINE_float("ymax", None, "Upper limit of the plot's y axis (cuts off early spikes).")
_TARGET = flags.DEFINE_float("target", None, "Draw a dashed line at this value (a goal to compare with).")
_OUT = flags.DEFINE_string("out", None, "Output path without suffix: writes OUT.png and OUT.md.")
flags.mark_flags_as_required(["workdirs", "out"])


def load_curves(workdirs, labels=None, metric: str = "bpd_bound") -> dict:
    """`{label: {"train": (steps, values), "test": (steps, values)}}` from each workdir's metrics."""
    from dgmjax.training.metrics import read_metrics

    workdirs = [Path(w) for w in workdirs]
    if not workdirs:
        raise ValueError("`workdirs` must name at least one workdir; got none.")
    labels = list(labels) if labels else [w.name for w in workdirs]
    if len(labels) != len(workdirs):
        raise ValueError(f"`labels` must give one label per workdir ({len(workdirs)}); got {len(labels)}.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"`labels` must be distinct; got {labels}.")
    out = {}
    for label, workdir in zip(labels, workdirs, strict=True):
        records = read_metrics(workdir)
        if not records:
            raise ValueError(f"`workdirs`: {str(workdir)!r} has no metrics.jsonl records; expected a "
                             "directory written by experiments/main.py.")
        splits = {}
        for split in ("train", "test"):
            rows = sorted((r["step"], float(r[metric]))
                          for r in records if r["split"] == split and metric in r)
            splits[split] = (tuple(s for s, _ in rows), tuple(v for _, v in rows))
        if not splits["train"][0] and not splits["test"][0]:
            known = sorted({k for r in records for k in r} - {"step", "split"})
            raise ValueError(f"`metric` {metric!r} is in no record of {str(workdir)!r}; its records have "
                             f"{known}.")
        out[label] = splits
    return out


def curves_table(curves: dict, *, every: int = 500, metric: str = "bpd_bound") -> str:
    """A Markdown table: a column per multiple of `every` and per test step, a row per run and split."""
    if every < 1:
        raise ValueError(f"`every` must be >= 1; got {every}.")
    steps = set()
    for splits in curves.values():
        steps.update(s for s in splits["train"][0] if s % every == 0)
        steps.update(splits["test"][0])
    steps = sorted(steps)
    lines = ["| run | " + " | ".join(str(s) for s in steps) + " |",
             "|---|" + "---|" * len(steps)]
    for label, splits in curves.items():
        for split in ("train", "test"):
            values = dict(zip(*splits[split], strict=True))
            if not values:
                continue
            cells = [f"{values[s]:.3f}" if s in values else "" for s in steps]
            lines.append(f"| {label}, {split} {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    from plotting import save_learning_curves

    curves = load_curves(_WORKDIRS.value, _LABELS.value, _METRIC.value)
    png, md = Path(_OUT.value + ".png"), Path(_OUT.value + ".md")
    save_learning_curves(curves, png, ylabel=_METRIC.value, ymax=_YMAX.value, target=_TARGET.value)
    table = curves_table(curves, every=_EVERY.value, metric=_METRIC.value)
    md.write_text(table)
    print(table)
    print(f"wrote {png} and {md}")


if __name__ == "__main__":
    from cli import run

    run(sys.argv, main)
