"""Optimizers from a config: optax transformations with warmup, decay and clipping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optax

OPTIMIZERS = ("adamw", "adam", "adamax", "sgd")
SCHEDULES = ("cosine", "constant", "linear")


def _get(cfg: Mapping[str, Any], key: str, default):
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def make_schedule(cfg: Mapping[str, Any], num_steps: int) -> optax.Schedule:
    """Linear warmup to `learning_rate`, then cosine/linear decay or constant."""
    lr = float(_get(cfg, "learning_rate", 1e-3))
    warmup = int(_get(cfg, "warmup_steps", 0))
    kind = _get(cfg, "schedule", "cosine")
    end = lr * float(_get(cfg, "end_learning_rate_factor", 0.0))
    if kind not in SCHEDULES:
        raise ValueError(f"`optimizer.schedule` must be one of {SCHEDULES}; got {kind!r}.")
    if lr <= 0:
        raise ValueError(f"`optimizer.learning_rate` must be > 0; got {lr}.")
    warmup = max(0, min(warmup, num_steps - 1))
    if kind == "constant":
        after = optax.constant_schedule(lr)
    elif kind == "cosine":
        after = optax.cosine_decay_schedule(lr, max(num_steps - warmup, 1), alpha=end / lr)
    else:
        after = optax.linear_schedule(lr, end, max(num_steps - warmup, 1))
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def make_optimizer(cfg: Mapping[str, Any], num_steps: int) -> optax.GradientTransformation:
    """Builds `clip_by_global_norm -> {adamw, adam, adamax, sgd}` with the schedule.

    Keys (all optional): name ("adamw"), learning_rate (1e-3), warmup_steps,
    schedule ("cosine"), end_learning_rate_factor (0), weight_decay (1e-5,
    adamw only), grad_clip_norm (1.0; 0 disables), b1 (0.9), b2 (0.999).
    """
    name = _get(cfg, "name", "adamw")
    if name not in OPTIMIZERS:
        raise ValueError(f"`optimizer.name` must be one of {OPTIMIZERS}; got {name!r}.")
    schedule = make_schedule(cfg, num_steps)
    b1, b2 = float(_get(cfg, "b1", 0.9)), float(_get(cfg, "b2", 0.999))
    if name == "adamw":
        opt = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=float(_get(cfg, "weight_decay", 1e-5)))
    elif name == "adam":
        opt = optax.adam(schedule, b1=b1, b2=b2)
    elif name == "adamax":
        opt = optax.adamax(schedule, b1=b1, b2=b2)
    else:
        opt = optax.sgd(schedule, momentum=b1)
    clip = float(_get(cfg, "grad_clip_norm", 1.0))
    if clip > 0:
        return optax.chain(optax.clip_by_global_norm(clip), opt)
    return opt
