"""The one-GPU jobs: each is its CPU config with only sizes and schedule changed, and builds;
the FLOP count behind their wall-time estimates agrees with hand counts."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from configs.gpu import JOBS
from main import load_config
from tasks import make_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "benchmarks"))
from gpu_configs import count_flops  # noqa: E402

CONFIGS = "experiments/configs/"
CPU_CONFIG = {"realnvp_mnist": "mnist.py", "realnvp_mnist_variational": "mnist.py",
              "glow_mnist": "glow_mnist.py", "glow_mnist_variational": "glow_mnist.py",
              "pixelcnn_mnist": "pixelcnn_mnist.py", "maf_mnist": "maf_mnist.py"}
SIZES = {"model.features", "model.num_steps", "model.num_blocks", "dequantizer.features",
         "dequantizer.num_blocks", "objective.dequantization", "train.batch_size", "train.num_steps",
         "train.eval_every", "train.eval_batch_size", "train.checkpoint_every", "train.log_every",
         "train.sample_every", "optimizer.warmup_steps"}


def flat(config, prefix=""):
    out = {}
    for key, value in config.items():
        if hasattr(value, "items"):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("job", JOBS)
def test_gpu_job_changes_only_sizes_and_schedule_and_builds(job):
    gpu = flat(load_config(f"{CONFIGS}gpu.py:{job}"))
    cpu_path = CPU_CONFIG.get(job, f"vae_binarized_mnist.py:{job[len('vae_'):]}")
    cpu = flat(load_config(CONFIGS + cpu_path))
    assert set(gpu) == set(cpu)  # no new keys, none lost: main.py and the CPU config read the same ones
    changed = {k for k in gpu if gpu[k] != cpu[k]}
    assert changed <= SIZES, changed - SIZES
    assert gpu["train.num_steps"] > cpu["train.num_steps"]
    model = dict(load_config(f"{CONFIGS}gpu.py:{job}").model)
    name = model.pop("name")
    shape = {"vae": dict(data_shape=(28, 28, 1), num_levels=2), "pixelcnn": dict(image_shape=(28, 28, 1),
                                                                               num_levels=256),
             "maf": dict(event_size=784)}.get(name, dict(image_shape=(28, 28, 1)))
    make_model(name, model, **shape)  # rejects keys the model lacks


def test_unknown_gpu_job_is_named():
    with pytest.raises(ValueError, match="gpu.py's argument must be one of .* got 'glwo_mnist'"):
        load_config(f"{CONFIGS}gpu.py:glwo_mnist")


def test_count_flops_matches_hand_counts_through_scan_and_grad():
    x = jnp.ones((4, 6, 6, 3))
    kernel = jnp.ones((3, 3, 3, 5))
    w = jnp.ones((5, 5))

    def f(x, kernel, w):
        y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), y, None, length=7)[0]
        return y.sum()

    conv = 2 * (4 * 6 * 6 * 5) * (3 * 3 * 3)
    dot = 2 * (4 * 6 * 6 * 5) * 5
    assert count_flops(jax.make_jaxpr(f)(x, kernel, w).jaxpr) == conv + 7 * dot
    # the gradient: each product twice more (input and weight gradients) of the same size
    grads = jax.make_jaxpr(jax.grad(f, argnums=(0, 1, 2)))(x, kernel, w).jaxpr
    assert count_flops(grads) == 3 * (conv + 7 * dot)
