"""Training: optimizer, EMA, exact resume (planned stop and interruption), data-parallel sharding."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dgmjax.data import load_images
from dgmjax.models import ImageRealNVP, RealNVP
from dgmjax.tasks import density_2d_task, image_flow_task
from dgmjax.training import (
    TrainState,
    load_params,
    make_optimizer,
    make_schedule,
    make_train_step,
    read_metrics,
    train,
)
from dgmjax.training.steps import ema_decay_at

ROOT = Path(__file__).resolve().parents[1]


def make_config(**train_overrides):
    c = ml_collections.ConfigDict()
    c.seed = 3
    c.train = ml_collections.ConfigDict(dict(
        batch_size=16, eval_batch_size=16, num_steps=12, log_every=2, eval_every=0,
        checkpoint_every=4, sample_every=0, ema_decay=0.9, num_devices=1, max_steps_per_run=0))
    c.train.update(train_overrides)
    c.optimizer = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=3e-3, warmup_steps=3, schedule="cosine", weight_decay=1e-4,
        grad_clip_norm=5.0))
    return c


@pytest.fixture(scope="module")
def moons_task():
    model = RealNVP(event_size=2, num_layers=2, hidden_sizes=(16,))
    return density_2d_task(model, "moons", num_test=64)


@pytest.fixture(scope="module")
def digits_task():
    model = ImageRealNVP(image_shape=(8, 8, 1), num_scales=2, num_checkerboard=2,
                         num_channelwise=2, features=8, num_blocks=1)
    return image_flow_task(model, load_images("digits", "train"), load_images("digits", "test"),
                           num_samples=4)


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------- optimizer / EMA
def test_schedule_warmup_then_cosine():
    cfg = {"learning_rate": 1e-2, "warmup_steps": 10, "schedule": "cosine"}
    sched = make_schedule(cfg, 110)
    np.testing.assert_allclose([sched(0), sched(5), sched(10), sched(60), sched(110)],
                               [0.0, 5e-3, 1e-2, 5e-3, 0.0], atol=1e-7)
    with pytest.raises(ValueError, match="schedule"):
        make_schedule({"schedule": "step"}, 10)
    with pytest.raises(ValueError, match="optimizer.name"):
        make_optimizer({"name": "lion"}, 10)
    with pytest.raises(ValueError, match="learning_rate"):
        make_optimizer({"learning_rate": -1.0}, 10)


def test_train_step_ema_and_key_follow_the_step():
    """EMA follows e <- d e + (1 - d) p with the warmed-up decay; keys are fold_in(key, step)."""
    target = jnp.array([1.0, -2.0])
    seen_keys = []

    def loss_fn(params, batch, key):
        seen_keys.append(key)
        noise = jax.random.normal(key, ())
        loss = jnp.sum((params["w"] - target) ** 2) + 0.0 * noise
        return loss, {"noise": noise}

    tx = optax.sgd(0.1)
    state = TrainState.create(params={"w": jnp.zeros(2)}, tx=tx, ema=True)
    base = jax.random.PRNGKey(0)
    # Donated, as the loop does on accelerators: the EMA must not share the params' buffers
    # ("Attempt to donate the same buffer twice" otherwise).
    step = jax.jit(make_train_step(loss_fn, base, ema_decay=0.99), donate_argnums=0)
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


def test_a_non_finite_step_is_skipped_and_leaves_the_state_as_it_was():
    """A batch giving an infinite loss or gradient changes nothing but the step counter."""

    def loss_fn(params, batch, key):
        loss = jnp.sum((params["w"] - 1.0) ** 2) + batch["poison"] * jnp.sum(jnp.exp(params["w"]))
        return loss, {}

    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    step = jax.jit(make_train_step(loss_fn, jax.random.PRNGKey(0), ema_decay=0.5))
    good, bad = {"poison": jnp.float32(0.0)}, {"poison": jnp.float32(jnp.inf)}
    state = TrainState.create(params={"w": jnp.zeros(2)}, tx=tx, ema=True)
    state, m0 = step(state, good)
    skipped, m1 = step(state, bad)
    assert float(m0["skipped"]) == 0.0 and float(m1["skipped"]) == 1.0
    assert not np.isfinite(float(m1["loss"]))
    assert int(skipped.step) == int(state.step) + 1
    for a, b in zip(jax.tree_util.tree_leaves((skipped.params, skipped.opt_state, skipped.ema_params)),
                    jax.tree_util.tree_leaves((state.params, state.opt_state, state.ema_params)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    after, _ = step(skipped, good)  # and training goes on from there, finite
    assert np.all(np.isfinite(after.params["w"])) and not np.allclose(after.params["w"], state.params["w"])


def test_training_stops_with_a_clear_error_when_every_step_is_non_finite(moons_task, tmp_path):
    def nan_loss(params, batch, key):
        loss, metrics = moons_task.loss_fn(params, batch, key)
        return loss * jnp.nan, metrics

    task = dataclasses.replace(moons_task, loss_fn=nan_loss)
    with pytest.raises(FloatingPointError, match="non-finite loss or gradient"):
        train(task, make_config(num_steps=4), tmp_path / "nan", verbose=False)


# ----------------------------------------------------------------------------- resume
def test_resume_after_planned_stop_equals_uninterrupted(moons_task, tmp_path):
    full = train(moons_task, make_config(), tmp_path / "full", verbose=False)
    part = make_config(max_steps_per_run=6)
    assert train(moons_task, part, tmp_path / "split", verbose=False) == {}
    assert load_params(tmp_path / "split", ema=False) is not None
    resumed = train(moons_task, part, tmp_path / "split", verbose=False)
    assert_trees_equal(load_params(tmp_path / "full", ema=False),
                       load_params(tmp_path / "split", ema=False))
    assert_trees_equal(load_params(tmp_path / "full"), load_params(tmp_path / "split"))
    assert resumed == full
    # the metric log of the split run is the uninterrupted one, without duplicates
    strip = lambda rs: [{k: v for k, v in r.items() if k != "examples_per_sec"} for r in rs]
    assert strip(read_metrics(tmp_path / "split")) == strip(read_metrics(tmp_path / "full"))


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(digits_task, tmp_path):
    """Ctrl-C (KeyboardInterrupt) mid-run saves a checkpoint; the rerun loses nothing."""
    config = make_config(num_steps=10, checkpoint_every=100)
    train(digits_task, config, tmp_path / "full", verbose=False)

    original = digits_task.make_train_batches

    def interrupting(batch_size, key, sharding):
        batches = original(batch_size, key, sharding)

        def get(step):
            if step == 7:
                raise KeyboardInterrupt
            return batches(step)

        return get

    import dataclasses

    flaky = dataclasses.replace(digits_task, make_train_batches=interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(flaky, config, tmp_path / "split", verbose=False)
    saved = load_params(tmp_path / "split", ema=False)
    assert saved is not None
    from dgmjax.training import Checkpointer

    ckpt = Checkpointer(tmp_path / "split" / "checkpoints")
    assert ckpt.latest_step() == 7  # steps 0..6 done, the checkpoint holds them all
    ckpt.close()
    final = train(digits_task, config, tmp_path / "split", verbose=False)
    assert_trees_equal(load_params(tmp_path / "full"), load_params(tmp_path / "split"))
    written = json.loads((tmp_path / "split" / "final_metrics.json").read_text())
    assert written["bpd_bound"] == pytest.approx(final["bpd_bound"])
    assert np.isfinite(final["bpd_bound"]) and (tmp_path / "split" / "samples_0000010.png").exists()


def test_train_bad_config(moons_task, tmp_path):
    with pytest.raises(ValueError, match="ema_decay"):
        train(moons_task, make_config(ema_decay=1.0), tmp_path / "a", verbose=False)
    with pytest.raises(ValueError, match="num_devices"):
        train(moons_task, make_config(num_devices=99), tmp_path / "b", verbose=False)


# ----------------------------------------------------------------------------- sharding
SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    assert jax.device_count() == 8, jax.devices()
    sys.path.insert(0, {tests!r})
    from test_training import make_config
    from dgmjax.data import load_images
    from dgmjax.models import ImageRealNVP
    from dgmjax.tasks import image_flow_task
    from dgmjax.training import load_params, read_metrics, train
    model = ImageRealNVP(image_shape=(8, 8, 1), num_scales=2, num_checkerboard=2,
                         num_channelwise=2, features=8, num_blocks=1)
    task = image_flow_task(model, load_images("digits", "train"), load_images("digits", "test"))
    out = {{}}
    for n in (8, 1):
        cfg = make_config(num_steps=3, num_devices=n, ema_decay=0.0, log_every=1)
        cfg.optimizer.name = "sgd"
        cfg.optimizer.warmup_steps = 0
        final = train(task, cfg, {tmp!r} + f"/run{{n}}", verbose=False)
        params = load_params({tmp!r} + f"/run{{n}}")
        out[n] = dict(final=final, losses=[r["loss"] for r in read_metrics({tmp!r} + f"/run{{n}}", "train")],
                      params=[np.asarray(p).tolist() for p in jax.tree_util.tree_leaves(params)])
    try:
        train(task, make_config(batch_size=12, num_devices=8), {tmp!r} + "/bad", verbose=False)
    except ValueError as e:
        out["error"] = str(e)
    print("RESULT" + json.dumps(out))
""")


def test_sharded_step_equals_single_device_step(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    script = SHARDED_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    eight, one = out["8"], out["1"]
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(eight["params"], one["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert eight["final"]["bpd_bound"] == pytest.approx(one["final"]["bpd_bound"], rel=1e-5)
    assert "divisible by the number of devices" in out["error"]
