"""The same multi-scale RealNVP on MNIST with uniform or variational dequantization (Flow++).

    --config=experiments/configs/dequantization_mnist.py:uniform
    --config=experiments/configs/dequantization_mnist.py:variational
(add --config.data.manual_dir=../shared/data/mnist offline). Both use the flow,
data order, steps and batch of mnist.py; the variational run also trains
q(u|x), a conditional coupling flow. Test bits/dim is reported as the
one-sample bound and as the importance-weighted estimate with S = 16 samples
of each run's own q (uniform or learned): both are upper bounds on the true
bits/dim, and the gap between them shows how loose each q is.
"""

from pathlib import Path

import ml_collections

from dgmjax.training.config import load_config


def get_config(dequantization: str = "uniform"):
    config = load_config(Path(__file__).with_name("mnist.py"))
    config.objective.dequantization = dequantization
    config.objective.eval_importance_samples = 16
    config.dequantizer = ml_collections.ConfigDict()
    config.dequantizer.num_layers = 4
    config.dequantizer.features = 32
    config.dequantizer.num_blocks = 1
    config.dequantizer.context_features = 16
    config.train.eval_batch_size = 200
    return config
