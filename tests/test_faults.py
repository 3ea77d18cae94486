"""Faults a run meets, injected one by one, and the documented outcome of each.

A damaged newest checkpoint (array data truncated, zeroed or flipped; its item
folder missing; its metadata cut short) is reported by name and moved aside, and
the rerun resumes from the newest intact checkpoint and ends exactly where an
uninterrupted run ends. A kill during a save leaves the earlier checkpoints to
resume from. A full disk, a second process, a read-only or full workdir, and a
file given as the workdir each stop the run with a clear error: at the failed
save, or before any compute.
"""

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest
from test_training import fresh_state, moons, nll, run

from dgmjax.training import (
    Checkpointer,
    CheckpointError,
    Terminated,
    WorkdirInUseError,
    WorkdirLock,
    load_params,
    read_metrics,
    train,
)
from dgmjax.training import workdir as workdir_module

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _state_files(step_dir: Path) -> list[Path]:
    """The files holding a checkpoint's array data."""
    return [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]


def truncate(step_dir):
    for p in _state_files(step_dir):
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])


def zero(step_dir):
    for p in _state_files(step_dir):
        p.write_bytes(bytes(len(p.read_bytes())))


def flip(step_dir):
    """Up to 4 KB of flipped bytes in the middle of each data file: loads, but the numbers are wrong."""
    for p in _state_files(step_dir):
        data = bytearray(p.read_bytes())
        lo = len(data) // 4
        for i in range(lo, min(len(data), lo + 4096)):
            data[i] ^= 0xFF
        p.write_bytes(bytes(data))


def remove_item(step_dir):
    shutil.rmtree(step_dir / "state")


def empty_metadata(step_dir):
    (step_dir / "state" / "_METADATA").write_text("")


def truncate_checkpoint_metadata(step_dir):
    path = step_dir / "_CHECKPOINT_METADATA"
    path.write_text(path.read_text()[:20])


DAMAGE = {"truncated array data": truncate, "zeroed array data": zero, "flipped array data": flip,
          "missing item folder": remove_item, "emptied _METADATA": empty_metadata}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    state = run(tmp_path_factory.mktemp("full"), num_steps=12)
    return state


@pytest.fixture(scope="module")
def stopped_at_8(tmp_path_factory):
    """A workdir of the 12-step run stopped at step 8, checkpoints at steps 4 and 8 (copied per test)."""
    workdir = tmp_path_factory.mktemp("stopped")
    run(workdir, num_steps=12, max_steps_per_run=8)
    return workdir


# orbax's failed reads leave an asyncio callback behind that reports a closed event loop at collection
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.mark.parametrize("fault", list(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_intact_one(tmp_path, uninterrupted, stopped_at_8, fault,
                                                                capsys):
    """Steps 4 and 8 are saved, step 8's checkpoint is damaged: the rerun names it, moves it aside,
    resumes from step 4 and ends bit for bit where the uninterrupted run ends."""
    tmp_path = tmp_path / "run"
    shutil.copytree(stopped_at_8, tmp_path)
    DAMAGE[fault](tmp_path / "checkpoints" / "8")
    capsys.readouterr()
    with pytest.warns(UserWarning, match="step 8"):
        assert load_params(tmp_path, ema=False) is not None  # reading falls back too, and moves nothing
    assert (tmp_path / "checkpoints" / "8").exists()
    resumed = run(tmp_path, num_steps=12, verbose=True)
    out = capsys.readouterr().out
    assert "The checkpoint of step 8 cannot be used" in out and "Resumed from the checkpoint at step 4" in out
    chex.assert_trees_all_equal((resumed.params, resumed.ema_params, resumed.opt_state),
                                (uninterrupted.params, uninterrupted.ema_params, uninterrupted.opt_state))
    rejected = list((tmp_path / "checkpoints_rejected").iterdir())
    assert [p.name.split("-")[0] for p in rejected] == ["8"]
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [8, 12]  # step 8 saved again, from the resumed run
    ckpt.close()
    steps = [(r["step"], r["split"]) for r in read_metrics(tmp_path)]
    assert steps == sorted(set(steps), key=steps.index)  # one record per window


def test_truncated_step_metadata_with_intact_arrays_is_used(tmp_path, uninterrupted, stopped_at_8):
    """The step's own metadata file is not needed to load it: its arrays pass their checksums, so
    the run resumes from it (orbax logs the unreadable file)."""
    tmp_path = tmp_path / "run"
    shutil.copytree(stopped_at_8, tmp_path)
    truncate_checkpoint_metadata(tmp_path / "checkpoints" / "8")
    resumed = run(tmp_path, num_steps=12, verbose=True)
    assert not (tmp_path / "checkpoints_rejected").exists()
    chex.assert_trees_all_equal(resumed.params, uninterrupted.params)


def test_no_intact_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    run(tmp_path, num_steps=8)
    for step in (4, 8):
        zero(tmp_path / "checkpoints" / str(step))
    with pytest.raises(CheckpointError, match=r"steps \[4, 8\]"):
        run(tmp_path, num_steps=12)
    # they were moved aside: the next rerun starts from scratch, as the message says
    assert not any(p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir())


def test_at_least_two_checkpoints_are_kept_across_resumes(tmp_path):
    run(tmp_path, num_steps=12, max_steps_per_run=6)  # saves steps 4 and 6 (the stop)
    run(tmp_path, num_steps=12)  # resumes at 6, saves 8 and 12
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [8, 12]
    ckpt.close()
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer(tmp_path / "other", max_to_keep=0)


KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import conftest  # the session's settings (precision, deterministic ops)
    import orbax.checkpoint as ocp
    from test_training import run

    original = ocp.JsonCheckpointHandler.async_save
    def killing(self, directory, *args, **kwargs):
        if "/8." in str(directory) or str(directory).endswith("/8"):
            os.kill(os.getpid(), signal.SIGKILL)  # the state item is being written, nothing committed
        return original(self, directory, *args, **kwargs)
    ocp.JsonCheckpointHandler.async_save = killing
    run({workdir!r}, num_steps=12)
""")


def test_kill_during_a_save_resumes_from_the_previous_checkpoint(tmp_path, uninterrupted):
    script = KILL_DURING_SAVE.format(tests=str(TESTS), workdir=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [4]  # the half-written step 8 is not a checkpoint
    ckpt.close()
    resumed = run(tmp_path, num_steps=12)
    chex.assert_trees_all_equal(resumed.params, uninterrupted.params)


def test_a_failed_save_is_reported_at_that_save(tmp_path, monkeypatch):
    """A full disk at the step-4 save stops the run there (not one interval later); the
    checkpoints before it stay, and a rerun with room resumes."""
    original = ocp.CheckpointManager.save
    seen = []

    def full_disk(self, step, *args, **kwargs):
        if step == 8:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, step, *args, **kwargs)

    batches = moons()

    def counting(step):
        seen.append(step)
        return batches(step)

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    with pytest.raises(CheckpointError, match="step 8.*No space left"):
        train(nll, fresh_state(12), counting, num_steps=12, key=jax.random.PRNGKey(2), workdir=tmp_path,
              log_every=2, checkpoint_every=4, verbose=False)
    assert max(seen) == 7  # no step after the failed save ran
    monkeypatch.undo()
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [4]
    ckpt.close()


def test_a_full_workdir_is_refused_before_any_compute(tmp_path, monkeypatch):
    real = workdir_module.shutil.disk_usage
    monkeypatch.setattr(workdir_module.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=1 << 20))
    with pytest.raises(ValueError, match=r"`workdir` .* MB free"):
        train(nll, fresh_state(4), _no_batches, num_steps=4, key=jax.random.PRNGKey(2), workdir=tmp_path,
              verbose=False)


def _no_batches(step):
    raise AssertionError("the run computed a step after a check that should have stopped it")


def test_a_read_only_or_file_workdir_is_refused_before_any_compute(tmp_path, monkeypatch):
    target = tmp_path / "a_file"
    target.write_text("not a directory")
    with pytest.raises(ValueError, match="`workdir` .* is a file"):
        train(nll, fresh_state(4), _no_batches, num_steps=4, key=jax.random.PRNGKey(2), workdir=target,
              verbose=False)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.access(read_only, os.W_OK):  # root writes anywhere: make the write itself fail as it would
        def refuse(directory):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(workdir_module, "_probe_write", refuse)
    with pytest.raises(ValueError, match="`workdir` .* is not writable"):
        train(nll, fresh_state(4), _no_batches, num_steps=4, key=jax.random.PRNGKey(2), workdir=read_only,
              verbose=False)


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from dgmjax.training import WorkdirLock
    lock = WorkdirLock({workdir!r}).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_second_process_is_refused_and_a_dead_one_leaves_no_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.format(workdir=str(tmp_path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirInUseError, match=rf"in use by another run \(pid {holder.pid} "):
            train(nll, fresh_state(4), _no_batches, num_steps=4, key=jax.random.PRNGKey(2),
                  workdir=tmp_path, verbose=False)
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
        holder.wait()
    run(tmp_path, num_steps=4)  # the lock died with its process
    with WorkdirLock(tmp_path), WorkdirLock(tmp_path):  # reentrant within one process
        pass


def test_checked_mode_names_a_bad_batch_inside_jit(tmp_path):
    """Out-of-range levels cannot be seen at trace time; checked mode stops the step on them."""
    from dgmjax import _checks as v

    def loss(key, params, batch):
        v.check_values(batch["x"] < 10.0, "`batch['x']` must be < 10; got larger values.")
        return nll(key, params, batch)

    batches = moons()

    def bad_at_3(step):
        b = batches(step)
        return {"x": b["x"] + (100.0 if step == 3 else 0.0)}

    state = train(loss, fresh_state(6), bad_at_3, num_steps=6, key=jax.random.PRNGKey(2), verbose=False)
    assert int(state.step) == 6  # unchecked, the bad batch goes through
    with pytest.raises(ValueError, match=r"checked mode: `batch\['x'\]` must be < 10"):
        train(loss, fresh_state(6), bad_at_3, num_steps=6, key=jax.random.PRNGKey(2), verbose=False,
              checked=True)
    checked = train(loss, fresh_state(6), batches, num_steps=6, key=jax.random.PRNGKey(2), verbose=False,
                    checked=True)  # good batches pass, to the same result as unchecked
    unchecked = train(loss, fresh_state(6), batches, num_steps=6, key=jax.random.PRNGKey(2), verbose=False)
    chex.assert_trees_all_close(checked.params, unchecked.params, rtol=1e-6, atol=1e-7)


def test_an_interruption_at_a_logging_step_keeps_that_window(tmp_path):
    """SIGTERM while a logging step's window is being written: the window is written with the
    checkpoint, and the rerun's log equals the uninterrupted one."""
    full, split = tmp_path / "full", tmp_path / "split"
    settings = dict(num_steps=8, key=jax.random.PRNGKey(2), log_every=4, checkpoint_every=100, verbose=False)
    train(nll, fresh_state(8), moons(), workdir=full, learning_rate=lambda step: 0.5, **settings)
    interrupted = []

    def rate_interrupted_at_4(step):  # called while the window ending at step 4 is being logged
        if step == 4 and not interrupted:
            interrupted.append(step)
            raise Terminated(signal.SIGTERM)
        return 0.5

    with pytest.raises(Terminated):
        train(nll, fresh_state(8), moons(), workdir=split, learning_rate=rate_interrupted_at_4, **settings)
    ckpt = Checkpointer(split / "checkpoints")
    assert ckpt.all_steps() == [4]
    ckpt.close()
    train(nll, fresh_state(8), moons(), workdir=split, learning_rate=lambda step: 0.5, **settings)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "examples_per_sec"} for r in rs]
    assert [(r["step"], r["split"]) for r in read_metrics(split, "train")] == [(4, "train"), (8, "train")]
    assert strip(read_metrics(split)) == strip(read_metrics(full))


def test_an_evaluation_lost_to_an_interruption_runs_on_resume(tmp_path):
    """An interruption during the step-4 evaluation (after step 4's train step): the rerun
    evaluates step 4 before it goes on."""
    batches = moons()
    evaluate = lambda state: {"sum": float(jnp.sum(jax.tree_util.tree_leaves(state.params)[0]))}

    with pytest.raises(KeyboardInterrupt):
        train(nll, fresh_state(8), batches, num_steps=8, key=jax.random.PRNGKey(2), workdir=tmp_path,
              log_every=2, evaluate=lambda s: (_ for _ in ()).throw(KeyboardInterrupt()), eval_every=4,
              verbose=False)
    train(nll, fresh_state(8), batches, num_steps=8, key=jax.random.PRNGKey(2), workdir=tmp_path,
          log_every=2, evaluate=evaluate, eval_every=4, verbose=False)
    assert [r["step"] for r in read_metrics(tmp_path, "test")] == [4, 8]
