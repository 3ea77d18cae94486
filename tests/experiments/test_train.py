"""train.py's checks of the config's train section, made before any data is loaded or compiled."""

import pytest
from main import load_config
from train import check_train_config, init_batch

CONFIG = "experiments/configs/default.py"


def test_the_default_train_section_passes():
    check_train_config(load_config(CONFIG).train, 1)
    check_train_config(load_config(CONFIG).train, 8)  # 64 and 360 both divide by 8


@pytest.mark.parametrize("key, value, devices, message", [
    ("num_samples", 0, 1, "`config.train.num_samples` must be >= 1; got 0"),
    ("num_steps", -5, 1, "`config.train.num_steps` must be >= 1; got -5"),
    ("checkpoint_every", -1, 1, "`config.train.checkpoint_every` must be >= 0"),
    ("max_checkpoints", 0, 1, "`config.train.max_checkpoints` must be >= 1; got 0"),
    ("eval_batch_size", 100, 8, "`config.train.eval_batch_size` 100 must be divisible by the number of "
                                "devices (8)"),
    ("batch_size", 64, 7, "`config.train.batch_size` 64 must be divisible by the number of devices (7)"),
    ("init_batch_size", -1, 1, "`config.train.init_batch_size` must be >= 0"),
    ("init_batch_size", 100, 8, "`config.train.init_batch_size` 100 must be divisible by the number of "
                                "devices (8)"),
])
def test_a_bad_train_section_is_named_before_any_compute(key, value, devices, message):
    config = load_config(CONFIG)
    config.train.unlock()
    config.train[key] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_train_config(config.train, devices)


def test_init_batch_is_the_first_batch_of_its_size():
    """0 (the default) reuses the first training batch; a size > 0 draws the first batch of that size
    from the same data key."""
    import types

    import numpy as np

    made = []

    def make_batches(size, key, sharding):
        made.append(size)
        return lambda step: {"image": np.full((size, 2), step + 10 * key)}

    task = types.SimpleNamespace(make_batches=make_batches)
    train = load_config(CONFIG).train
    batches = make_batches(train.batch_size, 1, None)
    assert init_batch(task, train, batches, 1, None)["image"].shape == (64, 2) and made == [64]
    train.init_batch_size = 512
    batch = init_batch(task, train, batches, 1, None)["image"]
    assert batch.shape == (512, 2) and np.all(batch == 10) and made == [64, 512]
