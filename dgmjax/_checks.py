"""Input checks shared by dgmjax's public functions.

Every check runs at trace time, before any compute: dtypes, ranks and shapes are
always known, and values are checked whenever the array is concrete (not a
tracer inside `jit`). Each failure is a `ValueError` naming the argument, what it
got and what was expected.

Values that are traced (inside `jit`, `vmap`, `grad`) cannot be read at trace
time. Under `checked_mode()` the value checks that would be skipped become
`jax.experimental.checkify` checks instead, so a function traced in that mode
and wrapped in `checkify.checkify` reports them when it runs (the training
loop's `checked=True` does both).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when the values of `x` can be read now (not a tracer under jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


_CHECKED = contextvars.ContextVar("dgmjax_checked_mode", default=False)


@contextlib.contextmanager
def checked_mode(enabled: bool = True):
    """Within this context, value checks on traced arrays become checkify checks.

    A function traced inside it must be wrapped in `checkify.checkify(...,
    errors=checkify.user_checks)` (or wider); its error then names the
    argument as the ValueError would have::

        with checked_mode():
            err, out = checkify.checkify(jax.jit(f), errors=checkify.user_checks)(x)
        err.throw()

    jit caches traces: a function first traced outside this context keeps
    no checks (pass it a fresh `jax.jit`).
    """
    token = _CHECKED.set(bool(enabled))
    try:
        yield
    finally:
        _CHECKED.reset(token)


def in_checked_mode() -> bool:
    return _CHECKED.get()


def check_values(ok, message: str) -> None:
    """Checks a condition on values: `ok` is a boolean array (all must hold).

    Concrete: a ValueError with `message` when any entry is False. Traced:
    a checkify check under `checked_mode()`, nothing otherwise (the
    shapes and dtypes were checked at trace time).
    """
    if is_concrete(ok):
        if not bool(np.all(np.asarray(ok))):
            raise ValueError(message)
    elif in_checked_mode():
        from jax.experimental import checkify  # noqa: PLC0415 (only in checked mode)

        checkify.check(jnp.all(ok), message.replace("{", "{{").replace("}", "}}"))


def check_num_levels(num_levels, name: str = "num_levels") -> int:
    if isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer)):
        raise ValueError(f"`{name}` must be a Python int >= 2; got {num_levels!r}.")
    if num_levels < 2:
        raise ValueError(f"`{name}` must be >= 2; got {num_levels}.")
    return int(num_levels)


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    return int(value)


def check_positive_float(value, name: str) -> float:
    """A finite Python number > 0 (an int is accepted), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}.")
    return float(value)


def check_integer_levels(x, num_levels: int, name: str = "x"):
    """Checks that `x` holds integer levels in [0, num_levels).

    The dtype is always checked; the range is checked when `x` is concrete.
    """
    num_levels = check_num_levels(num_levels)
    dtype = np.dtype(x.dtype)
    if dtype == np.bool_ or not np.issubdtype(dtype, np.integer):
        raise ValueError(
            f"`{name}` must hold integer levels in [0, {num_levels}) with an integer dtype "
            f"(uint8/int32); got dtype {dtype}. Discrete data stays integer until a loss "
            f"decides how to treat it."
        )
    if is_concrete(x) and np.size(x) > 0:
        arr = np.asarray(x)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= num_levels:
            raise ValueError(
                f"`{name}` must hold levels in [0, {num_levels}); got values in [{lo}, {hi}]."
            )
    return x


def check_event_shape(x, event_shape: Sequence[int], name: str = "x"):
    """Checks that the trailing axes of `x` equal `event_shape`."""
    event_shape = tuple(event_shape)
    k = len(event_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k :]) != event_shape:
        raise ValueError(
            f"`{name}` must have trailing shape {event_shape} (batch axes first); "
            f"got shape {tuple(x.shape)}."
        )
    return x


def check_float(x, name: str):
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise ValueError(f"`{name}` must be floating point; got dtype {x.dtype}.")
    return x


def check_context(context, context_size: int, owner: str):
    """`context` checked against `context_size` (0 = unconditional): a ValueError names what is wrong."""
    if context_size == 0:
        if context is not None:
            raise ValueError(f"`context` was given to an unconditional {owner} (context_size=0).")
        return None
    if context is None:
        raise ValueError(f"this {owner} is conditional (context_size={context_size}); pass `context`.")
    context = jnp.asarray(context)
    if context.ndim < 1 or context.shape[-1] != context_size:
        raise ValueError(f"`context` must have last axis {context_size}; got shape {context.shape}.")
    return context
