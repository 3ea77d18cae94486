"""Batch iterators: stateless functions of (key, step), placed/sharded on devices.

A training batch is a pure function of the key and the global step, so a run
resumed from a checkpoint at step s draws exactly the batches an uninterrupted
run would have drawn from step s on, with no iterator state to save.

- `ArrayBatches` draws from in-memory arrays. Each epoch is a fresh
  permutation derived from (key, epoch); batches have a fixed shape and the
  remainder of each epoch (N mod batch_size examples, different ones each
  epoch) is dropped.
- `SamplerBatches` draws a fresh batch from a sampler (the 2-D toys) for every
  step, from `fold_in(key, step)`.
- `eval_batches` walks a split once in order, padding the last batch to the
  fixed shape and marking real rows with `batch["mask"]`.

With a `sharding` (a `NamedSharding` over the batch axis), each process builds
only its own rows and the global array is assembled with
`jax.make_array_from_process_local_data`, which is the multi-host path too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import jax
import numpy as np

from dgmjax import _checks as v


def _check_batch_size(batch_size: int, sharding) -> int:
    batch_size = v.check_positive_int(batch_size, "batch_size")
    if sharding is not None:
        num_shards = sharding.mesh.devices.size if hasattr(sharding, "mesh") else 1
        if batch_size % num_shards:
            raise ValueError(
                f"`batch_size` {batch_size} must be divisible by the number of devices "
                f"in the mesh ({num_shards})."
            )
    return batch_size


def _check_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """The arrays as numpy arrays, and their shared number of examples (leading axis)."""
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError(f"`arrays` must be a non-empty mapping of names to arrays; got {arrays!r:.100}.")
    arrays = {k: np.asarray(a) for k, a in arrays.items()}
    if any(a.ndim == 0 for a in arrays.values()):
        raise ValueError(f"`arrays` must have a leading axis of examples; got shapes "
                         f"{ {k: a.shape for k, a in arrays.items()} }.")
    sizes = {k: a.shape[0] for k, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"`arrays` must share their leading axis; got sizes {sizes}.")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(f"`arrays` must hold at least one example; got sizes {sizes}.")
    return arrays, n


def _process_rows(batch_size: int) -> slice:
    """Rows of the global batch that this process supplies."""
    n_proc, p = jax.process_count(), jax.process_index()
    if batch_size % n_proc:
        raise ValueError(f"`batch_size` {batch_size} must be divisible by the process count {n_proc}.")
    per = batch_size // n_proc
    return slice(p * per, (p + 1) * per)


def place(batch: Mapping[str, np.ndarray], sharding=None) -> dict[str, jax.Array]:
    """Puts a host batch (this process's rows) on the devices, sharded on axis 0."""
    if sharding is None:
        return {k: jax.device_put(a) for k, a in batch.items()}
    n_proc = jax.process_count()
    out = {}
    for k, a in batch.items():
        global_shape = (a.shape[0] * n_proc,) + a.shape[1:]
        out[k] = jax.make_array_from_process_local_data(sharding, a, global_shape)
    return out


def _seed(key: jax.Array, *salt: int) -> np.random.SeedSequence:
    data = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                      else key).ravel().astype(np.uint64)
    return np.random.SeedSequence([int(d) for d in data] + [int(s) for s in salt])


class ArrayBatches:
    """Shuffled fixed-shape batches from arrays sharing a leading axis.

    `batches(step)` returns the batch of global step `step` (epoch
    `step // steps_per_epoch`), an int >= 0; iterating yields steps 0, 1, 2,
    ... . `key` is a jax PRNG key (`jax.random.key(0)` or
    `jax.random.PRNGKey(0)`). The same key gives the same batches on every run
    and every process.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], batch_size: int, *, key: jax.Array,
                 sharding=None):
        self._arrays, self._n = _check_arrays(arrays)
        self.batch_size = _check_batch_size(batch_size, sharding)
        if self._n < self.batch_size:
            raise ValueError(
                f"`batch_size` {self.batch_size} exceeds the number of examples ({self._n}); "
                "the remainder is dropped, so no batch could be formed."
            )
        self._key = v.check_key(key)
        self._sharding = sharding
        self._rows = _process_rows(self.batch_size)
        self._cached_epoch, self._cached_perm = None, None

    @property
    def num_examples(self) -> int:
        return self._n

    @property
    def steps_per_epoch(self) -> int:
        return self._n // self.batch_size

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._cached_epoch:
            rng = np.random.default_rng(_seed(self._key, epoch))
            self._cached_epoch, self._cached_perm = epoch, rng.permutation(self._n)
        return self._cached_perm

    def host_batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of the batch of `step`, as numpy arrays."""
        epoch, i = divmod(v.check_nonnegative_int(step, "step"), self.steps_per_epoch)
        idx = self.permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size][self._rows]
        return {k: a[idx] for k, a in self._arrays.items()}

    def __call__(self, step: int) -> dict[str, jax.Array]:
        return place(self.host_batch(step), self._sharding)

    def __iter__(self) -> Iterator[dict[str, jax.Array]]:
        step = 0
        while True:
            yield self(step)
            step += 1


class SamplerBatches:
    """Fresh batches from `sampler(key, n)`, one per step, from `fold_in(key, step)`.

    `key` is a jax PRNG key; `batches(step)` takes an int step >= 0.
    """

    def __init__(self, sampler: Callable[[jax.Array, int], jax.Array], batch_size: int, *,
                 key: jax.Array, name: str = "x", sharding=None):
        if not callable(sampler):
            raise ValueError(f"`sampler` must be a callable (key, n) -> batch; got {type(sampler).__name__}.")
        self.batch_size = _check_batch_size(batch_size, sharding)
        self._sampler = jax.jit(sampler, static_argnums=1)
        self._key, self._name, self._sharding = v.check_key(key), name, sharding
        self._rows = _process_rows(self.batch_size)

    def host_batch(self, step: int) -> dict[str, np.ndarray]:
        step = v.check_nonnegative_int(step, "step")
        x = np.asarray(self._sampler(jax.random.fold_in(self._key, step), self.batch_size))
        return {self._name: x[self._rows]}

    def __call__(self, step: int) -> dict[str, jax.Array]:
        return place(self.host_batch(step), self._sharding)

    def __iter__(self):
        step = 0
        while True:
            yield self(step)
            step += 1


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int, *, sharding=None
                 ) -> Iterator[dict[str, jax.Array]]:
    """One ordered pass over `arrays` in fixed-shape batches.

    The last batch is padded by repeating the first rows; `batch["mask"]`
    (bool, shape (batch_size,)) is True on real rows, so sums weighted by it
    count every example exactly once.
    """
    batch_size = _check_batch_size(batch_size, sharding)
    arrays, n = _check_arrays(arrays)
    rows = _process_rows(batch_size)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < n
        idx = np.where(mask, idx, idx % n)
        batch = {k: a[idx][rows] for k, a in arrays.items()}
        batch["mask"] = mask[rows]
        yield place(batch, sharding)
