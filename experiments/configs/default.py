"""Default: multi-scale RealNVP on the embedded 8x8 digits (17 levels), uniform dequantization.

Finishes in about three minutes on a 2-core CPU and prints test bits/dim. The
1437 training images are few: longer runs or wider conditioners overfit (the
test bound rises after ~1000 steps at this size). The seed, train and
optimizer sections come from `dgmjax.training.config.default_config`.
"""

import ml_collections

from dgmjax.training.config import default_config


def get_config():
    config = default_config()

    config.data = ml_collections.ConfigDict()
    config.data.name = "digits"
    config.data.train_split = "train"
    config.data.test_split = "test"  # tfds datasets take slices, e.g. "train[50000:]"
    config.data.manual_dir = ""  # original files for tfds datasets (offline)
    config.data.data_dir = ""  # tfds data_dir ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets)

    config.model = ml_collections.ConfigDict()
    config.model.name = "image_realnvp"
    config.model.num_scales = 2
    config.model.num_checkerboard = 4
    config.model.num_channelwise = 3
    config.model.features = 32
    config.model.num_blocks = 1
    config.model.scale_fn = "tanh"
    config.model.logit_alpha = 0.05

    config.objective = ml_collections.ConfigDict()
    config.objective.dequantization = "uniform"
    config.objective.logit_alpha = 1e-6  # vector flows on images: the MAF paper's logit space
    config.objective.eval_importance_samples = 0  # >1: also report the S-sample IW estimate
    return config
