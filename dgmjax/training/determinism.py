"""Bit-for-bit reproducible runs on accelerators."""

from __future__ import annotations

import os

DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"


def _backends_initialized() -> bool:
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "backends_are_initialized", lambda: True)())


def use_deterministic_ops() -> None:
    """Makes XLA's GPU programs deterministic: the same inputs give the same bits on every run.

    On a GPU, reductions with atomics and autotuned convolution algorithms
    vary from run to run, so two runs (or a resumed run and the uninterrupted
    one) drift apart in the last bits. This adds `--xla_gpu_deterministic_ops=true`
    to `XLA_FLAGS`, which makes XLA choose deterministic kernels (at some cost
    in speed) so that a resumed run equals the uninterrupted one there as it does
    on the CPU. CPU programs are deterministic already, and the flag changes
    nothing on them.

    Call it before JAX runs its first computation (XLA reads its flags when
    the backend starts). Raises RuntimeError when the backends have already
    started without the flag.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if DETERMINISTIC_FLAG in flags.split():
        return
    if _backends_initialized():
        raise RuntimeError(
            "use_deterministic_ops() must run before JAX's first computation: the backends have "
            f"started without {DETERMINISTIC_FLAG}. Call it at the top of the script, or set "
            f"XLA_FLAGS={DETERMINISTIC_FLAG} in the environment.")
    os.environ["XLA_FLAGS"] = f"{flags} {DETERMINISTIC_FLAG}".strip()
