"""Data parallelism with `jax.sharding`: a 1-D Mesh over the batch axis."""

from __future__ import annotations

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A Mesh named ("batch",) over all devices (all processes), or the first `num_devices`."""
    devices = jax.devices()
    if num_devices:
        if jax.process_count() > 1 and num_devices != len(devices):
            raise ValueError(
                f"`num_devices` must be 0 (all) in a multi-process run; got {num_devices}."
            )
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"`num_devices` must be in [1, {len(devices)}]; got {num_devices}.")
        devices = devices[:num_devices]
    # jax.make_mesh orders the devices for the physical topology; Auto axes keep the sharding
    # implicit (jit places and propagates it), as the train step expects
    return jax.make_mesh((len(devices),), (BATCH_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """A sharding that puts a full copy of an array on every device of `mesh` (parameters, state)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """A sharding that splits an array's leading (batch) axis over the devices of `mesh`."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def maybe_initialize_distributed(enabled: bool) -> None:
    """Calls `jax.distributed.initialize()` once for multi-host runs (TPU pods, SLURM, ...)."""
    if enabled and not getattr(maybe_initialize_distributed, "_done", False):
        jax.distributed.initialize()
        maybe_initialize_distributed._done = True
