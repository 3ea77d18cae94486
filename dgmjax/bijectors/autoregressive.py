"""Affine autoregressive flows: MAF and IAF from one class.

`MaskedAutoregressive` is a MAF layer. With (mu, s) = conditioner(x), which
must be autoregressive in x (a MADE), output d depending only on x_<d:

    inverse (data -> noise, density):   z = (x - mu(x)) / s(x)        one pass
    forward (noise -> data, sampling):  x_d = z_d s_d(x_<d) + mu_d(x_<d)

The forward direction is solved by iterating x <- z * s(x) + mu(x). After k
iterations the first k variables (in the conditioner's order) are exact, so
D iterations give the exact answer whatever the start:

- `solver="sequential"`: exactly D iterations (`lax.fori_loop`; reverse-mode
  differentiable). This is MAF's sequential sampling: D conditioner passes.
- `solver="fixed_point"`: the same (Jacobi) iteration with early exit when
  no entry moves by more than `tolerance` (`lax.while_loop`, forward-mode
  only), capped at D iterations, so it is never slower and never inexact
  beyond the tolerance; trained flows usually converge in far fewer than D.

`InverseAutoregressive` is `distrax.Inverse` of the same layer: its forward
(sampling) is one pass and its inverse (density) is the sequential one: the
IAF of the lecture. log|det| = sum log s in either direction, exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.bijectors.coupling import bounded_log_scale, check_scale_fn

SOLVERS = ("sequential", "fixed_point")
"""How an autoregressive layer's sequential direction can be solved (its `solver`)."""


def _check_solver(solver, name: str = "solver") -> str:
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise ValueError(f"`{name}` must be one of {SOLVERS}; got {solver!r}.")
    return solver


def carry_dtype(fn, x):
    """The dtype a loop carrying `x` through `fn` (x -> array of x's shape) must have: x's dtype
    promoted with what `fn` returns (float32 data under float64 parameters, or the reverse,
    with JAX_ENABLE_X64), checked to be a fixed point so a `lax.scan` carry keeps one type."""
    dtype = jnp.result_type(x.dtype, jax.eval_shape(fn, x).dtype)
    return jnp.result_type(dtype, jax.eval_shape(fn, x.astype(dtype)).dtype)


class MaskedAutoregressive(distrax.Bijector):
    """Masked autoregressive flow layer on vectors (event shape (D,)).

    Args:
      conditioner: `x -> params` (or `(x, context) -> params` when `context`
        is given) with params of shape `x.shape + (2,)`: shift and raw
        log-scale; must be autoregressive in x (e.g. `dgmjax.nn.MADE`).
      context: optional conditioning array passed to the conditioner.
      scale_fn: how the raw log-scale is bounded, "tanh" or "sigmoid" (see
        `bounded_log_scale`).
      scale_bound: the bound that `bounded_log_scale` uses with "tanh".
      solver: how the sequential direction (`forward`) is solved: "sequential"
        or "fixed_point".
      tolerance: fixed-point stopping threshold on max |x_new - x|.
      max_iterations: cap on fixed-point iterations (default D).
    """

    def __init__(self, conditioner: Callable, *, context=None, scale_fn: str = "tanh",
                 scale_bound: float = 3.0, solver: str = "sequential", tolerance: float = 1e-5,
                 max_iterations: int | None = None):
        if not callable(conditioner):
            raise ValueError(f"`conditioner` must be callable; got {type(conditioner).__name__}.")
        check_scale_fn(scale_fn)
        scale_bound = v.check_positive_float(scale_bound, "scale_bound")
        _check_solver(solver)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)) \
                or not tolerance >= 0 or not np.isfinite(tolerance):
            raise ValueError(f"`tolerance` must be a finite number >= 0; got {tolerance!r}.")
        tolerance = float(tolerance)
        if max_iterations is not None:
            max_iterations = v.check_positive_int(max_iterations, "max_iterations")
        if context is not None:
            context = context if hasattr(context, "dtype") else jnp.asarray(context)
            if context.ndim < 1:
                raise ValueError("`context` must have shape (..., context_size); got a scalar.")
            v.check_float(context, "context")
        self._conditioner = conditioner
        self._context = context
        self._scale_fn, self._scale_bound = scale_fn, scale_bound
        self._solver, self._tolerance, self._max_iterations = solver, tolerance, max_iterations
        super().__init__(event_ndims_in=1)

    @property
    def solver(self) -> str:
        return self._solver

    def _params(self, x):
        return self._conditioner(x) if self._context is None else self._conditioner(x, self._context)

    def shift_and_log_scale(self, x):
        """(mu, log s) at x: one conditioner pass.

        Their shape is x's, or x's broadcast against a context with more
        batch axes (then x stands for the same point under every context).
        """
        params = self._params(x)
        if params.shape[-1:] != (2,) or params.shape[:-1] != jnp.broadcast_shapes(x.shape, params.shape[:-1]):
            raise ValueError(
                f"the `conditioner` must return shift and log-scale of shape x.shape + (2,) = "
                f"{x.shape + (2,)} (or a broadcast of it) for input shape {x.shape}; got {params.shape}."
            )
        return params[..., 0], bounded_log_scale(params[..., 1], self._scale_fn, self._scale_bound)

    def _check(self, x, name):
        if not hasattr(x, "dtype"):
            raise ValueError(f"`{name}` must be an array of shape (..., D); got {type(x).__name__}.")
        if x.ndim < 1:
            raise ValueError(f"`{name}` must have shape (..., D); got a scalar.")
        v.check_float(x, name)
        if self._context is not None:
            batch, ctx_batch = x.shape[:-1], self._context.shape[:-1]
            try:
                jnp.broadcast_shapes(batch, ctx_batch)
            except ValueError:
                raise ValueError(
                    f"`context` batch shape {ctx_batch} (context shape {self._context.shape}) does "
                    f"not match the batch shape {batch} of `{name}` (shape {x.shape}); expected equal "
                    f"or broadcastable batch axes, e.g. one context per example.") from None

    def inverse_and_log_det(self, x):
        self._check(x, "x")
        shift, log_scale = self.shift_and_log_scale(x)
        return (x - shift) * jnp.exp(-log_scale), -jnp.sum(log_scale, -1)

    def forward_and_log_det(self, z):
        x, log_det, _ = self.forward_with_iterations(z)
        return x, log_det

    def forward_with_iterations(self, z, solver: str | None = None):
        """forward plus the number of conditioner passes the solver used."""
        self._check(z, "z")
        solver = _check_solver(solver or self._solver)
        num_dims = z.shape[-1]
        # Iterate at the shape the conditioner gives z (z broadcast against the context's batch axes),
        # and at the dtype its parameters promote z to (a loop carry keeps one dtype).
        z = jnp.broadcast_to(z, jax.eval_shape(self._params, z).shape[:-1])
        z = z.astype(carry_dtype(lambda x: self._params(x)[..., 0], z))

        def update(x):
            shift, log_scale = self.shift_and_log_scale(x)
            return (z * jnp.exp(log_scale) + shift).astype(z.dtype), log_scale.astype(z.dtype)

        if solver == "sequential":
            def body(_, carry):
                return update(carry[0])

            x, log_scale = jax.lax.fori_loop(0, num_dims, body, (z, jnp.zeros_like(z)))
            return x, jnp.sum(log_scale, -1), jnp.asarray(num_dims, jnp.int32)

        cap = min(self._max_iterations or num_dims, num_dims)

        def cond(carry):
            _, _, delta, k = carry
            return (k < cap) & (delta > self._tolerance)

        def step(carry):
            x, _, _, k = carry
            x_new, log_scale = update(x)
            return x_new, log_scale, jnp.max(jnp.abs(x_new - x)), k + 1

        init = (z, jnp.zeros_like(z), jnp.asarray(jnp.inf, z.dtype), jnp.asarray(0, jnp.int32))
        x, _, _, iters = jax.lax.while_loop(cond, step, init)
        # The log-det of the returned x, from the parameters at x itself (one more pass).
        _, log_scale = self.shift_and_log_scale(x)
        return x, jnp.sum(log_scale, -1), iters


class InverseAutoregressive(distrax.Inverse):
    """Inverse autoregressive flow layer: `forward` (sampling) in one pass, `inverse` sequential.

    `x = (z - mu(z)) / s(z)` with (mu, s) autoregressive in z (the lecture's
    `x_j = s~_j(z_<j) z_j + mu~_j(z_<j)` with `s~ = 1/s`, `mu~ = -mu/s`). `solver`
    chooses how the sequential direction, here the inverse, is solved
    ("sequential" or "fixed_point", as for `MaskedAutoregressive`).
    """

    def __init__(self, conditioner: Callable, *, context=None, scale_fn: str = "tanh",
                 scale_bound: float = 3.0, solver: str = "sequential", tolerance: float = 1e-5,
                 max_iterations: int | None = None):
        super().__init__(MaskedAutoregressive(
            conditioner, context=context, scale_fn=scale_fn, scale_bound=scale_bound,
            solver=solver, tolerance=tolerance, max_iterations=max_iterations))


class Permute(distrax.Bijector):
    """Permutes the last axis: `forward(x) = x[..., permutation]`; log|det| = 0.

    `permutation` may be traced (e.g. a row of a scanned `LayerStack`'s constants);
    when concrete it is checked to be a permutation and its inverse is
    computed once, in NumPy. `inverse_permutation` (its argsort) may be given
    to spare a sort per call when the permutation is traced.
    """

    def __init__(self, permutation, inverse_permutation=None):
        if not isinstance(permutation, np.ndarray):
            permutation = jnp.asarray(permutation)
        if permutation.ndim != 1 or not np.issubdtype(permutation.dtype, np.integer):
            raise ValueError(f"`permutation` must be a 1-D integer array; got shape "
                             f"{permutation.shape}, dtype {permutation.dtype}.")
        if v.is_concrete(permutation):
            p = np.asarray(permutation)
            if not np.array_equal(np.sort(p), np.arange(p.size)):
                raise ValueError(f"`permutation` must be a permutation of range({p.size}); "
                                 f"got {p.tolist()}.")
            if inverse_permutation is None:
                inverse_permutation = np.argsort(p)
        if inverse_permutation is None:
            inverse_permutation = jnp.argsort(permutation)
        elif not isinstance(inverse_permutation, (np.ndarray, jax.Array)):
            inverse_permutation = np.asarray(inverse_permutation)
        if inverse_permutation.shape != permutation.shape:
            raise ValueError(f"`inverse_permutation` must have shape {permutation.shape}; got "
                             f"{inverse_permutation.shape}.")
        self._perm, self._inv = permutation, inverse_permutation
        # A concrete reversal is applied as `jnp.flip` (lax.rev): it fuses with its neighbours
        # and its gradient is another flip, where a gather's gradient is a scatter-add.
        self._reversal = v.is_concrete(permutation) and np.array_equal(
            np.asarray(permutation), np.arange(permutation.shape[0])[::-1])
        super().__init__(event_ndims_in=1, is_constant_jacobian=True)

    def _check(self, x, name):
        if not hasattr(x, "shape"):
            raise ValueError(f"`{name}` must be an array; got {type(x).__name__}.")
        if x.ndim < 1 or x.shape[-1] != self._perm.shape[0]:
            raise ValueError(f"`{name}` must have last axis {self._perm.shape[0]}; got {x.shape}.")

    def forward_and_log_det(self, x):
        self._check(x, "x")
        y = jnp.flip(x, -1) if self._reversal else x[..., self._perm]
        return y, jnp.zeros(x.shape[:-1], x.dtype)

    def inverse_and_log_det(self, y):
        self._check(y, "y")
        x = jnp.flip(y, -1) if self._reversal else y[..., self._inv]
        return x, jnp.zeros(y.shape[:-1], y.dtype)
