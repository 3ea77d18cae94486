"""What the training loop needs from a model + data + objective."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

Batch = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
    """A trainable model paired with its data and objective.

    Attributes:
      name: a short description for logs.
      init_fn: `(key, batch) -> params` (the variables dict); may use the batch
        for data-dependent initialization.
      loss_fn: `(params, batch, key) -> (loss, metrics)`, scalars, averaged
        over the batch.
      eval_fn: `(params, batch, key) -> {name: per-example values (B,)}`.
      make_train_batches: `(batch_size, key, sharding) -> batches`, where
        `batches(step)` is the batch of a global step (see `dgmjax.data`).
      test_arrays: the evaluation split as host arrays with a leading example axis.
      save_samples: `(params, key, path_prefix) -> [written paths]`, or None.
      headline: `(metrics) -> str`, one human-readable line of final results.
    """

    name: str
    init_fn: Callable[[jax.Array, Batch], Any]
    loss_fn: Callable[[Any, Batch, jax.Array], tuple[jax.Array, dict]]
    eval_fn: Callable[[Any, Batch, jax.Array], dict]
    make_train_batches: Callable[[int, jax.Array, Any], Callable[[int], dict]]
    test_arrays: Mapping[str, np.ndarray]
    save_samples: Callable[[Any, jax.Array, Path], list[Path]] | None = None
    headline: Callable[[dict], str] = lambda m: ", ".join(f"{k}={v:.4f}" for k, v in m.items())
