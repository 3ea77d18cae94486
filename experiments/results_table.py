"""Results files that a rerun of some of their rows updates without losing the others.

A study script reads the rows already in its results JSON (`read_rows`), merges the rows it has
just made into them (`merge_rows`: a row whose key matches replaces that row in its place, a new
key is appended or placed by `order`) and renders its Markdown from the merged rows, so the .md
and the .json agree and the rows it did not run are written back unchanged. A file whose unit is
a section (a dict of sections, each with its own Markdown under a `## ` heading) merges with
`merge_sections` and `markdown_sections`. `require_same` refuses a merge that would label kept
rows with settings they were not made with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path

Key = str | tuple[str, ...]


def key_of(key: Key) -> Callable[[dict], Hashable]:
    """The function giving a row's key: the row's field `key`, or the tuple of the fields named."""
    if isinstance(key, str):
        return lambda row: row[key]
    return lambda row: tuple(row[k] for k in key)


def read_json(path: str | Path, default=None):
    """The JSON in `path`, or `default` when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


def read_rows(path: str | Path, field: str | None = None) -> list[dict]:
    """The rows of the results JSON in `path`: the file's list, or the list under `field` of its
    object; [] when the file does not exist (or the object has no `field`)."""
    data = read_json(path, [])
    if field is not None and isinstance(data, dict):
        data = data.get(field, [])
    if not isinstance(data, list):
        raise ValueError(f"{path} holds no list of rows" + (f" under {field!r}" if field else "") + ".")
    return data


def merge_rows(committed: Sequence[dict], new: Iterable[dict], key: Key,
               order: Sequence[Hashable] | None = None) -> list[dict]:
    """`committed` with `new` merged in by `key`, as a new list.

    A new row whose key matches a row's replaces it in its place. A new key is inserted before the
    first row whose key comes after it in `order` (when `order` lists it), else appended. Rows that
    no new row replaces are kept as they are, in their order.
    """
    k = key_of(key)
    rank = {name: i for i, name in enumerate(order or ())}
    merged = list(committed)
    for row in new:
        same = [i for i, r in enumerate(merged) if k(r) == k(row)]
        if same:
            merged[same[0]] = row
        elif k(row) in rank:
            later = [i for i, r in enumerate(merged) if rank.get(k(r), -1) > rank[k(row)]]
            merged.insert(later[0] if later else len(merged), row)
        else:
            merged.append(row)
    return merged


def kept_rows(committed: Sequence[dict], new_keys: Iterable[Hashable], key: Key) -> list[dict]:
    """The rows of `committed` that rows with keys `new_keys` would not replace."""
    k, new_keys = key_of(key), set(new_keys)
    return [r for r in committed if k(r) not in new_keys]


def merge_sections(committed: dict, new: dict) -> dict:
    """`committed` with the sections of `new` replacing those of the same name (in their place)
    and the others of `new` appended; the sections not in `new` are kept."""
    return {**committed, **new}


def markdown_sections(text: str, heading: str = "## ") -> tuple[str, list[str]]:
    """`text` split into what comes before its first line starting with `heading` and the blocks
    that each such line starts: ``preamble + "".join(blocks) == text``."""
    starts = [m.start() for m in re.finditer("^" + re.escape(heading), text, flags=re.MULTILINE)]
    if not starts:
        return text, []
    ends = starts[1:] + [len(text)]
    return text[:starts[0]], [text[a:b] for a, b in zip(starts, ends, strict=True)]


def require_same(kept: Sequence, what: str, committed, current, path: str | Path) -> None:
    """Raises ValueError when rows (or sections) are kept from the file at `path` and `what`, which
    all of its rows share (a budget, a machine, the table's heading), differs in this run: merged,
    the kept rows would be shown under this run's `what`."""
    if kept and committed != current:
        raise ValueError(
            f"{path} keeps {len(kept)} row(s) this run does not make, made with {what} {committed!r}; "
            f"this run has {current!r}. Rerun those rows too, or write to another --out.")
