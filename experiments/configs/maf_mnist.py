"""MAF(5) on MNIST in logit space, the MAF paper's setup (Papamakarios et al. 2017, Table 2).

Pixels are dequantized with uniform noise, scaled to [0, 1] and mapped to
logit(1e-6 + (1 - 2e-6) x); the flow is a density on those 784-D vectors.
Five MADE layers with one hidden layer of 1024 units, order reversed between
layers, and a data-initialized ActNorm in each layer standing in for the
paper's batch norm. Trained on the first 50,000 training images (the
paper's split; the rest is its validation set), tested on the 10,000 test
images. Reports the test log-likelihood in logit space (the paper: MAF(5)
-1300.5, RealNVP(5) -1323.2 nats) and the same model as bits/dim of the pixels.

    python experiments/main.py --config=experiments/configs/maf_mnist.py \
        --workdir=runs/maf_mnist --config.data.manual_dir=../shared/data/mnist
    # RealNVP(5) at the same size: --config.model.name=realnvp  (split couplings)
"""

from pathlib import Path

import ml_collections

from dgmjax.training.config import load_config


def get_config(model: str = "maf"):
    config = load_config(Path(__file__).with_name("default.py"))
    config.data.name = "mnist"
    config.data.train_split = "train[:50000]"
    config.data.test_split = "test"
    config.objective.logit_alpha = 1e-6

    config.model = ml_collections.ConfigDict()
    config.model.name = model
    config.model.num_layers = 5
    config.model.hidden_sizes = (1024,)
    config.model.activation = "relu"
    config.model.scale_fn = "tanh"
    # False: per-layer parameters run in a Python loop, a faster train step at 5 layers on
    # CPU, compile time growing with depth (experiments/benchmarks/flows.py); True: lax.scan.
    config.model.scan_layers = True
    if model in ("maf", "iaf"):
        config.model.actnorm = True
        config.model.permutation = "reversed"
        config.model.scale_bound = 3.0
    else:
        config.model.coupling = "split"
        config.model.permutation = "reversed"

    config.train.batch_size = 128
    config.train.eval_batch_size = 500
    config.train.num_steps = 10_000
    config.train.log_every = 200
    config.train.eval_every = 5000
    config.train.checkpoint_every = 2000
    config.train.sample_every = 0
    config.train.num_samples = 36
    config.train.ema_decay = 0.999

    config.optimizer.learning_rate = 5e-4
    config.optimizer.warmup_steps = 500
    config.optimizer.weight_decay = 1e-6
    config.optimizer.grad_clip_norm = 50.0
    return config
