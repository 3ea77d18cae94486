"""train.py's checks of the config's train section, made before any data is loaded or compiled."""

import re

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


# ----------------------------------------------------------------------------- a run's identity
def tiny_moons(**changes):
    config = load_config("experiments/configs/moons.py")
    config.unlock()
    config.model.num_layers, config.model.hidden_sizes = 2, (8,)
    config.train.update(num_steps=6, log_every=2, checkpoint_every=3, eval_every=0, sample_every=0,
                        batch_size=16, eval_batch_size=100)
    config.data.num_test = 100
    for dotted, value in changes.items():
        section, key = dotted.rsplit(".", 1) if "." in dotted else ("", dotted)
        node = config
        for part in filter(None, section.split(".")):
            node = node[part]
        node[key] = value
    return config


def test_a_rerun_with_another_config_is_refused_naming_the_keys_and_changes_nothing(tmp_path):
    from train import train_and_evaluate

    from dgmjax.training import RunMismatchError

    train_and_evaluate(tiny_moons(**{"train.max_steps_per_run": 3}), tmp_path, verbose=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for changes, named in (({"seed": 1}, "config.seed: 0 there, 1 now"),
                           ({"model.hidden_sizes": (16,)}, "config.model.hidden_sizes: [8] there, [16] now"),
                           ({"train.num_steps": 12}, "config.train.num_steps: 6 there, 12 now"),
                           ({"optimizer.learning_rate": 1e-2}, "config.optimizer.learning_rate")):
        with pytest.raises(RunMismatchError, match=re.escape(named)):
            train_and_evaluate(tiny_moons(**changes), tmp_path, verbose=False)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    # what a resumed run may change: logging, evaluation, checkpointing, the data files' place
    state = train_and_evaluate(tiny_moons(**{"train.log_every": 3, "data.num_test": 50}), tmp_path,
                               verbose=False)
    assert int(state.step) == 6


def test_resume_other_run_keeps_the_earlier_config_and_a_finished_run_names_its_step(tmp_path, capsys):
    import json

    from train import train_and_evaluate

    from dgmjax.training import StateMismatchError

    train_and_evaluate(tiny_moons(), tmp_path, verbose=False)
    first = (tmp_path / "config.json").read_text()
    with pytest.raises(StateMismatchError, match=r"`params\.params\..*` has shape .* in the checkpoint"):
        train_and_evaluate(tiny_moons(**{"model.hidden_sizes": (16,)}), tmp_path, verbose=False,
                           resume_other_run=True)
    assert (tmp_path / "config.json").read_text() == first  # not written for a run that did not start
    capsys.readouterr()
    state = train_and_evaluate(tiny_moons(**{"train.num_steps": 4}), tmp_path, resume_other_run=True)
    out = capsys.readouterr().out
    assert int(state.step) == 6 and "past `num_steps` (4): nothing to train" in out and "after 6 steps" in out
    assert json.loads((tmp_path / "final_metrics.json").read_text())["step"] == 6
    assert (tmp_path / "config_until_step_6.json").read_text() == first
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 4


@pytest.mark.parametrize("changes, key", [
    ({"model.num_scales": 4}, "config.model.num_scales"),
    ({"optimizer.b2": 1.0}, "config.optimizer.b2"),
    ({"optimizer.end_learning_rate_factor": -0.5}, "config.optimizer.end_learning_rate_factor"),
    ({"data.num_levels": 256}, "config.data.num_levels"),
])
def test_library_errors_name_the_config_key(tmp_path, changes, key):
    """A library check names its argument; the main job adds the `--config` key that set it."""
    from train import train_and_evaluate

    config = load_config(CONFIG)
    config.unlock()
    config.train.update(num_steps=2, log_every=1, eval_every=0, sample_every=0, checkpoint_every=0)
    for dotted, value in changes.items():
        section, name = dotted.split(".")
        config[section][name] = value
    with pytest.raises(ValueError, match=re.escape(f"`{key}`")):
        train_and_evaluate(config, tmp_path, verbose=False)


def test_an_unknown_decoder_names_its_config_key():
    from tasks import build_task

    config = load_config("experiments/configs/vae_2d.py")
    config.model.decoder = "poisson"
    with pytest.raises(ValueError, match=re.escape("`config.model.decoder` must be one of")):
        build_task(config)
