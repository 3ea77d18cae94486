"""A chain of structurally identical bijectors run with `jax.lax.scan`.

Tracing a Python list of L layers (as `distrax.Chain` does) makes compile time
grow with L. `ScanChain` traces one layer and scans it over parameters stacked
on a leading axis, so compile time stays flat in depth.

The price is per step: each scan iteration slices its layer's parameters out
of the stack, and the backward pass writes each layer's gradient back into a
stacked buffer. On a CPU with a few wide layers that costs about a third of a
train step (measured in `experiments/benchmarks/flows.py`). `layerwise=True`
takes a list of per-layer parameter pytrees instead and runs the layers in a
Python loop: the fastest step at small depth, with compile time that grows
with it. Models expose the choice as `scan_layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import distrax
import jax
import jax.numpy as jnp


class ScanChain(distrax.Bijector):
    """`num_layers` bijectors `bijector_fn(params[i])`, applied with `lax.scan`.

    `forward` applies layer 0 first, then 1, ..., L-1: it equals
    `distrax.Chain([layer_{L-1}, ..., layer_0])`. `inverse` runs the layers
    backwards. Every layer must map arrays to arrays of the same shape.

    Args:
      bijector_fn: builds one layer's bijector from one slice of `params`.
      params: a pytree whose leaves share a leading axis of length L (the
        layer index). Masks or other per-layer constants can ride along.
        With `layerwise=True`: a list or tuple of L per-layer pytrees instead.
      event_ndims: the event rank of every layer.
      remat: recompute each layer's activations in the backward pass
        (`jax.checkpoint`) to save memory on deep stacks.
      layerwise: `params` is a sequence of per-layer pytrees, run with an
        unrolled Python loop rather than `lax.scan`.
    """

    def __init__(self, bijector_fn: Callable[[Any], distrax.BijectorLike], params: Any,
                 event_ndims: int, remat: bool = False, layerwise: bool = False):
        self._layerwise = bool(layerwise)
        if self._layerwise:
            if not isinstance(params, (list, tuple)) or not params:
                raise ValueError("with `layerwise=True`, `params` of ScanChain must be a non-empty list "
                                 f"of per-layer pytrees; got {type(params).__name__}.")
            params = list(params)
            self._num_layers = len(params)
        else:
            leaves = jax.tree_util.tree_leaves(params)
            if not leaves:
                raise ValueError("`params` of ScanChain must have at least one array leaf.")
            lengths = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
            if len(lengths) != 1 or None in lengths:
                raise ValueError(
                    "Every leaf of `params` must share one leading (layer) axis; got leading "
                    f"sizes {sorted(str(n) for n in lengths)}."
                )
            self._num_layers = lengths.pop()
        self._bijector_fn = bijector_fn
        self._params = params
        self._remat = remat
        super().__init__(event_ndims_in=event_ndims)

    @property
    def num_layers(self) -> int:
        return self._num_layers

    @property
    def params(self):
        return self._params

    @property
    def layerwise(self) -> bool:
        return self._layerwise

    def layer_params(self, i: int):
        """The parameters of layer i (a slice of the stack, or the i-th entry)."""
        if self._layerwise:
            return self._params[i]
        return jax.tree_util.tree_map(lambda a: a[i], self._params)

    def layer(self, i: int) -> distrax.Bijector:
        """The i-th layer as a standalone bijector (for inspection and tests)."""
        return distrax.as_bijector(self._bijector_fn(self.layer_params(i)))

    def _run(self, x, inverse: bool):
        batch_shape = x.shape[: x.ndim - self.event_ndims_in]

        def body(carry, p):
            y, total = carry
            bij = distrax.as_bijector(self._bijector_fn(p))
            if inverse:
                y_new, ld = bij.inverse_and_log_det(y)
            else:
                y_new, ld = bij.forward_and_log_det(y)
            if y_new.shape != y.shape:
                raise ValueError(
                    f"ScanChain layers must preserve shape; a layer mapped {y.shape} to "
                    f"{y_new.shape}."
                )
            return (y_new, total + jnp.broadcast_to(ld, batch_shape)), None

        if self._remat:
            body = jax.checkpoint(body)
        init = (x, jnp.zeros(batch_shape, x.dtype))
        if self._layerwise:
            carry = init
            order = range(self._num_layers - 1, -1, -1) if inverse else range(self._num_layers)
            for i in order:
                carry, _ = body(carry, self._params[i])
            return carry
        (y, log_det), _ = jax.lax.scan(body, init, self._params, reverse=inverse)
        return y, log_det

    def forward_and_log_det(self, x):
        return self._run(x, inverse=False)

    def inverse_and_log_det(self, y):
        return self._run(y, inverse=True)
