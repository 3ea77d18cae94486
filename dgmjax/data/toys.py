"""2-D toy densities with exact samplers and log-densities.

Each toy is a fixed, fully specified density on R^2 (roughly within [-4, 4]^2):

- `moons`: two interleaving half circles (scaled by 2, centred) with
  Gaussian noise of std 0.2, each moon with probability 1/2;
- `eight_gaussians`: equal mixture of N(c_k, 0.2^2 I), c_k on the circle of
  radius 2 at angles 2 pi k / 8;
- `checkerboard`: uniform on the 8 "black" unit squares of [-2, 2]^2 (those
  where floor(x) + floor(y) is even), density 1/8 there and 0 elsewhere;
- `two_spirals`: two opposite arms r = phi / pi, phi = 3 pi sqrt(t),
  t ~ U[0, 1], with Gaussian noise of std 0.1.

`sample_toy` draws exactly from these densities. `toy_log_prob` evaluates
them: in closed form for eight_gaussians and checkerboard, and for the
curve-based ones as E_t[N(x; c(t), s^2 I)] by midpoint quadrature in t (node
spacing along the curve below a tenth of the noise std, so the quadrature
error is negligible at plotting and evaluation precision).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v

TOY_DENSITIES = ("moons", "eight_gaussians", "checkerboard", "two_spirals")
"""The names of the 2-D toy densities that `sample_toy` and `toy_log_prob` take."""

_MOONS_STD = 0.2
_GAUSS_STD = 0.2
_SPIRAL_STD = 0.1


def _check_name(name: str):
    if name not in TOY_DENSITIES:
        raise ValueError(f"unknown toy density `name` {name!r}; expected one of {TOY_DENSITIES}.")


def _moon_curves(t):
    """Noise-free points of both moons at parameter t in [0, 1] (each (..., 2))."""
    theta = math.pi * t
    upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
    lower = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], -1)
    centre = jnp.array([0.5, 0.25])
    return 2.0 * (upper - centre), 2.0 * (lower - centre)


def _spiral_curves(t):
    phi = 3.0 * math.pi * jnp.sqrt(t)
    arm = (phi / math.pi)[..., None] * jnp.stack([jnp.cos(phi), jnp.sin(phi)], -1)
    return arm, -arm


def _centres():
    angles = 2.0 * math.pi * jnp.arange(8) / 8.0
    return 2.0 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)


def sample_toy(key: jax.Array, name: str, num_samples: int) -> jax.Array:
    """Exact samples of toy `name`, float32 of shape (num_samples, 2); `key` is a jax PRNG key."""
    v.check_key(key)
    _check_name(name)
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int; got {num_samples!r}.")
    k1, k2, k3 = jax.random.split(key, 3)
    n = int(num_samples)
    if name in ("moons", "two_spirals"):
        t = jax.random.uniform(k1, (n,))
        first, second = (_moon_curves if name == "moons" else _spiral_curves)(t)
        which = jax.random.bernoulli(k2, 0.5, (n, 1))
        std = _MOONS_STD if name == "moons" else _SPIRAL_STD
        return jnp.where(which, first, second) + std * jax.random.normal(k3, (n, 2))
    if name == "eight_gaussians":
        idx = jax.random.randint(k1, (n,), 0, 8)
        return _centres()[idx] + _GAUSS_STD * jax.random.normal(k2, (n, 2))
    # checkerboard: choose one of the 8 black cells, then a uniform point in it.
    cells = jnp.array([(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0],
                      jnp.float32)
    idx = jax.random.randint(k1, (n,), 0, cells.shape[0])
    return cells[idx] + jax.random.uniform(k2, (n, 2))


def _curve_log_prob(x, curves, std, num_nodes):
    t = (jnp.arange(num_nodes) + 0.5) / num_nodes
    nodes = jnp.concatenate(curves(t), 0)  # (2M, 2): both curves, weight 1/(2M) each

    def one(point):
        d2 = jnp.sum((point - nodes) ** 2, -1)
        log_n = -d2 / (2 * std**2) - math.log(2 * math.pi * std**2)
        return jax.scipy.special.logsumexp(log_n) - math.log(nodes.shape[0])

    flat = x.reshape(-1, 2)
    # Chunked so a plotting grid never materializes (points x nodes) at once.
    return jax.lax.map(one, flat, batch_size=512).reshape(x.shape[:-1])


def toy_log_prob(name: str, x: jax.Array) -> jax.Array:
    """Exact log-density (nats) at points `x` of shape (..., 2); -inf off the support."""
    _check_name(name)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim < 1 or x.shape[-1] != 2:
        raise ValueError(f"`x` must have shape (..., 2); got {x.shape}.")
    if name == "moons":
        return _curve_log_prob(x, _moon_curves, _MOONS_STD, 1024)
    if name == "two_spirals":
        return _curve_log_prob(x, _spiral_curves, _SPIRAL_STD, 2048)
    if name == "eight_gaussians":
        d2 = jnp.sum((x[..., None, :] - _centres()) ** 2, -1)
        log_n = -d2 / (2 * _GAUSS_STD**2) - math.log(2 * math.pi * _GAUSS_STD**2)
        return jax.scipy.special.logsumexp(log_n, -1) - math.log(8.0)
    inside = jnp.all(jnp.abs(x) < 2.0, -1)
    black = (jnp.floor(x[..., 0]) + jnp.floor(x[..., 1])) % 2 == 0
    return jnp.where(inside & black, -math.log(8.0), -jnp.inf)
