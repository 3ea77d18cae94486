"""Data: loaders (digits, synthetic and real original files), toy densities, and the batch iterators."""

import gzip
import hashlib
import io
import re
import struct
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import jax
import numpy as np
import pytest

from dgmjax.data import (
    TOY_DENSITIES,
    ArrayBatches,
    ImageData,
    SamplerBatches,
    VectorData,
    eval_batches,
    load_arrays,
    load_images,
    sample_toy,
    toy_log_prob,
)
from dgmjax.data import images as image_files

# ----------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_and_disjoint():
    train, test = load_images("digits", "train"), load_images("digits", "test")
    assert train.images.shape == (1437, 8, 8, 1) and test.images.shape == (360, 8, 8, 1)
    assert train.images.dtype == np.uint8 and train.num_levels == 17
    assert int(train.images.max()) == 16 and int(train.images.min()) == 0
    from sklearn.datasets import load_digits

    bunch = load_digits()  # the embedded copy is scikit-learn's, image for image and label for label
    raw = bunch.images.astype(np.uint8)
    np.testing.assert_array_equal(test.images[:, :, :, 0], raw[::5])
    np.testing.assert_array_equal(train.images[:, :, :, 0], np.delete(raw, np.s_[::5], axis=0))
    np.testing.assert_array_equal(test.labels, bunch.target[::5])
    np.testing.assert_array_equal(train.labels, np.delete(bunch.target, np.s_[::5]))
    assert set(np.unique(test.labels)) == set(range(10))


# ----------------------------------------------------------------------------- original files
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
AMAT = {"train": "binarized_mnist_train.amat", "validation": "binarized_mnist_valid.amat",
        "test": "binarized_mnist_test.amat"}


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _write_idx_gz(path, array) -> str:
    """An IDX file (magic 0x0800 + ndim, big-endian sizes, uint8 data), gzipped; returns its md5."""
    data = gzip.compress(struct.pack(f">{1 + array.ndim}I", 2048 + array.ndim, *array.shape)
                         + array.astype(np.uint8).tobytes())
    path.write_bytes(data)
    return _md5(data)


def _write_mnist_like(folder, sizes=(("train", 7), ("test", 3)), seed=0):
    """Random IDX files in `folder`: {split: (images (N, 28, 28), labels)}, and their md5 table."""
    rng, arrays, md5 = np.random.default_rng(seed), {}, {}
    for split, n in sizes:
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        md5[IDX_FILES[split][0]] = _write_idx_gz(folder / IDX_FILES[split][0], images)
        md5[IDX_FILES[split][1]] = _write_idx_gz(folder / IDX_FILES[split][1], labels)
        arrays[split] = images, labels
    return arrays, md5


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_loader_on_synthetic_files(name, tmp_path, monkeypatch):
    arrays, md5 = _write_mnist_like(tmp_path)
    monkeypatch.setitem(image_files.MD5, name, md5)
    for split, (images, labels) in arrays.items():
        data = load_images(name, split, manual_dir=str(tmp_path))
        assert isinstance(data, ImageData) and data.split == split and data.num_levels == 256
        assert data.images.shape == (len(labels), 28, 28, 1) and data.images.dtype == np.uint8
        assert data.labels.dtype == np.int32
        np.testing.assert_array_equal(data.images[..., 0], images)
        np.testing.assert_array_equal(data.labels, labels)
    images, labels = arrays["train"]
    for split, sl in [("train[:5]", np.s_[:5]), ("train[5:]", np.s_[5:]), ("train[2:4]", np.s_[2:4]),
                      ("train[-2:]", np.s_[-2:]), ("train[:]", np.s_[:])]:
        data = load_images(name, split, manual_dir=str(tmp_path))
        np.testing.assert_array_equal(data.images[..., 0], images[sl])
        np.testing.assert_array_equal(data.labels, labels[sl])
        assert data.split == split


def test_binarized_mnist_loader_on_synthetic_amat(tmp_path, monkeypatch):
    """Plain .amat and gzipped .amat.gz both load; the md5 is that of the uncompressed text."""
    rng, bits, md5 = np.random.default_rng(1), {}, {}
    for split, n in [("train", 6), ("validation", 4), ("test", 5)]:
        bits[split] = rng.integers(0, 2, (n, 784))
        text = "".join(" ".join(map(str, row)) + "\n" for row in bits[split]).encode()
        md5[AMAT[split]] = _md5(text)
        gzipped = split != "train"
        (tmp_path / (AMAT[split] + ".gz" * gzipped)).write_bytes(gzip.compress(text) if gzipped else text)
    monkeypatch.setitem(image_files.MD5, "binarized_mnist", md5)
    for split, expected in bits.items():
        data = load_images("binarized_mnist", split, manual_dir=str(tmp_path))
        assert data.images.shape == (len(expected), 28, 28, 1) and data.images.dtype == np.uint8
        assert data.num_levels == 2 and data.labels is None
        np.testing.assert_array_equal(data.images.reshape(-1, 784), expected)
    data = load_images("binarized_mnist", "validation[1:3]", manual_dir=str(tmp_path))
    np.testing.assert_array_equal(data.images.reshape(-1, 784), bits["validation"][1:3])
    # a file that is not in the .amat layout is refused, naming it
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / AMAT["test"]).write_bytes(b"0,1\n")
    monkeypatch.setitem(image_files.MD5["binarized_mnist"], AMAT["test"], _md5(b"0,1\n"))
    with pytest.raises(ValueError, match="binarized_mnist_test.amat' is not a binarized MNIST"):
        load_images("binarized_mnist", "test", manual_dir=str(bad))


def test_cifar10_loader_on_synthetic_tar(tmp_path, monkeypatch):
    """Records are 1 label byte + R, G, B planes; the loader returns NHWC."""
    rng, batches = np.random.default_rng(2), {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for batch, n in [*((f"data_batch_{i}.bin", 2) for i in range(1, 6)), ("test_batch.bin", 3)]:
            images, labels = rng.integers(0, 256, (n, 32, 32, 3)), rng.integers(0, 10, n)
            planes = images.transpose(0, 3, 1, 2).reshape(n, 3072)
            record = np.concatenate([labels[:, None], planes], 1).astype(np.uint8).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{batch}")
            info.size = len(record)
            tar.addfile(info, io.BytesIO(record))
            batches[batch] = images, labels
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(buffer.getvalue())
    monkeypatch.setitem(image_files.MD5, "cifar10", {"cifar-10-binary.tar.gz": _md5(buffer.getvalue())})
    train = load_images("cifar10", "train", manual_dir=str(tmp_path))
    test = load_images("cifar10", "test[1:]", manual_dir=str(tmp_path))
    assert train.images.shape == (10, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.num_levels == 256 and train.labels.dtype == np.int32
    order = [f"data_batch_{i}.bin" for i in range(1, 6)]
    np.testing.assert_array_equal(train.images, np.concatenate([batches[b][0] for b in order]))
    np.testing.assert_array_equal(train.labels, np.concatenate([batches[b][1] for b in order]))
    np.testing.assert_array_equal(test.images, batches["test_batch.bin"][0][1:])
    np.testing.assert_array_equal(test.labels, batches["test_batch.bin"][1][1:])


def test_loader_wrong_checksum_names_the_file(tmp_path):
    _write_mnist_like(tmp_path)  # random files: their md5s are not the published ones
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz' has md5 \w{32}; "
                                         r"expected 9fb629c4189551a2d022fa330f9573f3"):
        load_images("mnist", "test", manual_dir=str(tmp_path))
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").exists()  # a manual file is never deleted


def _serve(monkeypatch, files: dict, calls: list):
    """Replaces urlopen with one that serves `files` by name (or fails like an offline machine)."""
    def urlopen(url, timeout=None):
        calls.append((url, timeout))
        fname = url.rsplit("/", 1)[-1]
        if fname not in files:
            raise urllib.error.URLError(OSError(101, "Network is unreachable"))
        return io.BytesIO(files[fname])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_loader_downloads_into_cache_once_and_drops_corrupt_files(tmp_path, monkeypatch):
    source, cache = tmp_path / "source", tmp_path / "cache"
    source.mkdir()
    arrays, md5 = _write_mnist_like(source)
    monkeypatch.setitem(image_files.MD5, "mnist", md5)
    calls = []
    _serve(monkeypatch, {f.name: f.read_bytes() for f in source.iterdir()}, calls)
    monkeypatch.setenv("DGMJAX_DATA_DIR", str(cache))
    data = load_images("mnist", "test")
    np.testing.assert_array_equal(data.images[..., 0], arrays["test"][0])
    url = "https://storage.googleapis.com/cvdf-datasets/mnist/"
    assert [c[0] for c in calls] == [url + f for f in IDX_FILES["test"]] and calls[0][1] <= 60
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(IDX_FILES["test"])
    load_images("mnist", "test")
    assert len(calls) == 2  # the second load reads the cache
    # a cached file that fails its checksum is deleted, so that the next call downloads it again
    monkeypatch.setitem(image_files.MD5["mnist"], "t10k-labels-idx1-ubyte.gz", "0" * 32)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz' has md5 .* expected 0{32}"):
        load_images("mnist", "test[:2]", data_dir=str(cache))
    assert not (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


@pytest.mark.parametrize("name, fname", [("mnist", "train-labels-idx1-ubyte.gz"),
                                         ("binarized_mnist", "binarized_mnist_train.amat"),
                                         ("cifar10", "cifar-10-binary.tar.gz")])
def test_loader_offline_fails_fast_naming_manual_dir(name, fname, tmp_path, monkeypatch):
    calls = []
    _serve(monkeypatch, {}, calls)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="Network is unreachable") as info:
        load_images(name, "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 0.5
    message = str(info.value)
    assert len(calls) == 1 and message.count("manual_dir") == 1 and message.count(fname) >= 1
    assert f"downloading {calls[0][0]} for {name!r} failed" in message
    if name == "mnist":  # each file is listed once (the failing one also shows in its URL)
        assert message.count("train-labels-idx1-ubyte.gz") == 1
    assert not any(tmp_path.rglob("*.partial")) and not any(tmp_path.rglob(fname))


def test_missing_manual_files_are_named_once(tmp_path):
    empty = tmp_path / "manual"
    empty.mkdir()
    with pytest.raises(ValueError) as info:
        load_images("mnist", "train", manual_dir=str(empty), data_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert message.count("manual_dir") == 1 and message.count(str(empty)) == 1
    for fname in IDX_FILES["train"]:
        assert message.count(fname) == 1
    assert "t10k" not in message and not (tmp_path / "cache").exists()  # nothing downloaded
    (empty / (AMAT["validation"] + ".gz")).write_bytes(b"")
    with pytest.raises(ValueError, match=r"lacks \['binarized_mnist_test.amat'\]") as info:
        load_images("binarized_mnist", "test", manual_dir=str(empty))
    assert str(info.value).count("manual_dir") == 1 and str(info.value).count("amat.gz") == 1


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="no local copy of the MNIST files")
def test_real_mnist_test_split():
    folder = SHARED_DATA / "mnist"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:  # decoded here independently
        assert struct.unpack(">4I", f.read(16)) == (2051, 10000, 28, 28)
        first_sum = sum(f.read(784))
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        assert struct.unpack(">2I", f.read(8)) == (2049, 10000)
        first_label = f.read(1)[0]
    data = load_images("mnist", "test", manual_dir=str(folder))
    assert data.images.shape == (10000, 28, 28, 1) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int32 and set(np.unique(data.labels)) == set(range(10))
    assert first_label == 7 and data.labels[0] == 7
    assert int(data.images[0].sum()) == first_sum
    head = load_images("mnist", "test[:2000]", manual_dir=str(folder))
    np.testing.assert_array_equal(head.images, data.images[:2000])


@pytest.mark.skipif(not (SHARED_DATA / "binarized_mnist").is_dir(), reason="no local copy of binarized MNIST")
def test_real_binarized_mnist_test_split():
    folder = SHARED_DATA / "binarized_mnist"
    data = load_images("binarized_mnist", "test", manual_dir=str(folder))
    assert data.images.shape == (10000, 28, 28, 1) and data.images.dtype == np.uint8
    assert set(np.unique(data.images)) == {0, 1} and data.labels is None and data.num_levels == 2
    with gzip.open(folder / "binarized_mnist_test.amat.gz", "rt") as f:
        first = [int(x) for x in f.readline().split()]
    np.testing.assert_array_equal(data.images[0].ravel(), first)


def test_loader_bad_inputs():
    with pytest.raises(ValueError, match="unknown dataset `name` 'mnsit'"):
        load_images("mnsit")
    with pytest.raises(ValueError, match="`split`"):
        load_images("digits", "validation")
    for split in ["validation", "train[::2]", "train[a:]", "train[5]", "train[:10%]", "train ", "Train"]:
        with pytest.raises(ValueError, match=rf"`split` for 'mnist' must be one of \('train', 'test'\).*"
                                             rf"got {re.escape(repr(split))}"):
            load_images("mnist", split, manual_dir="unused")
    assert len(load_images("digits", "train[:10]")) == 10
    with pytest.raises(ValueError, match=r"`split` 'test\[400:\]' selects no images of the 360"):
        load_images("digits", "test[400:]")


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
    x = np.asarray(sample_toy(jax.random.PRNGKey(0), name, n))
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
        sample_toy(jax.random.PRNGKey(0), "circles", 4)
    with pytest.raises(ValueError, match="num_samples"):
        sample_toy(jax.random.PRNGKey(0), "moons", 0)
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


def test_iterators_take_typed_and_raw_keys_alike_and_only_whole_steps():
    """A typed key (jax.random.key) holds the raw key's data: both kinds give the same batches; an int
    key, a negative or fractional step are refused naming `key` / `step`."""
    typed = ArrayBatches(_arrays(), 10, key=jax.random.key(5))
    raw = ArrayBatches(_arrays(), 10, key=jax.random.PRNGKey(5))
    for step in (0, 13, np.int64(27)):
        np.testing.assert_array_equal(typed(step)["image"], raw(step)["image"])
    moons = lambda k, n: sample_toy(k, "moons", n)
    np.testing.assert_array_equal(SamplerBatches(moons, 8, key=jax.random.key(2))(4)["x"],
                                  SamplerBatches(moons, 8, key=jax.random.PRNGKey(2))(4)["x"])
    with pytest.raises(ValueError, match="`key` must be a single jax PRNG key"):
        ArrayBatches(_arrays(), 10, key=5)
    with pytest.raises(ValueError, match="`key` must be a single jax PRNG key"):
        SamplerBatches(moons, 8, key=2)
    for step in (-1, 2.5, True):
        with pytest.raises(ValueError, match="`step` must be an int >= 0"):
            raw(step)


def test_eval_batches_cover_every_example_once():
    arrays = _arrays(23)
    seen = []
    for batch in eval_batches(arrays, 8):
        assert batch["image"].shape == (8, 1)
        seen.extend(np.asarray(batch["image"])[np.asarray(batch["mask"]), 0].tolist())
    assert seen == list(range(23))


def test_sampler_batches_deterministic():
    s1 = SamplerBatches(lambda k, n: sample_toy(k, "moons", n), 16, key=jax.random.PRNGKey(3))
    s2 = SamplerBatches(lambda k, n: sample_toy(k, "moons", n), 16, key=jax.random.PRNGKey(3))
    np.testing.assert_array_equal(s1(7)["x"], s2(7)["x"])
    assert not np.array_equal(s1(7)["x"], s1(8)["x"])
    assert s1(0)["x"].shape == (16, 2)


# ----------------------------------------------------------------------------- a user's own arrays


def _rows(a):
    return sorted(map(tuple, np.asarray(a).reshape(len(a), -1).tolist()))


def test_load_arrays_npy_split_is_a_fixed_disjoint_permutation(tmp_path):
    x = np.arange(30, dtype=np.float64).reshape(10, 3) / 7  # distinct rows
    np.save(tmp_path / "points.npy", x)
    data = load_arrays(tmp_path / "points.npy", test_fraction=0.25)
    assert isinstance(data, VectorData) and data.name == "points" and data.event_size == 3
    assert data.train.dtype == data.test.dtype == np.float32
    assert data.train.shape == (7, 3) and data.test.shape == (3, 3)  # ceil(0.25 * 10) = 3 test rows
    assert _rows(np.concatenate([data.train, data.test])) == _rows(x.astype(np.float32))
    assert not set(_rows(data.train)) & set(_rows(data.test))
    perm = np.random.default_rng(0).permutation(10)  # the documented rule: the last rows are test
    np.testing.assert_array_equal(data.test, x[perm[7:]].astype(np.float32))
    again = load_arrays(str(tmp_path / "points.npy"), test_fraction=0.25)
    np.testing.assert_array_equal(again.train, data.train)
    np.testing.assert_array_equal(again.test, data.test)
    other = load_arrays(tmp_path / "points.npy", test_fraction=0.25, seed=1)
    assert _rows(other.test) != _rows(data.test)


def test_load_arrays_npz_train_and_test_keys_are_used_as_given(tmp_path):
    train, test = np.linspace(-1, 1, 12).reshape(6, 2), np.full((2, 2), 5.0, np.float32)
    np.savez(tmp_path / "mine.npz", train=train, test=test)
    data = load_arrays(tmp_path / "mine.npz", test_fraction=0.5)  # no split: the fraction is unused
    np.testing.assert_array_equal(data.train, train.astype(np.float32))
    np.testing.assert_array_equal(data.test, test)
    assert data.name == "mine"


def test_load_arrays_npz_single_array_is_split_like_npy(tmp_path):
    x = np.random.default_rng(3).normal(size=(21, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "a.npz", whatever=x)
    from_npy, from_npz = load_arrays(tmp_path / "a.npy", seed=5), load_arrays(tmp_path / "a.npz", seed=5)
    assert from_npz.test.shape == (3, 4)  # ceil(0.1 * 21)
    np.testing.assert_array_equal(from_npz.train, from_npy.train)
    np.testing.assert_array_equal(from_npz.test, from_npy.test)


def test_load_arrays_images_get_a_channel_axis_and_keep_their_levels(tmp_path):
    x = np.random.default_rng(0).integers(0, 17, (20, 5, 6))
    np.save(tmp_path / "my_digits.npy", x)  # int64, (N, H, W)
    train, test = load_arrays(tmp_path / "my_digits.npy", num_levels=17, test_fraction=0.2)
    assert isinstance(train, ImageData) and isinstance(test, ImageData)
    assert train.images.shape == (16, 5, 6, 1) and test.images.shape == (4, 5, 6, 1)
    assert train.images.dtype == np.uint8 and train.num_levels == test.num_levels == 17
    assert (train.name, train.split, test.split, train.labels) == ("my_digits", "train", "test", None)
    perm = np.random.default_rng(0).permutation(20)
    np.testing.assert_array_equal(test.images[..., 0], x[perm[16:]])
    assert _rows(np.concatenate([train.images, test.images])[..., 0]) == _rows(x)
    # more than 256 levels are int32; floats holding whole numbers are levels too
    np.savez(tmp_path / "deep.npz", train=np.full((3, 2, 2, 3), 999.0), test=np.zeros((1, 2, 2, 3)))
    train, test = load_arrays(tmp_path / "deep.npz", num_levels=1000)
    assert train.images.dtype == np.int32 and int(train.images.max()) == 999 and test.image_shape == (2, 2, 3)


def test_load_arrays_errors_name_the_argument_and_what_was_expected(tmp_path):
    def raises(message, file, array=None, **kwargs):
        if isinstance(array, dict):
            np.savez(tmp_path / file, **array)
        elif array is not None:
            np.save(tmp_path / file, array)
        with pytest.raises(ValueError, match=message):
            load_arrays(tmp_path / file, **kwargs)

    floats = np.zeros((10, 2), np.float32)
    raises(r"`path` '.*missing\.npy' does not exist", "missing.npy")
    raises(r"`path` must end in \.npy or \.npz; got '.*points\.csv'", "points.csv")
    raises(r"holds the arrays \['a', 'train'\]; expected keys 'train' and 'test'.*or exactly one array",
           "keys.npz", {"train": floats, "a": floats})
    raises(r"has dtype int64 but `num_levels` is None; expected floating-point vectors, or pass `num_levels`",
           "ints.npy", np.zeros((10, 2), np.int64))
    raises(r"has shape \(10, 2, 2\) but `num_levels` is None; expected vectors of shape \(N, D\)",
           "cube.npy", np.zeros((10, 2, 2), np.float32))
    raises(r"holds 4 non-finite values .* in rows \[3, 7\]; expected finite floats", "nan.npy",
           np.where(np.isin(np.arange(10), [3, 7])[:, None], np.array([np.nan, np.inf]), floats))
    raises(r"`test_fraction` must be a float in \(0, 1\); got 0", "ok.npy", floats, test_fraction=0)
    raises(r"has 1 row\(s\); `test_fraction` 0.1 leaves 1 for test and 0 for train; expected at least one",
           "one.npy", floats[:1])
    raises(r"`num_levels` must be >= 2; got 1", "ok.npy", floats, num_levels=1)
    images = np.zeros((10, 4, 4), np.uint8)
    raises(r"holds values in \[0, 17\]; with `num_levels` 17 expected integer levels in \[0, 17\)",
           "high.npy", np.where(np.arange(10)[:, None, None] == 4, 17, images), num_levels=17)
    low = images.astype(np.int32)
    low[2, 1, 1] = -1
    raises(r"holds values in \[-1, 0\]", "low.npy", low, num_levels=17)
    raises(r"holds floats that are not whole numbers", "frac.npy", images + 0.5, num_levels=17)
    raises(r"has shape \(10, 16\); with `num_levels` 17 expected images of shape \(N, H, W, C\) or "
           r"\(N, H, W\)", "flat.npy", images.reshape(10, 16), num_levels=17)
