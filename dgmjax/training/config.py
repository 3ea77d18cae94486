"""Config helpers for the Flax-examples-style main job (ml_collections configs)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import ml_collections


def load_config(path: str | Path) -> ml_collections.ConfigDict:
    """Loads `get_config()` from a config file (an optional ':arg' suffix is passed to it)."""
    path = str(path)
    arg = None
    if ":" in Path(path).name:
        path, arg = path.rsplit(":", 1)
    if not Path(path).is_file():
        raise ValueError(f"`--config` file {path!r} does not exist.")
    spec = importlib.util.spec_from_file_location("_dgmjax_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"`--config` file {path!r} must define get_config().")
    return module.get_config(arg) if arg is not None else module.get_config()


def check_config_overrides(argv: Sequence[str], default_config: str | Path,
                           flag: str = "config") -> None:
    """Raises ValueError for any `--config.a.b=...` whose key does not exist in the config.

    ml_collections would otherwise fail deep inside flag parsing with a bare
    AttributeError; this names the key and lists the keys that do exist.
    """
    path = str(default_config)
    overrides = []
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{flag}="):
            path = arg.split("=", 1)[1]
        elif arg == f"--{flag}" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith(f"--{flag}."):
            overrides.append(arg[len(flag) + 3:].split("=", 1)[0])
    if not overrides:
        return
    config = load_config(path)
    for dotted in overrides:
        node, walked = config, []
        for part in dotted.split("."):
            keys = list(node.keys()) if isinstance(node, (ml_collections.ConfigDict, dict)) else []
            if part not in keys:
                where = ".".join(walked) or "the top level"
                raise ValueError(
                    f"config key {dotted!r} (from --{flag}.{dotted}) does not exist in {path}; "
                    f"keys at {where}: {sorted(keys)}."
                )
            node = node[part]
            walked.append(part)
