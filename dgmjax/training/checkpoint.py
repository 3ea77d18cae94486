"""Orbax checkpoints of the train state that can be trusted.

Each checkpoint holds the state (`state/`) and a SHA-256 of every array's
bytes taken at save time (`checksums/`). A save is synchronous, so a failure
(a full disk, a lost mount) is a `CheckpointError` at that save, not one
interval later. Restoring takes the newest checkpoint that loads, passes its
checksums and holds only finite numbers; each one that does not is reported
by name (a warning, and `Checkpointer.rejected`) and moved aside to
`<directory>_rejected/` (by `restore`, which training uses; `restore_raw` and
`load_params` only read), so the run goes on from the newest intact one and a
later save of the same step does not collide with it. A run never continues
from corrupt parameters: when checkpoints exist but none is intact, restoring
raises `CheckpointError`.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from dgmjax.training.state import TrainState

__all__ = ["CheckpointError", "Checkpointer", "load_params"]


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved, or no intact checkpoint could be restored."""


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
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            return False
    return True


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


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
        self.directory = Path(directory).absolute()
        self.rejected: list[tuple[int, Path, str]] = []  # (step, where it was moved, why)
        self._options = ocp.CheckpointManagerOptions(max_to_keep=int(max_to_keep), create=True,
                                                     enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state: TrainState, *, force: bool = True) -> None:
        """Writes the state's checkpoint (once per step); `CheckpointError` if it cannot."""
        step = int(jax.device_get(state.step))
        if self._manager.latest_step() == step:
            return
        payload = _payload(state)
        try:
            args = ocp.args.Composite(state=ocp.args.StandardSave(payload),
                                      checksums=ocp.args.JsonSave({"sha256": checksums(payload)}))
            self._manager.save(step, args=args, force=force)
            self._manager.wait_until_finished()
        except Exception as e:
            raise CheckpointError(
                f"saving the checkpoint of step {step} in {str(self.directory)!r} failed: {_first_line(e)}. "
                "Is the disk full or the directory no longer writable? The previous checkpoints are "
                "untouched; free space and rerun to resume from them.") from e

    def _item_names(self, step: int) -> set[str]:
        path = self.directory / str(step)
        return {p.name for p in path.iterdir()} if path.is_dir() else set()

    def _load(self, step: int, target) -> dict:
        """The payload of `step`, checked: it loads, its checksums match, its numbers are finite."""
        names = self._item_names(step)
        if "state" not in names and "default" in names:  # written before checksums existed
            restore = ocp.args.StandardRestore(target) if target is not None else ocp.args.StandardRestore()
            restored = self._manager.restore(step, args=restore)
            expected = None
        else:
            state = ocp.args.StandardRestore(target) if target is not None else ocp.args.StandardRestore()
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=state, checksums=ocp.args.JsonRestore()))
            expected = (restored["checksums"] or {}).get("sha256")
            restored = restored["state"]
            if expected is None:
                raise ValueError("its checksums are missing")
        if expected is not None and checksums(restored) != sorted(expected):
            raise ValueError("its arrays do not match the checksums written when it was saved")
        if not _all_finite(restored):
            raise ValueError("it holds non-finite numbers")
        return restored

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

    def _restore_newest_intact(self, target, step: int | None, move: bool):
        if step is not None:
            if step not in self._manager.all_steps():
                raise ValueError(f"`step` {step} has no checkpoint in {str(self.directory)!r}; "
                                 f"steps saved: {self.all_steps()}.")
            try:
                return step, self._load(step, target)
            except Exception as e:
                raise CheckpointError(f"the checkpoint of step {step} in {str(self.directory)!r} cannot "
                                      f"be used: {_first_line(e)}.") from e
        tried = []
        for s in sorted(self._manager.all_steps(), reverse=True):
            try:
                return s, self._load(s, target)
            except Exception as e:
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
        `state`; `state` itself when there is none."""
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _payload(state))
        _, restored = self._restore_newest_intact(target, step, move=True)
        return state if restored is None else state.replace(**restored)

    def restore_raw(self, step: int | None = None) -> dict:
        """The saved pytree of `step` (default: the newest intact one) without a template:
        {"step", "params", "opt_state", ["ema_params"]} as arrays (optimizer states as nested dicts)."""
        _, restored = self._restore_newest_intact(None, step, move=False)
        if restored is None:
            raise ValueError(f"no checkpoint in {str(self.directory)!r}.")
        return restored

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def load_params(workdir: str | Path, *, ema: bool = True, step: int | None = None):
    """Loads trained parameters from a workdir written by `dgmjax.training.train`.

    Returns the EMA parameters when they were kept and `ema` is True, else the
    raw ones; `model.apply(params, ...)` takes them as they are. Without
    `step`, the newest intact checkpoint (see `Checkpointer`).
    """
    ckpt = Checkpointer(Path(workdir) / "checkpoints")
    try:
        saved = ckpt.restore_raw(step)
    finally:
        ckpt.close()
    return saved["ema_params"] if ema and "ema_params" in saved else saved["params"]
