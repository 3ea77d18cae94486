"""The application's task wiring: each config builds, trains and evaluates, in the right units."""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from main import load_config
from tasks import build_task, logit_space_task, make_model

from dgmjax.data import load_images
from dgmjax.models import MAF

CONFIGS = "experiments/configs/"


def test_logit_space_task_terms_match_a_manual_computation():
    train, test = load_images("digits", "train"), load_images("digits", "test")
    model = MAF(event_size=64, num_layers=2, hidden_sizes=(32,))
    task = logit_space_task(model, train, test, alpha=1e-6)
    batch = {"image": jnp.asarray(test.images[:8]), "mask": jnp.ones(8, bool)}
    key = jax.random.PRNGKey(3)
    params = jax.jit(task.init)(key, batch)
    out = jax.jit(task.eval_fn)(key, params, batch)
    # independent: the same noise, then logit(a + (1 - 2a) x) and its derivative by hand
    u = jax.random.uniform(key, batch["image"].shape)
    x = (np.asarray(batch["image"], np.float64) + np.asarray(u, np.float64)) / 17
    a = 1e-6
    s = a + (1 - 2 * a) * x
    t = (np.log(s) - np.log1p(-s)).reshape(8, 64)
    log_dt_dx = (np.log(1 - 2 * a) - np.log(s) - np.log1p(-s)).reshape(8, 64).sum(-1)
    log_p_t = np.asarray(model.apply(params, jnp.asarray(t, jnp.float32)), np.float64)
    np.testing.assert_allclose(out["logit_ll_nats"], log_p_t, rtol=1e-4)
    bound = log_p_t + log_dt_dx - 64 * math.log(17)
    np.testing.assert_allclose(out["nll_bound_nats"], -bound, rtol=1e-4)
    np.testing.assert_allclose(out["bpd_bound"], -bound / (64 * math.log(2)), rtol=1e-4)
    loss, _ = task.loss_fn(key, params, batch)
    np.testing.assert_allclose(loss, np.mean(-bound / (64 * math.log(2))), rtol=1e-4)


@pytest.mark.parametrize("name", ["maf", "iaf", "realnvp"])
def test_moons_config_builds_every_vector_flow(name):
    config = load_config(f"{CONFIGS}moons.py:{name}")
    config.model.num_layers = 2
    config.model.hidden_sizes = (8,)
    config.data.num_test = 16
    task = build_task(config)
    batch = task.make_batches(4, jax.random.PRNGKey(0), None)(0)
    params = jax.jit(task.init)(jax.random.PRNGKey(1), batch)
    loss, _ = jax.jit(task.loss_fn)(jax.random.PRNGKey(2), params, batch)
    # at init every flow is a permutation of the identity: NLL of a standard normal
    np.testing.assert_allclose(loss, -np.mean(jax.scipy.stats.norm.logpdf(batch["x"]).sum(-1)), rtol=1e-5)


def test_vector_model_on_images_uses_logit_space_and_bad_model_kind():
    config = load_config(f"{CONFIGS}maf_mnist.py")
    config.data.name = "digits"
    config.data.train_split = "train"
    config.model.num_layers = 1
    config.model.hidden_sizes = (8,)
    assert "logit space" in build_task(config).name
    config.data.name = "moons"
    config.model = load_config(f"{CONFIGS}glow_mnist.py").model
    with pytest.raises(ValueError, match="needs a vector model"):
        build_task(config)
    config.model.name = "glwo"
    with pytest.raises(ValueError, match="model.name"):
        build_task(config)


def test_glow_mnist_variants_change_only_what_they_name():
    base = load_config(f"{CONFIGS}glow_mnist.py").to_dict()
    assert base["model"]["conditioner"] == "residual" and base["model"]["logit_alpha"] == 0.05
    for variant, changed in (("logit", {}), ("pixels", {"logit_alpha": None}),
                             ("gated", {"conditioner": "gated"})):
        config = load_config(f"{CONFIGS}glow_mnist.py:{variant}").to_dict()
        assert config == {**base, "model": {**base["model"], **changed}}, variant
    with pytest.raises(ValueError, match=r"glow_mnist.py's argument must be one of .*'gated'.*; got 'gate'"):
        load_config(f"{CONFIGS}glow_mnist.py:gate")


@pytest.mark.parametrize("config_path, overrides", [
    ("dequantization_mnist.py:variational",
     {"model.features": 4, "model.num_checkerboard": 1, "model.num_channelwise": 1, "model.num_scales": 2,
      "dequantizer.num_layers": 1, "dequantizer.features": 4, "objective.eval_importance_samples": 3}),
    ("glow_mnist.py", {"model.features": 4, "model.num_steps": 1}),
    ("pixelcnn_mnist.py", {"model.features": 4, "model.num_blocks": 1}),
    ("idf.py", {"model.features": 4, "model.num_layers": 1}),
    ("vae_binarized_mnist.py:maf_iaf", {"model.hidden_sizes": (16,), "model.prior_flow_hidden": (8,),
                                        "model.posterior_flow_hidden": (8,),
                                        "objective.eval_iwae_samples": 3}),
])
def test_tasks_build_train_and_evaluate_on_digits(config_path, overrides):
    config = load_config(CONFIGS + config_path)
    config.data.name = "digits"
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        config[section][key] = value
    if config.model.name == "vae":
        config.model.decoder = "categorical"
    task = build_task(config)
    batch = task.make_batches(8, jax.random.PRNGKey(0), None)(0)
    params = jax.jit(task.init)(jax.random.PRNGKey(1), batch)
    loss_at = lambda p: task.loss_fn(jax.random.PRNGKey(2), p, batch)[0]
    loss, grads = jax.jit(jax.value_and_grad(loss_at))(params)
    assert np.isfinite(loss) and 0 < loss < 500
    chex.assert_tree_all_finite(grads)
    batch["mask"] = jnp.ones(8, bool)
    out = jax.jit(task.eval_fn)(jax.random.PRNGKey(3), params, batch)
    for name, values in out.items():
        assert values.shape == (8,) and np.all(np.isfinite(values)), name
    if "bpd_iw" in out:  # the IW estimate is tighter than the one-sample bound on average
        assert float(out["bpd_iw"].mean()) < float(out["bpd_bound"].mean()) + 0.05
    if "iwae" in out:
        assert float(out["iwae"].mean()) > float(out["elbo"].mean()) - 1.0


def test_compute_dtype_reaches_the_flows_and_is_refused_elsewhere():
    config = load_config(CONFIGS + "default.py")
    config.compute_dtype = "bfloat16"
    assert build_task(config).model.compute_dtype == jnp.bfloat16  # the name mapped to the dtype
    config.compute_dtype = "float32"
    assert build_task(config).model.compute_dtype is None  # float32: no casting at all
    for path in ("pixelcnn_binarized_mnist.py", "vae_2d.py:moons"):
        config = load_config(CONFIGS + path)
        config.data.name = "digits" if "pixelcnn" in path else config.data.name
        config.compute_dtype = "bfloat16"
        with pytest.raises(ValueError, match="computes in float32 only"):
            build_task(config)


def test_config_names_map_to_the_objects_the_models_take():
    """The configs name activations, scale functions and conditioner blocks; the models get the
    functions and classes (the tables in experiments/tasks.py), and an unknown name is refused
    naming its config key."""
    from dgmjax.bijectors import sigmoid_scale, tanh_scale
    from dgmjax.nn import GatedResidualBlock, ResidualBlock, concat_elu

    config = load_config(CONFIGS + "default.py")
    model = build_task(config).model
    assert model.activation is nn.gelu and model.block is ResidualBlock and model.scale_fn is tanh_scale
    config.model.conditioner, config.model.scale_fn = "gated", "sigmoid"
    model = build_task(config).model
    assert model.block is GatedResidualBlock and model.activation is concat_elu
    assert model.scale_fn is sigmoid_scale
    scale = make_model("maf", {"scale_fn": "tanh", "scale_bound": 3.0}, event_size=4).scale_fn
    assert scale.func is tanh_scale and scale.keywords == {"bound": 3.0}
    for key, value in (("activation", "mish"), ("scale_fn", "exp"), ("conditioner", "dense")):
        config = load_config(CONFIGS + "default.py")
        config.model[key] = value
        with pytest.raises(ValueError, match=rf"`config.model.{key}` must be one of"):
            build_task(config)
