"""Orbax checkpoints of the train state: save every N steps, restore the latest."""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp

from dgmjax.training.state import TrainState


def _payload(state: TrainState) -> dict:
    out = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
    if state.ema_params is not None:
        out["ema_params"] = state.ema_params
    return out


class Checkpointer:
    """Saves and restores `TrainState`s in `directory` (one subdirectory per step)."""

    def __init__(self, directory: str | Path, *, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state: TrainState, *, force: bool = True) -> None:
        step = int(jax.device_get(state.step))
        if self._manager.latest_step() == step:
            return
        self._manager.save(step, args=ocp.args.StandardSave(_payload(state)), force=force)

    def restore(self, state: TrainState, step: int | None = None) -> TrainState:
        """Restores `step` (default: the latest) into the structure and shardings of `state`."""
        step = self._manager.latest_step() if step is None else step
        if step is None:
            return state
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, _payload(state))
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        return state.replace(**restored)

    def restore_raw(self, step: int | None = None) -> dict:
        """The saved pytree of `step` (default latest) without a template: {"step", "params",
        "opt_state", ["ema_params"]} as arrays (optimizer states as nested dicts)."""
        step = self._manager.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"no checkpoint in {str(self.directory)!r}.")
        return self._manager.restore(step, args=ocp.args.StandardRestore())

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def load_params(workdir: str | Path, *, ema: bool = True, step: int | None = None):
    """Loads trained parameters from a workdir written by `dgmjax.training.train`.

    Returns the EMA parameters when they were kept and `ema` is True, else the
    raw ones; `model.apply(params, ...)` takes them as they are.
    """
    ckpt = Checkpointer(Path(workdir) / "checkpoints")
    try:
        saved = ckpt.restore_raw(step)
    finally:
        ckpt.close()
    return saved["ema_params"] if ema and "ema_params" in saved else saved["params"]
