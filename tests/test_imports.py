"""Importing dgmjax, any of its modules, neither imports matplotlib nor TensorFlow."""

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import dgmjax
names = [m.name for m in pkgutil.walk_packages(dgmjax.__path__, "dgmjax.")]
for name in names:
    importlib.import_module(name)
print(len(names), sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "tensorflow", "keras")))
"""


def test_no_module_of_the_library_imports_matplotlib_or_tensorflow():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, loaded = proc.stdout.strip().split(" ", 1)
    assert int(count) > 30 and loaded == "[]", loaded
