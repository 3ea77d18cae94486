"""Imports of packages that only an extra installs, failing with the extra's name."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


def require(module: str, extra: str, what: str) -> ModuleType:
    """`import module`, or an ImportError that says which dgmjax extra provides it.

    Args:
      module: the module to import, e.g. "tensorboardX".
      extra: the dgmjax extra that installs it, e.g. "tensorboard".
      what: what needs it, for the message, e.g. "TensorBoard logging".
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs the package {module!r}, which dgmjax's core install leaves out; install it "
            f"with `pip install 'dgmjax[{extra}]'`."
        ) from err


def available(module: str) -> bool:
    """Whether `module` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None
