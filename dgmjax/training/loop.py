"""The training loop: data-parallel jitted steps, EMA, checkpoints, metrics, samples.

`train(task, config, workdir)` runs any `dgmjax.tasks.Task`; `train_and_evaluate`
builds the task from the config first. Rerunning with the same workdir resumes
from the latest checkpoint and continues exactly as an uninterrupted run would:
batches are a function of the step, the step's key is `fold_in(key, step)`, and
the optimizer state and EMA are checkpointed with the parameters.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from dgmjax.data import eval_batches
from dgmjax.tasks.base import Task
from dgmjax.training.checkpoint import Checkpointer
from dgmjax.training.metrics import MetricWriter
from dgmjax.training.optim import make_optimizer, make_schedule
from dgmjax.training.sharding import (
    batch_sharded,
    make_mesh,
    maybe_initialize_distributed,
    replicated,
)
from dgmjax.training.state import TrainState
from dgmjax.training.steps import make_eval_step, make_train_step


def _get(cfg, key, default):
    value = cfg.get(key, default)
    return default if value is None else value


def evaluate(eval_step, params, arrays, batch_size: int, sharding, key) -> dict[str, float]:
    """Mean of each per-example metric over every example of `arrays` (padding excluded)."""
    totals, count = None, 0.0
    for i, batch in enumerate(eval_batches(arrays, batch_size, sharding=sharding)):
        sums, n = eval_step(params, batch, jax.random.fold_in(key, i))
        sums, n = jax.device_get((sums, n))
        totals = {k: np.float64(val) + (totals[k] if totals else 0.0) for k, val in sums.items()}
        count += float(n)
    return {k: float(val / count) for k, val in totals.items()}


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turns SIGTERM (preemption, `kill`) into KeyboardInterrupt so a checkpoint gets written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(task: Task, config, workdir: str | Path, *, verbose: bool = True) -> dict:
    """Trains `task` as `config.train` / `config.optimizer` say; returns the final test metrics.

    Writes to `workdir`: `checkpoints/` (orbax), `metrics.jsonl`, `tensorboard/`,
    `samples_*.png`, `config.json` and `final_metrics.json`.
    """
    workdir = Path(workdir).absolute()
    tcfg = config.train
    num_steps = int(tcfg.num_steps)
    batch_size = int(tcfg.batch_size)
    eval_batch_size = int(_get(tcfg, "eval_batch_size", batch_size))
    log_every = max(1, int(_get(tcfg, "log_every", 100)))
    eval_every = int(_get(tcfg, "eval_every", 0))
    checkpoint_every = int(_get(tcfg, "checkpoint_every", 1000))
    sample_every = int(_get(tcfg, "sample_every", 0))
    ema_decay = float(_get(tcfg, "ema_decay", 0.0))
    max_steps_per_run = int(_get(tcfg, "max_steps_per_run", 0))
    if num_steps < 0:
        raise ValueError(f"`train.num_steps` must be >= 0; got {num_steps}.")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"`train.ema_decay` must be in [0, 1) (0 disables EMA); got {ema_decay}.")
    is_main = jax.process_index() == 0
    say = print if (verbose and is_main) else (lambda *a, **k: None)

    mesh = make_mesh(int(_get(tcfg, "num_devices", 0)) or None)
    rep, data_sharding = replicated(mesh), batch_sharded(mesh)
    root = jax.random.PRNGKey(int(config.seed))
    init_key, step_key, data_key, eval_key, sample_key = jax.random.split(root, 5)
    train_batches = task.make_train_batches(batch_size, data_key, data_sharding)

    tx = make_optimizer(config.optimizer, max(num_steps, 1))
    lr_schedule = make_schedule(config.optimizer, max(num_steps, 1))
    params = jax.jit(task.init_fn, out_shardings=rep)(init_key, train_batches(0))
    state = jax.device_put(TrainState.create(params=params, tx=tx, ema=ema_decay > 0), rep)

    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=int(_get(tcfg, "max_checkpoints", 2)))
    resumed_from = checkpointer.latest_step()
    state = checkpointer.restore(state)
    start = int(jax.device_get(state.step))
    stop = min(num_steps, start + max_steps_per_run) if max_steps_per_run > 0 else num_steps
    writer = MetricWriter(workdir, resume_step=start)
    if is_main:
        (workdir / "config.json").write_text(config.to_json(indent=2) if hasattr(config, "to_json")
                                             else json.dumps(dict(config), indent=2, default=str))
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(state.params))
    say(f"{task.name}: {num_params:,} parameters, {len(mesh.devices.ravel())} device(s) "
        f"({jax.devices()[0].platform}), batch {batch_size}.")
    if resumed_from is not None:
        say(f"Resumed from the checkpoint at step {start} in {checkpointer.directory}.")

    # Accelerators donate the old state (its buffers hold the new one: half the state's
    # memory). On CPU donation is left off: measured in one interleaved run, it made the
    # layerwise flows' steps 5-8% faster but the scanned MAF's (the default) 1.2x slower.
    donate = (0,) if jax.default_backend() != "cpu" else ()
    train_step = jax.jit(make_train_step(task.loss_fn, step_key, ema_decay=ema_decay),
                         in_shardings=(rep, data_sharding), out_shardings=(rep, rep),
                         donate_argnums=donate)
    eval_step = jax.jit(make_eval_step(task.eval_fn), in_shardings=(rep, data_sharding, rep),
                        out_shardings=rep)

    def run_eval():
        return evaluate(eval_step, state.eval_params(), task.test_arrays, eval_batch_size,
                        data_sharding, eval_key)

    def write_samples(step: int):
        if task.save_samples is not None and is_main:
            task.save_samples(state.eval_params(), jax.random.fold_in(sample_key, step),
                              workdir / f"samples_{step:07d}")

    t_start = time.time()
    pending, t_last, step_last = [], time.time(), start
    bar = tqdm(total=num_steps, initial=start, disable=not (verbose and is_main), dynamic_ncols=True,
               desc="train")
    try:
        with _sigterm_as_interrupt():
            for step in range(start, stop):
                state, metrics = train_step(state, train_batches(step))
                pending.append(metrics)
                done = step + 1
                bar.update(1)
                if done % log_every == 0 or done == stop:
                    host = jax.device_get(pending)
                    now = time.time()
                    rate = (done - step_last) * batch_size / max(now - t_last, 1e-9)
                    pending, t_last, step_last = [], now, done
                    means = _window_means(host, done, checkpointer.directory)
                    if means["skipped_steps"]:
                        say(f"\nstep {done}: skipped {means['skipped_steps']} of the last "
                            f"{len(host)} steps (non-finite loss or gradient).")
                    means.update(examples_per_sec=rate, learning_rate=float(lr_schedule(done)))
                    writer.write(done, "train", means)
                    bar.set_postfix(loss=f"{means['loss']:.4f}", ex_per_s=f"{rate:.0f}")
                if checkpoint_every and done % checkpoint_every == 0:
                    checkpointer.save(state)
                if eval_every and done % eval_every == 0 and done != num_steps:
                    writer.write(done, "test", run_eval())
                if sample_every and done % sample_every == 0 and done != num_steps:
                    write_samples(done)
    except KeyboardInterrupt:
        bar.close()
        checkpointer.save(state)
        checkpointer.close()
        writer.close()
        say(f"\nInterrupted: saved a checkpoint at step {int(jax.device_get(state.step))}; "
            "rerun with the same --workdir to resume.")
        raise
    bar.close()
    checkpointer.save(state)
    train_seconds = time.time() - t_start
    if stop < num_steps:  # this run's share of steps is done; a rerun continues from here
        checkpointer.close()
        writer.close()
        say(f"Stopped at step {stop} of {num_steps} (train.max_steps_per_run="
            f"{max_steps_per_run}); rerun with the same --workdir to continue.")
        return {}

    final = run_eval()
    writer.write(num_steps, "test", final)
    writer.close()
    write_samples(num_steps)
    checkpointer.close()
    if is_main:
        record = {"step": num_steps, **final, "train_seconds_this_run": train_seconds}
        (workdir / "final_metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    say(f"{task.name} after {num_steps} steps: {task.headline(final)}")
    return final


def _window_means(host: list[dict], done: int, checkpoint_dir) -> dict:
    """Means of a logging window's metrics over its steps that were not skipped.

    Raises FloatingPointError when every step in the window was skipped (the
    run has diverged; its parameters are still the last finite ones).
    """
    kept = [m for m in host if not m["skipped"]]
    if not kept:
        losses = [float(m["loss"]) for m in host]
        raise FloatingPointError(
            f"every one of the {len(host)} training steps up to step {done} had a non-finite loss "
            f"or gradient (losses {losses[:4]}...); the parameters were left at their last finite "
            f"values and the last checkpoint in {checkpoint_dir} is intact. Lower the learning rate "
            "(or, for a flow, tighten its scale bound).")
    means = {k: float(np.mean([m[k] for m in kept])) for k in kept[0] if k != "skipped"}
    means["skipped_steps"] = len(host) - len(kept)
    return means


def train_and_evaluate(config, workdir: str | Path, *, verbose: bool = True) -> dict:
    """Builds the task from `config` and trains it (the main job's entry point)."""
    from dgmjax.tasks import build_task

    maybe_initialize_distributed(bool(config.get("distributed", False)))
    task = build_task(config)
    return train(task, config, workdir, verbose=verbose)



__all__ = ["evaluate", "train", "train_and_evaluate"]
