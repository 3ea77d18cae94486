"""Shared plumbing of the objectives."""

from __future__ import annotations

from collections.abc import Callable


def as_log_prob(model, name: str) -> Callable:
    """`model` as a function x -> log p(x): a distrax distribution's `log_prob`, or a callable as is."""
    if hasattr(model, "log_prob"):
        return model.log_prob
    if callable(model):
        return model
    raise ValueError(f"`{name}` must be a distribution (with `log_prob`) or a callable x -> log p(x); got "
                     f"{type(model).__name__}.")


def as_distribution(model, name: str, *args):
    """`model` if it is a distribution, else `model(*args)`, which must return one."""
    dist = model if hasattr(model, "log_prob") else (model(*args) if callable(model) else None)
    if dist is None or not hasattr(dist, "log_prob"):
        raise ValueError(f"`{name}` must be a distribution or a callable that returns one; got "
                         f"{type(model).__name__}.")
    return dist
