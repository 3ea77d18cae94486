"""Assembled models as Flax modules.

`model.apply(variables, ...)` returns, per example:

- `RealNVP`, `MAF`, `IAF` (vectors), `ImageRealNVP`, `Glow` (images in [0, 1)):
  `(x[, context])` -> log p(x) in nats; `.distribution()` is a `distrax.Transformed`;
- `PixelCNN`, `MADEDensity`, `IntegerDiscreteFlow` (integer data): `(x)` -> log P(x), exact;
- `VAE`: `(key, x)` -> {"elbo", "reconstruction", "kl"} in nats;
- `VariationalDequantizer`: `(key, x)` -> (u, log q(u | x)).

Every model samples with `method=model.sample`: `(key, num_samples)`.
"""

from dgmjax.models.autoregressive import IAF, MAF
from dgmjax.models.base import FlowModule
from dgmjax.models.dequantizer import VariationalDequantizer
from dgmjax.models.glow import Glow
from dgmjax.models.idf import IntegerDiscreteFlow
from dgmjax.models.made_density import MADEDensity
from dgmjax.models.pixelcnn import PixelCNN
from dgmjax.models.priors import FlowPrior, GaussianMixturePrior, StandardNormalPrior, VampPrior
from dgmjax.models.realnvp import ImageRealNVP, RealNVP
from dgmjax.models.vae import VAE, GaussianEncoder, IAFEncoder, MLPDecoder, PlanarEncoder

__all__ = [
    "IAF",
    "MAF",
    "VAE",
    "FlowModule",
    "FlowPrior",
    "GaussianEncoder",
    "GaussianMixturePrior",
    "Glow",
    "IAFEncoder",
    "ImageRealNVP",
    "IntegerDiscreteFlow",
    "MADEDensity",
    "MLPDecoder",
    "PixelCNN",
    "PlanarEncoder",
    "RealNVP",
    "StandardNormalPrior",
    "VampPrior",
    "VariationalDequantizer",
]
