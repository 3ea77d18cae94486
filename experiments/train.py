"""`train_and_evaluate(config, workdir)`: a config's task trained with dgmjax's loop.

Writes to the workdir: `config.json`, `checkpoints/` (orbax), `metrics.jsonl`,
`tensorboard/`, `samples_*.png` and `final_metrics.json`. Rerunning with the
same workdir resumes from the newest intact checkpoint; one run at a time
holds a workdir (a second gets `WorkdirInUseError`).

Each checkpoint records the run's identity (`run_info`): the config without
the settings a resumed run may change (`RESUMABLE`: logging, evaluation,
checkpointing, device count, where the data files are), and a SHA-256 of the
training data. A rerun whose identity differs (another seed, model, optimizer,
schedule length or data) is refused with the keys that differ, before
anything is written, unless `resume_other_run` (the main job's
`--resume_other_run`) says to continue from those checkpoints anyway; the
earlier `config.json` is then kept as `config_until_step_<N>.json`.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import jax
import numpy as np
from tasks import build_task

from dgmjax.training import (
    TrainState,
    WorkdirLock,
    batch_sharded,
    check_workdir,
    make_evaluator,
    make_mesh,
    make_optimizer,
    make_schedule,
    maybe_initialize_distributed,
    read_run_info,
    replicated,
    train,
)
from dgmjax.training.checkpoint import RunMismatchError, check_same_run

# Config keys a resumed run may change: they decide how a run logs, evaluates, checkpoints, samples and
# spreads over devices, and where its data files are, not what it trains. Every other key is part of the
# run's identity.
RESUMABLE = ("distributed", "deterministic", "data.manual_dir", "data.data_dir", "data.test_split",
             "data.num_test", "objective.eval_importance_samples", "objective.eval_iwae_samples",
             "train.eval_batch_size", "train.log_every", "train.eval_every", "train.checkpoint_every",
             "train.max_checkpoints", "train.sample_every", "train.num_samples", "train.num_devices",
             "train.max_steps_per_run", "train.checked")


def optimizer_settings(config) -> dict:
    """The optimizer section as `make_optimizer`'s keyword arguments."""
    opt = config.optimizer.to_dict() if hasattr(config.optimizer, "to_dict") else dict(config.optimizer)
    return {**opt, "grad_clip_norm": opt["grad_clip_norm"] or None, "num_steps": int(config.train.num_steps)}


def run_keys(config) -> tuple[jax.Array, ...]:
    """The run's keys from `config.seed`: (init, step, data, eval, sample)."""
    return tuple(jax.random.split(jax.random.PRNGKey(int(config.seed)), 5))


def run_info(config, task) -> dict:
    """The run's identity: the config without the `RESUMABLE` keys, and the training data's SHA-256."""
    def identity(section: dict, prefix: str) -> dict:
        out = {}
        for k, val in section.items():
            if f"{prefix}{k}" in RESUMABLE:
                continue
            out[k] = identity(val, f"{prefix}{k}.") if isinstance(val, dict) else val
        return out

    return {"config": identity(config.to_dict(), ""), "data_sha256": task.data_fingerprint}


def naming_config_keys(err: ValueError, config) -> ValueError:
    """`err` with the config key behind each backticked argument it names (`num_scales` ->
    `config.model.num_scales`), so that a library error says which `--config` key to change."""
    message = str(err)
    sections = {name: section for name, section in config.items() if hasattr(section, "keys")}
    keys = []
    for name in dict.fromkeys(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", message)):
        owners = [f"config.{section}.{name}" for section, values in sections.items() if name in values]
        if name in config and not hasattr(config[name], "keys"):
            owners.append(f"config.{name}")
        if len(owners) == 1 and owners[0] not in message:
            keys.append(f"`{name}` is `{owners[0]}`")
    if not keys:
        return err
    message = f"{message} ({'; '.join(keys)}.)"
    try:
        return type(err)(message)
    except TypeError:  # an error type whose constructor takes more than the message
        return ValueError(message)


def check_train_config(train, num_devices: int) -> None:
    """ValueError, before any data is loaded or anything compiled, for a `train` section whose
    mistake would otherwise show only during or after training."""
    def value(key):
        val = train[key]
        if isinstance(val, bool) or not isinstance(val, int):
            raise ValueError(f"`config.train.{key}` must be an int; got {val!r}.")
        return val

    for key in ("num_steps", "batch_size", "eval_batch_size", "log_every", "num_samples", "max_checkpoints"):
        if value(key) < 1:
            raise ValueError(f"`config.train.{key}` must be >= 1; got {train[key]!r}.")
    optional = tuple(k for k in ("init_batch_size",) if k in train)  # configs written before it lack it
    for key in ("eval_every", "checkpoint_every", "sample_every", "max_steps_per_run",
                "num_devices") + optional:
        if value(key) < 0:
            raise ValueError(f"`config.train.{key}` must be >= 0 (0 disables or means the default); got "
                             f"{train[key]!r}.")
    for key in ("batch_size", "eval_batch_size") + optional:
        if train[key] % num_devices:
            raise ValueError(f"`config.train.{key}` {train[key]} must be divisible by the number of devices "
                             f"({num_devices}); set it to a multiple, or `config.train.num_devices`.")


def init_batch(task, train_config, batches, data_key, sharding):
    """The batch the parameters are initialized on (ActNorm's data-dependent init): the first training
    batch, or with `train.init_batch_size` > 0 the first batch of that size from the same stream."""
    size = int(train_config.get("init_batch_size", 0)) or int(train_config.batch_size)
    if size == int(train_config.batch_size):
        return batches(0)
    return task.make_batches(size, data_key, sharding)(0)


def train_and_evaluate(config, workdir: str | Path, *, verbose: bool = True,
                       resume_other_run: bool = False) -> TrainState:
    """Builds the config's task, trains it, evaluates it; returns the final state.

    A workdir holding another run's checkpoints (see `run_info`) is refused
    with a `RunMismatchError` naming the keys that differ, unless
    `resume_other_run`.
    """
    maybe_initialize_distributed(bool(config.distributed))
    t = config.train
    mesh = make_mesh(int(t.num_devices) or None)
    check_train_config(t, int(mesh.devices.size))
    workdir = check_workdir(workdir)  # room for checkpoints: checked by `train` once the model is built
    with WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext():
        try:
            return _train_and_evaluate(config, workdir, mesh, verbose=verbose,
                                       resume_other_run=resume_other_run)
        except ValueError as err:
            raise naming_config_keys(err, config) from err


def _write_config(config, workdir: Path, step: int, *, keep_previous: bool) -> None:
    """config.json of this run; with `keep_previous`, the one there is kept as
    config_until_step_<step>.json."""
    path = workdir / "config.json"
    if keep_previous and path.exists():
        path.replace(workdir / f"config_until_step_{step}.json")
    path.write_text(config.to_json(indent=2) + "\n")


def _train_and_evaluate(config, workdir: Path, mesh, *, verbose: bool, resume_other_run: bool) -> TrainState:
    t = config.train
    task = build_task(config)
    info = run_info(config, task)
    saved = read_run_info(workdir)
    try:
        check_same_run(saved, info, where=str(workdir))
        other_run = False
    except RunMismatchError:
        if not resume_other_run:
            raise
        other_run = True
    init_key, step_key, data_key, eval_key, sample_key = run_keys(config)
    settings = optimizer_settings(config)
    tx = make_optimizer(**settings)  # its settings checked before anything compiles
    batches = task.make_batches(int(t.batch_size), data_key, batch_sharded(mesh))
    params = jax.jit(task.init, out_shardings=replicated(mesh))(
        init_key, init_batch(task, t, batches, data_key, batch_sharded(mesh)))
    state = TrainState.create(params=params, tx=tx, ema_decay=float(t.ema_decay))
    hooks = []
    if jax.process_index() == 0 and not other_run:
        _write_config(config, workdir, 0, keep_previous=False)
    elif jax.process_index() == 0:  # once the other run's checkpoint is restored and trained from
        until = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
        written = []
        hooks.append((1, lambda step, s: written or written.append(_write_config(
            config, workdir, until, keep_previous=True))))
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
    say = print if verbose and jax.process_index() == 0 else (lambda *a, **k: None)
    say(f"{task.name}: {num_params:,} parameters, {mesh.devices.size} device(s) "
        f"({jax.devices()[0].platform}), batch {int(t.batch_size)}.")

    if task.save_samples is not None and int(t.sample_every) and jax.process_index() == 0:
        hooks.append((int(t.sample_every), lambda step, s: task.save_samples(
            s.eval_params(), jax.random.fold_in(sample_key, step), workdir / f"samples_{step:07d}")))
    evaluate = make_evaluator(task.eval_fn, task.test_arrays, int(t.eval_batch_size), eval_key, mesh=mesh)
    lr = make_schedule(settings["learning_rate"], num_steps=settings["num_steps"],
                       warmup_steps=settings["warmup_steps"], schedule=settings["schedule"],
                       end_learning_rate_factor=settings["end_learning_rate_factor"])
    num_steps = int(t.num_steps)
    state = train(task.loss_fn, state, batches, num_steps=num_steps, key=step_key, workdir=workdir,
                  log_every=int(t.log_every), checkpoint_every=int(t.checkpoint_every),
                  max_checkpoints=int(t.max_checkpoints), evaluate=evaluate, eval_every=int(t.eval_every),
                  hooks=hooks, learning_rate=lr, mesh=mesh, max_steps_per_run=int(t.max_steps_per_run),
                  run_info=info, resume_other_run=resume_other_run, checked=bool(t.get("checked", False)),
                  verbose=verbose)
    step = int(jax.device_get(state.step))
    if step >= num_steps:
        final = json.loads((workdir / "final_metrics.json").read_text())
        say(f"{task.name} after {final['step']} steps: {task.headline(final)}")
        say(f"Outputs in {workdir}: final_metrics.json, metrics.jsonl, samples, checkpoints/ "
            f"(python experiments/evaluate.py --workdir={workdir} samples and evaluates them again).")
    else:
        say(f"Checkpoint and metrics so far in {workdir}.")
    return state
