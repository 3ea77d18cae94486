"""Image datasets as integer NHWC arrays with their number of levels, read with NumPy.

`load_images(name, split)` returns an `ImageData`: `images` of dtype uint8 and
shape (N, H, W, C) with values in [0, num_levels), `labels` (int32, or None),
and `num_levels` beside them.

| name              | images          | levels | labels | splits                     |
|-------------------|-----------------|--------|--------|----------------------------|
| `digits`          | (N, 8, 8, 1)    | 17     | 0..9   | train 1437, test 360       |
| `mnist`           | (N, 28, 28, 1)  | 256    | 0..9   | train 60000, test 10000    |
| `fashion_mnist`   | (N, 28, 28, 1)  | 256    | 0..9   | train 60000, test 10000    |
| `binarized_mnist` | (N, 28, 28, 1)  | 2      | none   | train 50000, validation 10000, test 10000 |
| `cifar10`         | (N, 32, 32, 3)  | 256    | 0..9   | train 50000, test 10000    |

A split can be sliced with ints, Python-style: "train[:50000]", "train[50000:]",
"test[:2000]".

- `digits` is embedded: the 8x8 handwritten digits scikit-learn ships (UCI),
  stored in the package, no files to fetch. The split is fixed: every fifth
  image (index % 5 == 0) is test, the rest train.
- The others are read from their original files, with NumPy, gzip and tarfile:
  - `mnist`, `fashion_mnist`: the IDX files `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`
    (big-endian header: magic 2051 for images, 2049 for labels, then the sizes; uint8 data).
  - `binarized_mnist`: Larochelle & Murray's `binarized_mnist_{train,valid,test}.amat`, text lines of
    784 "0"/"1" separated by single spaces, plain or gzipped as `.amat.gz`.
  - `cifar10`: `cifar-10-binary.tar.gz`; each record of its `cifar-10-batches-bin/*.bin` is one label
    byte then 3072 pixel bytes (1024 R, 1024 G, 1024 B, each row-major 32x32).

Where the files come from:

1. `manual_dir`, when given: the files for the split must be there, or a
   ValueError lists the missing ones. Nothing is downloaded.
2. Otherwise the cache `<root>/<name>`, with `<root>` = `data_dir`, else
   `$DGMJAX_DATA_DIR`, else `~/.cache/dgmjax/datasets`. A missing file is
   downloaded once from its original location (`ImageSpec.url` + file name;
   one attempt, `DOWNLOAD_TIMEOUT_S` seconds, streamed to `<file>.partial` then
   renamed). Without network the download fails at once with a ValueError;
   put the files in a directory and pass it as `manual_dir` instead.

Every file read is checked against its published md5 in `MD5` (for
`binarized_mnist`, the md5 of the uncompressed `.amat`). A mismatch is a
ValueError; a mismatching file in the cache is deleted, so the next call
downloads it again. Nothing else is cached: decoding MNIST train takes well
under a second, CIFAR-10 train a few seconds.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import re
import shutil
import struct
import tarfile
import urllib.request
from http.client import HTTPException
from pathlib import Path

import numpy as np

from dgmjax import _checks as v

DOWNLOAD_TIMEOUT_S = 30
_IDX = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_AMAT = {s: (f"binarized_mnist_{f}.amat",) for s, f in
         (("train", "train"), ("validation", "valid"), ("test", "test"))}
_CIFAR = "cifar-10-binary.tar.gz"


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    shape: tuple[int, int, int]
    num_levels: int
    splits: tuple[str, ...]
    files: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # split -> files
    url: str = ""  # a file downloads from url + file name
    note: str = ""  # what the files are, for error messages


IMAGE_DATASETS: dict[str, ImageSpec] = {
    "digits": ImageSpec((8, 8, 1), 17, ("train", "test")),
    "mnist": ImageSpec((28, 28, 1), 256, ("train", "test"), _IDX,
                       "https://storage.googleapis.com/cvdf-datasets/mnist/",
                       "the original MNIST IDX .gz files"),
    "fashion_mnist": ImageSpec((28, 28, 1), 256, ("train", "test"), _IDX,
                               "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                               "the original Fashion-MNIST IDX .gz files"),
    "binarized_mnist": ImageSpec((28, 28, 1), 2, ("train", "validation", "test"), _AMAT,
                                 "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",
                                 "Larochelle & Murray's .amat files (plain, or gzipped as .amat.gz)"),
    "cifar10": ImageSpec((32, 32, 3), 256, ("train", "test"), {"train": (_CIFAR,), "test": (_CIFAR,)},
                         "https://www.cs.toronto.edu/~kriz/", "the CIFAR-10 binary version"),
}
"""The datasets `load_images` knows, by name: each one's image shape, number of levels and splits."""

# Published md5 of each original file; for binarized_mnist, of the uncompressed .amat.
MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "binarized_mnist": {
        "binarized_mnist_train.amat": "db28b1a6ae0fe70cbd3da91acf46e477",
        "binarized_mnist_valid.amat": "bf37822a04e94123630de6a7dfd9c9ef",
        "binarized_mnist_test.amat": "14e41ae11040adba6ab8cb291eda0dd8",
    },
    "cifar10": {_CIFAR: "c32a1d4ab5d03f1284b67883e8d87530"},
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


# ----------------------------------------------------------------------------- splits
_SPLIT = re.compile(r"(\w+)(?:\[(-?\d*):(-?\d*)\])?")


def _parse_split(name: str, split: str) -> tuple[ImageSpec, str, slice]:
    """'test[:2000]' -> (spec, 'test', slice(None, 2000))."""
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset `name` {name!r}; expected one of {sorted(IMAGE_DATASETS)}.")
    spec = IMAGE_DATASETS[name]
    match = _SPLIT.fullmatch(split) if isinstance(split, str) else None
    if match is None or match[1] not in spec.splits:
        raise ValueError(f"`split` for {name!r} must be one of {spec.splits}, optionally sliced with ints "
                         f"as in 'train[:50000]' or 'test[1000:2000]'; got {split!r}.")
    start, stop = (int(x) if x else None for x in match.group(2, 3))
    return spec, match[1], slice(start, stop)


def _finish(name, split, spec, sl, images, labels) -> ImageData:
    n = images.shape[0]
    if len(range(n)[sl]) == 0:
        raise ValueError(f"`split` {split!r} selects no images of the {n} in {name!r}; "
                         f"expected a slice with at least one.")
    labels = None if labels is None else labels[sl]
    return ImageData(images[sl], labels, spec.num_levels, name, split)


_DIGITS_FILE = Path(__file__).with_name("digits.npz")


def load_digits(split: str = "train") -> ImageData:
    """The embedded 8x8 digits as uint8 (N, 8, 8, 1), 17 levels, fixed split.

    The 1797 images of the UCI "Optical Recognition of Handwritten Digits"
    test set (Alpaydin & Kaynak, CC BY 4.0) in scikit-learn's order, stored in
    the package (45 kB), so no extra package or file is needed.
    """
    spec, base, sl = _parse_split("digits", split)
    with np.load(_DIGITS_FILE) as f:
        images = f["images"][..., None]
        labels = f["labels"].astype(np.int32)
    is_test = np.arange(images.shape[0]) % 5 == 0
    keep = is_test if base == "test" else ~is_test
    return _finish("digits", split, spec, sl, images[keep], labels[keep])


# ----------------------------------------------------------------------------- files
def _cache_root(data_dir: str | None) -> Path:
    root = data_dir or os.environ.get("DGMJAX_DATA_DIR") or "~/.cache/dgmjax/datasets"
    return Path(root).expanduser()


def _find(folder: Path, fname: str) -> Path | None:
    """`folder/fname`, or its gzipped `.amat.gz` for an .amat file; None when neither exists."""
    gz = (fname + ".gz",) if fname.endswith(".amat") else ()
    return next((folder / f for f in (fname, *gz) if (folder / f).is_file()), None)


def _download(url: str, target: Path, name: str, spec: ImageSpec, files: tuple[str, ...]) -> Path:
    """One attempt, streamed to `<target>.partial`, renamed once complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (OSError, HTTPException) as err:  # URLError, HTTPError and timeouts are OSErrors
        partial.unlink(missing_ok=True)
        reason = str(getattr(err, "reason", err))[:200]
        raise ValueError(
            f"downloading {url} for {name!r} failed ({type(err).__name__}: {reason}). Offline, put "
            f"{spec.note} {list(files)} in a directory and pass it as `manual_dir`."
        ) from err
    partial.replace(target)
    return target


def _locate(name: str, spec: ImageSpec, base: str, manual_dir: str | None,
            data_dir: str | None) -> tuple[list[Path], bool]:
    """The paths of the split's files, and whether they came from `manual_dir`."""
    files = spec.files[base]
    if manual_dir:
        folder = Path(manual_dir).expanduser()
        paths = [_find(folder, f) for f in files]
        missing = [f for f, p in zip(files, paths, strict=True) if p is None]
        if missing:
            raise ValueError(
                f"`manual_dir` {str(folder)!r} lacks {missing} for {name!r} split {base!r}; put those "
                f"files there ({spec.note}, published at {spec.url})."
            )
        return paths, True
    folder = _cache_root(data_dir) / name
    return [_find(folder, f) or _download(spec.url + f, folder / f, name, spec, files) for f in files], False


def _read_verified(name: str, fname: str, path: Path, manual: bool) -> bytes:
    """The file's bytes (an .amat.gz decompressed), after checking their md5 against `MD5`."""
    raw = path.read_bytes()
    if path.name.endswith(".amat.gz"):
        raw = gzip.decompress(raw)
    expected, actual = MD5[name][fname], hashlib.md5(raw).hexdigest()
    if actual != expected:
        if not manual:
            path.unlink()
        what = " of its uncompressed content" if path.name.endswith(".amat.gz") else ""
        fate = "" if manual else " It was deleted from the cache and will be downloaded again."
        raise ValueError(f"{str(path)!r} has md5{what} {actual}; expected {expected} for {name!r} "
                         f"(a corrupt or different file).{fate}")
    return raw


# ----------------------------------------------------------------------------- decoders
def _decode_idx(raw: bytes, fname: str, ndim: int) -> np.ndarray:
    """An IDX uint8 array: magic 0x0800 + ndim, then ndim big-endian uint32 sizes, then the data."""
    data = gzip.decompress(raw)
    header = 4 * (1 + ndim)
    magic, *dims = struct.unpack(f">{1 + ndim}I", data[:header])
    if magic != 2048 + ndim or len(data) != header + int(np.prod(dims)):
        raise ValueError(f"{fname!r} is not an IDX file of uint8 with {ndim} dims; got magic {magic}, "
                         f"sizes {dims} and {len(data) - header} data bytes.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims).copy()


def _decode_mnist(raws: list[bytes], files: tuple[str, ...], base: str):
    images, labels = _decode_idx(raws[0], files[0], 3), _decode_idx(raws[1], files[1], 1)
    if images.shape[1:] != (28, 28) or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{files} hold images {images.shape} and labels {labels.shape}; "
                         f"expected (N, 28, 28) and (N,).")
    return images[..., None], labels.astype(np.int32)


def _decode_amat(raws: list[bytes], files: tuple[str, ...], base: str):
    """Lines of 784 '0'/'1' separated by single spaces: digit j is byte 2j of a 1568-byte line."""
    data = np.frombuffer(raws[0], np.uint8)
    rows = data.reshape(-1, 1568) if data.size % 1568 == 0 else np.zeros((0, 1568), np.uint8)
    bits = rows[:, ::2] - np.uint8(48)
    if (rows.shape[0] == 0 or bits.max() > 1 or (rows[:, 1:-1:2] != 32).any()
            or (rows[:, -1] != 10).any()):
        raise ValueError(f"{files[0]!r} is not a binarized MNIST .amat file; expected lines of 784 "
                         f"'0'/'1' separated by single spaces.")
    return bits.reshape(-1, 28, 28, 1), None


def _decode_cifar(raws: list[bytes], files: tuple[str, ...], base: str):
    """Records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32), to NHWC."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if base == "train" else ["test_batch.bin"]
    wanted = {f"cifar-10-batches-bin/{n}" for n in names}
    with tarfile.open(fileobj=io.BytesIO(raws[0]), mode="r|gz") as tar:
        found = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar
                 if m.name.removeprefix("./") in wanted}
    if set(found) != wanted or any(len(b) % 3073 for b in found.values()):
        raise ValueError(f"{files[0]!r} lacks {sorted(wanted - set(found))} or has records that are not "
                         f"3073 bytes; expected the CIFAR-10 binary version.")
    records = np.concatenate([np.frombuffer(found[f"cifar-10-batches-bin/{n}"], np.uint8).reshape(-1, 3073)
                              for n in names])
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].astype(np.int32)


_DECODERS = {"mnist": _decode_mnist, "fashion_mnist": _decode_mnist,
             "binarized_mnist": _decode_amat, "cifar10": _decode_cifar}


def load_images(name: str, split: str = "train", *, manual_dir: str | None = None,
                data_dir: str | None = None) -> ImageData:
    """Loads an image dataset as integer NHWC arrays (see the module docstring).

    Args:
      name: "digits", "mnist", "fashion_mnist", "binarized_mnist" or "cifar10".
      split: "train" or "test" ("validation" too for binarized_mnist), optionally
        sliced with ints, e.g. "train[:50000]".
      manual_dir: directory holding the original files; nothing is downloaded.
      data_dir: the download cache's root (default `$DGMJAX_DATA_DIR` or
        ~/.cache/dgmjax/datasets), one subfolder per dataset.
    """
    spec, base, sl = _parse_split(name, split)
    if name == "digits":
        return load_digits(split)
    paths, manual = _locate(name, spec, base, manual_dir, data_dir)
    files = spec.files[base]
    raws = [_read_verified(name, f, p, manual) for f, p in zip(files, paths, strict=True)]
    images, labels = _DECODERS[name](raws, files, base)
    return _finish(name, split, spec, sl, images, labels)
