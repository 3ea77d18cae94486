"""The MNIST jobs sized for one GPU: wider and deeper models, larger batches, longer schedules.

    python experiments/main.py --config=experiments/configs/gpu.py:JOB --workdir=runs/gpu_JOB \
        [--config.data.manual_dir=DIR] [--config.compute_dtype=bfloat16] [--config.deterministic=True]

JOB                        starts from                      model                                  epochs
realnvp_mnist              mnist.py                         ImageRealNVP, 3 scales, 128 wide, 2 blocks  100
realnvp_mnist_variational  mnist.py, variational dequant.   the same, Flow++'s dequantizer              100
glow_mnist                 glow_mnist.py                    Glow, 2 scales x 16 steps, 192 wide         100
glow_mnist_variational     glow_mnist.py, variational       the same, Flow++'s dequantizer              100
pixelcnn_mnist             pixelcnn_mnist.py                PixelCNN++-style, 96 wide, 8 blocks          43
maf_mnist                  maf_mnist.py                     MAF(5), 1024 wide (the paper's)             200
vae_VARIANT                vae_binarized_mnist.py:VARIANT   the VAE table's row VARIANT                 600

Each job keeps its CPU config's model family, objective and defaults (the
image flows keep the logit preprocessing, tanh scale and the learning rate
the MNIST ablation chose) and changes only size, batch and schedule. Their
estimated wall times on one H100 or H200, and how they are estimated, are in
experiments/benchmarks/results/gpu_configs.md
(`python experiments/benchmarks/gpu_configs.py`, which needs no GPU and no data); none of
these jobs has been run on a GPU yet, so RESULTS has no numbers for them.
"""

from configs import glow_mnist, maf_mnist, mnist, pixelcnn_mnist, vae_binarized_mnist

IMAGE_FLOWS = ("realnvp_mnist", "realnvp_mnist_variational", "glow_mnist", "glow_mnist_variational")
JOBS = IMAGE_FLOWS + ("pixelcnn_mnist", "maf_mnist") + tuple(
    f"vae_{v}" for v in vae_binarized_mnist.VARIANTS)


def _schedule(config, *, batch_size, num_steps, warmup_steps, eval_every):
    config.train.batch_size = batch_size
    config.train.num_steps = num_steps
    config.optimizer.warmup_steps = warmup_steps
    config.train.eval_every = eval_every
    config.train.checkpoint_every = 2000
    config.train.log_every = 200
    config.train.eval_batch_size = 1000
    return config


def _image_flow(job: str):
    if job.startswith("glow"):
        config = glow_mnist.get_config()
        config.model.num_steps = 16
        config.model.features = 192
    else:
        config = mnist.get_config()
        config.model.features = 128
        config.model.num_blocks = 2
    if job.endswith("_variational"):
        config.objective.dequantization = "variational"
        config.dequantizer.features = 64
        config.dequantizer.num_blocks = 2
    config.train.sample_every = 10_000
    # 100 epochs of the 60,000 training images at batch 128
    return _schedule(config, batch_size=128, num_steps=47_000, warmup_steps=1000, eval_every=5000)


def get_config(job: str = "glow_mnist"):
    """`job`: one of `JOBS` (see the table above)."""
    if job not in JOBS:
        raise ValueError(f"gpu.py's argument must be one of {list(JOBS)}; got {job!r}.")
    if job in IMAGE_FLOWS:
        return _image_flow(job)
    if job == "pixelcnn_mnist":
        config = pixelcnn_mnist.get_config()
        config.model.features = 96
        config.model.num_blocks = 8
        return _schedule(config, batch_size=64, num_steps=40_000, warmup_steps=1000, eval_every=10_000)
    if job == "maf_mnist":
        config = maf_mnist.get_config()  # the paper's MAF(5) already; it trained with early stopping
        return _schedule(config, batch_size=100, num_steps=100_000, warmup_steps=1000, eval_every=10_000)
    config = vae_binarized_mnist.get_config(job[len("vae_"):])
    return _schedule(config, batch_size=100, num_steps=300_000, warmup_steps=1000, eval_every=50_000)
