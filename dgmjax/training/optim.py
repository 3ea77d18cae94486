"""Optimizers: optax transformations with warmup, decay and clipping, from explicit settings."""

from __future__ import annotations

import numpy as np
import optax

from dgmjax import _checks as v

OPTIMIZERS = ("adamw", "adam", "adamax", "sgd")
SCHEDULES = ("cosine", "constant", "linear")


def _unit(value, name: str) -> float:
    """A number in [0, 1) (a decay rate or momentum)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1); got {value!r}.")
    return float(value)


def _nonnegative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0; got {value!r}.")
    return float(value)


def make_schedule(learning_rate: float = 1e-3, *, num_steps: int, warmup_steps: int = 0,
                  schedule: str = "cosine", end_learning_rate_factor: float = 0.0) -> optax.Schedule:
    """Linear warmup from 0 to `learning_rate` over `warmup_steps`, then cosine or linear decay to
    `end_learning_rate_factor * learning_rate` at `num_steps`, or constant.

    `learning_rate` must be finite and > 0 and `end_learning_rate_factor` in
    [0, 1] (a negative rate would climb the loss); a ValueError names the
    setting otherwise.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}; got {schedule!r}.")
    lr = v.check_positive_float(learning_rate, "learning_rate")
    num_steps = v.check_positive_int(num_steps, "num_steps")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) or warmup_steps < 0:
        raise ValueError(f"`warmup_steps` must be an int >= 0; got {warmup_steps!r}.")
    factor = _nonnegative(end_learning_rate_factor, "end_learning_rate_factor")
    if factor > 1:
        raise ValueError(f"`end_learning_rate_factor` must be in [0, 1] (the final rate as a fraction of "
                         f"`learning_rate`); got {end_learning_rate_factor!r}.")
    warmup = min(int(warmup_steps), num_steps - 1)
    end = lr * factor
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

    `weight_decay` (>= 0) applies to adamw only; `b1` (in [0, 1)) is the first
    moment's decay, or sgd's momentum; `b2` (in [0, 1)) the second moment's;
    `grad_clip_norm` None or 0 disables clipping. Every setting is
    range-checked: a ValueError names the one out of range.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"`name` (optimizer) must be one of {OPTIMIZERS}; got {name!r}.")
    b1, b2 = _unit(b1, "b1"), _unit(b2, "b2")
    weight_decay = _nonnegative(weight_decay, "weight_decay")
    if grad_clip_norm is not None and not (isinstance(grad_clip_norm, (int, float, np.integer, np.floating))
                                           and not isinstance(grad_clip_norm, bool) and grad_clip_norm == 0):
        grad_clip_norm = v.check_positive_float(grad_clip_norm, "grad_clip_norm")
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
        return optax.chain(optax.clip_by_global_norm(grad_clip_norm), opt)
    return opt
