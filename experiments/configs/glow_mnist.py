"""Glow-style multi-scale flow on MNIST with uniform dequantization, in bits/dim.

Two scales (28 -> 14 -> 7), each: squeeze, `num_steps` x [ActNorm, LU 1x1
conv, affine split coupling], factor-out of half the channels.

    python experiments/main.py --config=experiments/configs/glow_mnist.py \
        --workdir=runs/glow_mnist [--config.data.manual_dir=DIR]
Sized for about an hour on a 2-core CPU; on a GPU raise model.num_steps,
model.features and train.num_steps.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "mnist"

    config.model.name = "glow"
    for key in ("num_checkerboard", "num_channelwise"):
        del config.model[key]
    config.model.num_steps = 6
    config.model.features = 48
    config.model.scale_fn = "sigmoid"
    config.model.logit_alpha = None

    config.train.eval_batch_size = 500
    config.train.num_steps = 4000
    config.train.log_every = 50
    config.train.eval_every = 0
    config.train.checkpoint_every = 250
    config.train.sample_every = 1000
    config.train.num_samples = 36
    return config
