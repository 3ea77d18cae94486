"""A user's own NumPy arrays as a dataset: `load_arrays(path, ...)`.

The file is a `.npy` (one array) or a `.npz` (keys `train` and `test`, or a
single array of any name). One array is split into train and test by a fixed
permutation from `np.random.default_rng(seed)`: the last
`ceil(test_fraction * N)` permuted rows are the test split, so the split is the
same on every call and every machine.

- `num_levels=None`: float vectors of shape (N, D), returned as a `VectorData`
  (float32 `train` and `test`).
- `num_levels=K >= 2`: integer images of shape (N, H, W, C), or (N, H, W) (a
  channel axis of 1 is added), with values in [0, K); returned as two
  `ImageData` (train, test), uint8 when K <= 256, else int32, without labels and
  named after the file's stem. Floats are accepted when every value is a whole
  number.
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
from pathlib import Path

import numpy as np

from dgmjax import _checks as v
from dgmjax.data.images import ImageData

_INT32_MAX = np.iinfo(np.int32).max


@dataclasses.dataclass(frozen=True)
class VectorData:
    """Float vectors (N, D) split into `train` and `test`, stored as float32."""

    train: np.ndarray
    test: np.ndarray
    name: str

    def __post_init__(self):
        for split in ("train", "test"):
            x = np.asarray(getattr(self, split))
            if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
                raise ValueError(f"`{split}` must be non-empty vectors of shape (N, D); got shape {x.shape}.")
            v.check_float(x, split)
            x = x.astype(np.float32, copy=False)
            if not np.isfinite(x).all():
                raise ValueError(f"`{split}` must hold finite float32 values; got NaN or inf.")
            object.__setattr__(self, split, x)
        if self.train.shape[1] != self.test.shape[1]:
            raise ValueError(f"`train` and `test` must have the same vector size; got shapes "
                             f"{self.train.shape} and {self.test.shape}.")

    @property
    def event_size(self) -> int:
        """D, the size of one vector."""
        return int(self.train.shape[1])


def _read(path: Path) -> dict[str, np.ndarray]:
    """The file's arrays: {"": array} for a single array, {key: array} for an archive."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"": loaded}
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"`path` {str(path)!r} could not be read as a {path.suffix} file of numeric "
                         f"arrays ({type(err).__name__}: {err}); expected a file written by "
                         f"np.save / np.savez without object arrays.") from err


def _split(x: np.ndarray, test_fraction: float, seed: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    num_test = math.ceil(test_fraction * n)
    if num_test < 1 or num_test >= n:
        raise ValueError(f"{where} has {n} row(s); `test_fraction` {test_fraction} leaves "
                         f"{num_test} for test and {n - num_test} for train; expected at least one of each.")
    perm = np.random.default_rng(seed).permutation(n)
    return x[perm[: n - num_test]], x[perm[n - num_test:]]


def _as_vectors(x: np.ndarray, where: str) -> np.ndarray:
    dtype = x.dtype
    if dtype == np.bool_ or np.issubdtype(dtype, np.integer):
        raise ValueError(f"{where} has dtype {dtype} but `num_levels` is None; expected floating-point "
                         f"vectors, or pass `num_levels` (an int >= 2) to load integer images.")
    if not v.is_float_dtype(dtype):
        raise ValueError(f"{where} has dtype {dtype}; expected floating-point vectors of shape (N, D).")
    if x.ndim != 2:
        raise ValueError(f"{where} has shape {x.shape} but `num_levels` is None; expected vectors of shape "
                         f"(N, D), or pass `num_levels` for integer images (N, H, W[, C]).")
    x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{where} holds {int(bad.sum())} non-finite values (NaN, inf, or beyond float32's "
                         f"range) in rows {rows[:5].tolist()}{' ...' if rows.size > 5 else ''}; "
                         f"expected finite floats.")
    return x32


def _as_levels(x: np.ndarray, num_levels: int, where: str) -> np.ndarray:
    dtype = x.dtype
    if x.ndim not in (3, 4):
        raise ValueError(f"{where} has shape {x.shape}; with `num_levels` {num_levels} expected images of "
                         f"shape (N, H, W, C) or (N, H, W).")
    if v.is_float_dtype(dtype):
        if not np.isfinite(x.astype(np.float32)).all() or (x != np.round(x)).any():
            raise ValueError(f"{where} holds floats that are not whole numbers (or not finite); with "
                             f"`num_levels` {num_levels} expected integer levels in [0, {num_levels}).")
    elif not (dtype == np.bool_ or np.issubdtype(dtype, np.integer)):
        raise ValueError(f"{where} has dtype {dtype}; with `num_levels` {num_levels} expected integer "
                         f"levels in [0, {num_levels}).")
    if x.size and (x.min() < 0 or x.max() >= num_levels):
        raise ValueError(f"{where} holds values in [{x.min()}, {x.max()}]; with `num_levels` {num_levels} "
                         f"expected integer levels in [0, {num_levels}).")
    x = x.astype(np.uint8 if num_levels <= 256 else np.int32)
    return x[..., None] if x.ndim == 3 else x


def load_arrays(path: str | Path, *, num_levels: int | None = None, test_fraction: float = 0.1,
                seed: int = 0) -> VectorData | tuple[ImageData, ImageData]:
    """Loads a user's arrays from a `.npy` or `.npz` file as train and test splits (module docstring).

    Args:
      path: a `.npy` file (one array), or a `.npz` file with keys `train` and
        `test` (used as given) or with exactly one array (split).
      num_levels: None for float vectors (N, D); K >= 2 for integer images
        (N, H, W[, C]) with values in [0, K).
      test_fraction: in (0, 1): the last `ceil(test_fraction * N)` rows of a
        fixed permutation are the test split (a single array only).
      seed: seeds `np.random.default_rng` for that permutation.

    Returns:
      `VectorData(train, test, name)` for vectors; `(train, test)` `ImageData`s
      for images. `name` is the file's stem.
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise ValueError(f"`path` must be the path of a .npy or .npz file; got {path!r}.")
    path = Path(path).expanduser()
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"`path` must end in .npy or .npz; got {str(path)!r}.")
    if not path.is_file():
        raise ValueError(f"`path` {str(path)!r} does not exist or is not a file; expected a .npy or .npz "
                         f"file.")
    if num_levels is not None:
        num_levels = v.check_num_levels(num_levels)
        if num_levels - 1 > _INT32_MAX:
            raise ValueError(f"`num_levels` must be at most {_INT32_MAX + 1} (levels are stored as int32); "
                             f"got {num_levels}.")
    if (isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.floating))
            or not 0 < test_fraction < 1):
        raise ValueError(f"`test_fraction` must be a float in (0, 1); got {test_fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int; got {seed!r}.")

    arrays = _read(path)
    if set(arrays) == {"train", "test"}:
        keys = ("train", "test")
    elif len(arrays) == 1:
        keys = tuple(arrays)
    else:
        raise ValueError(f"`path` {str(path)!r} holds the arrays {sorted(arrays)}; expected keys 'train' and "
                         f"'test' (used as given), or exactly one array (split by `test_fraction`).")
    checked = []
    for key in keys:  # checked whole, before any split, so that row numbers are the file's
        x, where = arrays[key], f"`path` {str(path)!r}" + (f" key {key!r}" if key else "")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{where} has shape {x.shape}; expected an array of rows (N, ...) with N >= 1.")
        checked.append(_as_vectors(x, where) if num_levels is None else _as_levels(x, num_levels, where))
    if len(checked) == 1:
        key = keys[0]
        checked = _split(checked[0], test_fraction, seed,
                         f"`path` {str(path)!r}" + (f" key {key!r}" if key else ""))
    train, test = checked
    if num_levels is None:
        return VectorData(train, test, path.stem)
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(f"`path` {str(path)!r} holds train images of shape {train.shape[1:]} and test "
                         f"images of shape {test.shape[1:]}; expected the same (H, W, C).")
    return (ImageData(train, None, num_levels, path.stem, "train"),
            ImageData(test, None, num_levels, path.stem, "test"))
