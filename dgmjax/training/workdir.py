"""A run's workdir: checked before any compute, and written by one process at a time.

`check_workdir` makes sure the directory can hold the run (a directory, writable,
with room for its checkpoints). `WorkdirLock` is an exclusive `flock` on a
file beside the workdir (`.<name>.lock` in its parent), so that it survives the
workdir being deleted: a second process that opens the same workdir gets a
`WorkdirInUseError` naming the process that holds it. The operating system
releases the lock when its process ends, however it ends (SIGKILL, a crash,
a lost machine), so a dead run never leaves a workdir locked.
`WorkdirWatch` notices a workdir removed (or replaced) under a running
process, which `train` then stops with a `WorkdirRemovedError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is then advisory only (see WorkdirLock)
    fcntl = None

__all__ = ["WorkdirInUseError", "WorkdirLock", "WorkdirRemovedError", "WorkdirWatch", "check_workdir"]

_MB = 1 << 20


class WorkdirInUseError(RuntimeError):
    """Another process is training in this workdir."""


class WorkdirRemovedError(RuntimeError):
    """The workdir was deleted or replaced while a run was writing to it."""


def _probe_write(directory: Path) -> None:
    """Creates and removes a small file in `directory`; OSError if it cannot."""
    probe = directory / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"\0" * 4096)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def check_workdir(workdir: str | Path, *, checkpoint_bytes: int = 0, num_checkpoints: int = 2) -> Path:
    """Makes `workdir` (and its parents) if needed and checks that a run can write there.

    Raises a ValueError naming `workdir` when it is a file, cannot be
    created, is not writable, or has less free space than `num_checkpoints`
    checkpoints of `checkpoint_bytes` each (the one being written and the one
    kept to fall back on) plus 16 MB for metrics and samples. Returns the
    absolute path.
    """
    workdir = Path(workdir).absolute()
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"`workdir` {str(workdir)!r} is a file; expected a directory (new or a run's).")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"`workdir` {str(workdir)!r} cannot be created: {e.strerror or e}.") from e
    try:
        _probe_write(workdir)
    except OSError as e:
        raise ValueError(f"`workdir` {str(workdir)!r} is not writable ({e.strerror or e}); expected a "
                         "directory this process can write to.") from e
    needed = num_checkpoints * int(checkpoint_bytes) + 16 * _MB
    free = shutil.disk_usage(workdir).free
    if free < needed:
        raise ValueError(
            f"`workdir` {str(workdir)!r} has {free / _MB:.1f} MB free; this run needs about "
            f"{needed / _MB:.1f} MB ({num_checkpoints} checkpoints of {checkpoint_bytes / _MB:.1f} MB and "
            "16 MB for metrics and samples). Free some space or choose another workdir.")
    return workdir


# Locks this process holds: path -> [file object, count] (a second flock on another descriptor of the
# same file would block against this process's own lock, so nested holders share one).
_HELD: dict[str, list] = {}
_HELD_GUARD = threading.Lock()


class WorkdirLock:
    """An exclusive lock on `workdir` for this process (a context manager; reentrant).

    Uses `fcntl.flock` on `.<name>.lock` beside the workdir (in its parent, so
    that deleting the workdir does not delete the lock with it; inside the
    workdir when the parent is not writable), which the OS releases when the
    holding process exits, so there are no stale locks to clear by hand. The
    file records the holder (pid, host, start time) for the error message.
    Where `flock` is unavailable (Windows, some network file systems) the lock
    is skipped with a warning.
    """

    def __init__(self, workdir: str | Path):
        workdir = Path(workdir).absolute()
        self.workdir = workdir
        beside = workdir.parent / f".{workdir.name}.lock"
        with contextlib.suppress(OSError):
            workdir.parent.mkdir(parents=True, exist_ok=True)
        self.path = beside if os.access(workdir.parent, os.W_OK) else workdir / ".lock"

    def acquire(self) -> WorkdirLock:
        key = str(self.path)
        with _HELD_GUARD:
            if key in _HELD:
                _HELD[key][1] += 1
                return self
            if fcntl is None:
                _HELD[key] = [None, 1]
                return self
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+")  # noqa: SIM115 (held open while the lock is held)
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip()
                f.close()
                raise WorkdirInUseError(
                    f"`workdir` {str(self.workdir)!r} is in use by another run ({_describe(holder)}). "
                    "Wait for it to finish, stop it, or choose another workdir; the lock goes away "
                    "when that process exits.") from None
            except OSError as e:  # ENOLCK and friends: a file system without flock
                import warnings  # noqa: PLC0415

                warnings.warn(f"cannot lock {key} ({e}); nothing keeps a second run out of this workdir.",
                              stacklevel=2)
                f.close()
                _HELD[key] = [None, 1]
                return self
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
            f.flush()
            _HELD[key] = [f, 1]
        return self

    def release(self) -> None:
        key = str(self.path)
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del _HELD[key]
                if held[0] is not None:
                    fcntl.flock(held[0].fileno(), fcntl.LOCK_UN)
                    held[0].close()

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that left no details"


class WorkdirWatch:
    """Notices `workdir` being deleted or replaced (another directory at its path) while a run uses it.

    `check()` raises `WorkdirRemovedError` then; it looks at most once per
    `interval` seconds (a `stat` of the directory), so it can be called every
    step.
    """

    def __init__(self, workdir: str | Path, *, interval: float = 1.0):
        self.workdir = Path(workdir).absolute()
        self.interval = float(interval)
        self._identity = self._stat()
        self._last = time.monotonic()

    def _stat(self):
        try:
            st = os.stat(self.workdir)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def removed(self) -> bool:
        """Whether the workdir is gone or replaced (looks now, whatever the interval)."""
        self._last = time.monotonic()
        return self._stat() != self._identity

    def check(self, step: int) -> None:
        if time.monotonic() - self._last < self.interval:
            return
        if self.removed():
            raise WorkdirRemovedError(
                f"`workdir` {str(self.workdir)!r} was deleted or replaced while this run was training (at "
                f"step {step}); the run stopped there without saving, since its checkpoints went with the "
                "directory. Rerun to start again.")
