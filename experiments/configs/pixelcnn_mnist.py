"""PixelCNN++-style model with a discretized logistic mixture head on MNIST (256 levels).

Exact discrete log-likelihood, reported in nats per pixel and bits/dim.
    python experiments/main.py --config=experiments/configs/pixelcnn_mnist.py \
        --workdir=runs/pixelcnn_mnist --config.data.manual_dir=../shared/data/mnist
For binarized MNIST with a Bernoulli head use pixelcnn_binarized_mnist.py.
Sized for about an hour on a 2-core CPU.
"""

from pathlib import Path

import ml_collections

from dgmjax.training.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("default.py"))
    config.data.name = "mnist"

    config.model = ml_collections.ConfigDict()
    config.model.name = "pixelcnn"
    config.model.features = 32
    config.model.num_blocks = 4
    config.model.head = "mixture"
    config.model.num_mixtures = 5

    config.train.batch_size = 32
    config.train.eval_batch_size = 500
    config.train.num_steps = 3000
    config.train.log_every = 50
    config.train.eval_every = 0
    config.train.checkpoint_every = 250
    config.train.sample_every = 0
    config.train.num_samples = 16
    config.train.ema_decay = 0.999

    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 200
    return config
