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


def default_config() -> ml_collections.ConfigDict:
    """The training sections every experiment config starts from: seed, train, optimizer.

    `experiments/configs/default.py` adds `data`, `model` and `objective`;
    notebooks and scripts use this directly with `dgmjax.training.train`.
    """
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.distributed = False  # True: call jax.distributed.initialize() (multi-host)

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 64
    config.train.eval_batch_size = 360
    config.train.num_steps = 1200
    config.train.log_every = 100
    config.train.eval_every = 400
    config.train.checkpoint_every = 400
    config.train.sample_every = 400
    config.train.num_samples = 64
    config.train.ema_decay = 0.999
    config.train.num_devices = 0  # 0 = all visible devices
    config.train.max_steps_per_run = 0  # >0: stop (checkpointed) after this many steps; rerun resumes

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 200
    config.optimizer.schedule = "cosine"
    config.optimizer.weight_decay = 1e-5
    config.optimizer.grad_clip_norm = 20.0
    return config
