"""Multi-scale RealNVP on MNIST (256 levels) with uniform dequantization, in bits/dim.

Offline, point tfds at the original files:
    python experiments/main.py --config=experiments/configs/mnist.py --workdir=runs/mnist \
        --config.data.manual_dir=../shared/data/mnist
Three scales (28 -> 14 -> 7). Sized so a run of ~1 hour on a 2-core CPU makes
real progress; on a GPU raise features / num_blocks / num_steps.
"""

from pathlib import Path

from dgmjax.training.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("default.py"))
    config.data.name = "mnist"

    config.model.num_scales = 3
    config.model.num_checkerboard = 3
    config.model.num_channelwise = 3
    config.model.features = 32
    config.model.num_blocks = 1
    config.model.logit_alpha = 0.05

    config.train.batch_size = 64
    config.train.eval_batch_size = 500
    config.train.num_steps = 4000
    config.train.log_every = 50
    config.train.eval_every = 0
    config.train.checkpoint_every = 250
    config.train.sample_every = 1000
    config.train.num_samples = 36
    config.train.ema_decay = 0.999

    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 200
    return config
