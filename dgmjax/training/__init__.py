"""Training as a library piece: `train(loss_fn, state, batches, ...) -> TrainState`.

optax optimizers (`make_optimizer`), a `TrainState` with EMA and skipping of
non-finite steps, jitted steps, orbax checkpoints with checksums, fallback to
the newest intact one and exact resume (`Checkpointer`, `load_params`), a
checked and locked workdir (`check_workdir`, `WorkdirLock`), a checked mode
for value checks under jit (`checked_mode`), metrics as JSON lines and
TensorBoard events, and data parallelism over a `jax.sharding` Mesh.
"""

from dgmjax._checks import checked_mode
from dgmjax.training.checkpoint import Checkpointer, CheckpointError, load_params
from dgmjax.training.determinism import use_deterministic_ops
from dgmjax.training.loop import Terminated, make_evaluator, train
from dgmjax.training.metrics import MetricWriter, read_metrics
from dgmjax.training.optim import make_optimizer, make_schedule
from dgmjax.training.sharding import batch_sharded, make_mesh, maybe_initialize_distributed, replicated
from dgmjax.training.state import TrainState, ema_decay_at
from dgmjax.training.steps import make_eval_step, make_train_step
from dgmjax.training.workdir import WorkdirInUseError, WorkdirLock, check_workdir

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "MetricWriter",
    "Terminated",
    "TrainState",
    "WorkdirInUseError",
    "WorkdirLock",
    "batch_sharded",
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
    "replicated",
    "train",
    "use_deterministic_ops",
]
