"""Shared test helpers: autodiff log-dets, perturbed parameters, fixed nonlinear conditioners."""

import jax
import jax.numpy as jnp
import numpy as np


def jac_logdet(fn, x):
    """log|det J| of fn at a single (unbatched) x, by autodiff (input and output flattened)."""
    flat = lambda v: fn(v.reshape(x.shape)).reshape(-1)
    jac = jax.jacfwd(flat)(x.reshape(-1))
    return jnp.linalg.slogdet(jac)[1]


def perturb(params, key, scale=0.3):
    """Random nonzero parameters everywhere (the zero-initialized last layers included)."""
    key = jax.random.PRNGKey(key) if isinstance(key, int) else key
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    new = [leaf + scale * jax.random.normal(k, leaf.shape) / np.sqrt(max(leaf.shape[-1], 1))
           if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
           for leaf, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(tree, new)


def random_conditioner(key, event_shape, scale=0.5, out_shape=None):
    """A fixed nonlinear conditioner with nonzero outputs (so layers are not the identity).

    Maps (..., *event_shape) to (..., *out_shape, 2), out_shape defaulting to event_shape.
    """
    event_shape = tuple(event_shape)
    out_shape = event_shape if out_shape is None else tuple(out_shape)
    d, o = int(np.prod(event_shape)), int(np.prod(out_shape))
    w = scale * jax.random.normal(key, (d, 2 * o)) / np.sqrt(d)

    def cond(xm):
        batch = xm.shape[: xm.ndim - len(event_shape)]
        out = jnp.tanh(xm.reshape(batch + (d,)) @ w + 0.3)
        return out.reshape(batch + out_shape + (2,))

    return cond


def brute_force_log_prob(bijector_fn, xs):
    """log N(f(x); 0, I) + log|det df/dx| for each example x of `xs`, f = bijector_fn().inverse,
    the Jacobian by jacfwd (one compiled program for the batch)."""

    @jax.jit
    def run(xs):
        f = bijector_fn().inverse

        def one(x):
            flat_f = lambda v: f(v.reshape(x.shape)).reshape(-1)
            jac = jax.jacfwd(flat_f)(x.reshape(-1))
            return jnp.sum(jax.scipy.stats.norm.logpdf(flat_f(x.reshape(-1)))) + jnp.linalg.slogdet(jac)[1]

        return jax.vmap(one)(xs)

    return run(xs)
