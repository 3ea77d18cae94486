"""Tasks: the units and terms of each objective against independent computations."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dgmjax.data import load_images
from dgmjax.models import MAF
from dgmjax.tasks import build_task, logit_space_flow_task
from dgmjax.training.config import load_config


def test_logit_space_task_terms_match_a_manual_computation():
    train, test = load_images("digits", "train"), load_images("digits", "test")
    model = MAF(event_size=64, num_layers=2, hidden_sizes=(32,))
    task = logit_space_flow_task(model, train, test, logit_alpha=1e-6)
    batch = {"image": jnp.asarray(test.images[:8]), "mask": jnp.ones(8, bool)}
    key = jax.random.PRNGKey(3)
    params = jax.jit(task.init_fn)(key, batch)
    out = jax.jit(task.eval_fn)(params, batch, key)

    # independent: the same noise, then logit(a + (1 - 2a) x) and its derivative by hand
    u = jax.random.uniform(key, batch["image"].shape)
    x = (np.asarray(batch["image"], np.float64) + np.asarray(u, np.float64)) / 17
    x = np.minimum(x, np.nextafter(np.float32(1), np.float32(0)))
    a = 1e-6
    s = a + (1 - 2 * a) * x
    t = (np.log(s) - np.log1p(-s)).reshape(8, 64)
    log_dt_dx = (np.log(1 - 2 * a) - np.log(s) - np.log1p(-s)).reshape(8, 64).sum(-1)
    log_p_t = np.asarray(model.apply(params, jnp.asarray(t, jnp.float32)), np.float64)
    np.testing.assert_allclose(out["logit_ll_nats"], log_p_t, rtol=1e-4)
    bound = log_p_t + log_dt_dx - 64 * math.log(17)
    np.testing.assert_allclose(out["nll_bound_nats"], -bound, rtol=1e-4)
    np.testing.assert_allclose(out["bpd_bound"], -bound / (64 * math.log(2)), rtol=1e-4)
    loss, metrics = task.loss_fn(params, batch, key)
    np.testing.assert_allclose(loss, np.mean(-bound / (64 * math.log(2))), rtol=1e-4)


@pytest.mark.parametrize("name", ["maf", "iaf", "realnvp"])
def test_moons_config_builds_every_vector_flow(name):
    config = load_config(f"experiments/configs/moons.py:{name}")
    config.model.num_layers = 2
    config.model.hidden_sizes = (8,)
    config.data.num_test = 16
    task = build_task(config)
    batch = task.make_train_batches(4, jax.random.PRNGKey(0), None)(0)
    params = jax.jit(task.init_fn)(jax.random.PRNGKey(1), batch)
    loss, metrics = jax.jit(task.loss_fn)(params, batch, jax.random.PRNGKey(2))
    # at init every flow is a permutation of the identity: NLL of a standard normal
    expected = -np.mean(jax.scipy.stats.norm.logpdf(batch["x"]).sum(-1))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_vector_model_on_images_uses_logit_space_and_bad_model_kind():
    config = load_config("experiments/configs/maf_mnist.py")
    config.data.name = "digits"
    config.data.train_split = "train"
    config.model.num_layers = 1
    config.model.hidden_sizes = (8,)
    task = build_task(config)
    assert "logit space" in task.name
    bad = ml_collections.ConfigDict(config.to_dict())
    bad.data.name = "moons"
    bad.model = ml_collections.ConfigDict({"name": "glow"})
    with pytest.raises(ValueError, match="needs a vector model"):
        build_task(bad)
    with pytest.raises(ValueError, match="split"):
        load_images("digits", "train[:100]")


@pytest.mark.parametrize("config_path, overrides", [
    ("experiments/configs/dequantization_mnist.py:variational",
     {"model.features": 4, "model.num_checkerboard": 1, "model.num_channelwise": 1, "model.num_scales": 2,
      "dequantizer.num_layers": 1, "dequantizer.features": 4, "objective.eval_importance_samples": 3}),
    ("experiments/configs/pixelcnn_mnist.py", {"model.features": 4, "model.num_blocks": 1}),
    ("experiments/configs/idf.py", {"model.features": 4, "model.num_layers": 1}),
])
def test_issue4_tasks_build_train_and_evaluate_on_digits(config_path, overrides):
    config = load_config(config_path)
    config.data.name = "digits"
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        config[section][key] = value
    task = build_task(config)
    batch = task.make_train_batches(8, jax.random.PRNGKey(0), None)(0)
    params = jax.jit(task.init_fn)(jax.random.PRNGKey(1), batch)
    loss, grads = jax.jit(jax.value_and_grad(lambda p: task.loss_fn(p, batch, jax.random.PRNGKey(2))[0]))(
        params)
    assert np.isfinite(loss) and 0 < loss < 20
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    batch["mask"] = jnp.ones(8, bool)
    out = jax.jit(task.eval_fn)(params, batch, jax.random.PRNGKey(3))
    for name, values in out.items():
        assert values.shape == (8,) and np.all(np.isfinite(values)), name
    if "bpd_iw" in out:  # the IW estimate is tighter than the one-sample bound on average
        assert float(out["bpd_iw"].mean()) < float(out["bpd_bound"].mean()) + 0.05
