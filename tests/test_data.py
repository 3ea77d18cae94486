"""Data: loaders (digits, tfds mock data), toy densities, and the batch iterators."""

import jax
import numpy as np
import pytest

from dgmjax.data import (
    TOY_DENSITIES,
    ArrayBatches,
    ImageData,
    SamplerBatches,
    eval_batches,
    load_images,
    sample_toy,
    toy_log_prob,
)

# ----------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_and_disjoint():
    train, test = load_images("digits", "train"), load_images("digits", "test")
    assert train.images.shape == (1437, 8, 8, 1) and test.images.shape == (360, 8, 8, 1)
    assert train.images.dtype == np.uint8 and train.num_levels == 17
    assert int(train.images.max()) == 16 and int(train.images.min()) == 0
    from sklearn.datasets import load_digits

    raw = load_digits().images.astype(np.uint8)
    np.testing.assert_array_equal(test.images[:, :, :, 0], raw[::5])
    np.testing.assert_array_equal(train.images[:, :, :, 0], np.delete(raw, np.s_[::5], axis=0))
    assert set(np.unique(test.labels)) == set(range(10))


# ----------------------------------------------------------------------------- tfds (mock data)
tfds = pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)),
                                         ("cifar10", (32, 32, 3))])
def test_tfds_loaders_on_mock_data(name, shape, tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        data = load_images(name, "train", data_dir=str(tmp_path))
    assert isinstance(data, ImageData)
    assert data.images.shape == (12,) + shape and data.images.dtype == np.uint8
    assert data.num_levels == 256 and data.labels.shape == (12,)


def test_binarized_mnist_loader_on_mock_data(tmp_path):
    import tensorflow as tf

    def as_dataset(self, split, *args, **kwargs):
        images = np.random.default_rng(0).integers(0, 2, (9, 28, 28, 1)).astype(np.uint8)
        return tf.data.Dataset.from_tensor_slices({"image": images})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        data = load_images("binarized_mnist", "validation", data_dir=str(tmp_path))
    assert data.images.shape == (9, 28, 28, 1) and data.num_levels == 2 and data.labels is None
    # the default mock fills uint8 images with 0..255, which the loader rejects for 2 levels
    with tfds.testing.mock_data(num_examples=4), pytest.raises(ValueError, match=r"\[0, 2\)"):
        load_images("binarized_mnist", "test", data_dir=str(tmp_path))


def test_loader_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset `name` 'mnsit'"):
        load_images("mnsit")
    with pytest.raises(ValueError, match="`split`"):
        load_images("digits", "validation")
    empty = tmp_path / "manual"
    empty.mkdir()
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        load_images("mnist", "train", manual_dir=str(empty), data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match="binarized_mnist_test.amat"):
        load_images("binarized_mnist", "test", manual_dir=str(empty), data_dir=str(tmp_path / "t"))


def test_image_data_validates():
    with pytest.raises(ValueError, match="NHWC"):
        ImageData(np.zeros((4, 8, 8), np.uint8), None, 17, "x", "train")
    with pytest.raises(ValueError, match="integer dtype"):
        ImageData(np.zeros((4, 8, 8, 1), np.float32), None, 17, "x", "train")
    with pytest.raises(ValueError, match=r"got values in \[17, 17\]"):
        ImageData(np.full((4, 8, 8, 1), 17, np.uint8), None, 17, "x", "train")


# ----------------------------------------------------------------------------- toys
@pytest.mark.parametrize("name", TOY_DENSITIES)
def test_toy_sampler_matches_its_density(name):
    """Histogram of 200k samples on a coarse grid vs the density integrated on each cell."""
    from scipy import stats

    n = 200_000
    x = np.asarray(sample_toy(name, jax.random.PRNGKey(0), n))
    edges = np.linspace(-4.5, 4.5, 10)
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
    fine = np.linspace(-4.5, 4.5, 361)
    centres = (fine[:-1] + fine[1:]) / 2
    gx, gy = np.meshgrid(centres, centres, indexing="ij")
    dens = np.exp(np.asarray(toy_log_prob(name, np.stack([gx, gy], -1)))) * (fine[1] - fine[0]) ** 2
    cell_mass = dens.reshape(9, 40, 9, 40).sum((1, 3))
    assert abs(cell_mass.sum() - counts.sum() / n) < 3e-3  # mass inside the grid agrees
    expected = cell_mass / cell_mass.sum() * counts.sum()
    keep = expected > 20
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4, (chi2, keep.sum())


def test_toy_bad_inputs():
    with pytest.raises(ValueError, match="unknown toy"):
        sample_toy("circles", jax.random.PRNGKey(0), 4)
    with pytest.raises(ValueError, match="num_samples"):
        sample_toy("moons", jax.random.PRNGKey(0), 0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        toy_log_prob("moons", np.zeros((3, 3)))


# ----------------------------------------------------------------------------- iterators
def _arrays(n=103):
    return {"image": np.arange(n, dtype=np.int32)[:, None], "label": np.arange(n) % 7}


def test_array_batches_deterministic_reshuffled_and_drop_remainder():
    a = ArrayBatches(_arrays(), 10, key=jax.random.PRNGKey(0))
    b = ArrayBatches(_arrays(), 10, key=jax.random.PRNGKey(0))
    c = ArrayBatches(_arrays(), 10, key=jax.random.PRNGKey(1))
    assert a.steps_per_epoch == 10
    epoch0 = np.concatenate([np.asarray(a(s)["image"])[:, 0] for s in range(10)])
    epoch1 = np.concatenate([np.asarray(a(s)["image"])[:, 0] for s in range(10, 20)])
    assert len(set(epoch0)) == 100 and len(set(epoch1)) == 100  # no repeats within an epoch
    assert not np.array_equal(epoch0, epoch1)  # reshuffled each epoch
    for s in (0, 3, 10, 27):  # same key, same batches, in any order of access
        np.testing.assert_array_equal(a(s)["image"], b(s)["image"])
    assert not np.array_equal(a(0)["image"], c(0)["image"])
    batch = a(5)
    np.testing.assert_array_equal(np.asarray(batch["label"]), np.asarray(batch["image"])[:, 0] % 7)
    first = [np.asarray(x["image"]) for x, _ in zip(iter(a), range(3), strict=False)]
    np.testing.assert_array_equal(first[2], a(2)["image"])


def test_array_batches_bad_inputs():
    with pytest.raises(ValueError, match="batch_size"):
        ArrayBatches(_arrays(5), 10, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="leading axis"):
        ArrayBatches({"a": np.zeros(4), "b": np.zeros(5)}, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="batch_size"):
        ArrayBatches(_arrays(), 0, key=jax.random.PRNGKey(0))


def test_eval_batches_cover_every_example_once():
    arrays = _arrays(23)
    seen = []
    for batch in eval_batches(arrays, 8):
        assert batch["image"].shape == (8, 1)
        seen.extend(np.asarray(batch["image"])[np.asarray(batch["mask"]), 0].tolist())
    assert seen == list(range(23))


def test_sampler_batches_deterministic():
    s1 = SamplerBatches(lambda k, n: sample_toy("moons", k, n), 16, key=jax.random.PRNGKey(3))
    s2 = SamplerBatches(lambda k, n: sample_toy("moons", k, n), 16, key=jax.random.PRNGKey(3))
    np.testing.assert_array_equal(s1(7)["x"], s2(7)["x"])
    assert not np.array_equal(s1(7)["x"], s1(8)["x"])
    assert s1(0)["x"].shape == (16, 2)
