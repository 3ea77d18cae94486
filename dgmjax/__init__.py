"""dgmjax: a functional JAX library for deep generative models.

Subpackages: `bijectors` (distrax bijectors and the multi-scale builder),
`distributions` (discretized and integer logistic mixtures, likelihood
heads), `nn` (Flax networks: MADE, conditioners), `models` (flows, PixelCNN,
integer flows, the VAE and its parts), `objectives` (pure losses: dequantized
bounds, bits/dim, ELBO, IWAE, surgery), `dequantization`, `data` (embedded
digits, 2-D toys, image datasets, batch iterators) and `training` (the loop).
"""

from dgmjax import bijectors, data, dequantization, distributions, models, nn, objectives, training
from dgmjax.dequantization import uniform_dequantize
from dgmjax.objectives import bits_per_dim

__version__ = "0.1.0"

__all__ = ["bijectors", "bits_per_dim", "data", "dequantization", "distributions", "models", "nn",
           "objectives", "training", "uniform_dequantize"]
