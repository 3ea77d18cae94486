"""Integer discrete flow (Hoogeboom et al. 2019): exact discrete likelihood, no dequantization.

    --config=experiments/configs/idf.py            on the embedded digits (17 levels), minutes
    --config=experiments/configs/idf.py:mnist      on MNIST (offline: --config.data.manual_dir=DIR)
"""

import ml_collections

from configs import default


def get_config(dataset: str = "digits"):
    config = default.get_config()
    config.data.name = dataset

    config.model = ml_collections.ConfigDict()
    config.model.name = "idf"
    config.model.num_scales = 2
    config.model.num_layers = 4
    config.model.features = 32
    config.model.num_blocks = 1
    config.model.num_mixtures = 5

    config.train.num_steps = 2000 if dataset == "digits" else 3000
    config.train.eval_every = 500 if dataset == "digits" else 0
    config.train.sample_every = 1000 if dataset == "digits" else 0
    if dataset != "digits":
        config.train.eval_batch_size = 500
        config.train.checkpoint_every = 250
    config.train.log_every = 50
    config.train.num_samples = 36
    return config
