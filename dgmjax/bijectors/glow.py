"""Glow's flow-step bijectors (Kingma & Dhariwal 2018): ActNorm and the invertible 1x1 convolution.

Both act on NHWC events (event_ndims 3) and mix nothing across pixels, so
log|det| is H*W times a per-pixel term. `forward` goes noise -> data, as
everywhere in dgmjax; a Glow step (data -> noise: actnorm, 1x1 conv,
coupling) is `distrax.Chain([ActNorm, Invertible1x1Conv, coupling])`.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v


def _check_image(x, name, channels):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"`{name}` must be an array of shape (..., H, W, {channels}); got "
                         f"{type(x).__name__}.")
    if x.ndim < 3 or x.shape[-1] != channels:
        raise ValueError(f"`{name}` must have shape (..., H, W, {channels}); got {x.shape}.")
    v.check_float(x, name)
    return v.upcast_low_precision(x)  # the transform and log-det compute in float32 or wider


class ActNorm(distrax.Bijector):
    """Per-channel affine map: forward `x = z * exp(log_scale) + loc`, inverse normalizes.

    `loc` and `log_scale` have shape (C,), the last axis; the event has
    `event_ndims` axes (3 for NHWC images, 1 for vectors, where C = D and this
    is the invertible stand-in for MAF's batch norm). With `actnorm_init` on a
    batch of data, the inverse maps that batch to zero mean and unit variance
    per channel (Glow's data-dependent init).
    """

    def __init__(self, loc, log_scale, event_ndims: int = 3):
        loc, log_scale = jnp.asarray(v.as_array(loc, "loc")), jnp.asarray(v.as_array(log_scale, "log_scale"))
        if loc.ndim != 1 or loc.shape != log_scale.shape or loc.shape[0] == 0:
            raise ValueError(f"`loc` and `log_scale` must be vectors of one length (C,), C >= 1; got "
                             f"{loc.shape} and {log_scale.shape}.")
        v.check_float(loc, "loc")
        v.check_float(log_scale, "log_scale")
        event_ndims = v.check_positive_int(event_ndims, "event_ndims")
        v.check_values(jnp.isfinite(loc), "`loc` must be finite; got NaN or inf.")
        v.check_values(jnp.isfinite(log_scale), "`log_scale` must be finite; got NaN or inf.")
        self._loc, self._log_scale = loc, log_scale
        super().__init__(event_ndims_in=event_ndims, is_constant_jacobian=True)

    def _check(self, x, name):
        k = self.event_ndims_in
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"`{name}` must be an array; got {type(x).__name__}.")
        v.check_float(x, name)
        if x.ndim < k or x.shape[-1] != self._loc.shape[0]:
            raise ValueError(f"`{name}` must have {k} event axes, the last of size "
                             f"{self._loc.shape[0]}; got shape {x.shape}.")
        return v.upcast_low_precision(x)  # the transform and log-det compute in float32 or wider

    def _log_det(self, x):
        k = self.event_ndims_in
        positions = 1
        for n in x.shape[x.ndim - k: -1]:
            positions *= n
        return jnp.full(x.shape[: x.ndim - k], positions * jnp.sum(self._log_scale), x.dtype)

    def forward_and_log_det(self, z):
        z = self._check(z, "z")
        return z * jnp.exp(self._log_scale) + self._loc, self._log_det(z)

    def inverse_and_log_det(self, x):
        x = self._check(x, "x")
        return (x - self._loc) * jnp.exp(-self._log_scale), -self._log_det(x)


def actnorm_init(x, eps: float = 1e-6):
    """Data-dependent ActNorm parameters: per-channel mean and log std over all but the last axis
    (in float32 for float16 or bfloat16 `x`)."""
    x = v.as_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"`x` must be a batch of shape (N, ..., C) with N >= 1; got shape {x.shape}.")
    v.check_float(x, "x")
    x = v.upcast_low_precision(x)
    eps = v.check_positive_float(eps, "eps")
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    std = jnp.sqrt(jnp.mean(jnp.square(x - mean), axes))
    return mean, jnp.log(std + eps)


def _exact_matmul(a, b):
    """a @ b in full float32, whatever `jax.default_matmul_precision` says."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


class Invertible1x1Conv(distrax.Bijector):
    """Invertible 1x1 convolution in LU form: per pixel, forward `x = W z`, W = P L U.

    P is a fixed permutation (`permutation`, x = y[..., permutation] after
    y = L U z), L is unit lower triangular (the strict lower part of `lower`),
    and U is upper triangular with diagonal `sign * exp(log_diag)` (the
    strict upper part of `upper`). log|det| = H W sum(log_diag), exactly; the
    inverse uses W^-1 = U^-1 L^-1 P^T from two triangular solves on the CxC
    matrices, not one solve per pixel. Initializing with lower = upper = 0,
    log_diag = 0 and a random permutation starts from an orthogonal W = P,
    as Glow's random-rotation init does.

    Every product here runs at `Precision.HIGHEST` (full float32) whatever the
    backend's default matmul precision (TF32-class on recent GPUs), so that
    the round trip and the exact log-det hold to float32 accuracy on every
    backend (the precision policy in docs/DESIGN.md).
    """

    def __init__(self, permutation, lower, upper, log_diag, sign=None):
        lower, upper = jnp.asarray(v.as_array(lower, "lower")), jnp.asarray(v.as_array(upper, "upper"))
        log_diag = jnp.asarray(v.as_array(log_diag, "log_diag"))
        permutation = v.as_array(permutation, "permutation")
        c = log_diag.shape[-1] if log_diag.ndim == 1 and log_diag.shape[0] > 0 else None
        if c is None or lower.shape != (c, c) or upper.shape != (c, c) or jnp.shape(permutation) != (c,):
            raise ValueError(
                "Invertible1x1Conv needs `permutation` (C,), square `lower` (C, C) and `upper` (C, C), "
                f"and `log_diag` (C,), C >= 1; got {jnp.shape(permutation)}, {lower.shape}, "
                f"{upper.shape}, {log_diag.shape}.")
        for name, a in (("lower", lower), ("upper", upper), ("log_diag", log_diag)):
            v.check_float(a, name)
        if not np.issubdtype(permutation.dtype, np.integer):
            raise ValueError(f"`permutation` must hold integers; got dtype {permutation.dtype}.")
        if v.is_concrete(permutation):  # traced (a scanned stack's per-layer constant): checked by its maker
            p = np.asarray(permutation)
            if not np.array_equal(np.sort(p), np.arange(c)):
                raise ValueError(f"`permutation` must be a permutation of range({c}) (W = P L U is "
                                 f"singular otherwise); got {p.tolist()}.")
        # W = P L U is non-singular iff every diagonal entry sign * exp(log_diag) of U is a nonzero
        # finite number: log_diag finite and above float underflow, sign +-1.
        tiny = float(np.log(np.finfo(np.dtype(log_diag.dtype)).tiny))
        v.check_values(jnp.isfinite(log_diag) & (log_diag > tiny) & (log_diag < -tiny),
                       f"`log_diag` must be finite and within ({tiny:.1f}, {-tiny:.1f}) (U's diagonal is "
                       f"exp(log_diag): W would be singular or overflow); got values outside.")
        v.check_values(jnp.isfinite(lower).all() & jnp.isfinite(upper).all(),
                       "`lower` and `upper` must be finite; got NaN or inf.")
        if sign is None:
            sign = jnp.ones_like(log_diag)
        else:
            sign = jnp.asarray(v.as_array(sign, "sign"))
            if sign.shape != (c,):
                raise ValueError(f"`sign` must have shape ({c},); got {sign.shape}.")
            v.check_values(jnp.abs(sign) == 1, "`sign` must hold +1 or -1 (U's diagonal signs); "
                                               "got other values.")
        self._perm = jnp.asarray(permutation)
        self._l = jnp.tril(lower, -1) + jnp.eye(c, dtype=lower.dtype)
        self._u = jnp.triu(upper, 1) + jnp.diag(sign * jnp.exp(log_diag))
        self._log_diag = log_diag
        self._c = c
        super().__init__(event_ndims_in=3, is_constant_jacobian=True)

    def matrix(self):
        """W = P L U (rows permuted by `permutation`)."""
        return _exact_matmul(self._l, self._u)[self._perm]

    def inverse_matrix(self):
        eye = jnp.eye(self._c, dtype=self._u.dtype)
        l_inv = jax.scipy.linalg.solve_triangular(self._l, eye, lower=True, unit_diagonal=True)
        u_inv = jax.scipy.linalg.solve_triangular(self._u, eye, lower=False)
        return _exact_matmul(u_inv, l_inv)[:, self._perm]  # (P A)^-1 = A^-1 P^T, M P^T = M[:, perm]

    def _log_det(self, x):
        return jnp.full(x.shape[:-3], x.shape[-3] * x.shape[-2] * jnp.sum(self._log_diag), x.dtype)

    def forward_and_log_det(self, z):
        z = _check_image(z, "z", self._c)
        return _exact_matmul(z, self.matrix().T), self._log_det(z)

    def inverse_and_log_det(self, x):
        x = _check_image(x, "x", self._c)
        return _exact_matmul(x, self.inverse_matrix().T), -self._log_det(x)
