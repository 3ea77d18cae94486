"""Likelihood heads: how a network's raw outputs become a distribution over one data element.

A head is a small frozen dataclass shared by every model that ends in a
per-element likelihood (PixelCNN, MADE, the VAE decoders): the model
computes `head.num_params(num_levels)` numbers per element (per pixel for
`RGBLogisticMixtureHead`) and `head(params, num_levels)` turns them into a
distrax distribution whose batch shape is `params.shape[:-1]`. Models wrap it
in `distrax.Independent` over the data axes. A head is what a string switch
on "bernoulli" / "categorical" / "mixture" / "gaussian" would otherwise be.

Heads and the distribution they give:

| head | data | distribution (event shape) |
|---|---|---|
| `BernoulliHead()` | levels {0, 1} | `distrax.Bernoulli` (()) |
| `CategoricalHead()` | levels [0, L) | `distrax.Categorical` (()) |
| `LogisticMixtureHead(K)` | levels [0, L) | `DiscretizedLogisticMixture` (()) |
| `RGBLogisticMixtureHead(K)` | RGB pixels, levels [0, L) | `DiscretizedRGBLogisticMixture` ((3,)) |
| `GaussianHead()` | real values (num_levels None) | `distrax.Normal` (()) |

Every head's distribution checks the data it scores: `log_prob` (and `prob`)
take a value of shape (sample axes...) + batch shape + event shape, batch axes
lined up as in `DiscretizedLogisticMixture` (a value axis of size 1 against a
larger batch axis, or a missing axis, is a ValueError naming `value`), with
integer levels in [0, L) for the discrete heads (range checked when concrete,
and under `checked_mode()`) and floats for `GaussianHead`. Sampling and
everything else are distrax's.

`head.initial_params(num_levels)` are the raw outputs a freshly initialized
network should start from when its outputs cannot vary yet (MADE's first
dimension sees no inputs): zeros, except that a mixture's components start
at distinct means so that gradient descent can tell them apart.
"""

from __future__ import annotations

import dataclasses

import distrax
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.distributions.discretized import DiscretizedLogisticMixture, DiscretizedRGBLogisticMixture

__all__ = ["BernoulliHead", "CategoricalHead", "GaussianHead", "LogisticMixtureHead",
           "RGBLogisticMixtureHead"]


def _check_params(params, size, name):
    """The network outputs as a float array of shape (..., size) (Python lists and integer arrays
    are accepted; the last axis must be the head's parameters, nothing broadcasts)."""
    params = v.as_array(params, "params")
    if params.dtype == jnp.bool_:
        raise ValueError(f"`params` of {name} must hold numbers; got dtype bool.")
    if not jnp.issubdtype(params.dtype, jnp.floating):
        params = jnp.asarray(params, jnp.float32)
    if params.ndim < 1 or params.shape[-1] != size:
        raise ValueError(f"`params` of {name} must have shape (..., {size}) ({size} numbers per element, "
                         f"last axis); got {params.shape}.")
    return params


class _ScoresLevels:
    """For a distrax distribution of levels (mixed in before it): `log_prob` and `prob` take only
    integer levels in [0, `num_levels`) lined up with its batch; its own samples are scored as they
    are; indexing keeps the class."""

    num_levels: int

    def _checked(self, value):
        value = v.check_value_shape(value, self.batch_shape, self.event_shape)
        return v.check_integer_levels(value, self.num_levels, "value")

    def log_prob(self, value):
        return super().log_prob(self._checked(value))

    def prob(self, value):
        return super().prob(self._checked(value))

    def _sample_n_and_log_prob(self, key, n):
        samples = self._sample_n(key, n)
        return samples, super().log_prob(samples)

    def __getitem__(self, index):
        return type(self)(logits=super().__getitem__(index).logits, dtype=self._dtype)


class _LevelBernoulli(_ScoresLevels, distrax.Bernoulli):
    """`distrax.Bernoulli` scoring only levels {0, 1} lined up with its batch."""

    num_levels = 2


class _LevelCategorical(_ScoresLevels, distrax.Categorical):
    """`distrax.Categorical` scoring only levels in [0, num_categories) lined up with its batch
    (distrax's scores a level outside as -inf)."""

    @property
    def num_levels(self) -> int:
        return self.num_categories


class _CheckedNormal(distrax.Normal):
    """`distrax.Normal` whose `log_prob` and `prob` take only real values lined up with its batch."""

    def _check(self, value):
        value = v.check_value_shape(value, self.batch_shape, self.event_shape)
        return v.check_float(value, "value")

    def log_prob(self, value):
        return super().log_prob(self._check(value))

    def prob(self, value):
        return super().prob(self._check(value))

    def __getitem__(self, index):
        part = super().__getitem__(index)
        return _CheckedNormal(part.loc, part.scale)


@dataclasses.dataclass(frozen=True)
class BernoulliHead:
    """One logit per element: Bernoulli(sigmoid(logit)) over {0, 1}."""

    event_shape = ()

    def num_params(self, num_levels) -> int:
        if num_levels != 2:
            raise ValueError(f"BernoulliHead models binary data: `num_levels` must be 2; got {num_levels!r}.")
        return 1

    def initial_params(self, num_levels) -> np.ndarray:
        return np.zeros(self.num_params(num_levels), np.float32)

    def __call__(self, params, num_levels) -> distrax.Distribution:
        params = _check_params(params, self.num_params(num_levels), "BernoulliHead")
        return _LevelBernoulli(logits=params[..., 0], dtype=jnp.int32)


@dataclasses.dataclass(frozen=True)
class CategoricalHead:
    """num_levels logits per element: a softmax over the levels."""

    event_shape = ()

    def num_params(self, num_levels) -> int:
        return v.check_num_levels(num_levels)

    def initial_params(self, num_levels) -> np.ndarray:
        return np.zeros(self.num_params(num_levels), np.float32)

    def __call__(self, params, num_levels) -> distrax.Distribution:
        params = _check_params(params, self.num_params(num_levels), "CategoricalHead")
        return _LevelCategorical(logits=params, dtype=jnp.int32)


def _spread_means(num_mixtures):
    """Centres of K equal bins of [-1, 1], and a log-scale of a fifth of a bin's width."""
    k = num_mixtures
    means = -1.0 + (2.0 * np.arange(k) + 1.0) / k
    return means.astype(np.float32), np.full(k, np.log(0.4 / k), np.float32)


@dataclasses.dataclass(frozen=True)
class LogisticMixtureHead:
    """3K numbers per element: mixture logits, means and log-scales of a discretized logistic mixture.

    Means and log-scales are on the [-1, 1] scale of `DiscretizedLogisticMixture`.
    """

    num_mixtures: int = 5
    event_shape = ()

    def __post_init__(self):
        v.check_positive_int(self.num_mixtures, "num_mixtures")

    def num_params(self, num_levels) -> int:
        v.check_num_levels(num_levels)
        return 3 * self.num_mixtures

    def initial_params(self, num_levels) -> np.ndarray:
        self.num_params(num_levels)
        means, log_scales = _spread_means(self.num_mixtures)
        return np.concatenate([np.zeros(self.num_mixtures, np.float32), means, log_scales])

    def __call__(self, params, num_levels) -> DiscretizedLogisticMixture:
        k = self.num_mixtures
        params = _check_params(params, self.num_params(num_levels), "LogisticMixtureHead")
        return DiscretizedLogisticMixture(params[..., :k], params[..., k:2 * k], params[..., 2 * k:],
                                          num_levels)


@dataclasses.dataclass(frozen=True)
class RGBLogisticMixtureHead:
    """10K numbers per RGB pixel: K logits, then per channel K means, K log-scales and K coupling
    coefficients (PixelCNN++'s layout), for `DiscretizedRGBLogisticMixture`."""

    num_mixtures: int = 5
    event_shape = (3,)

    def __post_init__(self):
        v.check_positive_int(self.num_mixtures, "num_mixtures")

    def num_params(self, num_levels) -> int:
        v.check_num_levels(num_levels)
        return 10 * self.num_mixtures

    def initial_params(self, num_levels) -> np.ndarray:
        self.num_params(num_levels)
        k = self.num_mixtures
        means, log_scales = _spread_means(k)
        channel = np.concatenate([means, log_scales, np.zeros(k, np.float32)])
        return np.concatenate([np.zeros(k, np.float32), np.tile(channel, 3)])

    def __call__(self, params, num_levels) -> DiscretizedRGBLogisticMixture:
        k = self.num_mixtures
        params = _check_params(params, self.num_params(num_levels), "RGBLogisticMixtureHead")
        rest = params[..., k:].reshape(params.shape[:-1] + (3, 3 * k))
        return DiscretizedRGBLogisticMixture(params[..., :k], rest[..., :k], rest[..., k:2 * k],
                                             rest[..., 2 * k:], num_levels)


@dataclasses.dataclass(frozen=True)
class GaussianHead:
    """Mean and log-std per element of continuous data; the log-std is clipped to
    [min_log_std, max_log_std] so that no output of the network gives an infinite density."""

    min_log_std: float = -7.0
    max_log_std: float = 7.0
    event_shape = ()

    def __post_init__(self):
        lo = v.check_finite_float(self.min_log_std, "min_log_std")
        hi = v.check_finite_float(self.max_log_std, "max_log_std")
        if not lo < hi:
            raise ValueError(f"`min_log_std` must be below `max_log_std`; got {self.min_log_std!r} and "
                             f"{self.max_log_std!r}.")

    def num_params(self, num_levels) -> int:
        if num_levels is not None:
            raise ValueError(f"GaussianHead models continuous data: `num_levels` must be None; got "
                             f"{num_levels!r}.")
        return 2

    def initial_params(self, num_levels) -> np.ndarray:
        return np.zeros(self.num_params(num_levels), np.float32)

    def __call__(self, params, num_levels) -> distrax.Distribution:
        params = _check_params(params, self.num_params(num_levels), "GaussianHead")
        log_std = jnp.clip(params[..., 1], self.min_log_std, self.max_log_std)
        return _CheckedNormal(params[..., 0], jnp.exp(log_std))

