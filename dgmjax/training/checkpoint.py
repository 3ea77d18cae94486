"""Orbax checkpoints of the train state that can be trusted.

Each checkpoint holds the state (`state/`), a SHA-256 of every array's bytes
taken at save time (`checksums/`) and the identity of the run that wrote it
(`run/`, see `train`'s `run_info`). A save is synchronous, so a failure (a
full disk, a lost mount) is a `CheckpointError` at that save, not one interval
later.

Restoring takes the newest checkpoint that loads, passes its checksums and
holds only finite numbers. "Damaged" means exactly that: bytes that do not
load or do not match their checksums, or numbers that are not finite. Each
damaged one is reported by name (a warning, and `Checkpointer.rejected`) and
moved aside to `<directory>_rejected/` (by `restore`, which training uses;
`restore_raw` and `load_params` only read), so the run goes on from the newest
intact one and a later save of the same step does not collide with it. A run
never continues from corrupt parameters: when checkpoints exist but none is
intact, restoring raises `CheckpointError`.

A checkpoint that is intact but does not fit the state it is restored into
(another model width, another optimizer) is not damaged: `restore` raises
`StateMismatchError`, naming the first leaf that differs and both shapes, and
moves nothing. Checkpoints load on any number of devices: `restore` places
the arrays as the given state's are placed, and `restore_raw` / `load_params`
on this process's first device, whatever the topology that wrote them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

from dgmjax import _checks as v
from dgmjax.training.state import TrainState

__all__ = ["CheckpointError", "Checkpointer", "RunMismatchError", "StateMismatchError", "check_same_run",
           "load_params", "read_run_info"]


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved, or no intact checkpoint could be restored."""


class StateMismatchError(ValueError):
    """An intact checkpoint does not fit the state it is restored into (another model or optimizer)."""


class RunMismatchError(ValueError):
    """A workdir's checkpoints were written by another run (another key, config or data)."""


def _payload(state: TrainState) -> dict:
    out = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
    if state.ema_params is not None:
        out["ema_params"] = state.ema_params
    return out


def _host(x) -> np.ndarray:
    """The bytes this process holds of `x` (a replicated array's whole value)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_data(0)
    return np.ascontiguousarray(np.asarray(jax.device_get(x)))


def _digest(x) -> str:
    a = _host(x)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def checksums(tree) -> list[str]:
    """The sorted SHA-256 digests (dtype, shape and bytes) of a pytree's arrays.

    Sorted, so a tree restored without a template (optimizer states as dicts)
    compares equal to the saved one.
    """
    return sorted(_digest(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def _all_finite(tree) -> bool:
    for leaf in jax.tree_util.tree_leaves(tree):
        a = _host(leaf)
        if v.is_float_dtype(a.dtype) and not np.all(np.isfinite(a.astype(np.float32))):
            return False
    return True


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _leaf_name(path) -> str:
    """A pytree path as orbax names the stored array ("opt_state.0.mu.w")."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts)


def _is_meta(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _quiet_closed_event_loop(unraisable) -> None:
    """Drops what orbax's storage threads report after a failed read or write has closed its event
    loop ("Event loop is closed", hundreds of times) and its reads left pending at exit; anything
    else goes to the previous hook."""
    exc, obj = unraisable.exc_value, unraisable.object
    code = getattr(obj, "cr_code", None)
    if (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed") or (
            code is not None and "orbax" in code.co_filename):
        return
    _quiet_closed_event_loop.previous(unraisable)


def _install_quiet_hook() -> None:
    """Keeps orbax's leftovers of a failed read off the console (the failure itself is raised)."""
    if sys.unraisablehook is not _quiet_closed_event_loop:
        _quiet_closed_event_loop.previous = sys.unraisablehook
        sys.unraisablehook = _quiet_closed_event_loop
    warnings.filterwarnings("ignore", category=RuntimeWarning,
                            message="coroutine '_read_array_index_and_device_put' was never awaited")


def _flatten_info(info: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, val in info.items():
        name = f"{prefix}{k}"
        if isinstance(val, Mapping):
            out.update(_flatten_info(val, name + "."))
        else:
            out[name] = val
    return out


def check_same_run(saved: Mapping | None, current: Mapping, *, where: str) -> None:
    """Raises `RunMismatchError` when `saved` (a checkpoint's run info) differs from `current` in any
    key of `current` (nested keys compared one by one, "config.model.features"); listing what
    differs. `saved` None (checkpoints written without run info) passes."""
    if saved is None:
        return
    old, new = _flatten_info(saved), _flatten_info(json.loads(json.dumps(current)))
    differ = [k for k in new if old.get(k, "(absent)") != new[k]]
    if not differ:
        return
    shown = "; ".join(f"{k}: {old.get(k, '(absent)')!r} there, {new[k]!r} now" for k in differ[:8])
    more = f" (and {len(differ) - 8} more)" if len(differ) > 8 else ""
    raise RunMismatchError(
        f"the checkpoints in {where!r} were written by another run: {shown}{more}. Nothing was changed "
        "there. Use another workdir for a new run, or resume from them anyway with "
        "`resume_other_run=True` (the main job's --resume_other_run).")


class Checkpointer:
    """Saves and restores `TrainState`s in `directory` (one subdirectory per step).

    Args:
      directory: where the checkpoints go (created if missing).
      max_to_keep: how many of the newest checkpoints are kept (default 2:
        the newest and one to fall back on if the newest is damaged).
    """

    def __init__(self, directory: str | Path, *, max_to_keep: int = 2):
        if isinstance(max_to_keep, bool) or not isinstance(max_to_keep, (int, np.integer)) or max_to_keep < 1:
            raise ValueError(f"`max_to_keep` must be an int >= 1; got {max_to_keep!r}.")
        _install_quiet_hook()
        self.directory = Path(directory).absolute()
        self.rejected: list[tuple[int, Path, str]] = []  # (step, where it was moved, why)
        self._options = ocp.CheckpointManagerOptions(max_to_keep=int(max_to_keep), create=True,
                                                     enable_async_checkpointing=False)
        handlers = {"state": ocp.StandardCheckpointHandler(), "checksums": ocp.JsonCheckpointHandler(),
                    "run": ocp.JsonCheckpointHandler(),
                    "default": ocp.StandardCheckpointHandler()}  # written before checksums existed
        self._manager = ocp.CheckpointManager(self.directory, options=self._options, item_handlers=handlers)

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state: TrainState, *, run_info: Mapping | None = None, force: bool = True) -> None:
        """Writes the state's checkpoint (once per step) with `run_info` (JSON-able; see
        `check_same_run`); `CheckpointError` if it cannot."""
        step = int(jax.device_get(state.step))
        if self._manager.latest_step() == step:
            return
        payload = _payload(state)
        items = dict(state=ocp.args.StandardSave(payload),
                     checksums=ocp.args.JsonSave({"sha256": checksums(payload)}))
        if run_info is not None:
            items["run"] = ocp.args.JsonSave(dict(run_info))
        try:
            self._manager.save(step, args=ocp.args.Composite(**items), force=force)
            self._manager.wait_until_finished()
        except Exception as e:
            raise CheckpointError(
                f"saving the checkpoint of step {step} in {str(self.directory)!r} failed: {_first_line(e)}. "
                "Is the disk full or the directory no longer writable? The previous checkpoints are "
                "untouched; free space and rerun to resume from them.") from e

    def _item_names(self, step: int) -> set[str]:
        path = self.directory / str(step)
        return {p.name for p in path.iterdir()} if path.is_dir() else set()

    def _state_item(self, step: int) -> str:
        names = self._item_names(step)
        if "state" in names:
            return "state"
        if "default" in names:
            return "default"
        raise ValueError("its state is missing")

    def _metadata(self, step: int, item: str):
        """The stored arrays' metadata (shape, dtype, name) as the saved tree."""
        return self._manager.item_metadata(step)[item].tree

    def _local_target(self, step: int, item: str):
        """Abstract arrays of `step`'s state placed on this process's first device (any topology)."""
        device = SingleDeviceSharding(jax.local_devices()[0])
        place = lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=device)
        return jax.tree_util.tree_map(place, self._metadata(step, item), is_leaf=_is_meta)

    def _load(self, step: int, target) -> dict:
        """The payload of `step`, checked: it loads, its checksums match, its numbers are finite."""
        item = self._state_item(step)
        if target is None:
            target = self._local_target(step, item)
        args = {item: ocp.args.StandardRestore(target)}
        if item == "state":
            args["checksums"] = ocp.args.JsonRestore()
        restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        state = restored[item]
        if item == "state":
            expected = (restored["checksums"] or {}).get("sha256")
            if expected is None:
                raise ValueError("its checksums are missing")
            if checksums(state) != sorted(expected):
                raise ValueError("its arrays do not match the checksums written when it was saved")
        if not _all_finite(state):
            raise ValueError("it holds non-finite numbers")
        return state

    def mismatch(self, step: int, target) -> str | None:
        """How `step`'s stored arrays differ from `target`'s (names, shapes, dtypes), or None when
        they agree or the metadata cannot be read."""
        try:
            stored = {m.name: m for m in jax.tree_util.tree_leaves(
                self._metadata(step, self._state_item(step)), is_leaf=_is_meta)}
        except Exception:  # noqa: BLE001 (unreadable metadata: the bytes are what is wrong)
            return None
        leaves = jax.tree_util.tree_flatten_with_path(target)[0]
        order = {"params": 0, "ema_params": 1, "opt_state": 2}  # the model's own arrays are named first
        leaves.sort(key=lambda path_leaf: order.get(_leaf_name(path_leaf[0][:1]), 3))
        wanted = {_leaf_name(path): leaf for path, leaf in leaves}
        for name, leaf in wanted.items():
            if name not in stored:
                return f"`{name}` (shape {tuple(np.shape(leaf))}) is in the state but not in the checkpoint"
            there, here = tuple(stored[name].shape), tuple(np.shape(leaf))
            if there != here:
                return f"`{name}` has shape {there} in the checkpoint and {here} in the state"
            if np.dtype(stored[name].dtype) != np.dtype(leaf.dtype):
                return (f"`{name}` has dtype {np.dtype(stored[name].dtype)} in the checkpoint and "
                        f"{np.dtype(leaf.dtype)} in the state")
        for name, m in stored.items():
            if name not in wanted:
                return f"`{name}` (shape {tuple(m.shape)}) is in the checkpoint but not in the state"
        return None

    def run_info(self) -> dict | None:
        """The run info saved with the newest checkpoint that has a readable one (None: none has)."""
        for step in sorted(self._manager.all_steps(), reverse=True):
            if "run" not in self._item_names(step):
                continue
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))
                return dict(restored["run"])
            except Exception:  # noqa: BLE001 (a damaged one: try the one before)
                continue
        return None

    def _reject(self, step: int, reason: str, move: bool) -> None:
        if not move:  # reading only (load_params): report and skip, leave the directory as it is
            self.rejected.append((step, self.directory / str(step), reason))
            warnings.warn(f"the checkpoint of step {step} in {str(self.directory)!r} cannot be used: "
                          f"{reason}. Using an earlier one.", stacklevel=3)
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.directory.parent / f"{self.directory.name}_rejected" / f"{step}-{stamp}"
        moved = None
        if jax.process_index() == 0:
            try:
                aside.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(self.directory / str(step)), str(aside))
                moved = aside
            except OSError:
                pass
        self._manager.reload()
        self.rejected.append((step, moved or self.directory / str(step), reason))
        where = f"; moved to {str(moved)!r}" if moved else ""
        warnings.warn(f"the checkpoint of step {step} in {str(self.directory)!r} cannot be used: {reason}"
                      f"{where}. Falling back to an earlier one.", stacklevel=3)

    def _mismatch_error(self, step: int, how: str) -> StateMismatchError:
        return StateMismatchError(
            f"the checkpoint of step {step} in {str(self.directory)!r} does not fit the state it is "
            f"restored into: {how}. The model or optimizer differs from the one that wrote it (a config "
            "changed on resume?); the checkpoint is intact and nothing was moved. Restore with the "
            "settings it was written with, or start the new run in another workdir.")

    def _restore_newest_intact(self, target, step: int | None, move: bool):
        if step is not None:
            if step not in self._manager.all_steps():
                raise ValueError(f"`step` {step} has no checkpoint in {str(self.directory)!r}; "
                                 f"steps saved: {self.all_steps()}.")
            try:
                return step, self._load(step, target)
            except Exception as e:
                how = self.mismatch(step, target) if target is not None else None
                if how is not None:
                    raise self._mismatch_error(step, how) from None
                raise CheckpointError(f"the checkpoint of step {step} in {str(self.directory)!r} cannot "
                                      f"be used: {_first_line(e)}.") from e
        tried = []
        for s in sorted(self._manager.all_steps(), reverse=True):
            try:
                return s, self._load(s, target)
            except Exception as e:
                how = self.mismatch(s, target) if target is not None else None
                if how is not None:
                    raise self._mismatch_error(s, how) from None
                tried.append(s)
                self._reject(s, _first_line(e), move)
        if tried:
            moved = (f"; they were moved to {self.directory.name}_rejected/, so a rerun starts from scratch"
                     if move else "")
            raise CheckpointError(f"none of the checkpoints in {str(self.directory)!r} "
                                  f"(steps {sorted(tried)}) is intact{moved}.")
        return None, None

    def restore(self, state: TrainState, step: int | None = None) -> TrainState:
        """The newest intact checkpoint (or `step`'s) restored into the structure and shardings of
        `state`; `state` itself when there is none. `StateMismatchError` when the checkpoint's arrays
        differ from the state's in name, shape or dtype (nothing is moved then)."""
        abstract = lambda x: ocp.utils.to_shape_dtype_struct(
            x if hasattr(x, "dtype") else np.asarray(x, np.int32))  # a Python int step as an int32 array
        target = jax.tree_util.tree_map(abstract, _payload(state))
        _, restored = self._restore_newest_intact(target, step, move=True)
        return state if restored is None else state.replace(**restored)

    def restore_raw(self, step: int | None = None) -> dict:
        """The saved pytree of `step` (default: the newest intact one) without a template, on this
        process's first device: {"step", "params", "opt_state", ["ema_params"]} as arrays
        (optimizer states as nested dicts)."""
        _, restored = self._restore_newest_intact(None, step, move=False)
        if restored is None:
            raise ValueError(f"no checkpoint in {str(self.directory)!r}.")
        return restored

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def read_run_info(workdir: str | Path) -> dict | None:
    """The run info saved with a workdir's newest checkpoint (None: no checkpoint has one)."""
    directory = Path(workdir) / "checkpoints"
    if not directory.is_dir():
        return None
    ckpt = Checkpointer(directory)
    try:
        return ckpt.run_info()
    finally:
        ckpt.close()


def load_params(workdir: str | Path, *, ema: bool = True, step: int | None = None):
    """Loads trained parameters from a workdir written by `dgmjax.training.train`.

    Returns the EMA parameters when they were kept and `ema` is True, else the
    raw ones, on this process's first device whatever the number of devices
    that wrote them; `model.apply(params, ...)` takes them as they are.
    Without `step`, the newest intact checkpoint (see `Checkpointer`).
    """
    ckpt = Checkpointer(Path(workdir) / "checkpoints")
    try:
        saved = ckpt.restore_raw(step)
    finally:
        ckpt.close()
    return saved["ema_params"] if ema and "ema_params" in saved else saved["params"]
