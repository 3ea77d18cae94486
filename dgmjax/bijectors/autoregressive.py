"""Affine autoregressive flows: MAF and IAF from one class.

`MaskedAutoregressive` is a MAF layer. With (mu, s) = conditioner(x), which
must be autoregressive in x (a MADE), output d depending only on x_<d:

    inverse (data -> noise, density):   z = (x - mu(x)) / s(x)        one pass
    forward (noise -> data, sampling):  x_d = z_d s_d(x_<d) + mu_d(x_<d)

The forward direction is solved by iterating x <- z * s(x) + mu(x). After k
iterations the first k variables (in the conditioner's order) are exact, so
D iterations give the exact answer whatever the start:

- `solver="sequential"`: exactly D iterations (`lax.fori_loop`). This is
  MAF's sequential sampling: D conditioner passes.
- `solver="fixed_point"`: the same (Jacobi) iteration with early exit, row by
  row: the loop stops once every row (batch element) with finite entries has
  stopped moving by more than `tolerance`, capped at D iterations, so it is
  never slower and never inexact beyond the tolerance; trained flows usually
  converge in far fewer than D. A row that turns non-finite (a NaN or inf in
  its input) neither holds the loop up nor stops it, and comes back NaN.

Both solvers are differentiable in forward and reverse mode. The fixed point's
derivatives come from the implicit function theorem: the tangent of x solves
(I - J) dx = b with J = d(update)/dx strictly triangular (in the conditioner's
order), which the same row-wise Jacobi iteration solves exactly in at most D
steps (`lax.custom_linear_solve`; reverse mode iterates with J's transpose).

`InverseAutoregressive` is `distrax.Inverse` of the same layer: its forward
(sampling) is one pass and its inverse (density) is the sequential one: the
IAF of the lecture. log|det| = sum log s in either direction, exactly.

Input in float16 or bfloat16 is upcast to float32 first (the transform and its
log-det compute in float32, docs/DESIGN.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.bijectors.coupling import check_scale_fn, tanh_scale

TANH_SCALE_3 = functools.partial(tanh_scale, bound=3.0)
"""The autoregressive layers' default scale function: `tanh_scale` with |log s| < 3."""

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


def _iterate(step, x0, tolerance: float, cap: int, *, relative: bool = False):
    """Iterates `x <- step(x)` from `x0` (shape (..., D)), row by row, at most `cap` times.

    A row (one index of the batch axes) has converged when none of its entries moved by more than
    `tolerance` in the last iteration (with `relative`, by more than `tolerance` times the row's
    largest magnitude). The loop runs until every row whose entries are finite has converged, or
    `cap` iterations; a row that is not finite (NaN or inf in it, or a NaN change) does not keep it
    going and does not stop it, and comes back all NaN so that it cannot pass for a solution.

    Returns the iterate and the number of iterations (int32).
    """

    def cond(carry):
        _, _, active, k = carry
        return (k < cap) & jnp.any(active)

    def body(carry):
        x, _, _, k = carry
        x_new = step(x)
        change = jnp.max(jnp.abs(x_new - x), axis=-1)
        bound = tolerance * jnp.max(jnp.abs(x_new), axis=-1) if relative else tolerance
        finite = jnp.isfinite(change) & jnp.all(jnp.isfinite(x_new), axis=-1)
        return x_new, finite, finite & (change > bound), k + 1

    rows = jnp.ones(x0.shape[:-1], bool)
    x, finite, _, iters = jax.lax.while_loop(cond, body, (x0, rows, rows, jnp.asarray(0, jnp.int32)))
    return jnp.where(finite[..., None], x, jnp.asarray(jnp.nan, x.dtype)), iters


def _jacobi_solve(matvec, b, tolerance: float):
    """Solves `matvec(v) = b` for `matvec = I - N` with N strictly triangular (nilpotent) and acting
    on each row (the last axis) separately, by `v <- b + N v`: exact after D = b.shape[-1] steps."""
    return _iterate(lambda v: b + v - matvec(v), b, tolerance, b.shape[-1], relative=True)[0]


def _fixed_point(update, z, tolerance: float, cap: int):
    """The row-wise Jacobi solution x = update(x, z) started at z (at most `cap` iterations), and
    the iterations it took.

    Differentiable (forward and reverse) in z and in every array `update` closes over (the
    conditioner's parameters, a context), by the implicit function theorem: the derivatives are
    those of the exact fixed point, at the x returned. Their linear solves stop at `tolerance`
    relative to each row's scale, or after D steps (where they are exact), whatever `cap`.
    """
    fn, consts = jax.closure_convert(update, z, z)
    return _fixed_point_solve(fn, tolerance, cap, z, *consts)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _fixed_point_solve(fn, tolerance, cap, z, *consts):
    return _iterate(lambda x: fn(x, z, *consts), z, tolerance, cap)


@_fixed_point_solve.defjvp
def _fixed_point_jvp(fn, tolerance, cap, primals, tangents):
    z, *consts = primals
    x, iters = _fixed_point_solve(fn, tolerance, cap, *primals)
    # x = fn(x, z, c) gives (I - J) dx = b: J = d fn / dx at x, b = fn's tangent from (z, c).
    _, b = jax.jvp(lambda z_, *c: fn(x, z_, *c), primals, tangents)
    matvec = lambda t: t - jax.jvp(lambda x_: fn(x_, z, *consts), (x,), (t,))[1]
    solve = lambda mv, rhs: _jacobi_solve(mv, rhs, tolerance)
    dx = jax.lax.custom_linear_solve(matvec, b, solve, transpose_solve=solve)
    return (x, iters), (dx, np.zeros(iters.shape, jax.dtypes.float0))


class MaskedAutoregressive(distrax.Bijector):
    """Masked autoregressive flow layer on vectors (event shape (D,)).

    Args:
      conditioner: `x -> params` (or `(x, context) -> params` when `context`
        is given) with params of shape `x.shape + (2,)`: shift and raw
        log-scale; must be autoregressive in x (e.g. `dgmjax.nn.MADE`).
      context: optional conditioning array passed to the conditioner.
      scale_fn: raw log-scale -> log-scale, bounded (see `tanh_scale`; the
        default bounds |log s| by 3).
      solver: how the sequential direction (`forward`) is solved: "sequential"
        or "fixed_point" (see the module docstring). With "fixed_point", a row
        (batch element) that is not finite comes back as NaN, log-det included,
        and the other rows are solved as if it were not there.
      tolerance: fixed-point stopping threshold on max |x_new - x| per row (a
        row stops when none of its entries moves by more than this); the
        tangents' linear solves stop at `tolerance` relative to their row's
        largest entry. 0: iterate until nothing moves, or D iterations.
      max_iterations: cap on fixed-point iterations (default D).

    Input in float16 or bfloat16 is upcast to float32 (see the module docstring).
    """

    def __init__(self, conditioner: Callable, *, context=None, scale_fn: Callable = TANH_SCALE_3,
                 solver: str = "sequential", tolerance: float = 1e-5,
                 max_iterations: int | None = None):
        if not callable(conditioner):
            raise ValueError(f"`conditioner` must be callable; got {type(conditioner).__name__}.")
        check_scale_fn(scale_fn)
        _check_solver(solver)
        tolerance = v.check_nonnegative_float(tolerance, "tolerance")
        if max_iterations is not None:
            max_iterations = v.check_positive_int(max_iterations, "max_iterations")
        if context is not None:
            context = context if hasattr(context, "dtype") else jnp.asarray(context)
            if context.ndim < 1:
                raise ValueError("`context` must have shape (..., context_size); got a scalar.")
            v.check_float(context, "context")
        self._conditioner = conditioner
        self._context = context
        self._scale_fn = scale_fn
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
        return params[..., 0], self._scale_fn(params[..., 1])

    def _check(self, x, name):
        """`x` checked, and upcast to float32 when in a lower-precision float."""
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
        return v.upcast_low_precision(x)

    def inverse_and_log_det(self, x):
        x = self._check(x, "x")
        shift, log_scale = self.shift_and_log_scale(x)
        return (x - shift) * jnp.exp(-log_scale), -jnp.sum(log_scale, -1)

    def forward_and_log_det(self, z):
        x, log_det, _ = self.forward_with_iterations(z)
        return x, log_det

    def forward_with_iterations(self, z, solver: str | None = None):
        """forward plus the number of conditioner passes the solver used (`solver` overrides the
        layer's)."""
        z = self._check(z, "z")
        solver = _check_solver(solver or self._solver)
        num_dims = z.shape[-1]
        # Iterate at the shape the conditioner gives z (z broadcast against the context's batch axes),
        # and at the dtype its parameters promote z to (a loop carry keeps one dtype).
        z = jnp.broadcast_to(z, jax.eval_shape(self._params, z).shape[:-1])
        z = z.astype(carry_dtype(lambda x: self._params(x)[..., 0], z))

        def update(x, z):
            shift, log_scale = self.shift_and_log_scale(x)
            return (z * jnp.exp(log_scale) + shift).astype(z.dtype), log_scale.astype(z.dtype)

        if solver == "sequential":
            def body(_, carry):
                return update(carry[0], z)

            x, log_scale = jax.lax.fori_loop(0, num_dims, body, (z, jnp.zeros_like(z)))
            return x, jnp.sum(log_scale, -1), jnp.asarray(num_dims, jnp.int32)

        cap = min(self._max_iterations or num_dims, num_dims)
        x, iters = _fixed_point(lambda x, z: update(x, z)[0], z, self._tolerance, cap)
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

    def __init__(self, conditioner: Callable, *, context=None, scale_fn: Callable = TANH_SCALE_3,
                 solver: str = "sequential", tolerance: float = 1e-5,
                 max_iterations: int | None = None):
        super().__init__(MaskedAutoregressive(
            conditioner, context=context, scale_fn=scale_fn,
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
        v.check_real(x, name)
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
