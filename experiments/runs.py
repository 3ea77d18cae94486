"""A trained workdir back in memory: `load_run(workdir)`.

    import sys; sys.path.insert(0, "experiments")
    from runs import load_run

    run = load_run("runs/digits")           # config.json + the latest checkpoint's EMA parameters
    x = run.sample(jax.random.PRNGKey(0), 16, temperature=0.8)   # in the model's space
    log_p = run.log_prob(x)                                      # nats
    run.save_samples(jax.random.PRNGKey(0), "grid", temperature=0.8)  # grid.png, as pixels
    metrics = run.evaluate()                                     # the test metrics training printed

`run.model` is the Flax module and `run.variables` its parameters, so
`run.model.apply(run.variables, ...)` and `run.model.bind(run.variables)` work
as they do on a freshly built model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
from tasks import Task, build_task
from train import run_keys

from dgmjax.training import load_params, make_evaluator


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run: its config, task (model and data) and parameters.

    Attributes:
      workdir: the run's directory.
      config: the `ConfigDict` it was trained with (`config.json`).
      task: the task `build_task(config)` gives (model, objective, test split).
      params: the trained parameters as the task keeps them (EMA ones when
        the run kept an EMA and `load_run` was asked for them).
      step: the training step of the checkpoint.
    """

    workdir: Path
    config: ml_collections.ConfigDict
    task: Task
    params: Any
    step: int

    @property
    def model(self):
        """The Flax module."""
        return self.task.model

    @property
    def variables(self):
        """The model's own variables (without, say, a variational dequantizer's)."""
        return self.task.model_params(self.params)

    def sample(self, key: jax.Array, num_samples: int, **kwargs):
        """`model.sample(key, num_samples, **kwargs)`, e.g. `temperature=` for flows."""
        return self.model.apply(self.variables, key, num_samples, method=self.model.sample, **kwargs)

    def log_prob(self, x, *args):
        """`model(x, *args)`: log p(x) in nats for flows and discrete models."""
        return self.model.apply(self.variables, x, *args)

    def save_samples(self, key: jax.Array, prefix: str | Path, *, temperature: float = 1.0) -> list[Path]:
        """The task's sample figure(s) at `prefix` (`prefix.png`, ...), as data (pixels, points)."""
        if self.task.save_samples is None:
            raise ValueError(f"the task {self.task.name!r} writes no samples.")
        return [Path(p) for p in self.task.save_samples(self.params, key, Path(prefix), temperature)]

    def evaluate(self, key: jax.Array | None = None, *, batch_size: int | None = None) -> dict[str, float]:
        """The task's test metrics; by default with the run's own eval key and batch size, so the
        result equals the `final_metrics.json` of a finished run."""
        key = run_keys(self.config)[3] if key is None else key
        batch_size = int(self.config.train.eval_batch_size) if batch_size is None else batch_size
        state = _ParamsOnly(self.params)
        return make_evaluator(self.task.eval_fn, self.task.test_arrays, batch_size, key)(state)


@dataclasses.dataclass(frozen=True)
class _ParamsOnly:
    """What `make_evaluator`'s function reads of a train state."""

    params: Any

    def eval_params(self):
        return self.params


def load_run(workdir: str | Path, *, ema: bool = True, step: int | None = None,
             num_samples: int | None = None) -> Run:
    """Loads a workdir written by `experiments/main.py`: its config, task and trained parameters.

    Args:
      workdir: the run's directory (with `config.json` and `checkpoints/`).
      ema: the EMA parameters when the run kept them (what its evaluations
        used), else the raw ones.
      step: a checkpoint's step; None for the latest.
      num_samples: samples in `save_samples`' figure (default: the config's
        `train.num_samples`).

    The task's data are loaded as the config says (for MNIST and the like, from
    the same `data.manual_dir` / `data.data_dir`).
    """
    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"`workdir` {str(workdir)!r} has no config.json; expected a directory written by "
                         "experiments/main.py.")
    if not (workdir / "checkpoints").is_dir():
        raise ValueError(f"`workdir` {str(workdir)!r} has no checkpoints/; train it first.")
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    if num_samples is not None:
        config.train.num_samples = int(num_samples)
    task = build_task(config)
    saved_step = step
    if saved_step is None:
        from dgmjax.training import Checkpointer

        ckpt = Checkpointer(workdir / "checkpoints")
        saved_step = ckpt.latest_step()
        ckpt.close()
        if saved_step is None:
            raise ValueError(f"`workdir` {str(workdir)!r} holds no checkpoint yet.")
    params = load_params(workdir, ema=ema, step=saved_step)
    return Run(workdir, config, task, params, int(saved_step))
