"""Training as a library piece: `train(loss_fn, state, batches, ...) -> TrainState`.

optax optimizers (`make_optimizer`), a `TrainState` with EMA and skipping of
non-finite steps, jitted steps, orbax checkpoints with checksums, fallback to
the newest intact one, exact resume on any number of devices and a refusal to
resume another run's or another model's checkpoints (`Checkpointer`,
`load_params`, `read_run_info`), a checked and locked workdir
(`check_workdir`, `WorkdirLock`), stop signals that end a run cleanly, a checked mode
for value checks under jit (`checked_mode`), metrics as JSON lines and
TensorBoard events, and data parallelism over a `jax.sharding` Mesh.
"""

from dgmjax._checks import checked_mode
from dgmjax.training.checkpoint import (
    Checkpointer,
    CheckpointError,
    RunMismatchError,
    StateMismatchError,
    check_same_run,
    load_params,
    read_run_info,
)
from dgmjax.training.determinism import use_deterministic_ops
from dgmjax.training.loop import Terminated, make_evaluator, train
from dgmjax.training.metrics import MetricWriter, read_metrics
from dgmjax.training.optim import make_optimizer, make_schedule
from dgmjax.training.sharding import batch_sharded, make_mesh, maybe_initialize_distributed, replicated
from dgmjax.training.state import TrainState, ema_decay_at
from dgmjax.training.steps import make_eval_step, make_train_step
from dgmjax.training.workdir import WorkdirInUseError, WorkdirLock, WorkdirRemovedError, check_workdir

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "MetricWriter",
    "RunMismatchError",
    "StateMismatchError",
    "Terminated",
    "TrainState",
    "WorkdirInUseError",
    "WorkdirLock",
    "WorkdirRemovedError",
    "batch_sharded",
    "check_same_run",
    "check_workdir",
    "checked_mode",
    "ema_decay_at",
    "load_params",
    "make_eval_step",
    "make_evaluator",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "maybe_initialize_distributed",
    "read_metrics",
    "read_run_info",
    "replicated",
    "train",
    "use_deterministic_ops",
]
