"""Jitted train and eval steps built from a `loss_fn(params, batch, key) -> (loss, metrics)`."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from dgmjax.training.state import TrainState

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def ema_decay_at(step, decay: float):
    """EMA decay warmed up as min(decay, (1 + t) / (10 + t)), so early averages are not stale."""
    t = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + t) / (10.0 + t))


def make_train_step(loss_fn: LossFn, base_key: jax.Array, *, ema_decay: float = 0.0):
    """Returns `step(state, batch) -> (state, metrics)` (not jitted; see `jit_train_step`).

    The step's key is `fold_in(base_key, state.step)`, so a resumed run draws the
    same randomness as an uninterrupted one.

    A step whose loss or gradient is not finite is skipped: the step counter
    advances, but the parameters, optimizer state and EMA stay as they were
    (clipping an infinite gradient would otherwise turn every parameter into
    NaN). `metrics["skipped"]` is 1.0 for such a step; the training loop
    reports them and stops if a whole logging window is skipped.
    """

    def step(state: TrainState, batch):
        key = jax.random.fold_in(base_key, state.step)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new_state = state.apply_gradients(grads=grads)
        if state.ema_params is not None:
            d = ema_decay_at(state.step, ema_decay)
            new_state = new_state.replace(
                ema_params=optax.incremental_update(new_state.params, state.ema_params, 1.0 - d))
        new_state = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old),
                                           new_state, state.replace(step=new_state.step))
        metrics = {"loss": loss, **metrics, "grad_norm": grad_norm,
                   "skipped": 1.0 - finite.astype(jnp.float32)}
        return new_state, metrics

    return step


def make_eval_step(eval_fn: Callable[..., dict[str, jax.Array]]):
    """Returns `step(params, batch, key) -> (sums, count)` of per-example metrics over real rows.

    `eval_fn(params, batch, key)` returns per-example values of shape (B,);
    rows where `batch["mask"]` is False (padding) are left out.
    """

    def step(params, batch, key):
        per_example = eval_fn(params, batch, key)
        mask = batch["mask"].astype(jnp.float32)
        sums = {k: jnp.sum(jnp.where(batch["mask"], val, 0.0)) for k, val in per_example.items()}
        return sums, jnp.sum(mask)

    return step
