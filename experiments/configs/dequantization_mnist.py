"""The multi-scale RealNVP of mnist.py with uniform or variational dequantization (Flow++).

    --config=experiments/configs/dequantization_mnist.py[:uniform|variational]
Both report the dequantization bound and its 16-sample importance-weighted estimate.
"""

from configs import mnist


def get_config(dequantization: str = "uniform"):
    config = mnist.get_config()
    config.objective.dequantization = dequantization
    config.objective.eval_importance_samples = 16
    config.train.eval_batch_size = 200
    return config
