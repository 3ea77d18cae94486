"""The training loop as a library piece: optimizer, EMA, non-finite steps, exact resume, sharding."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dgmjax.data import SamplerBatches, sample_toy
from dgmjax.models import RealNVP
from dgmjax.training import (
    Checkpointer,
    Terminated,
    TrainState,
    ema_decay_at,
    load_params,
    make_evaluator,
    make_optimizer,
    make_schedule,
    make_train_step,
    read_metrics,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = RealNVP(event_size=2, num_layers=2, hidden_sizes=(16,))


def nll(key, params, batch):
    loss = -jnp.mean(MODEL.apply(params, batch["x"]))
    return loss, {"nll": loss}


def moons(batch_size=16, key=0, sharding=None):
    return SamplerBatches(lambda k, n: sample_toy(k, "moons", n), batch_size, key=jax.random.PRNGKey(key),
                          sharding=sharding)


def fresh_state(num_steps=12, ema_decay=0.9, **opt):
    settings = dict(learning_rate=3e-3, num_steps=num_steps, warmup_steps=3, weight_decay=1e-4,
                    grad_clip_norm=5.0)
    settings.update(opt)
    params = MODEL.init(jax.random.PRNGKey(1), jnp.zeros((1, 2)))
    return TrainState.create(params=params, tx=make_optimizer(**settings), ema_decay=ema_decay)


def run(workdir, num_steps=12, **kw):
    settings = dict(key=jax.random.PRNGKey(2), workdir=workdir, log_every=2, checkpoint_every=4,
                    verbose=False)
    settings.update(kw)
    return train(nll, fresh_state(num_steps), moons(), num_steps=num_steps, **settings)


# ----------------------------------------------------------------------------- optimizer / EMA
def test_schedule_warmup_then_cosine():
    sched = make_schedule(1e-2, num_steps=110, warmup_steps=10)
    np.testing.assert_allclose([sched(0), sched(5), sched(10), sched(60), sched(110)],
                               [0.0, 5e-3, 1e-2, 5e-3, 0.0], atol=1e-7)
    flat = make_schedule(1e-2, num_steps=20, warmup_steps=10, schedule="constant")
    np.testing.assert_allclose([flat(5), flat(10), flat(19)], [5e-3, 1e-2, 1e-2], atol=1e-7)
    with pytest.raises(ValueError, match="schedule"):
        make_schedule(1e-3, num_steps=10, schedule="step")
    with pytest.raises(ValueError, match="name"):
        make_optimizer(num_steps=10, name="lion")
    with pytest.raises(ValueError, match="learning_rate"):
        make_optimizer(-1.0, num_steps=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        make_schedule(1e-3, num_steps=10, warmup_steps=-1)


def test_train_step_ema_and_key_follow_the_step():
    """EMA follows e <- d e + (1 - d) p with the warmed-up decay; keys are fold_in(key, step)."""
    target = jnp.array([1.0, -2.0])

    def loss_fn(key, params, batch):
        noise = jax.random.normal(key, ())
        return jnp.sum((params["w"] - target) ** 2) + 0.0 * noise, {"noise": noise}

    state = TrainState.create(params={"w": jnp.zeros(2)}, tx=optax.sgd(0.1), ema_decay=0.99)
    base = jax.random.PRNGKey(0)
    # Donated, as the loop does on accelerators: the EMA must not share the params' buffers
    # ("Attempt to donate the same buffer twice" otherwise).
    step = jax.jit(make_train_step(loss_fn, base), donate_argnums=0)
    ema, params = np.zeros(2), np.zeros(2)
    for t in range(5):
        state, metrics = step(state, {})
        params = params - 0.1 * 2 * (params - np.asarray(target))
        d = float(ema_decay_at(t, 0.99))
        ema = d * ema + (1 - d) * params
        np.testing.assert_allclose(metrics["noise"], jax.random.normal(jax.random.fold_in(base, t), ()))
    np.testing.assert_allclose(state.params["w"], params, rtol=1e-5)
    np.testing.assert_allclose(state.ema_params["w"], ema, rtol=1e-5)
    assert float(ema_decay_at(0, 0.999)) == pytest.approx(0.1)
    assert float(ema_decay_at(10**6, 0.999)) == pytest.approx(0.999)


@pytest.mark.parametrize("poison", ["gradient", "loss_only"])
def test_a_non_finite_step_is_skipped_and_leaves_the_state_as_it_was(poison):
    """A batch giving an infinite gradient, or an infinite loss with finite gradients, changes
    nothing but the step counter."""

    def loss_fn(key, params, batch):
        loss = jnp.sum((params["w"] - 1.0) ** 2)
        if poison == "gradient":
            return loss + batch["poison"] * jnp.sum(jnp.exp(params["w"])), {}
        return loss + jax.lax.stop_gradient(batch["poison"]), {}

    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    step = jax.jit(make_train_step(loss_fn, jax.random.PRNGKey(0)))
    good, bad = {"poison": jnp.float32(0.0)}, {"poison": jnp.float32(jnp.inf)}
    state, m0 = step(TrainState.create(params={"w": jnp.zeros(2)}, tx=tx, ema_decay=0.5), good)
    skipped, m1 = step(state, bad)
    assert float(m0["skipped"]) == 0.0 and float(m1["skipped"]) == 1.0
    assert not np.isfinite(float(m1["loss"]))
    assert int(skipped.step) == int(state.step) + 1
    chex.assert_trees_all_equal((skipped.params, skipped.opt_state, skipped.ema_params),
                                (state.params, state.opt_state, state.ema_params))
    after, _ = step(skipped, good)  # and training goes on from there, finite
    assert np.all(np.isfinite(after.params["w"])) and not np.allclose(after.params["w"], state.params["w"])
    if poison == "loss_only":
        return
    # without the skip the same step poisons the parameters
    unguarded = TrainState.create(params={"w": jnp.zeros(2)}, tx=tx, skip_nonfinite=False)
    poisoned, _ = step(step(unguarded, good)[0], bad)
    assert not np.all(np.isfinite(poisoned.params["w"]))


def test_any_pytree_trains():
    """Parameters need not be a dict: a struct dataclass (as Equinox modules are) works too."""
    import flax.struct

    @flax.struct.dataclass
    class Params:
        w: jax.Array

    step = jax.jit(make_train_step(lambda k, p, b: (jnp.sum((p.w - 1.0) ** 2), {}), jax.random.PRNGKey(0)))
    state = TrainState.create(params=Params(jnp.zeros(3)), tx=optax.sgd(0.25), ema_decay=0.5)
    for _ in range(3):
        state, _ = step(state, {})
    np.testing.assert_allclose(state.params.w, 1.0 - 0.5**3)


def test_training_stops_with_a_clear_error_when_every_step_is_non_finite(tmp_path):
    def nan_loss(key, params, batch):
        loss, metrics = nll(key, params, batch)
        return loss * jnp.nan, metrics

    message = "non-finite loss or gradient.*data and parameters are finite, so the loss overflowed at this"
    with pytest.raises(FloatingPointError, match=message + " step size: lower the learning rate"):
        train(nan_loss, fresh_state(4), moons(), num_steps=4, key=jax.random.PRNGKey(0), workdir=tmp_path,
              log_every=2, verbose=False)


def test_a_non_finite_run_names_the_data_or_the_optimizer_before_the_learning_rate():
    """NaN data and an optimizer whose update is NaN at a finite gradient (Adam with b2 = 1: its bias
    correction divides 0 by 0) are named as the cause; neither is the step size."""
    batches = moons()
    nan_at_3 = lambda step: {"x": batches(step)["x"] * (jnp.nan if step >= 2 else 1.0)}
    with pytest.raises(FloatingPointError, match=r"The batch of step 2 holds NaN or infinite values"):
        train(nll, fresh_state(4), nan_at_3, num_steps=4, key=jax.random.PRNGKey(0), log_every=2,
              verbose=False)
    params = MODEL.init(jax.random.PRNGKey(1), jnp.zeros((1, 2)))
    state = TrainState.create(params=params, tx=optax.adam(1e-3, b2=1.0))  # make_optimizer refuses this
    with pytest.raises(FloatingPointError, match="The parameters are not finite.*check its settings"):
        train(nll, state, batches, num_steps=4, key=jax.random.PRNGKey(0), log_every=2, verbose=False)


# ----------------------------------------------------------------------------- the loop
def test_the_loop_returns_the_trained_state_and_evaluates(tmp_path):
    test = {"x": np.asarray(sample_toy(jax.random.PRNGKey(9), "moons", 50))}
    eval_fn = lambda k, p, b: {"nll": -MODEL.apply(p, b["x"])}
    evaluate = make_evaluator(eval_fn, test, 16, jax.random.PRNGKey(3))
    seen = []
    state = run(tmp_path, evaluate=evaluate, eval_every=4, hooks=[(6, lambda step, s: seen.append(step))])
    assert isinstance(state, TrainState) and int(state.step) == 12
    # the evaluation is the mean over all 50 points (the padded last batch's padding left out)
    final = json.loads((tmp_path / "final_metrics.json").read_text())
    want = -np.mean(np.asarray(MODEL.apply(state.ema_params, jnp.asarray(test["x"]))))
    assert final["nll"] == pytest.approx(float(want), rel=1e-5)
    assert [r["step"] for r in read_metrics(tmp_path, "test")] == [4, 8, 12]
    assert [r["step"] for r in read_metrics(tmp_path, "train")] == [2, 4, 6, 8, 10, 12]
    assert seen == [6, 12]
    chex.assert_trees_all_equal(load_params(tmp_path), state.ema_params)
    # without a workdir nothing is written and the same state comes back
    chex.assert_trees_all_close(run(None, checkpoint_every=0).params, state.params)


def test_rerunning_a_finished_run_keeps_one_record_per_step(tmp_path):
    test = {"x": np.asarray(sample_toy(jax.random.PRNGKey(9), "moons", 50))}
    eval_fn = lambda k, p, b: {"nll": -MODEL.apply(p, b["x"])}
    evaluate = make_evaluator(eval_fn, test, 16, jax.random.PRNGKey(3))
    run(tmp_path, evaluate=evaluate)
    before = read_metrics(tmp_path)
    final = json.loads((tmp_path / "final_metrics.json").read_text())
    again = run(tmp_path, evaluate=evaluate)  # resumes at step 12 of 12: evaluates and logs once more
    assert int(again.step) == 12
    after = read_metrics(tmp_path)
    assert [(r["step"], r["split"]) for r in after] == [(r["step"], r["split"]) for r in before]
    assert after[-1] == before[-1] and json.loads((tmp_path / "final_metrics.json").read_text()) == final


def test_resume_after_planned_stop_equals_uninterrupted(tmp_path):
    full = run(tmp_path / "full")
    first = run(tmp_path / "split", max_steps_per_run=6)
    assert int(first.step) == 6
    resumed = run(tmp_path / "split", max_steps_per_run=6)
    chex.assert_trees_all_equal(resumed.params, full.params)
    chex.assert_trees_all_equal(resumed.ema_params, full.ema_params)
    chex.assert_trees_all_equal(load_params(tmp_path / "split"), load_params(tmp_path / "full"))
    # the metric log of the split run is the uninterrupted one, without duplicates
    strip = lambda rs: [{k: v for k, v in r.items() if k != "examples_per_sec"} for r in rs]
    assert strip(read_metrics(tmp_path / "split")) == strip(read_metrics(tmp_path / "full"))


@pytest.mark.parametrize("how", ["KeyboardInterrupt", "SIGINT", "SIGTERM"])
def test_resume_after_interruption_equals_uninterrupted(tmp_path, how):
    """A KeyboardInterrupt raised inside the loop, or a stop signal (Ctrl-C, SIGTERM) mid-run, saves a
    checkpoint; the rerun loses nothing. A signal stops the run at the next step boundary."""
    if how != "KeyboardInterrupt" and threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set in the main thread")
    full = run(tmp_path / "full", num_steps=10, checkpoint_every=100)
    batches = moons()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def interrupting(step):
        if step == 7:
            if how == "KeyboardInterrupt":
                raise KeyboardInterrupt
            os.kill(os.getpid(), getattr(signal, how))  # recorded; the loop stops before step 8
        return batches(step)

    with pytest.raises(KeyboardInterrupt) as raised:
        train(nll, fresh_state(10), interrupting, num_steps=10, key=jax.random.PRNGKey(2),
              workdir=tmp_path / "split", log_every=2, checkpoint_every=100, verbose=False)
    if how != "KeyboardInterrupt":  # a script exits with 128 + signum on it (143, 130)
        assert isinstance(raised.value, Terminated) and raised.value.signum == getattr(signal, how)
    assert {s: signal.getsignal(s) for s in previous} == previous  # the loop put the old handlers back
    ckpt = Checkpointer(tmp_path / "split" / "checkpoints")
    assert ckpt.latest_step() == (7 if how == "KeyboardInterrupt" else 8)
    ckpt.close()
    resumed = run(tmp_path / "split", num_steps=10, checkpoint_every=100)
    chex.assert_trees_all_equal((resumed.params, resumed.ema_params, resumed.opt_state),
                                (full.params, full.ema_params, full.opt_state))


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="ema_decay"):
        fresh_state(ema_decay=1.0)
    with pytest.raises(ValueError, match="num_devices"):
        from dgmjax.training import make_mesh

        make_mesh(99)
    for kw, name in ((dict(log_every=0), "log_every"), (dict(checkpoint_every=-1), "checkpoint_every"),
                     (dict(num_steps=0), "num_steps")):
        settings = dict(num_steps=4, key=jax.random.PRNGKey(0), verbose=False)
        settings.update(kw)
        with pytest.raises(ValueError, match=name):
            train(nll, fresh_state(4), moons(), **settings)


# ----------------------------------------------------------------------------- sharding
SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    assert jax.device_count() == 8, jax.devices()
    sys.path.insert(0, {tests!r})
    from test_training import fresh_state, moons, nll
    from dgmjax.training import batch_sharded, make_mesh, read_metrics, train
    out = {{}}
    for n in (8, 1):
        mesh = make_mesh(n)
        state = train(nll, fresh_state(3, ema_decay=0.0, name="sgd", warmup_steps=0),
                      moons(sharding=batch_sharded(mesh)), num_steps=3, key=jax.random.PRNGKey(2),
                      workdir={tmp!r} + f"/run{{n}}", log_every=1, mesh=mesh, verbose=False)
        out[n] = dict(losses=[r["loss"] for r in read_metrics({tmp!r} + f"/run{{n}}", "train")],
                      params=[np.asarray(p).tolist() for p in jax.tree_util.tree_leaves(state.params)])
    try:
        moons(batch_size=12, sharding=batch_sharded(make_mesh(8)))
    except ValueError as e:
        out["error"] = str(e)
    print("RESULT" + json.dumps(out))
""")


def test_sharded_step_equals_single_device_step(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    script = SHARDED_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    eight, one = out["8"], out["1"]
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(eight["params"], one["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert "divisible by the number of devices" in out["error"]


def test_use_deterministic_ops_sets_the_flag_before_the_backends_start():
    code = textwrap.dedent("""
        import os
        import jax, jax.numpy as jnp
        from dgmjax.training import use_deterministic_ops
        os.environ["XLA_FLAGS"] = "--xla_cpu_enable_fast_math=false"
        use_deterministic_ops()
        assert os.environ["XLA_FLAGS"].split() == [
            "--xla_cpu_enable_fast_math=false", "--xla_gpu_deterministic_ops=true"]
        print(float(jnp.ones(3).sum()))  # the backend starts with the flag (XLA accepts it on a CPU)
        use_deterministic_ops()  # already set: nothing to do
        os.environ["XLA_FLAGS"] = ""
        try:
            use_deterministic_ops()
        except RuntimeError as err:
            print("refused:", err)
    """)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "3.0" and lines[1].startswith("refused: use_deterministic_ops() must run before")
