"""Default: multi-scale RealNVP on the embedded 8x8 digits (17 levels), uniform dequantization.

Finishes in a few minutes on a 2-core CPU and prints test bits/dim. Every
other config starts from this one, so every setting has its default here and
nowhere else. The 1437 training images are few: longer runs or wider
conditioners overfit (the test bound rises after ~1000 steps at this size).

`data.name` is a built-in dataset (digits, mnist, ..., or a 2-D toy such as
moons) or the path of your own arrays, a file ending in .npy or .npz
(`dgmjax.data.load_arrays`): float vectors (N, D) for a vector flow or a VAE
with a Gaussian decoder, or with `data.num_levels` set, integer images
(N, H, W[, C]) for any model. A single array is split by `data.test_fraction`;
an .npz with keys `train` and `test` is used as given.
"""

import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.distributed = False  # True: call jax.distributed.initialize() (multi-host)
    # The flows' conditioner networks compute in this dtype: "float32", or "bfloat16" for mixed
    # precision (parameters, log-dets and likelihoods stay float32). Models without the option
    # (PixelCNN, the integer flow, the VAE) reject anything but "float32".
    config.compute_dtype = "float32"
    # True: deterministic XLA kernels on GPUs (dgmjax.training.use_deterministic_ops), so a rerun or
    # a resumed run reproduces the uninterrupted one bit for bit there too; slower on a GPU.
    config.deterministic = False

    config.data = ml_collections.ConfigDict()
    config.data.name = "digits"  # or a 2-D toy, or the path of your own .npy/.npz (see above)
    config.data.train_split = "train"
    config.data.test_split = "test"  # slices work too, e.g. "test[:2000]"
    config.data.manual_dir = ""  # a directory holding the dataset's original files (offline)
    config.data.data_dir = ""  # where downloaded files are kept ("" = $DGMJAX_DATA_DIR or ~/.cache)
    config.data.num_test = 10_000  # test points drawn from a 2-D toy
    # Your own .npy/.npz (data.name = its path): levels of integer images, or 0 for float vectors;
    # and the fraction of a single array held out for test (a fixed permutation, seed 0).
    config.data.num_levels = 0
    config.data.test_fraction = 0.1

    config.model = ml_collections.ConfigDict()
    config.model.name = "image_realnvp"
    config.model.num_scales = 2
    config.model.num_checkerboard = 4
    config.model.num_channelwise = 3
    config.model.features = 32
    config.model.num_blocks = 1
    config.model.conditioner = "residual"  # or "gated": gated residual convs with concat-ELU (Flow++)
    config.model.scale_fn = "tanh"
    config.model.logit_alpha = 0.05

    config.objective = ml_collections.ConfigDict()
    config.objective.dequantization = "uniform"  # or "variational" (the `dequantizer` section)
    config.objective.logit_alpha = 1e-6  # vector flows on images: the MAF paper's logit space
    config.objective.eval_importance_samples = 0  # >1: also report the S-sample IW estimate
    config.objective.eval_iwae_samples = 0  # VAEs: >1 also reports the k-sample IWAE bound

    config.dequantizer = ml_collections.ConfigDict()
    config.dequantizer.num_layers = 4
    config.dequantizer.features = 32
    config.dequantizer.num_blocks = 1
    config.dequantizer.context_features = 16

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 64
    config.train.eval_batch_size = 360
    config.train.init_batch_size = 0  # the batch that sets ActNorm's data-dependent init (0: batch_size)
    config.train.num_steps = 1200
    config.train.log_every = 100
    config.train.eval_every = 400
    config.train.checkpoint_every = 400
    config.train.max_checkpoints = 2
    config.train.sample_every = 400
    config.train.num_samples = 64
    config.train.ema_decay = 0.999
    config.train.num_devices = 0  # 0 = all visible devices
    config.train.max_steps_per_run = 0  # >0: stop (checkpointed) after this many steps; rerun resumes
    # True: the library's value checks run inside the jitted step too (checkify), at some cost in speed;
    # a bad batch then stops the run with a ValueError naming what is wrong.
    config.train.checked = False

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 200
    config.optimizer.schedule = "cosine"
    config.optimizer.end_learning_rate_factor = 0.0
    config.optimizer.weight_decay = 1e-5
    config.optimizer.grad_clip_norm = 20.0  # 0 disables clipping
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    return config
