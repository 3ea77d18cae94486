"""MAF(5) / RealNVP(5) on MNIST in logit space (lambda = 1e-6), the MAF paper's setup.

    --config=experiments/configs/maf_mnist.py[:maf|realnvp] [--config.data.manual_dir=DIR]
Reports the log-likelihood in logit space (the paper's Table 2 unit) and the
bits/dim bound of the pixels it implies.
"""

import ml_collections

from configs import default


def get_config(model: str = "maf"):
    config = default.get_config()
    config.data.name = "mnist"
    config.data.train_split = "train[:50000]"

    config.model = ml_collections.ConfigDict()
    config.model.name = model
    config.model.num_layers = 5
    config.model.hidden_sizes = (1024,)
    config.model.activation = "relu"
    config.model.scale_fn = "tanh"
    # False: per-layer parameters run unrolled, a faster train step at 5 layers, compile time
    # growing with depth (experiments/benchmarks/flows.py); True: stacked and scanned.
    config.model.scan_layers = True
    config.model.permutation = "reversed"
    if model in ("maf", "iaf"):
        config.model.actnorm = True
        config.model.scale_bound = 3.0
    else:
        config.model.coupling = "split"

    config.train.batch_size = 128
    config.train.eval_batch_size = 500
    config.train.num_steps = 10_000
    config.train.log_every = 200
    config.train.eval_every = 5000
    config.train.checkpoint_every = 2000
    config.train.sample_every = 0
    config.train.num_samples = 36

    config.optimizer.learning_rate = 5e-4
    config.optimizer.warmup_steps = 500
    config.optimizer.weight_decay = 1e-6
    config.optimizer.grad_clip_norm = 50.0
    return config
