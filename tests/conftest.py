"""Test session setup: a persistent XLA compilation cache shared by the tests' processes.

Many tests (resume, sharding, the main job) compile the same programs in
several runs or subprocesses; the cache compiles each once per session.
"""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="dgmjax-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

# The tests draw random numbers with jax's non-partitionable threefry. Under the default
# (partitionable) one, XLA:CPU compiles every random initializer several times slower (a
# PixelCNN `init` took 10 s to compile instead of 2 s), which dominated the suite's time.
# No test depends on which stream it gets: the ones whose random models could degenerate
# pick or build their models so that they do not (see tests/test_dequantization.py and
# `_idf_with_moving_couplings`), and pass under both. Subprocesses inherit the variable.
os.environ.setdefault("JAX_THREEFRY_PARTITIONABLE", "false")

# Compile time: most of the suite's time is XLA:CPU compiling small programs, and most of that is
# LLVM optimizing the generated machine code. The tests run the same HLO (the same fusions and
# rewrites, hence the same float semantics) with LLVM's optimization level at 0, which cut the
# compile-bound tests' time by about a third and slowed the execution-bound ones (the property
# tests, the MADE fit) by nothing measurable. Only without an accelerator plugin: a GPU or TPU
# run of the suite keeps its backend's defaults. Subprocesses inherit the variable.
def _accelerator_plugin_installed() -> bool:
    from importlib import metadata

    names = {(d.metadata["Name"] or "").lower().replace("_", "-") for d in metadata.distributions()}
    return any(n.startswith(("jax-cuda", "jax-rocm", "libtpu")) for n in names)


_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _flags and not _accelerator_plugin_installed():
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_backend_optimization_level=0".strip()

import jax  # noqa: E402

jax.config.update("jax_threefry_partitionable", os.environ["JAX_THREEFRY_PARTITIONABLE"] == "true")

# Precision: the exactness tests (round trips, log-dets against autodiff Jacobians, resume equal to
# an uninterrupted run) compare float32 results at float32 round-off. GPUs and TPUs run float32
# matmuls in TF32/bf16 passes by default, and GPU reductions and autotuned convolutions are not
# deterministic by default, so the session fixes both: full float32 matmuls, and XLA's
# deterministic GPU kernels (set before any computation starts the backends; subprocesses inherit
# both through the environment). On the CPU both are what happens anyway. The tests that mean
# to run at the backend's default precision say so (`jax.default_matmul_precision("default")`)
# and bound their errors by that precision's unit round-off (tests/test_precision.py).
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
jax.config.update("jax_default_matmul_precision", os.environ["JAX_DEFAULT_MATMUL_PRECISION"])

from dgmjax.training import use_deterministic_ops  # noqa: E402

use_deterministic_ops()

# Property tests (hypothesis): one profile for the suite. Derandomized so CI draws the same cases on
# every run, with no example database written; 1000 cases per family (the reliability issue's
# minimum), no deadline (the first case of each test compiles).
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("dgmjax", max_examples=1000, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("dgmjax")
