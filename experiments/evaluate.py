"""Samples and test metrics of a trained workdir, without retraining.

    python experiments/evaluate.py --workdir=runs/digits [--temperature=0.7] [--num_samples=64]

Loads the run (`runs.load_run`: its config.json and the latest checkpoint's
EMA parameters), writes `eval/samples_step<S>_T<T>.png` and
`eval/test_metrics_step<S>.json` to the workdir and prints them. The metrics
use the run's own eval key and batch size, so for a finished run they equal
its `final_metrics.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    from absl import app, flags, logging
except ImportError as err:
    raise ImportError("experiments/evaluate.py needs 'absl-py': install the application's extra with "
                      "`pip install -e '.[experiments]'` in the repository.") from err

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

_WORKDIR = flags.DEFINE_string("workdir", None, "A directory written by experiments/main.py.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature (flows: z ~ N(0, T^2 I)).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 0,
                                    "Samples in the grid (0: the config's train.num_samples).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the samples.")
_STEP = flags.DEFINE_integer("step", None, "The checkpoint's step (default: the latest).")
_METRICS = flags.DEFINE_bool("metrics", True, "Evaluate the test split (--nometrics: samples only).")
flags.mark_flags_as_required(["workdir"])


def evaluate_workdir(workdir: str | Path, *, temperature: float = 1.0, num_samples: int = 0, seed: int = 0,
                     step: int | None = None, metrics: bool = True) -> dict:
    """Writes the samples (and test metrics) of `workdir` under `workdir/eval`; returns what it wrote."""
    import jax
    from runs import load_run

    run = load_run(workdir, step=step, num_samples=num_samples or None)
    out = Path(workdir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    result = {"step": run.step, "temperature": float(temperature)}
    paths = run.save_samples(jax.random.PRNGKey(seed), out / f"samples_step{run.step}_T{temperature:g}",
                             temperature=temperature)
    result["samples"] = [str(p) for p in paths]
    print(f"{run.task.name}, step {run.step}: wrote {', '.join(result['samples'])}")
    if metrics:
        values = run.evaluate()
        (out / f"test_metrics_step{run.step}.json").write_text(json.dumps({"step": run.step, **values},
                                                                           indent=2) + "\n")
        result["metrics"] = values
        print(f"{run.task.headline(values)}")
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    evaluate_workdir(_WORKDIR.value, temperature=_TEMPERATURE.value, num_samples=_NUM_SAMPLES.value,
                     seed=_SEED.value, step=_STEP.value, metrics=_METRICS.value)


if __name__ == "__main__":
    from cli import run

    run(sys.argv, main)
