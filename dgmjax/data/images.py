"""Image datasets as integer NHWC arrays with their number of levels.

`load_images(name, split)` returns an `ImageData`: `images` of dtype uint8 and
shape (N, H, W, C) with values in [0, num_levels), `labels` (or None), and
`num_levels` beside them.

- `digits` is the embedded default: scikit-learn's 8x8 handwritten digits
  (1797 images, 17 levels 0..16), shipped inside scikit-learn, no network.
  The split is fixed: every fifth image (index % 5 == 0) is test (360), the
  rest train (1437).
- `mnist`, `fashion_mnist`, `binarized_mnist`, `cifar10` come from
  tensorflow-datasets. Offline, tfds builds them from the original files in a
  `manual_dir` (it verifies the published checksums); `binarized_mnist` also
  accepts the `.amat.gz` copies in `../shared/data/binarized_mnist`, which
  are unpacked next to the tfds data directory on first use.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
from pathlib import Path

import numpy as np

from dgmjax import _validation as v


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    tfds_name: str | None
    shape: tuple[int, int, int]
    num_levels: int
    splits: tuple[str, ...]
    files: tuple[str, ...] = ()
    note: str = ""


IMAGE_DATASETS: dict[str, ImageSpec] = {
    "digits": ImageSpec(None, (8, 8, 1), 17, ("train", "test")),
    "mnist": ImageSpec(
        "mnist", (28, 28, 1), 256, ("train", "test"),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        "the original LeCun IDX files (../shared/data/mnist holds them)",
    ),
    "fashion_mnist": ImageSpec(
        "fashion_mnist", (28, 28, 1), 256, ("train", "test"),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        "the original zalandoresearch IDX files (../shared/data/fashion_mnist holds them)",
    ),
    "binarized_mnist": ImageSpec(
        "binarized_mnist", (28, 28, 1), 2, ("train", "validation", "test"),
        ("binarized_mnist_train.amat", "binarized_mnist_valid.amat", "binarized_mnist_test.amat"),
        "Larochelle & Murray's .amat files, plain or gzipped as .amat.gz "
        "(../shared/data/binarized_mnist holds the .amat.gz)",
    ),
    "cifar10": ImageSpec(
        "cifar10", (32, 32, 3), 256, ("train", "test"),
        ("cifar-10-binary.tar.gz",),
        "the CIFAR-10 binary version from https://www.cs.toronto.edu/~kriz/",
    ),
}


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Integer images (N, H, W, C) in [0, num_levels), with labels when the dataset has them."""

    images: np.ndarray
    labels: np.ndarray | None
    num_levels: int
    name: str
    split: str

    def __post_init__(self):
        if self.images.ndim != 4:
            raise ValueError(f"`images` must be NHWC (rank 4); got shape {self.images.shape}.")
        v.check_integer_levels(self.images, self.num_levels, "images")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return self.images.shape[0]

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a batch iterator draws from: {"image"} (and {"label"})."""
        out = {"image": self.images}
        if self.labels is not None:
            out["label"] = self.labels.astype(np.int32)
        return out


def _check_name_split(name: str, split: str) -> ImageSpec:
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset `name` {name!r}; expected one of {sorted(IMAGE_DATASETS)}.")
    spec = IMAGE_DATASETS[name]
    base, _, rest = split.partition("[")
    sliced = bool(rest)
    if base not in spec.splits or (sliced and (not rest.endswith("]") or spec.tfds_name is None)):
        hint = " (tfds slices such as 'train[:50000]' work for the tfds datasets)"
        raise ValueError(f"`split` for {name!r} must be one of {spec.splits}{hint}; got {split!r}.")
    return spec


def load_digits(split: str = "train") -> ImageData:
    """scikit-learn's 8x8 digits as uint8 (N, 8, 8, 1), 17 levels, fixed split."""
    _check_name_split("digits", split)
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = np.rint(bunch.images).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int32)
    is_test = np.arange(images.shape[0]) % 5 == 0
    keep = is_test if split == "test" else ~is_test
    return ImageData(images[keep], labels[keep], 17, "digits", split)


def _default_data_dir(data_dir: str | None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()


def _resolve_manual_dir(name: str, spec: ImageSpec, manual_dir: str, data_dir: Path) -> Path:
    """Checks the manual files are there (unpacking .amat.gz), or says which to put where."""
    manual = Path(manual_dir).expanduser()
    missing = []
    staged = None
    for fname in spec.files:
        if (manual / fname).exists():
            continue
        if (manual / (fname + ".gz")).exists() and fname.endswith(".amat"):
            staged = staged or data_dir / "manual" / name
            staged.mkdir(parents=True, exist_ok=True)
            target = staged / fname
            if not target.exists():
                tmp = target.with_suffix(".partial")
                with gzip.open(manual / (fname + ".gz"), "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp.rename(target)
            continue
        missing.append(fname)
    if missing:
        raise ValueError(
            f"`manual_dir` {str(manual)!r} lacks the files tfds needs to build {name!r}: "
            f"{missing}. Put {spec.note} there: {list(spec.files)}."
        )
    if staged is not None:
        for fname in spec.files:  # gather plain files next to the unpacked ones
            if (manual / fname).exists() and not (staged / fname).exists():
                os.symlink(manual / fname, staged / fname)
        return staged
    return manual


def load_images(name: str, split: str = "train", *, manual_dir: str | None = None,
                data_dir: str | None = None) -> ImageData:
    """Loads an image dataset as integer NHWC arrays (see the module docstring).

    Args:
      name: "digits", "mnist", "fashion_mnist", "binarized_mnist" or "cifar10".
      split: "train" or "test" ("validation" too for binarized_mnist).
      manual_dir: directory with the original files, for building offline.
      data_dir: where tfds keeps prepared datasets (default `$TFDS_DATA_DIR`
        or ~/tensorflow_datasets).
    """
    spec = _check_name_split(name, split)
    if spec.tfds_name is None:
        return load_digits(split)

    import tensorflow_datasets as tfds

    _hide_gpus_from_tensorflow()
    root = _default_data_dir(data_dir)
    builder = tfds.builder(spec.tfds_name, data_dir=str(root))
    download_config = None
    if manual_dir:
        if not builder.is_prepared():
            manual = _resolve_manual_dir(name, spec, manual_dir, root)
        else:
            manual = Path(manual_dir)
        download_config = tfds.download.DownloadConfig(manual_dir=str(manual))
    try:
        builder.download_and_prepare(download_config=download_config)
    except Exception as err:  # network down, or files failing their checksums
        where = f"`manual_dir` ({manual_dir})" if manual_dir else "a directory passed as `manual_dir`"
        raise ValueError(
            f"could not prepare {name!r} with tensorflow-datasets in {str(root)!r} ({err}). "
            f"Without network access, put {spec.note} in {where}: {list(spec.files)}."
        ) from err
    # Batches of 10k rather than batch_size=-1, which crashes TF on datasets of unknown
    # cardinality (such as tfds.testing.mock_data's).
    chunks = list(tfds.as_numpy(builder.as_dataset(split=split).batch(10_000)))
    images = np.concatenate([c["image"] for c in chunks]).astype(np.uint8, copy=False)
    labels = np.concatenate([c["label"] for c in chunks]) if "label" in chunks[0] else None
    return ImageData(images, labels, spec.num_levels, name, split)


def _hide_gpus_from_tensorflow():
    """Keeps TensorFlow (used only for data) from reserving accelerator memory JAX needs."""
    try:
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    except Exception:  # already initialized, or a CPU-only build: nothing to hide
        pass
