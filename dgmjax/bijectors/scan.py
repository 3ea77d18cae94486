"""A chain of structurally identical bijectors run with `jax.lax.scan`.

Tracing a Python list of L layers (as `distrax.Chain` does) makes compile time
grow with L. `ScanChain` traces one layer and scans it over parameters stacked
on a leading axis, so compile time stays flat in depth.
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
      event_ndims: the event rank of every layer.
      remat: recompute each layer's activations in the backward pass
        (`jax.checkpoint`) to save memory on deep stacks.
    """

    def __init__(self, bijector_fn: Callable[[Any], distrax.BijectorLike], params: Any,
                 event_ndims: int, remat: bool = False):
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

    def layer(self, i: int) -> distrax.Bijector:
        """The i-th layer as a standalone bijector (for inspection and tests)."""
        p = jax.tree_util.tree_map(lambda a: a[i], self._params)
        return distrax.as_bijector(self._bijector_fn(p))

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
        (y, log_det), _ = jax.lax.scan(body, init, self._params, reverse=inverse)
        return y, log_det

    def forward_and_log_det(self, x):
        return self._run(x, inverse=False)

    def inverse_and_log_det(self, y):
        return self._run(y, inverse=True)
