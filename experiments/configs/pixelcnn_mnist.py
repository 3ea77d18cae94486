"""PixelCNN++-style model on MNIST with a discretized logistic mixture head (exact bits/dim).

    --config=experiments/configs/pixelcnn_mnist.py [--config.data.manual_dir=DIR]
"""

import ml_collections

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "mnist"

    config.model = ml_collections.ConfigDict()
    config.model.name = "pixelcnn"
    config.model.features = 32
    config.model.num_blocks = 4
    config.model.head = "mixture"  # or "categorical", "bernoulli" (binary data)
    config.model.num_mixtures = 5

    config.train.batch_size = 32
    config.train.eval_batch_size = 500
    config.train.num_steps = 3000
    config.train.log_every = 50
    config.train.eval_every = 0
    config.train.checkpoint_every = 250
    config.train.sample_every = 0
    config.train.num_samples = 16
    return config
