"""The main job, Flax-examples style.

    python experiments/main.py --config=experiments/configs/default.py --workdir=runs/digits \
        [--config.train.num_steps=500 ...]

Trains the config's model, writes metrics (JSON lines + TensorBoard), sample
PNGs and orbax checkpoints to the workdir, and prints the test result. Rerunning
with the same workdir resumes from the latest checkpoint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from dgmjax.training.config import check_config_overrides

_DEFAULT = str(Path(__file__).resolve().parent / "configs" / "default.py")

if __name__ == "__main__":
    # config_flags reads --config.* overrides from sys.argv while the flag is defined and
    # fails on an unknown key with a bare AttributeError; name the key first.
    check_config_overrides(sys.argv[1:], _DEFAULT)

_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
flags.mark_flags_as_required(["workdir"])


def _enable_compilation_cache():
    """Persistent XLA cache, so a rerun (resume) skips compilation; JAX_COMPILATION_CACHE_DIR wins."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import jax

    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "dgmjax" / "xla"
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO; -v 0 shows them
    _enable_compilation_cache()
    from dgmjax.training import train_and_evaluate

    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
