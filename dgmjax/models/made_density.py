"""An autoregressive model of discrete vectors: MADE conditions a per-dimension likelihood head."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dgmjax import _checks as v
from dgmjax.distributions import LogisticMixtureHead
from dgmjax.nn.made import MADE, made_order

__all__ = ["MADEDensity"]


class MADEDensity(nn.Module):
    """P(x) = prod_d P(x_d | x_<d) for integer vectors x in [0, num_levels)^D (Germain et al. 2015).

    One MADE pass gives every conditional's parameters; `head` (a discretized
    logistic mixture by default, or `CategoricalHead()`, `BernoulliHead()`)
    turns them into distributions. The inputs are one-hot encoded (or
    embedded), and the output bias starts at `head.initial_params`, so a
    mixture's components start apart for every dimension, the first included.
    Sampling is D passes, one variable at a time.

    Attributes:
      event_size: D.
      num_levels: L.
      head: a per-element likelihood head.
      hidden_sizes, activation, order, order_seed: the MADE.
      input_encoding: "one_hot" or "embedding" (with `embedding_size`).
    """

    event_size: int
    num_levels: int
    head: Any = LogisticMixtureHead(10)
    hidden_sizes: Sequence[int] = (512, 512)
    activation: Callable = nn.relu
    order: str | Sequence[int] = "natural"
    order_seed: int = 0
    input_encoding: str = "one_hot"
    embedding_size: int = 16

    def _check_config(self):
        v.check_positive_int(self.event_size, "event_size")
        v.check_num_levels(self.num_levels)
        v.check_sizes(self.hidden_sizes, "hidden_sizes")
        v.check_callable(self.activation, "activation", "an activation function")
        made_order(self.order, self.event_size, self.order_seed)
        v.check_choice(self.input_encoding, ("one_hot", "embedding"), "input_encoding")
        v.check_positive_int(self.embedding_size, "embedding_size")
        for attr in ("num_params", "initial_params"):
            if not callable(getattr(self.head, attr, None)):
                raise ValueError(f"`head` must be a likelihood head from dgmjax.distributions (with "
                                 f"`{attr}`); got {self.head!r}.")

    def setup(self):
        self._check_config()
        self.made = MADE(self.event_size, tuple(self.hidden_sizes), self.head.num_params(self.num_levels),
                         self.order, self.order_seed, activation=self.activation,
                         output_bias=tuple(float(b) for b in self.head.initial_params(self.num_levels)),
                         input_encoding=self.input_encoding, num_levels=self.num_levels,
                         embedding_size=self.embedding_size)

    def distribution(self, x) -> distrax.Distribution:
        """The conditionals at x as one distribution of vectors (evaluate it at x for log P(x))."""
        if tuple(getattr(self.head, "event_shape", ())) != ():
            raise ValueError(f"`head` must be a per-element head (event shape ()); got {self.head}.")
        v.check_positive_int(self.event_size, "event_size")
        x = v.as_array(x, "x")
        if x.ndim < 1 or x.shape[-1] != self.event_size:
            raise ValueError(f"`x` must have shape (..., {self.event_size}); got {x.shape}.")
        return distrax.Independent(self.head(self.made(x), self.num_levels), 1)

    def __call__(self, x):
        """log P(x) in nats, exact, shape x.shape[:-1]."""
        x = v.as_array(x, "x")
        return self.distribution(x).log_prob(x)

    def sample(self, key, num_samples: int):
        """Vectors (num_samples, D), int32, one variable at a time in the MADE's order (D passes)."""
        num_samples = v.check_positive_int(num_samples, "num_samples")
        order = self.made.input_order()

        def body(i, x):
            d = jnp.asarray(order)[i]
            params = self.made(x)[:, d]
            value = self.head(params, self.num_levels).sample(seed=jax.random.fold_in(key, i))
            return x.at[:, d].set(jnp.clip(value.astype(jnp.int32), 0, self.num_levels - 1))

        x = jnp.zeros((num_samples, self.event_size), jnp.int32)
        return jax.lax.fori_loop(0, self.event_size, body, x)
