"""dgmjax: a functional JAX library for deep generative models.

Subpackages: `bijectors` (distrax bijectors and the multi-scale builder),
`distributions` (discretized and integer logistic mixtures, likelihood
heads), `nn` (Flax networks: MADE, conditioners), `models` (flows, PixelCNN,
integer flows, the VAE and its parts), `objectives` (pure losses: dequantized
bounds, bits/dim, ELBO, IWAE, surgery), `dequantization`, `data` (embedded
digits, 2-D toys, image datasets, batch iterators) and `training` (the loop).
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("bijectors", "data", "dequantization", "distributions", "models", "nn", "objectives",
                "training")
_FUNCTIONS = {"bits_per_dim": "objectives", "uniform_dequantize": "dequantization"}

__all__ = sorted(_SUBPACKAGES + tuple(_FUNCTIONS))


def __getattr__(name: str):
    """Subpackages load on first use (`dgmjax.training` brings orbax in only when asked for)."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"dgmjax.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"dgmjax.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'dgmjax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
