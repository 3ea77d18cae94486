"""The planar flow of Rezende & Mohamed (2015), with an exact inverse."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp

from dgmjax import _checks as v


def _safe_ww(w):
    ww = jnp.sum(w * w, -1, keepdims=True)
    return ww, jnp.where(ww > 0, ww, 1.0)  # w = 0 (or |w|^2 below float range): the correction is 0


def _constrained_u(u, w):
    """u_hat = u + (m(w.u) - w.u) w / |w|^2 with m(a) = -1 + softplus(a), so w.u_hat = m(w.u) > -1
    (exactly: dividing by |w|^2 + eps instead would let w.u_hat reach -1 for w.u below about -28)."""
    wu = jnp.sum(w * u, -1, keepdims=True)
    m = -1.0 + jax.nn.softplus(wu)
    return u + (m - wu) * w / _safe_ww(w)[1]


def _log_one_plus_c(u, w):
    """log(1 + w.u_hat) = log softplus(w.u) (0 when w = 0), in log space: it underflows for w.u << 0."""
    wu = jnp.sum(w * u, -1)
    log_sp = jnp.where(wu < -20.0, wu + jnp.log1p(-0.5 * jnp.exp(jnp.minimum(wu, -20.0))),
                       jnp.log(jax.nn.softplus(jnp.maximum(wu, -20.0))))
    return jnp.where(_safe_ww(w)[0][..., 0] > 0, log_sp, 0.0)


def _log_det_term(a, log_opc):
    """log(1 + c tanh'(a)) = log(tanh(a)^2 + (1 + c) sech(a)^2): a sum of two non-negative terms, taken
    in log space (no cancellation as c -> -1, no underflow of 1 + c)."""
    h = jnp.tanh(a)
    abs_a = jnp.abs(a)
    log_sech2 = 2.0 * (math.log(2.0) - abs_a - jnp.log1p(jnp.exp(-2.0 * abs_a)))
    zero = h == 0
    log_h2 = jnp.where(zero, -jnp.inf, 2.0 * jnp.log(jnp.abs(jnp.where(zero, 1.0, h))))
    return jnp.logaddexp(log_h2, log_opc + log_sech2)


class Planar(distrax.Bijector):
    """forward: y = z + u_hat tanh(w.z + b), on vectors (event shape (D,)).

    `u`, `w` (..., D) and `b` (...) may carry batch axes (amortized flows get
    them from an encoder). u is reparameterized to u_hat with w.u_hat > -1,
    which makes the map invertible; log|det| = log|1 + u_hat.w tanh'(w.z + b)|,
    computed as log(tanh^2 + (1 + w.u_hat) sech^2), whose two terms are
    non-negative, so it stays finite and accurate as w.u_hat approaches -1.
    The inverse reduces to the scalar equation a + (w.u_hat) tanh(a + b) = w.y
    for a = w.z, monotone in a, solved by bisection to float precision within
    the bracket [w.y - |w.u_hat|, w.y + |w.u_hat|]; its derivatives are those
    of the implicit function.
    """

    def __init__(self, u, w, b, bisection_steps: int = 60):
        u, w, b = (jnp.asarray(v.as_array(a, n)) for a, n in ((u, "u"), (w, "w"), (b, "b")))
        if u.shape != w.shape or u.ndim < 1 or jnp.shape(b) != u.shape[:-1]:
            raise ValueError(f"Planar needs `u` and `w` of one shape (..., D) and `b` of shape (...); "
                             f"got {u.shape}, {w.shape}, {jnp.shape(b)}.")
        for a, n in ((u, "u"), (w, "w"), (b, "b")):
            v.check_float(a, n)
            v.check_values(jnp.isfinite(a), f"`{n}` must be finite; got NaN or inf.")
        self._steps = v.check_positive_int(bisection_steps, "bisection_steps")
        self._u_hat, self._w, self._b = _constrained_u(u, w), w, b
        self._log_opc = _log_one_plus_c(u, w)
        super().__init__(event_ndims_in=1)

    def _check(self, x, name):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"`{name}` must be an array; got {type(x).__name__}.")
        d = self._w.shape[-1]
        if x.ndim < 1 or x.shape[-1] != d:
            raise ValueError(f"`{name}` must have shape (..., {d}); got {x.shape}.")
        v.check_float(x, name)
        return v.upcast_low_precision(x)  # the transform and log-det compute in float32 or wider

    def forward_and_log_det(self, z):
        z = self._check(z, "z")
        a = jnp.sum(self._w * z, -1) + self._b
        y = z + self._u_hat * jnp.tanh(a)[..., None]
        return y, _log_det_term(a, self._log_opc)

    def inverse_and_log_det(self, y):
        y = self._check(y, "y")
        t = jnp.sum(self._w * y, -1)
        c = jnp.expm1(self._log_opc)  # w.u_hat
        width = jnp.abs(c) + 1e-6 * (1.0 + jnp.abs(t))
        lo, hi = t - width, t + width

        def body(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            above = mid + c * jnp.tanh(mid + self._b) > t
            return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

        lo, hi = jax.lax.fori_loop(0, self._steps, body, (lo, hi))
        # The root's value is the bisection's; its derivatives are the implicit function's,
        # da = -dg / g'(a) with g(a) = a + c tanh(a + b) - t (differentiating through the
        # bisection's comparisons would give zero). g' = 1 + c sech^2 is formed as in the log-det.
        a0 = jax.lax.stop_gradient(0.5 * (lo + hi))  # w.z
        g = a0 + c * jnp.tanh(a0 + self._b) - t
        g_prime = jnp.exp(_log_det_term(a0 + self._b, self._log_opc))
        a = a0 - (g - jax.lax.stop_gradient(g)) / g_prime
        z = y - self._u_hat * jnp.tanh(a + self._b)[..., None]
        return z, -_log_det_term(a + self._b, self._log_opc)
