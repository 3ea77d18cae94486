"""dgmjax: a functional JAX library for deep generative models.

Subpackages: `bijectors` (distrax bijectors), `nn` (Flax conditioners),
`models` (Flax flow models giving distrax distributions), `data` (tfds images,
embedded digits, 2-D toys, batch iterators), `dequantization`, `tasks`
(model + data + objective) and `training` (the optax/orbax loop).
"""

from dgmjax import bijectors, data, dequantization, models, nn
from dgmjax.dequantization import bits_per_dim, uniform_dequantize

__version__ = "0.1.0"

__all__ = ["bijectors", "bits_per_dim", "data", "dequantization", "models", "nn",
           "uniform_dequantize"]
