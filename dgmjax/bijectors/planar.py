"""The planar flow of Rezende & Mohamed (2015), with an exact inverse."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp


def _constrained_u(u, w):
    """u_hat = u + (m(w.u) - w.u) w / |w|^2 with m(a) = -1 + softplus(a), so w.u_hat > -1."""
    wu = jnp.sum(w * u, -1, keepdims=True)
    m = -1.0 + jax.nn.softplus(wu)
    return u + (m - wu) * w / (jnp.sum(w * w, -1, keepdims=True) + 1e-12)


class Planar(distrax.Bijector):
    """forward: y = z + u_hat tanh(w.z + b), on vectors (event shape (D,)).

    `u`, `w` (..., D) and `b` (...) may carry batch axes (amortized flows get
    them from an encoder). u is reparameterized to u_hat with w.u_hat > -1,
    which makes the map invertible; log|det| = log|1 + u_hat.w tanh'(w.z + b)|.
    The inverse reduces to the scalar equation a + (w.u_hat) tanh(a + b) = w.y
    for a = w.z, monotone in a, solved by bisection to float precision within
    the bracket [w.y - |w.u_hat|, w.y + |w.u_hat|]; its derivatives are those
    of the implicit function (a last Newton step carries them).
    """

    def __init__(self, u, w, b, bisection_steps: int = 60):
        u, w, b = jnp.asarray(u), jnp.asarray(w), jnp.asarray(b)
        if u.shape != w.shape or u.ndim < 1 or jnp.shape(b) != u.shape[:-1]:
            raise ValueError(f"Planar needs `u` and `w` of one shape (..., D) and `b` of shape (...); "
                             f"got {u.shape}, {w.shape}, {jnp.shape(b)}.")
        self._u_hat, self._w, self._b = _constrained_u(u, w), w, b
        self._steps = bisection_steps
        super().__init__(event_ndims_in=1)

    def forward_and_log_det(self, z):
        a = jnp.sum(self._w * z, -1) + self._b
        h = jnp.tanh(a)
        y = z + self._u_hat * h[..., None]
        c = jnp.sum(self._w * self._u_hat, -1)
        return y, jnp.log(jnp.abs(1.0 + c * (1.0 - h * h)))

    def inverse_and_log_det(self, y):
        t = jnp.sum(self._w * y, -1)
        c = jnp.sum(self._w * self._u_hat, -1)
        lo, hi = t - jnp.abs(c) - 1e-6, t + jnp.abs(c) + 1e-6

        def body(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            above = mid + c * jnp.tanh(mid + self._b) > t
            return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

        lo, hi = jax.lax.fori_loop(0, self._steps, body, (lo, hi))
        # One Newton step from the bisection's root: its value stays (g = 0 there, to float
        # precision) and it carries the implicit derivative da = -dg / g'(a), which
        # differentiating through the bisection's comparisons would give as zero.
        a0 = jax.lax.stop_gradient(0.5 * (lo + hi))  # w.z
        h0 = jnp.tanh(a0 + self._b)
        a = a0 - (a0 + c * h0 - t) / (1.0 + c * (1.0 - h0 * h0))
        h = jnp.tanh(a + self._b)
        z = y - self._u_hat * h[..., None]
        return z, -jnp.log(jnp.abs(1.0 + c * (1.0 - h * h)))
