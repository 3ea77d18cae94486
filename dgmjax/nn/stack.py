"""Parameters of L identical layers, for `dgmjax.bijectors.LayerStack`."""

from __future__ import annotations

import flax.linen as nn
import jax

from dgmjax import _checks as v

__all__ = ["stack_params", "zip_layers"]


def stack_params(module: nn.Module, rng: jax.Array, num_layers: int, *example_inputs, scan: bool = True):
    """Initializes `num_layers` independent copies of `module`'s parameters.

    With `scan=True` the copies are stacked on a leading axis (leaf i of layer
    l is `params[...][l]`), which `LayerStack` runs with `lax.scan`: compile
    time flat in depth. With `scan=False` they are a list of per-layer
    parameter trees, run unrolled: a faster step at small depth, compile time
    growing with it. Both layouts hold the same values (the same key per layer).
    """
    num_layers = v.check_positive_int(num_layers, "num_layers")
    keys = jax.random.split(rng, num_layers)
    if scan:
        return jax.vmap(lambda k: module.init(k, *example_inputs)["params"])(keys)
    return [module.init(k, *example_inputs)["params"] for k in keys]


def zip_layers(**parts):
    """Per-layer parameter parts combined into one `LayerStack` params: `{name: part}` per layer.

    Each part is stacked (leaves with a leading layer axis) or a list of
    per-layer trees, as `stack_params` made it. All stacked: the result is
    stacked. Any list: the result is a list of per-layer dicts, stacked parts
    sliced per layer. A part that is None is left out.
    """
    parts = {k: p for k, p in parts.items() if p is not None}
    if not parts:
        raise ValueError("`parts`: zip_layers needs at least one part that is not None; got none.")
    lists = {k: p for k, p in parts.items() if isinstance(p, (list, tuple))}
    if not lists:
        return parts
    lengths = {len(p) for p in lists.values()}
    if len(lengths) != 1:
        raise ValueError(f"`parts` given as per-layer lists must have one length; got lengths "
                         f"{ {k: len(p) for k, p in lists.items()} }.")
    num = lengths.pop()
    return [{k: (p[i] if k in lists else jax.tree_util.tree_map(lambda a, i=i: a[i], p))
             for k, p in parts.items()} for i in range(num)]
