"""float64 mode (JAX_ENABLE_X64=1): the flow models take float32 and float64 input end to end.

One subprocess with JAX_ENABLE_X64=1 (the mode is process-wide): log_prob and sample of MAF
(ActNorm; its LayerStack scan is RealNVP's too), IAF, ImageRealNVP, Glow and IDF on small
shapes, with float32 input (what `uniform_noise` returns) and float64 input, and one jitted train step
of a MAF through `dgmjax.training.make_train_step`. Before the fix, a float32 input met float64
parameters in a `lax.scan` carry and raised a TypeError.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    assert jax.config.jax_enable_x64
    from dgmjax.models import MAF, IAF, ImageRealNVP, Glow, IntegerDiscreteFlow
    from dgmjax.training import TrainState, make_train_step

    key = jax.random.PRNGKey(0)
    rng = np.random.default_rng(0)
    vec = rng.uniform(0.05, 0.95, (3, 3))
    img = rng.uniform(0.05, 0.95, (2, 4, 4, 1))
    models = [
        ("MAF", MAF(3, num_layers=2, hidden_sizes=(8,), actnorm=True), vec),
        ("IAF", IAF(3, num_layers=1, hidden_sizes=(8,)), vec),
        ("ImageRealNVP", ImageRealNVP((4, 4, 1), num_scales=1, num_checkerboard=1, features=4,
                                      num_blocks=0), img),
        ("Glow", Glow((4, 4, 1), num_scales=1, num_steps=2, features=4, num_blocks=0), img),
    ]
    for name, model, x in models:
        variables = jax.jit(model.init)(key, jnp.asarray(x, jnp.float32))  # float32 data, as dequantized
        for dtype in (np.float32, np.float64):
            xx = jnp.asarray(x.astype(dtype))
            lp = jax.jit(model.apply)(variables, xx)
            s = jax.jit(lambda v, k: model.apply(v, k, 2, method=model.sample))(variables, key)
            assert lp.shape == x.shape[:1] and np.all(np.isfinite(lp)), (name, dtype, lp)
            assert s.shape == (2,) + x.shape[1:] and np.all(np.isfinite(s)), (name, dtype)
            print(name, np.dtype(dtype).name, "ok", lp.dtype)
    idf = IntegerDiscreteFlow((4, 4, 1), 16, num_scales=1, num_layers=1, features=4, num_blocks=0,
                              num_mixtures=2)
    levels = jnp.asarray(rng.integers(0, 16, (2, 4, 4, 1)), jnp.int32)
    variables = jax.jit(idf.init)(key, levels)
    assert np.all(np.isfinite(jax.jit(idf.apply)(variables, levels)))
    assert jax.jit(lambda v: idf.apply(v, key, 2, method=idf.sample))(variables).shape == (2, 4, 4, 1)
    print("IDF ok")

    maf = MAF(3, num_layers=2, hidden_sizes=(8,), actnorm=True)
    batch = {"x": jnp.asarray(vec, jnp.float32)}
    state = TrainState.create(params=maf.init(key, batch["x"])["params"], tx=optax.adam(1e-3))
    loss_fn = lambda k, p, b: (-jnp.mean(maf.apply({"params": p}, b["x"])), {})
    state, metrics = jax.jit(make_train_step(loss_fn, key))(state, batch)
    assert np.isfinite(float(metrics["loss"])) and float(metrics["skipped"]) == 0.0, metrics
    print("train step ok")
""")


def test_flow_models_run_in_float64_mode_with_float32_and_float64_input():
    env = dict(os.environ, JAX_ENABLE_X64="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" ok") == 10, proc.stdout
