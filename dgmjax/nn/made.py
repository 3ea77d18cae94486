"""MADE: masked autoencoder for distribution estimation (Germain et al. 2015), Flax linen.

Output d (in the chosen input order) depends only on inputs that come before
it in that order, so `MADE` is the one-pass conditioner of an autoregressive
flow: `made(x)[..., d, :]` are the parameters of x_d given x_<d.

Degrees: input d has degree m(d) = its 1-based position in the order. Hidden
layer l gets degrees spread evenly over [min degree of layer l-1, D-1], both
ends included, so every hidden unit has at least one input (a unit of degree k
connects to the previous-layer units of degree <= k, and the smallest is
there) and at least one output (every layer holds degree D-1 >= k, and the
outputs have degrees up to D > k): no unit is dead. Output d connects to last-hidden units of degree
< m(d).

Inputs are real values (a flow's conditioner) or integer levels, encoded as
one-hot vectors or learned embeddings whose entries all carry their
variable's degree. The output bias can start from given values
(`output_bias`): the first variable's outputs depend on no input at all, so
a mixture head whose components start identical would keep them identical
there; `dgmjax.models.MADEDensity` starts them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v

ORDERS = ("natural", "reversed", "random")
INPUT_ENCODINGS = ("real", "one_hot", "embedding")


def made_order(order: str | Sequence[int], event_size: int, seed: int = 0) -> np.ndarray:
    """The input order as a permutation of range(event_size): order[i] is the i-th variable."""
    event_size = v.check_positive_int(event_size, "event_size")
    if isinstance(order, str):
        if order == "natural":
            return np.arange(event_size)
        if order == "reversed":
            return np.arange(event_size)[::-1].copy()
        if order == "random":
            return np.random.default_rng(seed).permutation(event_size)
        raise ValueError(f"`order` must be one of {ORDERS} or a permutation; got {order!r}.")
    perm = np.asarray(order)
    if perm.shape != (event_size,) or not np.array_equal(np.sort(perm), np.arange(event_size)):
        raise ValueError(
            f"`order` must be a permutation of range({event_size}); got {np.asarray(order).tolist()}."
        )
    return perm.astype(np.int64)


def made_degrees(event_size: int, hidden_sizes: Sequence[int], order) -> list[np.ndarray]:
    """Degrees of the input layer (per variable) and of every hidden layer."""
    event_size = v.check_positive_int(event_size, "event_size")
    hidden_sizes = v.check_sizes(hidden_sizes, "hidden_sizes", allow_empty=True)
    perm = made_order(order, event_size) if not isinstance(order, str) else made_order(order, event_size)
    input_degrees = np.empty(event_size, np.int64)
    input_degrees[perm] = np.arange(1, event_size + 1)
    degrees = [input_degrees]
    low = 1
    top = max(event_size - 1, 1)
    for width in hidden_sizes:
        if width == 1:
            layer = np.array([top])
        else:
            layer = low + np.round(np.linspace(0, top - low, width)).astype(np.int64)
        degrees.append(layer)
        low = int(layer.min())
    return degrees


def made_masks(event_size: int, hidden_sizes: Sequence[int], order, num_params: int = 1):
    """Binary masks (in, out) of every layer; the output mask repeats per parameter."""
    num_params = v.check_positive_int(num_params, "num_params")
    hidden_sizes = v.check_sizes(hidden_sizes, "hidden_sizes", allow_empty=True)
    degrees = made_degrees(event_size, hidden_sizes, order)
    masks = [(degrees[i][:, None] <= degrees[i + 1][None, :]) for i in range(len(hidden_sizes))]
    out = degrees[-1][:, None] < degrees[0][None, :]  # (H_last or D, D)
    masks.append(np.repeat(out, num_params, axis=1))  # output unit (d, p) at column d*P + p
    return [m.astype(np.float32) for m in masks]


class MaskedDense(nn.Module):
    """Dense layer whose kernel is multiplied by a fixed binary mask (in, out)."""

    features: int
    mask: np.ndarray
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        masked = kernel * jnp.asarray(self.mask, kernel.dtype)
        return x @ masked.astype(x.dtype) + bias.astype(x.dtype)  # computes in x's dtype


class MADE(nn.Module):
    """Masked MLP on vectors of size `event_size`, output (..., event_size, num_params).

    Attributes:
      event_size: D.
      hidden_sizes: widths of the masked hidden layers (at least one).
      num_params: outputs per dimension (2 for shift and log-scale).
      order: "natural", "reversed", "random" (with `order_seed`) or an explicit
        permutation: order[i] is the variable at position i.
      context_size: if > 0, a conditional MADE: `__call__(x, context)` adds an
        unmasked projection of the context to the first hidden layer.
      activation: the hidden activation function (`flax.linen.relu`).
      zero_init_output: zero the output layer's kernel, so a flow built on it
        starts as the identity.
      output_bias: initial output bias per parameter (length num_params),
        shared by every dimension; None for zeros.
      input_encoding: "real" (x is real-valued), "one_hot" or "embedding"
        (x holds integer levels in [0, num_levels); each variable is encoded
        as a one-hot vector or an `embedding_size` learned embedding).
      num_levels: the number of levels, for the categorical encodings.
      embedding_size: the size of each learned embedding.
      compute_dtype: `jnp.bfloat16` or `jnp.float16` runs the layers in that dtype
        (parameters stay float32, the output is float32); None computes in
        float32.
    """

    event_size: int
    hidden_sizes: Sequence[int]
    num_params: int = 2
    order: str | Sequence[int] = "natural"
    order_seed: int = 0
    context_size: int = 0
    activation: Callable = nn.relu
    zero_init_output: bool = True
    output_bias: Sequence[float] | None = None
    input_encoding: str = "real"
    num_levels: int | None = None
    embedding_size: int = 16
    compute_dtype: Any = None

    def input_order(self) -> np.ndarray:
        return made_order(self.order, self.event_size, self.order_seed)

    def _encode(self, x):
        """x as (..., D * R) input features, R per variable (1 for real values)."""
        if self.input_encoding not in INPUT_ENCODINGS:
            raise ValueError(f"`input_encoding` must be one of {INPUT_ENCODINGS}; got "
                             f"{self.input_encoding!r}.")
        if self.input_encoding == "real":
            v.check_float(x, "x")
            return x, 1
        num_levels = v.check_num_levels(self.num_levels, "num_levels")
        v.check_integer_levels(x, num_levels, "x")
        if self.input_encoding == "one_hot":
            h = jax.nn.one_hot(x, num_levels, dtype=jnp.float32)
        else:
            e = v.check_positive_int(self.embedding_size, "embedding_size")
            table = self.param("embedding", nn.initializers.normal(1.0), (self.event_size, num_levels, e))
            h = table[jnp.arange(self.event_size), x.astype(jnp.int32)]
        return h.reshape(x.shape[:-1] + (-1,)), h.shape[-1]

    @nn.compact
    def __call__(self, x, context=None):
        d = v.check_positive_int(self.event_size, "event_size")
        v.check_sizes(self.hidden_sizes, "hidden_sizes")
        v.check_positive_int(self.num_params, "num_params")
        v.check_nonnegative_int(self.context_size, "context_size")
        act = v.check_callable(self.activation, "activation", "an activation function")
        dt = v.as_compute_dtype(self.compute_dtype)
        x = v.as_array(x, "x")
        if x.ndim < 1 or x.shape[-1] != d:
            raise ValueError(f"`x` must have last axis of size event_size={d}; got shape {x.shape}.")
        context = v.check_context(context, self.context_size, "MADE")
        if context is not None:
            v.check_float(context, "context")
            try:
                jnp.broadcast_shapes(x.shape[:-1], context.shape[:-1])
            except ValueError:
                raise ValueError(f"`context` batch shape {context.shape[:-1]} does not broadcast against the "
                                 f"batch shape {x.shape[:-1]} of `x` (shape {x.shape}); expected one "
                                 f"context per example or one for all.") from None
        if self.output_bias is not None and len(self.output_bias) != self.num_params:
            raise ValueError(f"`output_bias` must hold num_params={self.num_params} values; got "
                             f"{len(self.output_bias)}.")
        masks = made_masks(d, self.hidden_sizes, self.input_order(), self.num_params)
        h, per_variable = self._encode(x)
        out_dtype = h.dtype
        if dt is not None:
            h = h.astype(dt)
            context = None if context is None else context.astype(dt)
        masks[0] = np.repeat(masks[0], per_variable, axis=0)  # every feature of a variable: its degree
        for i, width in enumerate(self.hidden_sizes):
            h = MaskedDense(width, masks[i], name=f"masked_{i}")(h)
            if i == 0 and self.context_size > 0:
                h = h + nn.Dense(width, use_bias=False, dtype=dt, name="context")(context)
            h = act(h)
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        bias_init = nn.initializers.zeros
        if self.output_bias is not None:
            bias = np.tile(np.asarray(self.output_bias, np.float32), d)  # unit (d, p) at column d*P + p
            bias_init = lambda rng, shape, dtype=jnp.float32: jnp.asarray(bias, dtype).reshape(shape)
        out = MaskedDense(d * self.num_params, masks[-1], kernel_init=init, bias_init=bias_init,
                          name="output")(h)
        return out.astype(out_dtype).reshape(out.shape[:-1] + (d, self.num_params))
