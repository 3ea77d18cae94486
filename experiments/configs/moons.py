"""A vector flow on a 2-D toy density, with density and sample plots.

    --config=experiments/configs/moons.py            RealNVP on moons
    --config=experiments/configs/moons.py:maf        MAF (one-pass density, sequential sampling)
    --config=experiments/configs/moons.py:iaf        IAF (one-pass sampling, sequential density)
    --config.data.name=eight_gaussians|checkerboard|two_spirals   another toy
"""

import ml_collections

from configs import default


def get_config(model: str = "realnvp"):
    config = default.get_config()
    config.data.name = "moons"

    config.model = ml_collections.ConfigDict()
    config.model.name = model
    config.model.num_layers = 8
    config.model.hidden_sizes = (128, 128)
    config.model.activation = "relu"
    config.model.scale_fn = "tanh"

    config.train.batch_size = 256
    config.train.eval_batch_size = 1000
    config.train.num_steps = 5000
    config.train.log_every = 250
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    config.train.sample_every = 2500
    config.optimizer.warmup_steps = 100
    return config
