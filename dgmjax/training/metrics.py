"""Metrics as JSON lines and TensorBoard events, written by process 0 only."""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from pathlib import Path

import jax
import numpy as np

from dgmjax._optional import available, require


def _scalar(x) -> float:
    return float(np.asarray(x))


def _parse(line: str) -> dict | None:
    """A record, or None for a line cut short (a process killed while writing it)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replaces the file's lines atomically (a kill leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def _key(record: dict) -> tuple:
    return int(record.get("step", 0)), record.get("split")


class MetricWriter:
    """Appends `{"step", "split", ...}` lines to `metrics.jsonl` and TensorBoard scalars.

    On resume from step s, lines with step > s (written after the checkpoint the
    run restarts from) are dropped, and a record for a (step, split) already in
    the file replaces it, so every step's record is written once. The
    records equal an uninterrupted run's except one: the first training window
    after an interruption between two logging steps averages only the steps
    run since the checkpoint (a run stopped by `max_steps_per_run` logs its last
    window early, at the stop). A line that is not a JSON record (one cut
    short by a kill, or damaged) is not dropped: it is moved to
    `metrics.jsonl.unreadable` with a warning naming its line number.

    Args:
      workdir: the directory of `metrics.jsonl` and `tensorboard/`.
      resume_step: the step training resumes from; later records are dropped.
      tensorboard: write TensorBoard events too. None (the default) writes them
        when tensorboardX is installed (`pip install 'dgmjax[tensorboard]'`);
        True requires it.
    """

    def __init__(self, workdir: str | Path, *, resume_step: int = 0, tensorboard: bool | None = None):
        self.active = jax.process_index() == 0
        self.path = Path(workdir) / "metrics.jsonl"
        self._tb = None
        self._keys = set()  # (step, split) of every record in the file (every process reads them)
        if self.path.exists():
            records = [(line, _parse(line)) for line in self.path.read_text().splitlines()]
            kept = [line for line, r in records if r is not None and r.get("step", 0) <= resume_step]
            self._keys = {_key(json.loads(line)) for line in kept}
            unreadable = [(i + 1, line) for i, (line, r) in enumerate(records) if r is None and line.strip()]
            if self.active and unreadable:
                aside = self.path.with_name(self.path.name + ".unreadable")
                with aside.open("a") as f:
                    f.writelines(line + "\n" for _, line in unreadable)
                warnings.warn(f"{self.path} line(s) {[i for i, _ in unreadable][:10]} are not JSON records "
                              f"(cut short by a kill, or damaged); moved them to {aside.name}.", stacklevel=2)
            if self.active:
                _rewrite(self.path, kept)
        if not self.active:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard is None:
            tensorboard = available("tensorboardX")
        if tensorboard:
            summary = require("tensorboardX", "tensorboard", "TensorBoard logging").SummaryWriter
            self._tb = summary(str(Path(workdir) / "tensorboard"))

    def has(self, step: int, split: str) -> bool:
        """Whether the file holds a record for (`step`, `split`)."""
        return (int(step), split) in self._keys

    def write(self, step: int, split: str, metrics: dict) -> dict:
        values = {k: _scalar(val) for k, val in metrics.items()}
        if not self.active:
            return values
        record = {"step": int(step), "split": split}
        record.update({k: (val if math.isfinite(val) else str(val)) for k, val in values.items()})
        if _key(record) in self._keys:  # written before (a finished run rerun): the new record replaces it
            lines = [line for line in self.path.read_text().splitlines()
                     if line.strip() and _parse(line) is not None and _key(_parse(line)) != _key(record)]
            _rewrite(self.path, lines)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        self._keys.add(_key(record))
        if self._tb is not None:
            for k, val in values.items():
                self._tb.add_scalar(f"{split}/{k}", val, int(step))
        return values

    def close(self, timeout: float = 30.0):
        """Flushes and closes the TensorBoard writer, waiting at most `timeout` seconds for it (a
        warning if it does not finish: its last events may be missing; metrics.jsonl has them all)."""
        if self._tb is None:
            return
        tb, self._tb = self._tb, None
        closer = threading.Thread(target=tb.close, daemon=True, name="dgmjax-tensorboard-close")
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
            warnings.warn(f"the TensorBoard writer did not close within {timeout:.0f} s; its last events may "
                          "be missing (metrics.jsonl holds every record).", stacklevel=2)


def read_metrics(workdir: str | Path, split: str | None = None) -> list[dict]:
    """The records of `metrics.jsonl` (optionally only one split); a warning names any line that is
    not a record, except a last line cut short (a run killed while writing it)."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    parsed = [_parse(line) for line in lines]
    bad = [i + 1 for i, (line, r) in enumerate(zip(lines, parsed, strict=True))
           if r is None and line.strip() and i + 1 < len(lines)]
    if bad:
        warnings.warn(f"{path} line(s) {bad[:10]} are not JSON records; they are left out.", stacklevel=2)
    records = [r for r in parsed if r is not None]
    return [r for r in records if split is None or r["split"] == split]
