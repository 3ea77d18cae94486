"""The training loop: jitted data-parallel steps, EMA, checkpoints with exact resume, metrics.

    state = TrainState.create(params=params, tx=make_optimizer(1e-3, num_steps=1000), ema_decay=0.999)
    state = train(loss_fn, state, batches, num_steps=1000, key=key, workdir="runs/x")

`loss_fn(key, params, batch) -> (loss, metrics)`; `batches(step)` is the
batch of a global step (a pure function of the step, such as
`dgmjax.data.ArrayBatches`). Rerunning with the same workdir resumes from the
latest checkpoint and continues exactly as an uninterrupted run would: the
batches are a function of the step, the step's key is `fold_in(key, step)`,
and the optimizer state and EMA are checkpointed with the parameters.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from dgmjax import _checks as v
from dgmjax.data import eval_batches
from dgmjax.training.checkpoint import Checkpointer
from dgmjax.training.metrics import MetricWriter
from dgmjax.training.sharding import batch_sharded, make_mesh, replicated
from dgmjax.training.state import TrainState
from dgmjax.training.steps import make_eval_step, make_train_step
from dgmjax.training.workdir import WorkdirLock, check_workdir

__all__ = ["Terminated", "make_evaluator", "train"]

Hook = tuple[int, Callable[[int, TrainState], Any]]


def make_evaluator(eval_fn: Callable, arrays: Mapping[str, np.ndarray], batch_size: int, key: jax.Array,
                   *, mesh=None) -> Callable[[TrainState], dict[str, float]]:
    """`state -> metrics`: the mean of each per-example metric over every example of `arrays`.

    `eval_fn(key, params, batch) -> {name: (B,) values}` is evaluated at the
    state's EMA parameters when it keeps them (`eval_params`), on fixed-shape
    batches (the last one padded, the padding left out), batch i with key
    `fold_in(key, i)`.
    """
    mesh = make_mesh() if mesh is None else mesh
    rep, data = replicated(mesh), batch_sharded(mesh)
    step = jax.jit(make_eval_step(eval_fn), in_shardings=(rep, rep, data), out_shardings=rep)

    def evaluate(state: TrainState) -> dict[str, float]:
        totals, count = {}, 0.0
        for i, batch in enumerate(eval_batches(arrays, batch_size, sharding=data)):
            sums, n = jax.device_get(step(jax.random.fold_in(key, i), state.eval_params(), batch))
            for k, val in sums.items():
                totals[k] = totals.get(k, 0.0) + np.float64(val)
            count += float(n)
        return {k: float(val / count) for k, val in totals.items()}

    return evaluate


class Terminated(KeyboardInterrupt):
    """The KeyboardInterrupt that SIGTERM raises inside `train`; `signum` is the signal's number.

    A script exits with `128 + signum` (143) on it, the shell's status for a
    process ended by SIGTERM, and 130 on a plain KeyboardInterrupt (Ctrl-C).
    """

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = int(signum)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turns SIGTERM (preemption, `kill`) into `Terminated` so a checkpoint gets written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_every(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an int >= 0 (0 disables); got {value!r}.")
    return int(value)


def train(loss_fn: Callable, state: TrainState, batches: Callable[[int], Any], *, num_steps: int,
          key: jax.Array, workdir: str | Path | None = None, log_every: int = 100,
          checkpoint_every: int = 0, max_checkpoints: int = 2,
          evaluate: Callable[[TrainState], Mapping[str, float]] | None = None, eval_every: int = 0,
          hooks: Sequence[Hook] = (), learning_rate: Callable | None = None, mesh=None,
          max_steps_per_run: int = 0, checked: bool = False, verbose: bool = True) -> TrainState:
    """Trains `state` for `num_steps` steps of `loss_fn` on `batches`; returns the final state.

    Args:
      loss_fn: `(key, params, batch) -> (loss, metrics)`, scalars averaged over the batch.
      state: the initial `TrainState` (its `step` says where training stands).
      batches: `step -> batch`, a pytree of arrays with a leading batch axis.
      num_steps: the step to train to.
      key: the base key; step t uses `fold_in(key, t)`.
      workdir: where checkpoints (`checkpoints/`), `metrics.jsonl`,
        TensorBoard events (with tensorboardX installed) and `final_metrics.json` go; a rerun with the same
        workdir resumes from its newest intact checkpoint. None keeps nothing.
        Before any compute it is checked (a directory, writable, with room
        for two checkpoints: a ValueError otherwise) and locked for this
        process (`WorkdirInUseError` when another run holds it).
      log_every: steps per logged window of training metrics (their means).
      checkpoint_every: steps between checkpoints (0: only at the end, and at
        an interruption); needs a workdir.
      max_checkpoints: checkpoints kept (the newest, and older ones to fall
        back on when the newest is damaged).
      evaluate: `state -> metrics` (see `make_evaluator`), run every
        `eval_every` steps (0: only at the end) and at `num_steps`, logged as
        the "test" split; the last result goes to `final_metrics.json`.
      hooks: `(every, fn)` pairs; `fn(step, state)` runs every `every` steps
        and at `num_steps` (sample grids, plots).
      learning_rate: the optimizer's schedule, to log the rate.
      mesh: a 1-D `Mesh` over the batch axis (default: all devices); the
        state is replicated and batches are sharded over it.
      max_steps_per_run: if > 0, stops after that many steps, checkpointed, for
        time-limited jobs; a rerun continues.
      checked: trace the step in `checked_mode` and run it under
        `jax.experimental.checkify`, so the value checks the library skips
        under jit (integer levels in range, data in its documented range, ...)
        raise a ValueError at the step that breaks them. Each step then waits
        for its check, which costs speed; use it to find a bad input.
      verbose: a progress bar and a line per evaluation (process 0 only).

    A step whose loss or gradient is not finite is skipped (see
    `TrainState.create`); a logging window in which every step was skipped
    raises `FloatingPointError`, the last checkpoint intact. KeyboardInterrupt
    and SIGTERM save a checkpoint before they propagate. A checkpoint that
    cannot be saved raises `CheckpointError` at once; a damaged one is
    reported, moved aside and the run resumes from the newest intact one
    (see `Checkpointer`).
    """
    num_steps = v.check_positive_int(num_steps, "num_steps")
    log_every = v.check_positive_int(log_every, "log_every")
    checkpoint_every = _check_every(checkpoint_every, "checkpoint_every")
    eval_every = _check_every(eval_every, "eval_every")
    max_steps_per_run = _check_every(max_steps_per_run, "max_steps_per_run")
    hooks = [(v.check_positive_int(every, "hook interval"), fn) for every, fn in hooks]
    is_main = jax.process_index() == 0
    say = print if (verbose and is_main) else (lambda *a, **k: None)

    mesh = make_mesh() if mesh is None else mesh
    rep, data_sharding = replicated(mesh), batch_sharded(mesh)
    lock = None
    if workdir is not None:
        checkpoint_bytes = sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize
                               for x in jax.tree_util.tree_leaves((state.params, state.opt_state,
                                                                   state.ema_params)))
        workdir = check_workdir(workdir, checkpoint_bytes=checkpoint_bytes)
        if is_main:
            lock = WorkdirLock(workdir).acquire()
    try:
        return _train(loss_fn, state, batches, num_steps=num_steps, key=key, workdir=workdir,
                      log_every=log_every, checkpoint_every=checkpoint_every, max_checkpoints=max_checkpoints,
                      evaluate=evaluate, eval_every=eval_every, hooks=hooks, learning_rate=learning_rate,
                      mesh=mesh, rep=rep, data_sharding=data_sharding, max_steps_per_run=max_steps_per_run,
                      checked=checked, is_main=is_main, say=say, verbose=verbose)
    finally:
        if lock is not None:
            lock.release()


def _train(loss_fn, state, batches, *, num_steps, key, workdir, log_every, checkpoint_every, max_checkpoints,
           evaluate, eval_every, hooks, learning_rate, mesh, rep, data_sharding, max_steps_per_run, checked,
           is_main, say, verbose):
    state = jax.device_put(state, rep)
    checkpointer = writer = None
    if workdir is not None:
        checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=max_checkpoints)
        with warnings.catch_warnings():  # said below, in the run's own words
            warnings.simplefilter("ignore")
            state = checkpointer.restore(state)
        for step, where, why in checkpointer.rejected:
            say(f"The checkpoint of step {step} cannot be used ({why}); moved it to {where}.")
    start = int(jax.device_get(state.step))
    if start and checkpointer is not None:
        say(f"Resumed from the checkpoint at step {start} in {checkpointer.directory}.")
    stop = min(num_steps, start + max_steps_per_run) if max_steps_per_run else num_steps
    if workdir is not None:
        writer = MetricWriter(workdir, resume_step=start)

    # Accelerators donate the old state (its buffers hold the new one: half the state's memory).
    # On CPU donation is left off: it slowed the scanned flows' step (experiments/RESULTS.md).
    donate = (0,) if jax.default_backend() != "cpu" else ()
    step_fn = make_train_step(loss_fn, key)
    if checked:
        train_step = _checked_step(step_fn, donate)
    else:
        train_step = jax.jit(step_fn, in_shardings=(rep, data_sharding), out_shardings=(rep, rep),
                             donate_argnums=donate)

    def save():
        if checkpointer is not None:
            checkpointer.save(state)

    def log(step, split, metrics):
        if writer is not None:
            writer.write(step, split, metrics)

    def run_eval(step):
        metrics = dict(evaluate(state))
        log(step, "test", metrics)
        say(f"\nstep {step}: " + ", ".join(f"{k} {val:.4f}" for k, val in metrics.items()))
        return metrics

    # An interruption right after an evaluation step's checkpoint (before its evaluation was logged)
    # would otherwise lose that evaluation: run it now.
    if (evaluate is not None and eval_every and 0 < start < num_steps and start % eval_every == 0
            and writer is not None and not writer.has(start, "test")):
        run_eval(start)

    pending, t_last, step_last, batch_size = [], time.time(), start, None

    def log_window(done):
        # `pending` is emptied only once its record is written: an interruption before that leaves
        # the window to the interrupt handler, which writes it with the checkpoint.
        nonlocal pending, t_last, step_last
        host, now = jax.device_get(pending), time.time()
        rate = (done - step_last) * batch_size / max(now - t_last, 1e-9)
        means = _window_means(host, done, checkpointer)
        if means["skipped_steps"]:
            say(f"\nstep {done}: skipped {means['skipped_steps']} of the last {len(host)} steps "
                "(non-finite loss or gradient).")
        means["examples_per_sec"] = rate
        if learning_rate is not None:
            means["learning_rate"] = float(learning_rate(done))
        log(done, "train", means)
        pending, t_last, step_last = [], now, done
        return means

    bar = tqdm(total=num_steps, initial=start, disable=not (verbose and is_main), dynamic_ncols=True,
               desc="train")
    try:
        with _sigterm_as_interrupt():
            for step in range(start, stop):
                batch = batches(step)
                if batch_size is None:
                    batch_size = int(jax.tree_util.tree_leaves(batch)[0].shape[0])
                state, metrics = train_step(state, batch)
                pending.append(metrics)
                done = step + 1
                bar.update(1)
                if done % log_every == 0 or done == stop:
                    means = log_window(done)
                    bar.set_postfix(loss=f"{means['loss']:.4f}", ex_per_s=f"{means['examples_per_sec']:.0f}")
                if checkpoint_every and done % checkpoint_every == 0:
                    save()
                if evaluate is not None and eval_every and done % eval_every == 0 and done != num_steps:
                    run_eval(done)
                for every, fn in hooks:
                    if done % every == 0 and done != num_steps:
                        fn(done, state)
    except KeyboardInterrupt:
        bar.close()
        # The checkpoint below is at the state's step. Were that a logging step whose window was not
        # written yet, no rerun would write it (a rerun resumes after it): write it now.
        at = int(jax.device_get(state.step))
        if pending and at % log_every == 0 and writer is not None and not writer.has(at, "train"):
            with contextlib.suppress(FloatingPointError):
                log_window(at)
        save()
        _close(checkpointer, writer)
        if checkpointer is not None:
            say(f"\nInterrupted: saved a checkpoint at step {int(jax.device_get(state.step))}; rerun with "
                "the same workdir to resume.")
        raise
    bar.close()
    save()
    if stop < num_steps:
        _close(checkpointer, writer)
        say(f"Stopped at step {stop} of {num_steps} (max_steps_per_run={max_steps_per_run}); rerun with "
            "the same workdir to continue.")
        return state
    if evaluate is not None:
        final = run_eval(num_steps)
        if workdir is not None and is_main:
            (workdir / "final_metrics.json").write_text(json.dumps({"step": num_steps, **final}, indent=2)
                                                        + "\n")
    for _, fn in hooks:
        fn(num_steps, state)
    _close(checkpointer, writer)
    return state


def _checked_step(step_fn, donate):
    """The train step traced in checked mode under checkify; raises the first failed check as a
    ValueError (after the step, whose result is discarded)."""
    from jax.experimental import checkify  # noqa: PLC0415

    from dgmjax._checks import checked_mode  # noqa: PLC0415

    checked = jax.jit(checkify.checkify(step_fn, errors=checkify.user_checks), donate_argnums=donate)

    def step(state, batch):
        with checked_mode():
            err, out = checked(state, batch)
        message = err.get()
        if message is not None:
            raise ValueError(f"checked mode: {message.split(' (`check` failed)')[0]}")
        return out

    return step


def _close(checkpointer, writer):
    if checkpointer is not None:
        checkpointer.close()
    if writer is not None:
        writer.close()


def _window_means(host: list[dict], done: int, checkpointer) -> dict:
    """Means of a logging window's metrics over its steps that were not skipped.

    Raises FloatingPointError when every step in the window was skipped (the
    run has diverged; its parameters are still the last finite ones).
    """
    kept = [m for m in host if not m["skipped"]]
    if not kept:
        losses = [float(m["loss"]) for m in host]
        where = f"; the last checkpoint in {checkpointer.directory} is intact" if checkpointer else ""
        raise FloatingPointError(
            f"every one of the {len(host)} training steps up to step {done} had a non-finite loss or "
            f"gradient (losses {losses[:4]}...); the parameters were left at their last finite values"
            f"{where}. "
            "Lower the learning rate (or, for a flow, tighten its scale bound).")
    means = {k: float(np.mean([m[k] for m in kept])) for k in kept[0] if k != "skipped"}
    means["skipped_steps"] = len(host) - len(kept)
    return means
