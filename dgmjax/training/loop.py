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
import dataclasses
import hashlib
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
from dgmjax.training.checkpoint import Checkpointer, check_same_run
from dgmjax.training.metrics import MetricWriter
from dgmjax.training.sharding import batch_sharded, make_mesh, replicated
from dgmjax.training.state import TrainState
from dgmjax.training.steps import make_eval_step, make_train_step
from dgmjax.training.workdir import WorkdirLock, WorkdirRemovedError, WorkdirWatch, check_workdir

__all__ = ["Terminated", "make_evaluator", "train"]

Hook = tuple[int, Callable[[int, TrainState], Any]]


class Terminated(KeyboardInterrupt):
    """What `train` raises after a stop signal, once its checkpoint is written; `signum` is the signal.

    A script exits with `128 + signum` on it, the shell's status for a process
    ended by that signal: 143 for SIGTERM (preemption, `kill`, Slurm), 130 for
    SIGINT (Ctrl-C).
    """

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = int(signum)


class _StopSignals:
    """SIGTERM and SIGINT while `train` runs, turned into a stop at the next safe point.

    The handler only records the signal. The loop looks at it before each step
    and `make_evaluator` between evaluation batches, and raises `Terminated`
    there, so a signal never breaks a checkpoint, a metric record or the
    TensorBoard writer half-way, nor lands inside JAX's tracing. A stop takes at
    most one step, its logging and checkpoint, and one evaluation batch. A
    second Ctrl-C raises KeyboardInterrupt at once (no waiting for the step).
    Handlers are set only in the main thread (elsewhere signals keep their
    handlers).
    """

    active: list[_StopSignals] = []

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = int(signum)

    def check(self) -> None:
        if self.signum is not None:
            raise Terminated(self.signum)

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        _StopSignals.active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _StopSignals.active.remove(self)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _stop_point() -> None:
    """Raises `Terminated` when a stop signal has reached a running `train` (a safe point)."""
    for stops in _StopSignals.active:
        stops.check()


def make_evaluator(eval_fn: Callable, arrays: Mapping[str, np.ndarray], batch_size: int, key: jax.Array,
                   *, mesh=None) -> Callable[[TrainState], dict[str, float]]:
    """`state -> metrics`: the mean of each per-example metric over every example of `arrays`.

    `eval_fn(key, params, batch) -> {name: (B,) values}` is evaluated at the
    state's EMA parameters when it keeps them (`eval_params`), on fixed-shape
    batches (the last one padded, the padding left out), batch i with key
    `fold_in(key, i)`. `arrays` must hold at least one example and no key
    named "mask" (the batches' padding mask); each value `eval_fn` returns
    must have shape (B,), one per example (a ValueError names `eval_fn`
    otherwise). Inside `train`, a stop signal ends an evaluation between two
    batches.
    """
    key = v.check_key(key)
    if isinstance(arrays, Mapping) and "mask" in arrays:
        raise ValueError(f"`arrays` must not have a key named 'mask' (the evaluator's batches mark their "
                         f"padding with it); got keys {sorted(arrays)}. Rename it.")
    next(eval_batches(arrays, batch_size))  # checks `arrays` (non-empty, one leading axis) and batch_size
    mesh = make_mesh() if mesh is None else mesh
    rep, data = replicated(mesh), batch_sharded(mesh)
    step = jax.jit(make_eval_step(eval_fn), in_shardings=(rep, rep, data), out_shardings=rep)

    def evaluate(state: TrainState) -> dict[str, float]:
        totals, count = {}, 0.0
        for i, batch in enumerate(eval_batches(arrays, batch_size, sharding=data)):
            _stop_point()
            sums, n = jax.device_get(step(jax.random.fold_in(key, i), state.eval_params(), batch))
            for k, val in sums.items():
                totals[k] = totals.get(k, 0.0) + np.float64(val)
            count += float(n)
        return {k: float(val / count) for k, val in totals.items()}

    return evaluate


def _check_every(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an int >= 0 (0 disables); got {value!r}.")
    return int(value)


def _key_fingerprint(key: jax.Array) -> str:
    """A short SHA-256 of a PRNG key's bits: what `train` records of its key in each checkpoint."""
    key = v.check_key(key)
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return hashlib.sha256(np.asarray(jax.device_get(key)).tobytes()).hexdigest()[:16]


def train(loss_fn: Callable, state: TrainState, batches: Callable[[int], Any], *, num_steps: int,
          key: jax.Array, workdir: str | Path | None = None, log_every: int = 100,
          checkpoint_every: int = 0, max_checkpoints: int = 2,
          evaluate: Callable[[TrainState], Mapping[str, float]] | None = None, eval_every: int = 0,
          hooks: Sequence[Hook] = (), learning_rate: Callable | None = None, mesh=None,
          max_steps_per_run: int = 0, run_info: Mapping[str, Any] | None = None,
          resume_other_run: bool = False, checked: bool = False, verbose: bool = True) -> TrainState:
    """Trains `state` for `num_steps` steps of `loss_fn` on `batches`; returns the final state.

    Args:
      loss_fn: `(key, params, batch) -> (loss, metrics)`, scalars averaged over the batch.
      state: the initial `TrainState` (its `step` says where training stands);
        its parameters must be finite.
      batches: `step -> batch`, a pytree of arrays with a leading batch axis.
      num_steps: the step to train to.
      key: the base key; step t uses `fold_in(key, t)`.
      workdir: where checkpoints (`checkpoints/`), `metrics.jsonl`,
        TensorBoard events (with tensorboardX installed) and `final_metrics.json` go; a rerun with the same
        workdir resumes from its newest intact checkpoint. None keeps nothing.
        Before any compute it is checked (a directory, writable, with room
        for two checkpoints: a ValueError otherwise) and locked for this
        process (`WorkdirInUseError` when another run holds it; the lock
        lives beside the workdir, see `WorkdirLock`). A workdir deleted
        while the run trains stops it with `WorkdirRemovedError`.
      log_every: steps per logged window of training metrics (their means).
      checkpoint_every: steps between checkpoints (0: only at the end, and at
        an interruption); needs a workdir.
      max_checkpoints: checkpoints kept (the newest, and older ones to fall
        back on when the newest is damaged).
      evaluate: `state -> metrics` (see `make_evaluator`), run every
        `eval_every` steps (0: only at the end) and at the end, logged as
        the "test" split; the last result goes to `final_metrics.json` with
        the step of the state it describes.
      hooks: `(every, fn)` pairs; `fn(step, state)` runs every `every` steps
        and at the end (sample grids, plots).
      learning_rate: the optimizer's schedule, to log the rate.
      mesh: a 1-D `Mesh` over the batch axis (default: all devices); the
        state is replicated and batches are sharded over it.
      max_steps_per_run: if > 0, stops after that many steps, checkpointed, for
        time-limited jobs; a rerun continues. Needs a workdir.
      run_info: JSON-able facts that identify the run (a config, a data
        fingerprint). They are saved with every checkpoint, with a
        fingerprint of `key`; resuming from checkpoints whose facts differ
        raises `RunMismatchError` (see `check_same_run`) naming what differs,
        before anything is written.
      resume_other_run: resume from the workdir's checkpoints even when they
        were written by another run (another key or `run_info`); new
        checkpoints then carry this run's facts.
      checked: trace the step in `checked_mode` and run it under
        `jax.experimental.checkify`, so the value checks the library skips
        under jit (integer levels in range, data in its documented range, ...)
        raise a ValueError at the step that breaks them. Each step then waits
        for its check, which costs speed; use it to find a bad input.
      verbose: a progress bar and a line per evaluation (process 0 only).

    A workdir whose newest checkpoint is at or past `num_steps` trains no
    further: that state is evaluated and returned, and the run says so. A
    step whose loss or gradient is not finite is skipped (see
    `TrainState.create`); a logging window in which every step was skipped
    raises `FloatingPointError` naming the likely cause (non-finite data,
    non-finite parameters or optimizer state, else the step size), the last
    checkpoint intact. SIGTERM and SIGINT (Ctrl-C) stop the run at the next
    step boundary: the checkpoint is written, the writers closed and the lock
    released, then `Terminated` (a KeyboardInterrupt) is raised. A checkpoint
    that cannot be saved raises `CheckpointError` at once; a damaged one is
    reported, moved aside and the run resumes from the newest intact one; an
    intact one that does not fit `state` raises `StateMismatchError` (see
    `Checkpointer`).
    """
    num_steps = v.check_positive_int(num_steps, "num_steps")
    key = v.check_key(key)
    log_every = v.check_positive_int(log_every, "log_every")
    checkpoint_every = _check_every(checkpoint_every, "checkpoint_every")
    max_checkpoints = v.check_positive_int(max_checkpoints, "max_checkpoints")
    eval_every = _check_every(eval_every, "eval_every")
    max_steps_per_run = _check_every(max_steps_per_run, "max_steps_per_run")
    hooks = [(v.check_positive_int(every, "hook interval"), fn) for every, fn in hooks]
    if workdir is None:
        for name, value in (("checkpoint_every", checkpoint_every), ("max_steps_per_run", max_steps_per_run)):
            if value:
                raise ValueError(f"`{name}` {value} needs a `workdir` to write checkpoints to; got "
                                 "workdir=None. Pass a workdir, or leave it 0.")
    identity = {"key": _key_fingerprint(key), **json.loads(json.dumps(dict(run_info or {})))}
    is_main = jax.process_index() == 0
    say = print if (verbose and is_main) else (lambda *a, **k: None)

    mesh = make_mesh() if mesh is None else mesh
    lock = None
    if workdir is not None:
        checkpoint_bytes = sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize
                               for x in jax.tree_util.tree_leaves((state.params, state.opt_state,
                                                                   state.ema_params)))
        workdir = check_workdir(workdir, checkpoint_bytes=checkpoint_bytes)
        if is_main:
            lock = WorkdirLock(workdir).acquire()
    try:
        with _StopSignals() as stops:
            return _Run(loss_fn, batches, num_steps=num_steps, key=key, workdir=workdir, log_every=log_every,
                        checkpoint_every=checkpoint_every, max_checkpoints=max_checkpoints, evaluate=evaluate,
                        eval_every=eval_every, hooks=hooks, learning_rate=learning_rate, mesh=mesh,
                        max_steps_per_run=max_steps_per_run, identity=identity,
                        resume_other_run=bool(resume_other_run), checked=checked, is_main=is_main, say=say,
                        verbose=verbose, stops=stops).run(state)
    finally:
        if lock is not None:
            lock.release()


@dataclasses.dataclass
class _Run:
    """One call of `train`: its settings, the workdir's checkpointer, writer and watch, and the loop."""

    loss_fn: Callable
    batches: Callable[[int], Any]
    num_steps: int
    key: jax.Array
    workdir: Path | None
    log_every: int
    checkpoint_every: int
    max_checkpoints: int
    evaluate: Callable | None
    eval_every: int
    hooks: list[Hook]
    learning_rate: Callable | None
    mesh: Any
    max_steps_per_run: int
    identity: dict
    resume_other_run: bool
    checked: bool
    is_main: bool
    say: Callable
    verbose: bool
    stops: _StopSignals
    state: TrainState | None = None
    checkpointer: Checkpointer | None = None
    writer: MetricWriter | None = None
    watch: WorkdirWatch | None = None
    pending: list = dataclasses.field(default_factory=list)  # metrics of the steps not logged yet
    batch_size: int | None = None  # of the first batch, for the logged rate
    last_logged: tuple[float, int] = (0.0, 0)  # (time, step) of the last logged window

    # -- the workdir ---------------------------------------------------------------------------
    def _restore(self, state: TrainState) -> TrainState:
        state = jax.device_put(state, replicated(self.mesh))
        if self.workdir is None:
            return state
        self.watch = WorkdirWatch(self.workdir)
        self.checkpointer = Checkpointer(self.workdir / "checkpoints", max_to_keep=self.max_checkpoints)
        if not self.resume_other_run:
            check_same_run(self.checkpointer.run_info(), self.identity, where=str(self.workdir))
        with warnings.catch_warnings():  # said below, in the run's own words
            warnings.simplefilter("ignore")
            state = self.checkpointer.restore(state)
        for step, where, why in self.checkpointer.rejected:
            self.say(f"The checkpoint of step {step} cannot be used ({why}); moved it to {where}.")
        return state

    def save(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.save(self.state, run_info=self.identity)

    def log(self, step: int, split: str, metrics) -> None:
        if self.writer is not None:
            self.writer.write(step, split, metrics)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        if self.writer is not None:
            self.writer.close()

    # -- logging and evaluation ------------------------------------------------------------------
    def run_eval(self, step: int) -> dict:
        metrics = dict(self.evaluate(self.state))
        self.log(step, "test", metrics)
        self.say(f"\nstep {step}: " + ", ".join(f"{k} {val:.4f}" for k, val in metrics.items()))
        return metrics

    def log_window(self, done: int) -> dict:
        """Logs the means of the pending steps' metrics at step `done`. `pending` is emptied only once
        its record is written: an interruption before that leaves the window to `_interrupted`."""
        host, now = jax.device_get(self.pending), time.time()
        t_last, step_last = self.last_logged
        rate = (done - step_last) * self.batch_size / max(now - t_last, 1e-9)
        kept = [m for m in host if not m["skipped"]]
        if not kept:
            raise FloatingPointError(self._nonfinite_message(host, done))
        means = {k: float(np.mean([m[k] for m in kept])) for k in kept[0] if k != "skipped"}
        means["skipped_steps"] = len(host) - len(kept)
        if means["skipped_steps"]:
            self.say(f"\nstep {done}: skipped {means['skipped_steps']} of the last {len(host)} steps "
                     "(non-finite loss or gradient).")
        means["examples_per_sec"] = rate
        if self.learning_rate is not None:
            means["learning_rate"] = float(self.learning_rate(done))
        self.log(done, "train", means)
        self.pending, self.last_logged = [], (now, done)
        return means

    def _nonfinite_message(self, host: list[dict], done: int) -> str:
        """Why every step of the window ending at `done` was skipped: the first of non-finite data,
        non-finite parameters, a non-finite optimizer state; else the step size."""
        first = done - len(host)
        losses = [float(m["loss"]) for m in host]
        head = (f"every one of the {len(host)} training steps up to step {done} had a non-finite loss or "
                f"gradient (losses {losses[:4]}...); the parameters were left at their last finite values"
                + (f" and the last checkpoint in {self.checkpointer.directory} is intact"
                   if self.checkpointer else "") + ". ")
        for step in range(first, done):
            if not _tree_finite(self.batches(step)):
                return head + (f"The batch of step {step} holds NaN or infinite values: `batches` returned "
                               "non-finite data. Check the data and its preprocessing, not the step size.")
        if not _tree_finite(self.state.params):
            return head + ("The parameters are not finite: a non-finite initialization, or an update the "
                           "optimizer made from a finite gradient (check its settings, e.g. b2 < 1).")
        if not _tree_finite(self.state.opt_state):
            return head + ("The optimizer's state is not finite: check the optimizer's settings (decay rates "
                           "in [0, 1), a finite learning rate).")
        return head + ("The data and parameters are finite, so the loss overflowed at this step size: lower "
                       "the learning rate (or, for a flow, tighten its scale bound).")

    # -- the loop --------------------------------------------------------------------------------
    def run(self, state: TrainState) -> TrainState:
        try:
            return self._run(state)
        except (KeyboardInterrupt, WorkdirRemovedError):
            raise
        except Exception as err:
            if self.watch is not None and self.watch.removed():
                self._abandon()
                raise WorkdirRemovedError(
                    f"`workdir` {str(self.workdir)!r} was deleted or replaced while this run was training; "
                    f"the run stopped ({type(err).__name__}: {err}) without saving, since its checkpoints "
                    "went with the directory. Rerun to start again.") from err
            raise

    def _abandon(self) -> None:
        """Closes what can be closed after the workdir went away (writes there fail)."""
        for closer in (self.checkpointer, self.writer):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        self.checkpointer = self.writer = None

    def _run(self, state: TrainState) -> TrainState:
        state = self._restore(state)
        if not _tree_finite(state.params):
            raise ValueError("`state` holds non-finite parameters (NaN or inf) before training; expected a "
                             "finite initialization. Check the model's initializers and the init batch.")
        self.state = state
        start = int(jax.device_get(state.step))
        if start and self.checkpointer is not None:
            self.say(f"Resumed from the checkpoint at step {start} in {self.checkpointer.directory}.")
        if start >= self.num_steps and start:
            self.say(f"The workdir's state is at step {start}, "
                     + (f"past `num_steps` ({self.num_steps})" if start > self.num_steps else "its last step")
                     + f": nothing to train; the step-{start} state is evaluated and returned.")
        stop = self.num_steps
        if self.max_steps_per_run:
            stop = min(stop, start + self.max_steps_per_run)
        if self.workdir is not None:
            self.writer = MetricWriter(self.workdir, resume_step=start)
        donate = (0,) if jax.default_backend() != "cpu" else ()  # see experiments/RESULTS.md (donation)
        step_fn = make_train_step(self.loss_fn, self.key)
        if self.checked:
            train_step = _checked_step(step_fn, donate)
        else:
            rep, data = replicated(self.mesh), batch_sharded(self.mesh)
            train_step = jax.jit(step_fn, in_shardings=(rep, data), out_shardings=(rep, rep),
                                 donate_argnums=donate)
        self.last_logged = (time.time(), start)
        bar = tqdm(total=self.num_steps, initial=min(start, self.num_steps), dynamic_ncols=True, desc="train",
                   disable=not (self.verbose and self.is_main) or start >= stop)
        try:
            # An interruption right after an evaluation step's checkpoint (before its evaluation was logged)
            # would otherwise lose that evaluation: run it now.
            if (self.evaluate is not None and self.eval_every and 0 < start < self.num_steps
                    and start % self.eval_every == 0 and self.writer is not None
                    and not self.writer.has(start, "test")):
                self.run_eval(start)
            for step in range(start, stop):
                self.stops.check()
                if self.watch is not None:
                    self.watch.check(step)
                batch = self.batches(step)
                if self.batch_size is None:
                    self.batch_size = _check_batch(batch, step)
                self.state, metrics = train_step(self.state, batch)
                self.pending.append(metrics)
                done = step + 1
                bar.update(1)
                if done % self.log_every == 0 or done == stop:
                    means = self.log_window(done)
                    bar.set_postfix(loss=f"{means['loss']:.4f}", ex_per_s=f"{means['examples_per_sec']:.0f}")
                if self.checkpoint_every and done % self.checkpoint_every == 0:
                    self.save()
                if self.evaluate is not None and self.eval_every and done % self.eval_every == 0 \
                        and done != self.num_steps:
                    self.run_eval(done)
                for every, fn in self.hooks:
                    if done % every == 0 and done != self.num_steps:
                        fn(done, self.state)
            self.stops.check()
            bar.close()
            self.save()
            if stop < self.num_steps:
                self.close()
                self.say(f"Stopped at step {stop} of {self.num_steps} (max_steps_per_run="
                         f"{self.max_steps_per_run}); rerun with the same workdir to continue.")
                return self.state
            self._finish()
        except KeyboardInterrupt:
            bar.close()
            self._interrupted()
            raise
        self.close()
        return self.state

    def _finish(self) -> None:
        """The final evaluation, `final_metrics.json` (with the state's own step) and the hooks."""
        end = int(jax.device_get(self.state.step))
        if self.evaluate is not None:
            final = self.run_eval(end)
            if self.workdir is not None and self.is_main:
                (self.workdir / "final_metrics.json").write_text(json.dumps({"step": end, **final}, indent=2)
                                                                 + "\n")
        for _, fn in self.hooks:
            fn(end, self.state)

    def _interrupted(self) -> None:
        """After a stop signal or KeyboardInterrupt: the window of a logging step, the checkpoint, the
        writers closed."""
        # The checkpoint below is at the state's step. Were that a logging step whose window was not
        # written yet, no rerun would write it (a rerun resumes after it): write it now.
        at = int(jax.device_get(self.state.step))
        if self.pending and at % self.log_every == 0 and self.writer is not None \
                and not self.writer.has(at, "train"):
            with contextlib.suppress(FloatingPointError):
                self.log_window(at)
        self.save()
        self.close()
        if self.checkpointer is not None:
            self.say(f"\nInterrupted: saved a checkpoint at step {at}; rerun with the same workdir to "
                     "resume.")


def _tree_finite(tree) -> bool:
    """Whether every floating-point leaf of `tree` is finite (read on the host)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        a = np.asarray(jax.device_get(leaf))
        if v.is_float_dtype(a.dtype) and not np.all(np.isfinite(a.astype(np.float32))):
            return False
    return True


def _check_batch(batch, step: int) -> int:
    """The batch size of the first batch; a ValueError naming `batches` for an empty one."""
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves or any(np.ndim(x) == 0 for x in leaves):
        raise ValueError(f"`batches({step})` must return a pytree of arrays with a leading batch axis; got "
                         f"{jax.tree_util.tree_map(np.shape, batch)}.")
    sizes = {int(np.shape(x)[0]) for x in leaves}
    if 0 in sizes:
        raise ValueError(f"`batches({step})` returned an empty batch (shapes "
                         f"{jax.tree_util.tree_map(np.shape, batch)}); expected at least one example.")
    return max(sizes)


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
