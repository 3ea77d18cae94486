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


def _dtype_of(x) -> np.dtype:
    """The dtype of an array, or of a Python number / list read as an array."""
    return np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype


def check_real(x, name: str):
    """Refuses complex `x` (an array, Python number or list): dgmjax reads real numbers only, and
    a cast would drop the imaginary part."""
    dtype = _dtype_of(x)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"`{name}` must be real; got dtype {dtype}.")
    return x


def is_float_dtype(dtype) -> bool:
    """True for real floating-point dtypes, the low-precision ones (bfloat16, float16) included
    (numpy does not count ml_dtypes' bfloat16 as `np.floating`)."""
    return bool(jnp.issubdtype(dtype, jnp.floating))


def upcast_low_precision(x):
    """`x` cast to float32 when its dtype is a float narrower than float32 (float16, bfloat16);
    anything else unchanged. The transforms and log-dets of a flow compute in float32 or wider
    (docs/DESIGN.md, precision): the bijectors that read data call this on their input."""
    if hasattr(x, "dtype") and is_float_dtype(x.dtype) and jnp.finfo(x.dtype).bits < 32:
        return x.astype(jnp.float32)
    return x


def _as_numpy_float(x) -> np.ndarray:
    """A concrete float array as numpy, low-precision floats as float32 (for value checks and messages)."""
    arr = np.asarray(x)
    return arr.astype(np.float32) if arr.dtype.itemsize < 4 else arr


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


def check_nonnegative_float(value, name: str) -> float:
    """A finite Python number >= 0 (an int is accepted), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0; got {value!r}.")
    return float(value)


def check_positive_float(value, name: str) -> float:
    """A finite Python number > 0 (an int is accepted), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}.")
    return float(value)


def check_integer_levels(x, num_levels: int, name: str = "x"):
    """Checks that `x` holds integer levels in [0, num_levels).

    The dtype is always checked; the range is checked when `x` is concrete (and under
    `checked_mode()` when traced). Python numbers and lists are read as arrays.
    """
    num_levels = check_num_levels(num_levels)
    check_real(x, name)
    dtype = _dtype_of(x)
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
    elif not is_concrete(x):
        check_values((x >= 0) & (x < num_levels),
                     f"`{name}` must hold levels in [0, {num_levels}); got values outside.")
    return x


def check_event_shape(x, event_shape: Sequence[int], name: str = "x"):
    """Checks that the trailing axes of `x` equal `event_shape`."""
    event_shape = tuple(event_shape)
    k = len(event_shape)
    shape = tuple(np.shape(x))
    if len(shape) < k or shape[len(shape) - k :] != event_shape:
        raise ValueError(
            f"`{name}` must have trailing shape {event_shape} (batch axes first); "
            f"got shape {shape}."
        )
    return x


def check_float(x, name: str):
    """`x` has a real floating-point dtype (bfloat16 and float16 included)."""
    check_real(x, name)
    if not is_float_dtype(_dtype_of(x)):
        raise ValueError(f"`{name}` must be floating point; got dtype {_dtype_of(x)}.")
    return x


def check_context(context, context_size: int, owner: str):
    """`context` checked against `context_size` (0 = unconditional): a ValueError names what is wrong."""
    if context_size == 0:
        if context is not None:
            raise ValueError(f"`context` was given to an unconditional {owner} (context_size=0).")
        return None
    if context is None:
        raise ValueError(f"this {owner} is conditional (context_size={context_size}); pass `context`.")
    context = check_real(jnp.asarray(context), "context")
    if context.ndim < 1 or context.shape[-1] != context_size:
        raise ValueError(f"`context` must have last axis {context_size}; got shape {context.shape}.")
    return context


# --- Hyperparameters and unit-interval data (flows, their networks and models) ---------------


def check_nonnegative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an int >= 0; got {value!r}.")
    return int(value)


def check_sizes(value, name: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    """A sequence of positive ints (layer widths, a shape) as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"`{name}` must be a sequence of positive ints; got {value!r}.")
    sizes = tuple(value)
    if (not sizes and not allow_empty) or any(
            isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
        raise ValueError(f"`{name}` must be a {'' if allow_empty else 'non-empty '}sequence of positive "
                         f"ints; got {value!r}.")
    return tuple(int(n) for n in sizes)


def check_image_shape(value, name: str = "image_shape") -> tuple[int, int, int]:
    shape = check_sizes(value, name)
    if len(shape) != 3:
        raise ValueError(f"`{name}` must be (H, W, C) of positive ints; got {value!r}.")
    return shape


def check_choice(value, choices: Sequence, name: str):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}; got {value!r}.")
    return value


def check_callable(value, name: str, what: str = "a callable"):
    """`value` if it is callable (a function, a Flax module class, a `functools.partial`), else a
    ValueError naming `name`; a string is refused with a hint (names are for the configs)."""
    if not callable(value):
        hint = " (pass the function or class itself, not its name)" if isinstance(value, str) else ""
        raise ValueError(f"`{name}` must be {what}{hint}; got {value!r}.")
    return value


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def as_compute_dtype(value, name: str = "compute_dtype"):
    """The dtype a network computes in: None (or float32) is float32, no casting; jnp.bfloat16 or
    jnp.float16 for mixed precision. Returns None or the jnp dtype."""
    try:
        dtype = None if value is None else jnp.dtype(value)
    except TypeError:
        dtype = False
    if dtype is False or (dtype is not None and dtype.name not in COMPUTE_DTYPES):
        raise ValueError(f"`{name}` must be None or one of the dtypes {COMPUTE_DTYPES} (e.g. jnp.bfloat16); "
                         f"got {value!r}.")
    return None if dtype is None or dtype == jnp.float32 else dtype


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a bool; got {value!r}.")
    return bool(value)


def as_array(x, name: str):
    """`x` as a real array: arrays pass through, Python numbers and (nested) lists are converted;
    complex values are refused."""
    if not (hasattr(x, "dtype") and hasattr(x, "shape")):
        try:
            x = jnp.asarray(x)
        except (TypeError, ValueError) as err:
            raise ValueError(f"`{name}` must be an array (or a nested list of numbers); got "
                             f"{type(x).__name__}.") from err
    return check_real(x, name)


def as_float_array(x, name: str):
    """`x` as a real floating-point array: arrays pass through (float16 and bfloat16 included),
    Python numbers, lists and integer arrays become float32; bool and complex are refused."""
    x = as_array(x, name)
    if x.dtype == np.bool_:
        raise ValueError(f"`{name}` must hold numbers; got dtype bool.")
    return x if is_float_dtype(x.dtype) else x.astype(jnp.float32)


def check_unit_interval(x, name: str = "x", *, what: str = "data"):
    """`x` holds continuous values in [0, 1]: a float dtype (integer levels must be dequantized and
    scaled first), and, when concrete (or under `checked_mode()`), values inside [0, 1]."""
    check_real(x, name)
    dtype = np.dtype(x.dtype)
    if not is_float_dtype(dtype):
        raise ValueError(
            f"`{name}` must be {what} in [0, 1] with a floating-point dtype; got dtype {dtype}. Integer "
            f"levels "
            f"must be dequantized and scaled to [0, 1) first (e.g. dgmjax.objectives.dequantization_bound "
            f"or (x + u) / num_levels).")
    if is_concrete(x) and np.size(x) > 0:
        arr = _as_numpy_float(x)
        if not (np.all(arr >= 0) and np.all(arr <= 1)):
            finite = arr[np.isfinite(arr)]
            got = (f"values in [{finite.min():.4g}, {finite.max():.4g}]" if finite.size == arr.size
                   else "NaN or inf values")
            raise ValueError(f"`{name}` must hold {what} in [0, 1]; got {got}. Did you forget to scale "
                             f"levels to [0, 1] (divide by num_levels)?")
    else:
        check_values((x >= 0) & (x <= 1), f"`{name}` must hold {what} in [0, 1]; got values outside. "
                                          f"Did you forget to scale levels to [0, 1]?")
    return x


# --- Numbers, counts and distribution parameters (distributions, VAE, objectives) ---------------


def check_finite_float(value, name: str) -> float:
    """A finite Python or numpy number (an int is accepted), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    return float(value)


def check_finite(x, name: str):
    """Concrete NaN or infinite entries of `x` raise (under `checked_mode()`, traced ones too);
    complex `x` is refused."""
    check_real(x, name)
    check_values(jnp.isfinite(x), f"`{name}` must be finite; got NaN or infinite values.")
    return x


# --- Shapes of distribution parameters and data ---


def check_value_shape(value, batch_shape: Sequence[int], event_shape: Sequence[int], name: str = "value", *,
                      broadcast: bool = False):
    """`value` (an array, or a Python number or list read as one) as scored by a distribution of
    `batch_shape` and `event_shape`: trailing axes batch_shape + event_shape, any leading axes sample
    axes. Returns it as an array.

    The event axes must equal `event_shape`. By default every batch axis must be there and equal the
    distribution's, or the distribution's must be 1 (a parameter axis of size 1 broadcasts against
    the value's): a missing batch axis, or a value axis of size 1 against a larger batch axis, would
    broadcast silently into terms of another meaning ((B, 1) levels against a batch of B give B x B
    terms). With `broadcast=True` the value's batch axes need only broadcast against the batch shape
    (distrax's rule, for distributions scored at shared points: a value of shape `event_shape` is
    scored under every member, and (..., 1) + event_shape against a batch (n,) gives every pair,
    which is how a mixture scores its components).
    """
    value = as_array(value, name)
    batch_shape, event_shape = tuple(batch_shape), tuple(event_shape)
    shape, k = tuple(value.shape), len(event_shape)
    where = (f"`{name}` of shape {shape} does not line up with the distribution's batch shape "
             f"{batch_shape} and event shape {event_shape}")
    if len(shape) < k or shape[len(shape) - k:] != event_shape:
        raise ValueError(f"{where}: its trailing axes must be the event shape {event_shape}.")
    value_batch = shape[:len(shape) - k]
    if broadcast:
        try:
            np.broadcast_shapes(value_batch, batch_shape)
        except ValueError:
            raise ValueError(f"{where}: the axes before the event axes must broadcast against the batch "
                             f"shape.") from None
    elif len(value_batch) < len(batch_shape) or any(
            a != b and b != 1 for a, b in zip(value_batch[len(value_batch) - len(batch_shape):], batch_shape,
                                              strict=True)):
        raise ValueError(f"{where}: expected shape (sample axes...) + {batch_shape + event_shape}; its "
                         f"trailing axes must equal them (leading axes are sample axes; a value axis may "
                         f"differ only where the distribution's is 1).")
    return value


def check_broadcast(shapes, what: str = "shape") -> tuple[int, ...]:
    """The broadcast shape of named shapes ({argument name: shape}); where they do not broadcast
    together, a ValueError names two arguments that do not, with their shapes."""
    named = [(name, tuple(shape)) for name, shape in shapes.items()]
    for i, (name, shape) in enumerate(named):
        for other, other_shape in named[:i]:
            try:
                np.broadcast_shapes(other_shape, shape)
            except ValueError:
                raise ValueError(f"`{other}` of {what} {other_shape} and `{name}` of {what} {shape} do not "
                                 f"broadcast together.") from None
    return tuple(np.broadcast_shapes(*(shape for _, shape in named)))


def check_batch(x, name: str = "x"):
    """`x` is a batch of examples: a leading batch axis with at least one example on it."""
    shape = tuple(np.shape(x))
    if not shape:
        raise ValueError(f"`{name}` must be a batch of data with a leading batch axis; got shape {shape}.")
    if shape[0] == 0:
        raise ValueError(f"`{name}` got an empty batch (shape {shape}); expected at least one example.")
    return x


def check_key(key, name: str = "key"):
    """A single jax PRNG key: a typed key (`jax.random.key(0)`) or a raw uint32 key
    (`jax.random.PRNGKey(0)`)."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and shape is not None:
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            if tuple(shape) == ():
                return key
        elif np.dtype(dtype) == np.uint32 and len(shape) == 1:
            return key
        got = f"an array of shape {tuple(shape)} and dtype {dtype}"
    else:
        got = f"{type(key).__name__} {key!r}"
    raise ValueError(f"`{name}` must be a single jax PRNG key, e.g. jax.random.key(0) or "
                     f"jax.random.PRNGKey(0); got {got}.")
