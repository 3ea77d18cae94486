"""Glow-style multi-scale flow on MNIST with uniform dequantization, in bits/dim.

Two scales (28 -> 14 -> 7), each: squeeze, `num_steps` x [ActNorm, LU 1x1
conv, affine split coupling], factor-out of half the channels.

    python experiments/main.py --config=experiments/configs/glow_mnist.py \
        --workdir=runs/glow_mnist --config.data.manual_dir=../shared/data/mnist
Sized for about an hour on a 2-core CPU; on a GPU raise num_steps, features
and num_train_steps.
"""

from pathlib import Path

from dgmjax.training.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("default.py"))
    config.data.name = "mnist"

    config.model.name = "glow"
    for key in ("num_checkerboard", "num_channelwise"):
        del config.model[key]
    config.model.num_scales = 2
    config.model.num_steps = 6
    config.model.features = 48
    config.model.num_blocks = 1
    config.model.scale_fn = "sigmoid"
    config.model.logit_alpha = None

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
