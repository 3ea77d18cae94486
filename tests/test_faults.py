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
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from test_training import MODEL, fresh_state, moons, nll, run

from dgmjax.data import sample_toy
from dgmjax.models import RealNVP
from dgmjax.training import (
    Checkpointer,
    CheckpointError,
    RunMismatchError,
    StateMismatchError,
    Terminated,
    TrainState,
    WorkdirInUseError,
    WorkdirLock,
    load_params,
    make_evaluator,
    make_optimizer,
    read_metrics,
    read_run_info,
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


# ----------------------------------------------------------------------------- stop signals
STOPS = textwrap.dedent("""
    import fcntl, os, random, signal, sys, threading, time
    sys.path.insert(0, {tests!r})
    import conftest  # the session's settings
    import jax, numpy as np
    from test_training import MODEL, fresh_state, moons, nll
    from dgmjax.data import sample_toy
    from dgmjax.training import Checkpointer, Terminated, WorkdirLock, load_params, make_evaluator, \\
        read_metrics, train

    workdir, reference = {workdir!r}, {reference!r}
    rng = random.Random(0)
    test = {{"x": np.asarray(sample_toy(jax.random.PRNGKey(9), "moons", 40))}}
    eval_fn = lambda k, p, b: {{"nll": -MODEL.apply(p, b["x"])}}
    evaluate = make_evaluator(eval_fn, test, 8, jax.random.PRNGKey(3))
    NUM = 100_000  # the schedule's length: every segment is stopped long before it
    settings = dict(key=jax.random.PRNGKey(2), log_every=1, checkpoint_every=7, evaluate=evaluate,
                    eval_every=5, hooks=[(4, lambda step, s: time.sleep(0.003))], verbose=False)
    live = lambda: [t for t in threading.enumerate() if t.name != "tqdm_monitor"]  # tqdm's own, shared
    threads = len(live())
    lock_path = WorkdirLock(workdir).path
    at = 0
    for i in range({stops}):
        signum = (signal.SIGTERM, signal.SIGINT)[i % 2]
        delay, base, sent = rng.uniform(0.0, 0.6), moons(), []

        def send():
            sent.append(time.monotonic())
            os.kill(os.getpid(), signum)

        timer = threading.Timer(delay, send)

        def batches(step):  # the clock starts with training (compiling, logging, saving and evaluating)
            if not timer.is_alive() and not sent:
                timer.start()
            return base(step)

        try:
            train(nll, fresh_state(NUM), batches, num_steps=NUM, workdir=workdir, **settings)
            sys.exit(f"stop {{i}}: the run went on to the end instead of stopping")
        except Terminated as stopped:
            latency = time.monotonic() - sent[0]
            assert stopped.signum == signum, (stopped.signum, signum)
        timer.join()
        with open(lock_path) as f:  # released: another open file can take it
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        settle = time.monotonic() + 10
        while len(live()) > threads and time.monotonic() < settle:  # a closed queue's feeder winds down
            time.sleep(0.01)
        assert len(live()) == threads, live()  # the writers' threads closed
        ckpt = Checkpointer(workdir + "/checkpoints")
        before, at = at, ckpt.latest_step()
        ckpt.close()
        assert at > before, (before, at)  # the step in flight (the first after a resume) is finished
        logged = max((r["step"] for r in read_metrics(workdir)), default=0)
        assert logged <= at, (logged, at)  # nothing logged past the checkpoint it stopped with
        name = signal.Signals(signum).name
        print(f"stop {{i}} ({{name}}) after {{delay:.2f}} s: checkpoint at step {{at}}, "
              f"{{latency:.2f}} s after the signal", flush=True)
    train(nll, fresh_state(NUM), moons(), num_steps=at, workdir=reference, **settings)
    for ema in (True, False):
        a, b = load_params(workdir, ema=ema), load_params(reference, ema=ema)
        assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                        jax.tree_util.tree_leaves(b), strict=True))
    print("EQUAL", at)
""")


def test_twenty_stop_signals_at_random_moments_end_cleanly_and_lose_nothing(tmp_path):
    """20 SIGTERMs and Ctrl-Cs at random moments of a run that logs every step (metrics.jsonl and
    TensorBoard events), checkpoints, evaluates and runs a hook every few steps (and compiles after each
    resume): every one stops the run within seconds with
    its signal, the checkpoint written, the lock released and the writers' threads gone, and every
    resumed segment trains at least its first step (a signal waits for the step in flight instead of
    breaking its compilation); the run resumed 20 times ends bit for bit where an uninterrupted run to
    the same step ends."""
    script = STOPS.format(tests=str(TESTS), workdir=str(tmp_path / "stopped"),
                          reference=str(tmp_path / "reference"), stops=20)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("stop ") for line in lines) == 20 and lines[-1].startswith("EQUAL")
    latencies = [float(line.rsplit(", ", 1)[1].split(" s ")[0]) for line in lines if line.startswith("stop ")]
    assert max(latencies) < 30, latencies


MAIN_STOPPED = ["--config=experiments/configs/moons.py", "--config.model.num_layers=2",
                "--config.model.hidden_sizes=(16,)", "--config.train.num_steps=100000",
                "--config.train.log_every=1", "--config.train.checkpoint_every=50",
                "--config.train.eval_every=0", "--config.train.sample_every=0"]


def test_the_main_job_exits_on_a_stop_signal_with_the_shell_status(tmp_path):
    """The main job, logging every step with TensorBoard events, gets a SIGTERM at a random moment after
    its first record: it exits within seconds with 143 (128 + the signal's number), its checkpoint
    written and the workdir's lock free for the next run. (Ctrl-C takes the same path inside the
    loop: the twenty-stop test alternates the two.)"""
    signum = signal.SIGTERM
    workdir = tmp_path / "run"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    command = [sys.executable, str(ROOT / "experiments" / "main.py"), f"--workdir={workdir}", *MAIN_STOPPED]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 300
        while not ((workdir / "metrics.jsonl").exists() and (workdir / "metrics.jsonl").stat().st_size):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        time.sleep(random.Random(int(signum)).uniform(0.0, 1.0))
        proc.send_signal(signum)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err[-3000:]
    assert time.monotonic() - sent < 60
    assert "Interrupted: saved a checkpoint at step" in out
    with WorkdirLock(workdir):  # free: this process takes it
        pass
    ckpt = Checkpointer(workdir / "checkpoints")
    assert ckpt.latest_step() == max(r["step"] for r in read_metrics(workdir, "train"))
    ckpt.close()


# ----------------------------------------------------------------------------- another model or run
def _snapshot(directory: Path) -> dict:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


def toy_nll(key, params, batch):
    return {"nll": -MODEL.apply(params, batch["x"])}


def test_a_state_of_other_shapes_is_refused_by_name_and_nothing_moves(tmp_path):
    """Restoring intact checkpoints into a wider model names the first mismatched leaf and both
    shapes, moves and changes nothing, and the same model resumes from them afterwards."""
    run(tmp_path, num_steps=8)  # checkpoints at steps 4 and 8
    before = _snapshot(tmp_path / "checkpoints")
    wide = RealNVP(event_size=2, num_layers=2, hidden_sizes=(24,))
    params = wide.init(jax.random.PRNGKey(1), jnp.zeros((1, 2)))
    state = TrainState.create(params=params, tx=make_optimizer(3e-3, num_steps=12), ema_decay=0.9)
    expected = jax.tree_util.tree_flatten_with_path(params)[0][0]  # the first leaf of the params
    name = ".".join(str(getattr(k, "key", k)) for k in expected[0])
    ckpt = Checkpointer(tmp_path / "checkpoints")
    message = (rf"`params\.{re.escape(name)}` has shape \(\d+(, \d+)*\) in the checkpoint and "
               rf"{re.escape(str(expected[1].shape))} in the state")
    with pytest.raises(StateMismatchError, match=message):
        ckpt.restore(state)
    ckpt.close()
    wide_loss = lambda key, p, batch: (-jnp.mean(wide.apply(p, batch["x"])), {})
    with pytest.raises(StateMismatchError, match="nothing was moved"):
        train(wide_loss, state, moons(), num_steps=12, key=jax.random.PRNGKey(2), workdir=tmp_path,
              log_every=2, checkpoint_every=4, verbose=False)
    assert _snapshot(tmp_path / "checkpoints") == before and not (tmp_path / "checkpoints_rejected").exists()
    resumed = run(tmp_path, num_steps=12, verbose=True)  # the model that wrote them goes on from step 8
    assert int(resumed.step) == 12


def test_checkpoints_of_another_key_or_run_info_are_refused_unless_told(tmp_path, capsys):
    """Resuming with another key, other run info, or checkpoints copied in from another run raises
    `RunMismatchError` naming what differs, before anything is written; `resume_other_run=True`
    continues from them and records the new run's identity."""
    run(tmp_path / "a", num_steps=12, max_steps_per_run=8, run_info={"data": "moons"})
    before = _snapshot(tmp_path / "a")
    with pytest.raises(RunMismatchError, match="key: '[0-9a-f]+' there, '[0-9a-f]+' now"):
        run(tmp_path / "a", num_steps=12, key=jax.random.PRNGKey(3), run_info={"data": "moons"})
    with pytest.raises(RunMismatchError, match="data: 'moons' there, 'spirals' now"):
        run(tmp_path / "a", num_steps=12, run_info={"data": "spirals"})
    shutil.copytree(tmp_path / "a" / "checkpoints", tmp_path / "b" / "checkpoints")  # copied in
    with pytest.raises(RunMismatchError, match="key"):
        run(tmp_path / "b", num_steps=12, key=jax.random.PRNGKey(3), run_info={"data": "moons"})
    assert _snapshot(tmp_path / "a") == before  # nothing written, moved or locked away
    other = run(tmp_path / "a", num_steps=12, key=jax.random.PRNGKey(3), run_info={"data": "moons"},
                resume_other_run=True)
    assert int(other.step) == 12
    assert read_run_info(tmp_path / "a")["key"] != before and read_run_info(tmp_path / "a")["data"] == "moons"
    run(tmp_path / "a", num_steps=12, key=jax.random.PRNGKey(3), run_info={"data": "moons"})  # now its own


def test_a_finished_run_rerun_with_fewer_steps_says_so_and_names_the_state_s_step(tmp_path, capsys):
    test = {"x": np.asarray(sample_toy(jax.random.PRNGKey(9), "moons", 20))}
    evaluate = make_evaluator(toy_nll, test, 8, jax.random.PRNGKey(3))
    finished = run(tmp_path, num_steps=12, evaluate=evaluate)
    capsys.readouterr()
    again = run(tmp_path, num_steps=8, evaluate=evaluate, verbose=True)
    out = capsys.readouterr().out
    assert "state is at step 12, past `num_steps` (8): nothing to train" in out
    assert int(again.step) == 12
    chex.assert_trees_all_equal(again.params, finished.params)
    assert json.loads((tmp_path / "final_metrics.json").read_text())["step"] == 12
    assert [r["step"] for r in read_metrics(tmp_path, "test")] == [12]


def test_a_damaged_metrics_line_is_kept_aside_with_a_warning(tmp_path):
    run(tmp_path, num_steps=12, max_steps_per_run=8)
    path = tmp_path / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # a middle record damaged
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"line\(s\) \[2\]"):
        read_metrics(tmp_path)
    with pytest.warns(UserWarning, match=r"line\(s\) \[2\] are not JSON records.*metrics\.jsonl\.unreadable"):
        run(tmp_path, num_steps=12)
    assert (tmp_path / "metrics.jsonl.unreadable").read_text() == lines[1] + "\n"


# ----------------------------------------------------------------------------- devices and the workdir
FOUR_DEVICES = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import jax
    from test_training import fresh_state, moons, nll
    from dgmjax.training import batch_sharded, make_mesh, train
    assert jax.device_count() == 4
    mesh = make_mesh()
    train(nll, fresh_state(2), moons(sharding=batch_sharded(mesh)), num_steps=2, key=jax.random.PRNGKey(2),
          workdir={workdir!r}, log_every=1, mesh=mesh, verbose=False)
""")


def test_a_four_device_checkpoint_loads_and_evaluates_on_one_device(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    script = FOUR_DEVICES.format(tests=str(TESTS), workdir=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert jax.device_count() == 1
    params = load_params(tmp_path)  # written on 4 devices, read on this one
    devices = {leaf.sharding.device_set.pop() for leaf in jax.tree_util.tree_leaves(params)}
    assert devices == {jax.devices()[0]}
    test = {"x": np.asarray(sample_toy(jax.random.PRNGKey(9), "moons", 20))}
    evaluate = make_evaluator(toy_nll, test, 8, jax.random.PRNGKey(3))
    metrics = evaluate(TrainState.create(params=params, tx=optax.sgd(0.0)))
    want = -np.mean(np.asarray(MODEL.apply(params, jnp.asarray(test["x"]))))
    assert metrics["nll"] == pytest.approx(float(want), rel=1e-5)


HOLD_WORKDIR = textwrap.dedent("""
    import pathlib, sys, time
    sys.path.insert(0, {tests!r})
    import jax
    from test_training import fresh_state, moons, nll
    from dgmjax.training import train

    def pause_at_60(step, state):  # the test deletes the workdir while this run is alive and holding it
        pathlib.Path({ready!r}).touch()
        time.sleep(3)

    train(nll, fresh_state(10**6), moons(), num_steps=10**6, key=jax.random.PRNGKey(2), workdir={workdir!r},
          log_every=10, checkpoint_every=50, hooks=[(60, pause_at_60)], verbose=False)
""")


def test_a_workdir_deleted_mid_run_stops_the_run_and_keeps_a_second_one_out(tmp_path):
    """The lock lives beside the workdir: deleting the workdir does not let a second run in, and the
    first run stops within seconds, saying why, instead of dying later on a missing file."""
    workdir, second = tmp_path / "run", fresh_state(4)
    script = HOLD_WORKDIR.format(tests=str(TESTS), workdir=str(workdir), ready=str(tmp_path / "ready"))
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "ready").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.05)
        shutil.rmtree(workdir)
        with pytest.raises(WorkdirInUseError, match=rf"in use by another run \(pid {first.pid} "):
            train(nll, second, _no_batches, num_steps=4, key=jax.random.PRNGKey(2), workdir=workdir,
                  verbose=False)
        assert first.poll() is None  # refused while the first run was alive
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 1
    assert "WorkdirRemovedError" in err and "was deleted or replaced while this run was training" in err
    assert "FileNotFoundError" not in err.strip().splitlines()[-1]
    run(workdir, num_steps=4)  # the first run is gone: its lock went with it


FAILED_RESTORE = textwrap.dedent("""
    import sys, warnings
    sys.path.insert(0, {tests!r})
    import jax, jax.numpy as jnp
    from test_faults import zero
    from test_training import RealNVP, fresh_state, moons, nll, run
    from dgmjax.training import Checkpointer, StateMismatchError, TrainState, make_optimizer
    run({workdir!r}, num_steps=8)
    zero(__import__("pathlib").Path({workdir!r}) / "checkpoints" / "8")  # damaged: falls back to step 4
    warnings.simplefilter("ignore")
    restored = Checkpointer({workdir!r} + "/checkpoints").restore(fresh_state(12))  # falls back to 4
    assert int(restored.step) == 4, int(restored.step)
    wide = RealNVP(event_size=2, num_layers=2, hidden_sizes=(24,))
    state = TrainState.create(params=wide.init(jax.random.PRNGKey(1), jnp.zeros((1, 2))),
                              tx=make_optimizer(3e-3, num_steps=12), ema_decay=0.9)
    try:
        Checkpointer({workdir!r} + "/checkpoints").restore(state)
    except StateMismatchError as e:
        print("REFUSED", str(e)[:60], file=sys.stderr)
""")


def test_a_failed_restore_prints_its_message_and_no_orbax_noise(tmp_path):
    script = FAILED_RESTORE.format(tests=str(TESTS), workdir=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=TESTS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REFUSED the checkpoint of step 4" in proc.stderr
    noise = ("Event loop is closed", "Exception ignored")
    assert not any(n in proc.stderr for n in noise), proc.stderr[-3000:]
