"""CI: dgmjax as a user installs it, from the wheel, in a fresh virtual environment.

    python .ci/package_check.py

1. Builds the wheel and the sdist (`python -m build`); the sdist must hold the
   embedded digits.
2. Creates a fresh virtual environment with only a Jupyter kernel in it.
3. Runs the first cell of every notebook there, as Colab would, with
   DGMJAX_SOURCE pointing at the wheel: the first notebook installs
   `dgmjax[plotting]` from it, the others find it installed and skip.
4. In that environment: `import dgmjax, dgmjax.models, dgmjax.bijectors`
   loads no TensorFlow, and the README's library scripts run (from a folder
   outside the repository, so nothing comes from the checkout).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_CELLS = '''
import sys
import nbclient, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
first = next(c for c in nb.cells if c.cell_type == "code")
check = nbformat.v4.new_code_cell("import dgmjax, dgmjax.models, matplotlib.pyplot; print(dgmjax.__file__)")
run = nbformat.v4.new_notebook(cells=[first, check], metadata={"kernelspec": {"name": "python3",
                               "display_name": "Python 3", "language": "python"}})
nbclient.NotebookClient(run, kernel_name="python3", timeout=900).execute()
print(sys.argv[1], "->", run.cells[1].outputs[0]["text"].strip())
'''
IMPORT = ("import sys, dgmjax, dgmjax.models, dgmjax.bijectors; "
          "assert 'tensorflow' not in sys.modules, 'importing dgmjax loaded TensorFlow'; "
          "assert 'site-packages' in dgmjax.__file__, dgmjax.__file__")


def sh(*cmd, **kw):
    print("+", " ".join(str(c).split("\n")[0][:80] for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dist, work = tmp / "dist", tmp / "work"
        work.mkdir()
        sh(sys.executable, "-m", "build", "--outdir", dist, ROOT, capture_output=True)
        wheel, sdist = next(dist.glob("*.whl")), next(dist.glob("*.tar.gz"))
        with tarfile.open(sdist) as tar:
            assert any(n.endswith("dgmjax/data/digits.npz") for n in tar.getnames()), "sdist lacks digits"
        venv = tmp / "venv"
        sh(sys.executable, "-m", "venv", venv)
        python = venv / "bin" / "python"
        sh(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
        sh(python, "-m", "pip", "install", "-q", "nbclient", "nbformat", "ipykernel")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(DGMJAX_SOURCE=f"{wheel}[plotting]", JAX_PLATFORMS="cpu",
                   PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}")
        for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
            sh(python, "-c", FIRST_CELLS, notebook, cwd=work, env=env)
        sh(python, "-c", IMPORT, cwd=work, env=env)
        text = (ROOT / "README.md").read_text()
        scripts = dict(re.findall(r"<!-- readme-script: (\w+) -->\n```python\n(.*?)```", text, flags=re.S))
        for name in ("vae", "flow"):
            sh(python, "-c", scripts[name], cwd=work, env=env)
    print("package check passed.")


if __name__ == "__main__":
    main()
