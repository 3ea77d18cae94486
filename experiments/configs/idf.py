"""Integer discrete flow (Hoogeboom et al. 2019): exact discrete likelihood, no dequantization.

    --config=experiments/configs/idf.py            on the embedded digits (17 levels), minutes
    --config=experiments/configs/idf.py:mnist      on MNIST (add --config.data.manual_dir=...)
"""

from pathlib import Path

import ml_collections

from dgmjax.training.config import load_config


def get_config(dataset: str = "digits"):
    config = load_config(Path(__file__).with_name("default.py"))
    config.data.name = dataset

    config.model = ml_collections.ConfigDict()
    config.model.name = "idf"
    config.model.num_scales = 2
    config.model.num_layers = 4
    config.model.features = 32
    config.model.num_blocks = 1
    config.model.num_mixtures = 5

    if dataset == "digits":
        config.train.batch_size = 64
        config.train.num_steps = 2000
        config.train.eval_every = 500
        config.train.sample_every = 1000
    else:
        config.train.batch_size = 64
        config.train.eval_batch_size = 500
        config.train.num_steps = 3000
        config.train.eval_every = 0
        config.train.sample_every = 0
        config.train.checkpoint_every = 250
    config.train.log_every = 50
    config.train.num_samples = 36
    config.optimizer.learning_rate = 1e-3
    return config
