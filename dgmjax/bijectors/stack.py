"""A chain of structurally identical layers, with compile time flat in depth.

Tracing a Python list of L layers (as `distrax.Chain` does) makes compile time
grow with L. `LayerStack` builds every layer from one function and runs the
stack either with `jax.lax.scan` over parameters stacked on a leading axis
(one layer is traced, whatever L) or unrolled over a list of per-layer
parameters. The layout of the parameters decides: `dgmjax.nn.stack_params`
makes either one. Scanning has a price per step: each iteration slices its
layer's weights out of the stack and the backward pass writes each layer's
gradient back into it, so at a few wide layers the unrolled form trains
faster (`experiments/benchmarks/flows.py` measures both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v

__all__ = ["LayerStack"]


def _num_stacked(tree, what: str) -> int:
    leaves = jax.tree_util.tree_leaves(tree)
    lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if not leaves or len(lengths) != 1 or None in lengths:
        raise ValueError(f"every leaf of `{what}` must share one leading (layer) axis; got leading sizes "
                         f"{sorted(str(n) for n in lengths)}.")
    return lengths.pop()


class LayerStack(distrax.Bijector):
    """L bijectors `bijector_fn(params_i, constants_i)`; `forward` applies layer 0 first.

    `forward` equals `distrax.Chain([layer_{L-1}, ..., layer_0])`: layer 0 sits
    on the noise side, layer L-1 on the data side; `inverse` runs the layers
    backwards. Every layer must map arrays to arrays of the same shape.

    Args:
      bijector_fn: `(params_i, constants_i) -> bijector` of one layer.
      params: the layers' trainable parameters, either a pytree whose leaves
        share a leading axis of length L (run with `lax.scan`) or a list of L
        per-layer pytrees (run unrolled).
      event_ndims: the event rank of every layer.
      constants: per-layer constants (masks, permutations) as a NumPy pytree
        with leading axis L, or None. They never enter a gradient: unrolled,
        each layer gets its NumPy slice (a compile-time constant); scanned, a
        leaf equal across layers stays a compile-time constant and the others
        are scanned over.
      remat: recompute each layer's activations in the backward pass
        (`jax.checkpoint`) to save memory on deep stacks.

    Input in float16 or bfloat16 is upcast to float32 before the first layer, so
    the transforms and log-dets compute in float32 (docs/DESIGN.md, precision).
    """

    def __init__(self, bijector_fn: Callable[[Any, Any], distrax.BijectorLike], params: Any,
                 event_ndims: int, *, constants: Any = None, remat: bool = False):
        if not callable(bijector_fn):
            raise ValueError(f"`bijector_fn` must be callable; got {type(bijector_fn).__name__}.")
        if isinstance(event_ndims, bool) or not isinstance(event_ndims, (int, np.integer)) or event_ndims < 0:
            raise ValueError(f"`event_ndims` must be an int >= 0; got {event_ndims!r}.")
        event_ndims = int(event_ndims)
        self._unrolled = isinstance(params, (list, tuple))
        if self._unrolled:
            if not params:
                raise ValueError("`params` of LayerStack must hold at least one layer.")
            self._num_layers = len(params)
            params = list(params)
        else:
            self._num_layers = _num_stacked(params, "params")
        if constants is not None:
            constants = jax.tree_util.tree_map(np.asarray, constants)
            if _num_stacked(constants, "constants") != self._num_layers:
                raise ValueError(f"`constants` must have one row per layer ({self._num_layers}); got "
                                 f"{_num_stacked(constants, 'constants')}.")
        self._bijector_fn, self._params, self._constants = bijector_fn, params, constants
        self._remat = remat
        super().__init__(event_ndims_in=event_ndims)

    @property
    def num_layers(self) -> int:
        return self._num_layers

    @property
    def bijector_fn(self) -> Callable:
        return self._bijector_fn

    @property
    def unrolled(self) -> bool:
        return self._unrolled

    def _constant(self, i):
        if self._constants is None:
            return None
        return jax.tree_util.tree_map(lambda a: a[i], self._constants)

    def layer(self, i: int) -> distrax.Bijector:
        """The i-th layer as a standalone bijector (for inspection and tests)."""
        p = self._params[i] if self._unrolled else jax.tree_util.tree_map(lambda a: a[i], self._params)
        return distrax.as_bijector(self._bijector_fn(p, self._constant(i)))

    def scan(self, fn: Callable, init, *, reverse: bool = False):
        """Runs `fn(carry, params_i, constants_i) -> (carry, out_i)` over the layers.

        From layer 0 up (or from layer L-1 down with `reverse`), scanned or
        unrolled as the parameters are laid out; returns the final carry and
        the outputs stacked on a leading layer axis, in layer order.
        """
        if self._unrolled:
            outs = [None] * self._num_layers
            order = range(self._num_layers - 1, -1, -1) if reverse else range(self._num_layers)
            carry = init
            for i in order:
                carry, outs[i] = fn(carry, self._params[i], self._constant(i))
            stacked = None if outs[0] is None else jax.tree_util.tree_map(lambda *a: jnp.stack(a), *outs)
            return carry, stacked
        shared, scanned = {}, {}
        if self._constants is not None:
            flat, treedef = jax.tree_util.tree_flatten(self._constants)
            same = [bool((leaf == leaf[:1]).all()) for leaf in flat]
            shared = (treedef, [leaf[0] if s else None for leaf, s in zip(flat, same, strict=True)])
            scanned = [None if s else jnp.asarray(leaf) for leaf, s in zip(flat, same, strict=True)]

        def body(carry, xs):
            p, c = xs
            consts = None
            if self._constants is not None:
                treedef, fixed = shared
                consts = jax.tree_util.tree_unflatten(
                    treedef, [f if f is not None else s for f, s in zip(fixed, c, strict=True)])
            return fn(carry, p, consts)

        return jax.lax.scan(body, init, (self._params, scanned if self._constants is not None else None),
                            reverse=reverse)

    def _run(self, x, inverse: bool):
        def one(bij, y):
            return bij.inverse_and_log_det(y) if inverse else bij.forward_and_log_det(y)

        # A layer whose parameters carry more batch axes than x (a posterior flow conditioned per
        # example, evaluated at a shared point) broadcasts x up: run the stack at that shape.
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"`{'y' if inverse else 'x'}` must be an array; got {type(x).__name__}.")
        if x.ndim < self.event_ndims_in:
            raise ValueError(f"`{'y' if inverse else 'x'}` must have at least event_ndims="
                             f"{self.event_ndims_in} axes; got shape {x.shape}.")
        v.check_real(x, "y" if inverse else "x")
        x = v.upcast_low_precision(x)  # the layers compute in float32 or wider
        first = self.layer(self._num_layers - 1 if inverse else 0)
        x = jnp.broadcast_to(x, jax.eval_shape(lambda y: one(first, y)[0], x).shape)
        # The carry keeps one dtype through the scan: x promoted with the layers' parameters (float32
        # data under float64 parameters with JAX_ENABLE_X64, or the reverse), to a fixed point.
        for _ in range(2):
            out = jax.eval_shape(lambda y: one(first, y), x)
            x = x.astype(jnp.result_type(x.dtype, out[0].dtype))
        log_det_dtype = jnp.result_type(x.dtype, out[1].dtype)
        batch_shape = x.shape[: x.ndim - self.event_ndims_in]

        def body(carry, p, c):
            y, total = carry
            y_new, ld = one(distrax.as_bijector(self._bijector_fn(p, c)), y)
            if y_new.shape != y.shape:
                raise ValueError(f"every layer of `bijector_fn` must preserve shape in a LayerStack; a layer "
                                 f"mapped {y.shape} to {y_new.shape}.")
            total = (total + jnp.broadcast_to(ld, batch_shape)).astype(total.dtype)
            return (y_new.astype(y.dtype), total), None

        if self._remat:  # constants stay closed over: compile-time constants, not checkpointed inputs
            plain = body
            body = lambda carry, p, c: jax.checkpoint(lambda cr, pp: plain(cr, pp, c))(carry, p)
        (y, log_det), _ = self.scan(body, (x, jnp.zeros(batch_shape, log_det_dtype)), reverse=inverse)
        return y, log_det

    def forward_and_log_det(self, x):
        return self._run(x, inverse=False)

    def inverse_and_log_det(self, y):
        return self._run(y, inverse=True)
