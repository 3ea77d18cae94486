"""The Flax flow-model base class and data-dependent ActNorm initialization of a layer stack."""

from __future__ import annotations

from collections.abc import Callable

import distrax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax._checks import check_context
from dgmjax.bijectors import ActNorm, LayerStack, actnorm_init
from dgmjax.nn.conditioners import BLOCK_CONTRACT


def build_conditioner(factory: Callable, num_outputs: int, name: str = "conditioner") -> nn.Module:
    """`factory(num_outputs)`, a Flax module, detached from the module that builds it.

    A model calls it in `setup` (where constructing a module is allowed) and
    keeps the module's `init` / `apply`: the conditioners' parameters are
    stacked per layer by `stack_params`, not registered as submodules.
    """
    v.check_callable(factory, name, "a factory: number of outputs -> Flax module")
    module = factory(num_outputs)
    if not isinstance(module, nn.Module):
        raise ValueError(f"`{name}`({num_outputs}) must return a Flax module mapping the coupling's kept "
                         f"input to {num_outputs} outputs on its last axis; got {type(module).__name__}.")
    return module.clone(parent=None)


def check_image_conditioner(model) -> None:
    """The default conditioner's fields of an image flow: `activation`, `block`, `compute_dtype` (a
    `conditioner` factory is checked where it is built, `build_conditioner`)."""
    v.check_callable(model.activation, "activation", "an activation function")
    v.check_callable(model.block, "block", BLOCK_CONTRACT)
    v.as_compute_dtype(model.compute_dtype)


def check_logit_alpha(alpha, name: str = "logit_alpha"):
    """None, or a number in [0, 0.5) (the alpha of `ScaledSigmoid`)."""
    if alpha is None:
        return None
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(alpha) < 0.5:
        raise ValueError(f"`{name}` must be None or a float in [0, 0.5); got {alpha!r}.")
    return float(alpha)


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

    unit_interval_data = False  # image models: x is continuous data in [0, 1]

    def check_hyperparameters(self):  # pragma: no cover - overridden
        """ValueError naming the first attribute that is not valid (called at setup and first use)."""

    def check_context(self, context, batch_shape=None):
        """ValueError unless `context` matches `context_size` (0 = unconditional) and, with
        `batch_shape`, has one context for all (shape (C,)) or batch axes broadcastable to it."""
        context = check_context(context, getattr(self, "context_size", 0), type(self).__name__)
        if context is not None:
            v.check_float(context, "context")
            if batch_shape is not None:
                try:
                    ok = jnp.broadcast_shapes(tuple(batch_shape), context.shape[:-1]) == tuple(batch_shape)
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(
                        f"`context` must have shape (C,) or batch axes matching the data's batch shape "
                        f"{tuple(batch_shape)}, i.e. {tuple(batch_shape) + context.shape[-1:]}; got shape "
                        f"{context.shape}.")
        return context

    def check_x(self, x, name: str = "x"):
        """`x` as an array of the event shape: float, and in [0, 1] for image models."""
        x = v.as_array(x, name)
        if self.unit_interval_data:
            v.check_unit_interval(x, name, what="continuous pixel values")
        else:
            v.check_float(x, name)
        v.check_event_shape(x, self.event_shape(), name)
        return x

    def distribution(self, context=None) -> distrax.Transformed:
        """The model as a distrax distribution (call inside `apply`, or on `bind(...)`)."""
        self.check_hyperparameters()
        return distrax.Transformed(self.base_distribution(), self.bijector(self.check_context(context)))

    def __call__(self, x, context=None):
        """log p(x) in nats, shape `x.shape[:-event_rank]`."""
        self.check_hyperparameters()
        x = self.check_x(x)
        batch_shape = x.shape[: x.ndim - len(self.event_shape())]
        return self.distribution(self.check_context(context, batch_shape)).log_prob(x)

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
        self.check_hyperparameters()
        num_samples = v.check_positive_int(num_samples, "num_samples")
        temperature = v.check_positive_float(temperature, "temperature")
        context = self.check_context(context, (num_samples,))
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
