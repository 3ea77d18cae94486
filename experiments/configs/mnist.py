"""Multi-scale RealNVP on MNIST (256 levels), uniform dequantization, in bits/dim.

AdamW at 3e-3 (the default config's 1e-3 was 0.13 bits/dim worse at the
screening budget of `experiments/image_flow_ablation.py`, row `realnvp_lr3`).

    python experiments/main.py --config=experiments/configs/mnist.py --workdir=runs/mnist \
        [--config.data.manual_dir=DIR]   # DIR: the four original MNIST .gz files, offline
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "mnist"
    config.model.num_scales = 3
    config.model.num_checkerboard = 3

    config.train.eval_batch_size = 500
    config.train.num_steps = 4000
    config.train.log_every = 50
    config.train.eval_every = 0
    config.train.checkpoint_every = 250
    config.train.sample_every = 1000
    config.train.num_samples = 36
    config.optimizer.learning_rate = 3e-3
    return config
