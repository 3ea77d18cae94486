"""Training: optax optimizers, train state with EMA, jitted steps, orbax checkpoints,
metrics (JSON lines + TensorBoard), plots, data-parallel sharding, and the loop."""

from dgmjax.training.checkpoint import Checkpointer, load_params
from dgmjax.training.config import default_config
from dgmjax.training.loop import evaluate, train, train_and_evaluate
from dgmjax.training.metrics import MetricWriter, read_metrics
from dgmjax.training.optim import make_optimizer, make_schedule
from dgmjax.training.sharding import batch_sharded, make_mesh, replicated
from dgmjax.training.state import TrainState
from dgmjax.training.steps import make_eval_step, make_train_step

__all__ = [
    "Checkpointer",
    "MetricWriter",
    "TrainState",
    "batch_sharded",
    "default_config",
    "evaluate",
    "load_params",
    "make_eval_step",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "read_metrics",
    "replicated",
    "train",
    "train_and_evaluate",
]
