"""The Flax flow-model base class and data-dependent ActNorm initialization of a layer stack."""

from __future__ import annotations

from collections.abc import Callable

import distrax
import flax.linen as nn

from dgmjax import _checks as v
from dgmjax._checks import check_context
from dgmjax.bijectors import ActNorm, LayerStack, actnorm_init


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
        return check_context(context, getattr(self, "context_size", 0), type(self).__name__)

    def distribution(self, context=None) -> distrax.Transformed:
        """The model as a distrax distribution (call inside `apply`, or on `bind(...)`)."""
        return distrax.Transformed(self.base_distribution(), self.bijector(self.check_context(context)))

    def __call__(self, x, context=None):
        """log p(x) in nats, shape `x.shape[:-event_rank]`."""
        v.check_float(x, "x")
        v.check_event_shape(x, self.event_shape(), "x")
        return self.distribution(context).log_prob(x)

    def sample_and_log_prob(self, key, num_samples: int, context=None, *, temperature: float = 1.0):
        """`num_samples` draws, shape `(num_samples,) + event_shape`, and their log p.

        Runs the bijector on the whole batch of base samples (distrax's
        `Transformed.sample` vmaps over samples instead, which would not line
        a per-sample `context` of shape (num_samples, C) up with the samples).

        `temperature` T scales the standard-normal base draws, z ~ N(0, T^2 I)
        (Glow's reduced-temperature sampling; T < 1 trades diversity for
        cleaner samples). The log p returned is the model's own density of
        each draw at T = 1, not the tempered one.
        """
        num_samples = v.check_positive_int(num_samples, "num_samples")
        temperature = v.check_positive_float(temperature, "temperature")
        context = self.check_context(context)
        base = self.base_distribution()
        if temperature == 1.0:
            z, log_p_z = base.sample_and_log_prob(seed=key, sample_shape=(num_samples,))
        else:
            z = temperature * base.sample(seed=key, sample_shape=(num_samples,))
            log_p_z = base.log_prob(z)
        x, log_det = self.bijector(context).forward_and_log_det(z)
        return x, log_p_z - log_det

    def sample(self, key, num_samples: int, context=None, *, temperature: float = 1.0):
        """`num_samples` draws, shape `(num_samples,) + event_shape` (see `sample_and_log_prob`)."""
        return self.sample_and_log_prob(key, num_samples, context, temperature=temperature)[0]


def actnorm_stack_init(x, rest: LayerStack, event_ndims: int):
    """Data-dependent ActNorm parameters for a stack of layers `Chain([ActNorm, rest_i])`.

    `rest` is the stack without its ActNorms. Walks the batch `x` from the
    data side (the last layer) to the noise side, setting each layer's
    ActNorm to the per-channel mean and log-std of the activations it
    receives, so that its inverse outputs zero mean and unit variance.

    Returns `({"loc": (L, C), "log_scale": (L, C)}, x at the noise side)`.
    """
    fn: Callable = rest.bijector_fn

    def body(h, p, c):
        loc, log_scale = actnorm_init(h)
        h = ActNorm(loc, log_scale, event_ndims).inverse(h)
        h = distrax.as_bijector(fn(p, c)).inverse(h)
        return h, {"loc": loc, "log_scale": log_scale}

    h, stats = rest.scan(body, x, reverse=True)
    return stats, h
