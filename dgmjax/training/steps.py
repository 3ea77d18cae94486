"""Train and eval steps from a `loss_fn(key, params, batch) -> (loss, metrics)`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from dgmjax.training.state import TrainState, ema_decay_at

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def make_train_step(loss_fn: LossFn, key: jax.Array):
    """Returns `step(state, batch) -> (state, metrics)`, to jit.

    The step's key is `fold_in(key, state.step)`, so a resumed run draws the
    same randomness as an uninterrupted one. A step whose loss or gradient is
    not finite changes nothing but the step counter when the state skips
    non-finite steps (`TrainState.create`), EMA included; `metrics["skipped"]`
    is 1.0 for it either way.
    """

    def step(state: TrainState, batch):
        k = jax.random.fold_in(key, state.step)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, argnums=1, has_aux=True)(k, state.params, batch)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new_state = state.apply_gradients(grads=grads)
        if state.ema_params is not None:
            d = ema_decay_at(state.step, state.ema_decay)
            new_state = new_state.replace(
                ema_params=optax.incremental_update(new_state.params, state.ema_params, 1.0 - d))
        if state.skip_nonfinite:
            new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old),
                                               new_state, state.replace(step=new_state.step))
        metrics = {"loss": loss, **metrics, "grad_norm": grad_norm,
                   "skipped": 1.0 - finite.astype(jnp.float32)}
        return new_state, metrics

    return step


def make_eval_step(eval_fn: Callable[..., dict[str, jax.Array]]):
    """Returns `step(key, params, batch) -> (sums, count)` of per-example metrics over real rows.

    `eval_fn(key, params, batch)` returns a mapping of per-example values of
    shape (B,); rows where `batch["mask"]` is False (padding) are left out.
    Any other return is a ValueError naming `eval_fn` when the step is traced.
    """

    def step(key, params, batch):
        per_example = eval_fn(key, params, batch)
        size = batch["mask"].shape
        if not isinstance(per_example, Mapping):
            raise ValueError(f"`eval_fn` must return a mapping of names to per-example values of shape "
                             f"{size}; got {type(per_example).__name__}.")
        shapes = {k: tuple(jnp.shape(val)) for k, val in per_example.items()}
        wrong = {k: s for k, s in shapes.items() if s != size}
        if wrong:
            raise ValueError(f"`eval_fn` must return per-example values of shape {size} (one per example of "
                             f"the batch); got shapes {wrong}. Reduce other axes inside eval_fn.")
        sums = {k: jnp.sum(jnp.where(batch["mask"], val, 0.0)) for k, val in per_example.items()}
        return sums, jnp.sum(batch["mask"].astype(jnp.float32))

    return step
