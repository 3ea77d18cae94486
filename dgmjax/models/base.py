"""The Flax flow-model base class and data-dependent ActNorm initialization."""

from __future__ import annotations

from collections.abc import Callable

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dgmjax import _validation as v
from dgmjax.bijectors import ActNorm, actnorm_init


class FlowModule(nn.Module):
    """A Flax module that gives a distrax distribution.

    Subclasses define `bijector(context)`, `base_distribution()` and
    `event_shape()` (and `context_size` for conditional flows). Then:

    - `model.apply(variables, x[, context])` is log p(x) in nats;
    - `model.apply(variables, key, n[, context], method=model.sample)` samples;
    - `model.bind(variables).distribution([context])` is a `distrax.Transformed`
      (its `sample` vmaps over samples, so give it one shared context; for a
      context per sample use `model.sample`).
    """

    def bijector(self, context=None) -> distrax.Bijector:  # pragma: no cover - abstract
        raise NotImplementedError

    def base_distribution(self) -> distrax.Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def event_shape(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_context(self, context):
        """ValueError unless `context` matches `context_size` (0 = unconditional)."""
        size = getattr(self, "context_size", 0)
        name = type(self).__name__
        if size == 0:
            if context is not None:
                raise ValueError(f"`context` was given to an unconditional {name} (context_size=0).")
            return None
        if context is None:
            raise ValueError(f"this {name} is conditional (context_size={size}); pass `context`.")
        context = jnp.asarray(context)
        if context.ndim < 1 or context.shape[-1] != size:
            raise ValueError(f"`context` must have last axis {size}; got shape {context.shape}.")
        return context

    def distribution(self, context=None) -> distrax.Transformed:
        """The model as a distrax distribution (call inside `apply`, or on `bind(...)`)."""
        return distrax.Transformed(self.base_distribution(), self.bijector(self.check_context(context)))

    def __call__(self, x, context=None):
        """log p(x) in nats, shape `x.shape[:-event_rank]`."""
        v.check_float(x, "x")
        v.check_event_shape(x, self.event_shape(), "x")
        return self.distribution(context).log_prob(x)

    def sample_and_log_prob(self, key, num_samples: int, context=None):
        """`num_samples` draws, shape `(num_samples,) + event_shape`, and their log p.

        Runs the bijector on the whole batch of base samples (distrax's
        `Transformed.sample` vmaps over samples instead, which would not line
        a per-sample `context` of shape (num_samples, C) up with the samples).
        """
        num_samples = v.check_positive_int(num_samples, "num_samples")
        context = self.check_context(context)
        z, log_p_z = self.base_distribution().sample_and_log_prob(seed=key, sample_shape=(num_samples,))
        x, log_det = self.bijector(context).forward_and_log_det(z)
        return x, log_p_z - log_det

    def sample(self, key, num_samples: int, context=None):
        """`num_samples` draws, shape `(num_samples,) + event_shape` (see `sample_and_log_prob`)."""
        return self.sample_and_log_prob(key, num_samples, context)[0]


def actnorm_stack_init(x, rest_fn: Callable, rest_params, event_ndims: int):
    """Data-dependent ActNorm parameters for a `ScanChain` of layers `Chain([ActNorm, rest])`.

    Walks the batch `x` from the data side (the last layer of the chain) to
    the noise side, setting each layer's ActNorm to the per-channel mean and
    log-std of the activations it receives, so that its inverse outputs zero
    mean and unit variance. Runs as one `lax.scan` (flat compile time), or as
    a Python loop when `rest_params` is a list of per-layer pytrees (the
    layerwise form of `ScanChain`).

    Returns `({"loc": (L, C), "log_scale": (L, C)}, x at the noise side)`.
    """

    def body(h, p):
        loc, log_scale = actnorm_init(h)
        h = ActNorm(loc, log_scale, event_ndims).inverse(h)
        h = distrax.as_bijector(rest_fn(p)).inverse(h)
        return h, {"loc": loc, "log_scale": log_scale}

    if isinstance(rest_params, (list, tuple)):
        stats = [None] * len(rest_params)
        h = x
        for i in range(len(rest_params) - 1, -1, -1):
            h, stats[i] = body(h, rest_params[i])
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *stats), h
    h, stats = jax.lax.scan(body, x, rest_params, reverse=True)
    return stats, h
