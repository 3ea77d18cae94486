"""The train state: flax's TrainState plus an optional EMA of the parameters."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
    """`flax.training.train_state.TrainState` with `ema_params` (None when EMA is off).

    `params` holds the model's whole variables dict (`{"params": ...}`), so
    `model.apply(state.params, ...)` works as is.
    """

    ema_params: Any = None

    @classmethod
    def create(cls, *, params, tx: optax.GradientTransformation, ema: bool = False,
               apply_fn=None, **kwargs):
        # The EMA starts as a copy, not the same buffers: the train step donates its state,
        # and one buffer cannot be donated twice.
        ema_params = jax.tree_util.tree_map(jnp.copy, params) if ema else None
        return super().create(apply_fn=apply_fn, params=params, tx=tx, ema_params=ema_params,
                              **kwargs)

    def eval_params(self):
        """The parameters to evaluate and sample with: the EMA when kept."""
        return self.params if self.ema_params is None else self.ema_params
