"""The main job, Flax-examples style.

    python experiments/main.py --config=experiments/configs/default.py --workdir=runs/digits \
        [--config.train.num_steps=500 ...]

Trains the config's model, writes metrics (JSON lines, and TensorBoard events
with tensorboardX installed), sample PNGs and orbax checkpoints to the workdir,
and prints the test result. Rerunning with the same workdir resumes from the
latest checkpoint of the same run (`--resume_other_run` continues from another
run's). Ctrl-C or SIGTERM stops the run after the step in flight, saves a
checkpoint and exits with status 130 or 143. Compiled programs are cached in `--compilation_cache`
(default ~/.cache/dgmjax/xla; '' turns the cache off).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    from absl import app, flags, logging
    from ml_collections import ConfigDict, config_flags
except ImportError as err:  # the core install leaves the application's packages out
    raise ImportError(f"experiments/main.py needs {err.name!r}: install the application's extra with "
                      "`pip install -e '.[experiments]'` in the repository.") from err

_HERE = Path(__file__).resolve().parent
_DEFAULT = str(_HERE / "configs" / "default.py")
if str(_HERE) not in sys.path:  # configs import their siblings as `configs.NAME`, as in the Flax examples
    sys.path.insert(0, str(_HERE))


def load_config(path: str | Path) -> ConfigDict:
    """`get_config()` of a config file; an optional ':arg' suffix is passed to it."""
    path, arg = str(path), None
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


def check_config_overrides(argv: Sequence[str], default_config: str, flag: str = "config") -> None:
    """Raises ValueError for any `--config.a.b=...` whose key does not exist in the config.

    ml_collections would otherwise fail deep inside flag parsing with a bare
    AttributeError; this names the key and lists the keys that do exist.
    """
    path, overrides = default_config, []
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
            keys = list(node.keys()) if isinstance(node, (ConfigDict, dict)) else []
            if part not in keys:
                where = ".".join(walked) or "the top level"
                raise ValueError(f"config key {dotted!r} (from --{flag}.{dotted}) does not exist in {path}; "
                                 f"keys at {where}: {sorted(keys)}.")
            node = node[part]
            walked.append(part)


if __name__ == "__main__":
    # config_flags reads --config.* overrides from sys.argv while the flag is defined and
    # fails on an unknown key with a bare AttributeError; name the key first.
    check_config_overrides(sys.argv[1:], _DEFAULT)

_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Experiment config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
_CACHE = flags.DEFINE_string(
    "compilation_cache", str(Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "dgmjax" / "xla"),
    "Directory of JAX's persistent compilation cache, so that a rerun (a resume) skips most compiling; "
    "'' turns it off. JAX_COMPILATION_CACHE_DIR, when set, wins.")
_RESUME_OTHER = flags.DEFINE_bool(
    "resume_other_run", False,
    "Resume from the workdir's checkpoints even when another run wrote them (another seed, model, optimizer, "
    "schedule length or data), which is refused otherwise; the earlier config.json is kept as "
    "config_until_step_<N>.json.")
flags.mark_flags_as_required(["workdir"])


def _enable_compilation_cache(directory: str):
    """JAX's persistent compilation cache in `directory` ('' or JAX_COMPILATION_CACHE_DIR set: left alone)."""
    if not directory or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(Path(directory).expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO; -v 0 shows them
    if _CONFIG.value.get("deterministic", False):
        from dgmjax.training import use_deterministic_ops

        use_deterministic_ops()  # before the first computation
    _enable_compilation_cache(_CACHE.value)
    from train import train_and_evaluate

    try:
        train_and_evaluate(_CONFIG.value, _WORKDIR.value, resume_other_run=_RESUME_OTHER.value)
    except KeyboardInterrupt as err:  # the loop saved a checkpoint and said so; the shell's status
        sys.exit(128 + getattr(err, "signum", 2))  # 130 for Ctrl-C, 143 for SIGTERM


if __name__ == "__main__":
    from cli import run

    run(sys.argv, main)
