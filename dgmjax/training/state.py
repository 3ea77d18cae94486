"""The train state: flax's TrainState with an EMA of the parameters and skipping of non-finite steps."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
    """`flax.training.train_state.TrainState` with an optional EMA of the parameters.

    `params` is any pytree (a Flax variables dict, an Equinox module's arrays,
    ...); with Flax it holds the model's whole variables dict, so
    `model.apply(state.params, ...)` works as is. `ema_params` is None when
    EMA is off (`ema_decay` 0).
    """

    ema_params: Any = None
    ema_decay: float = flax.struct.field(pytree_node=False, default=0.0)
    skip_nonfinite: bool = flax.struct.field(pytree_node=False, default=True)

    @classmethod
    def create(cls, *, params, tx: optax.GradientTransformation, ema_decay: float = 0.0,
               skip_nonfinite: bool = True, apply_fn=None, **kwargs):
        """A state at step 0.

        Args:
          params: the model's parameters (any pytree of arrays).
          tx: the optimizer (e.g. `dgmjax.training.make_optimizer`).
          ema_decay: keep an exponential moving average of the parameters
            with this decay (0 disables; see `ema_decay_at` for its warm-up).
          skip_nonfinite: a step whose loss or gradient is not finite leaves
            the parameters, optimizer state and EMA as they were (clipping an
            infinite gradient would otherwise turn every parameter into NaN).
            The skip is an elementwise select that fuses into the update;
            `optax.apply_if_finite` does the same behind a `lax.cond`, which
            keeps the update from fusing and made a flow's step 1.3-1.5x
            slower on CPU.
        """
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"`ema_decay` must be in [0, 1) (0 disables EMA); got {ema_decay!r}.")
        # The EMA starts as a copy, not the same buffers: the train step donates its state on
        # accelerators, and one buffer cannot be donated twice.
        ema_params = jax.tree_util.tree_map(jnp.copy, params) if ema_decay > 0 else None
        return cls(step=0, apply_fn=apply_fn, params=params, tx=tx, opt_state=tx.init(params),
                   ema_params=ema_params, ema_decay=float(ema_decay), skip_nonfinite=bool(skip_nonfinite),
                   **kwargs)

    def apply_gradients(self, *, grads, **kwargs):
        """One optimizer update: step + 1, params and opt_state updated from `grads`."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            opt_state=opt_state, **kwargs)

    def eval_params(self):
        """The parameters to evaluate and sample with: the EMA when kept."""
        return self.params if self.ema_params is None else self.ema_params


def ema_decay_at(step, decay: float):
    """EMA decay warmed up as min(decay, (1 + t) / (10 + t)), so early averages are not stale."""
    t = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + t) / (10.0 + t))
