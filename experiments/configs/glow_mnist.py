"""Glow-style multi-scale flow on MNIST with uniform dequantization, in bits/dim.

Two scales (28 -> 14 -> 7), each: squeeze, `num_steps` x [ActNorm, LU 1x1
conv, affine split coupling], factor-out of half the channels; a logit
preprocessing on the data side. The logit, the tanh-bounded coupling scale,
10 steps per scale and AdamW at 3e-3 won the ablation of
`experiments/image_flow_ablation.py` (see experiments/RESULTS.md).

    python experiments/main.py --config=experiments/configs/glow_mnist.py \
        --workdir=runs/glow_mnist [--config.data.manual_dir=DIR]
Sized for about an hour on a 2-core CPU; on a GPU raise model.features and
train.num_steps. `glow_mnist.py:gated` swaps the coupling networks for Flow++'s
gated residual convolutions with concat-ELU: the best flow at this step budget
(1.348 against 1.409 bits/dim), at 2.1x the time per step, so about two hours
here.
"""

from configs import default

VARIANTS = ("logit", "pixels", "gated")


def get_config(variant: str = "logit"):
    """`variant`: "logit" (the default: `ScaledSigmoid(0.05)` on the data side), "pixels" (Glow's
    own: pixels in [0, 1), which the first ActNorm centres) or "gated" (the logit, with the gated
    concat-ELU conditioner); e.g. `glow_mnist.py:pixels`."""
    if variant not in VARIANTS:
        raise ValueError(f"glow_mnist.py's argument must be one of {VARIANTS}; got {variant!r}.")
    config = default.get_config()
    config.data.name = "mnist"

    config.model.name = "glow"
    for key in ("num_checkerboard", "num_channelwise"):
        del config.model[key]
    config.model.num_steps = 10
    config.model.features = 48
    config.model.scale_fn = "tanh"
    config.model.logit_alpha = None if variant == "pixels" else 0.05
    if variant == "gated":
        config.model.conditioner = "gated"

    config.train.eval_batch_size = 500
    config.train.num_steps = 4000
    config.train.log_every = 50
    config.train.eval_every = 1000  # the test curve
    config.train.checkpoint_every = 250
    config.train.sample_every = 1000
    config.train.num_samples = 36
    config.optimizer.learning_rate = 3e-3
    return config
