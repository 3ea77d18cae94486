"""Optimizers: optax transformations with warmup, decay and clipping, from explicit settings."""

from __future__ import annotations

import optax

from dgmjax import _checks as v

OPTIMIZERS = ("adamw", "adam", "adamax", "sgd")
SCHEDULES = ("cosine", "constant", "linear")


def make_schedule(learning_rate: float = 1e-3, *, num_steps: int, warmup_steps: int = 0,
                  schedule: str = "cosine", end_learning_rate_factor: float = 0.0) -> optax.Schedule:
    """Linear warmup from 0 to `learning_rate` over `warmup_steps`, then cosine or linear decay to
    `end_learning_rate_factor * learning_rate` at `num_steps`, or constant."""
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}; got {schedule!r}.")
    lr = float(learning_rate)
    if not lr > 0:
        raise ValueError(f"`learning_rate` must be > 0; got {learning_rate!r}.")
    num_steps = v.check_positive_int(num_steps, "num_steps")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"`warmup_steps` must be an int >= 0; got {warmup_steps!r}.")
    warmup = min(warmup_steps, num_steps - 1)
    end = lr * float(end_learning_rate_factor)
    if schedule == "cosine" and warmup > 0:
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, num_steps, end_value=end)
    if schedule == "cosine":
        return optax.cosine_decay_schedule(lr, num_steps, alpha=end / lr)
    after = optax.constant_schedule(lr) if schedule == "constant" else \
        optax.linear_schedule(lr, end, max(num_steps - warmup, 1))
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def make_optimizer(learning_rate: float = 1e-3, *, num_steps: int, name: str = "adamw",
                   warmup_steps: int = 0, schedule: str = "cosine", end_learning_rate_factor: float = 0.0,
                   weight_decay: float = 1e-5, grad_clip_norm: float | None = None, b1: float = 0.9,
                   b2: float = 0.999) -> optax.GradientTransformation:
    """`clip_by_global_norm -> {adamw, adam, adamax, sgd}` with `make_schedule`'s learning rate.

    `weight_decay` applies to adamw only; `b1` is sgd's momentum;
    `grad_clip_norm` None or 0 disables clipping.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"`name` (optimizer) must be one of {OPTIMIZERS}; got {name!r}.")
    lr = make_schedule(learning_rate, num_steps=num_steps, warmup_steps=warmup_steps, schedule=schedule,
                       end_learning_rate_factor=end_learning_rate_factor)
    if name == "adamw":
        opt = optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay)
    elif name == "adam":
        opt = optax.adam(lr, b1=b1, b2=b2)
    elif name == "adamax":
        opt = optax.adamax(lr, b1=b1, b2=b2)
    else:
        opt = optax.sgd(lr, momentum=b1)
    if grad_clip_norm:
        if not grad_clip_norm > 0:
            raise ValueError(f"`grad_clip_norm` must be > 0 (or None to disable); got {grad_clip_norm!r}.")
        return optax.chain(optax.clip_by_global_norm(grad_clip_norm), opt)
    return opt
