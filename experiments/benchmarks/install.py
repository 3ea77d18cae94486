"""Install footprint: the core wheel's size in a fresh virtual environment and its import time.

    python experiments/benchmarks/install.py [--extras=,experiments] [--repeats=5] [--out=PATH.md]

Builds the wheel (`python -m build --wheel`), then for each extra ("" is the
core install) creates a fresh virtual environment, installs the wheel with
that extra, and measures:

- the size of its site-packages (everything pip put there, pip itself
  excluded), and the largest packages;
- the wall time of `python -c "import dgmjax, dgmjax.models, dgmjax.bijectors"`
  in a fresh process (interpreter start included), `--repeats` times (the
  first run also compiles the .pyc files and is reported apart);
- beside it, interleaved, `import jax` and `import jax, distrax, flax.linen` (the floor:
  dgmjax's models are built on them);
- whether that import loaded TensorFlow.

Prints a table and writes it to experiments/benchmarks/results/install.md (and
.json), or to --out: each install's row is added to the rows there or replaces
the row of the same install; the others are kept. Needs the package index (or
a local pip cache).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

from results_table import kept_rows, merge_rows, read_rows, require_same  # noqa: E402

FLOORS = {"jax": "import jax", "deps": "import jax, distrax, flax.linen"}  # what dgmjax builds on
IMPORT = ("import sys, time; t = time.perf_counter(); import dgmjax, dgmjax.models, dgmjax.bijectors; "
          "print(time.perf_counter() - t, 'tensorflow' in sys.modules)")


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def measure(wheel: Path, extra: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        site = _site_packages(venv)
        before = _du(site)
        spec = f"{wheel}[{extra}]" if extra else str(wheel)
        t0 = time.time()
        subprocess.run([python, "-m", "pip", "install", "-q", spec], check=True)
        install_s = time.time() - t0
        size = _du(site) - before
        packages = sorted(((_du(p), p.name) for p in site.iterdir() if p.is_dir()
                           and not p.name.startswith(("pip", "__pycache__")) and not p.name.endswith(
                               ("-info", ".dist-info"))), reverse=True)[:6]
        env = {k: val for k, val in os.environ.items() if not k.startswith(("PYTHON", "JAX_"))}
        walls, imports, tf = [], [], False
        floors = {name: [] for name in FLOORS}
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            out = subprocess.run([python, "-c", IMPORT], check=True, capture_output=True, text=True,
                                 cwd=tmp, env=env).stdout.split()
            walls.append(time.perf_counter() - t0)
            imports.append(float(out[0]))
            tf = tf or out[1] == "True"
            for name, code in FLOORS.items():  # interleaved, so the comparison shares the machine's load
                t0 = time.perf_counter()
                subprocess.run([python, "-c", code], check=True, cwd=tmp, env=env)
                if i:
                    floors[name].append(time.perf_counter() - t0)
        return {"extra": extra or "(core)", "site_packages_mb": size / 1e6, "install_s": install_s,
                "first_wall_s": walls[0], "wall_s_median": statistics.median(walls[1:]),
                "wall_s_max": max(walls[1:]), "import_s_median": statistics.median(imports[1:]),
                "tensorflow_loaded": tf,
                **{f"wall_s_median_{name}": statistics.median(t) for name, t in floors.items()},
                "largest": [f"{name} {b / 1e6:.0f} MB" for b, name in packages]}


def to_markdown(rows: list[dict], heading: str) -> str:
    """The table of `rows` (one per install) under `heading`, which names the wheel, the Python and
    the repeats they share."""
    lines = [heading, "",
             "| install | site-packages | pip install | import, process wall (median / max) | "
             "import alone (median) | `import jax` / `import jax, distrax, flax.linen`, "
             "process wall (median) | first run | TensorFlow loaded | largest packages |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['extra']} | {r['site_packages_mb']:.0f} MB | {r['install_s']:.0f} s | "
                     f"{r['wall_s_median']:.2f} s / {r['wall_s_max']:.2f} s | {r['import_s_median']:.2f} s | "
                     f"{r['wall_s_median_jax']:.2f} s / {r['wall_s_median_deps']:.2f} s | "
                     f"{r['first_wall_s']:.2f} s | {'yes' if r['tensorflow_loaded'] else 'no'} | "
                     f"{', '.join(r['largest'])} |")
    return "\n".join(lines) + "\n"


def write_results(out: str | Path, rows: list[dict], heading: str) -> list[dict]:
    """Merges `rows` into those of OUT's .json by "extra" (a row replaces the row of the same install;
    the others are kept, when they share `heading`) and writes them to the .json and their table to
    OUT. Returns the rows written."""
    out = Path(out)
    committed = read_rows(out.with_suffix(".json"))
    committed_heading = out.read_text().splitlines()[0] if out.exists() else None
    require_same(kept_rows(committed, [r["extra"] for r in rows], "extra"), "the heading",
                 committed_heading, heading, out)
    rows = merge_rows(committed, rows, "extra")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(rows, heading))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extras", default=",experiments", help="comma-separated; '' is the core install")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "benchmarks" / "results" / "install.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as dist:
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, str(ROOT)], check=True,
                       capture_output=True)
        wheel = next(Path(dist).glob("*.whl"))
        rows = [measure(wheel, extra, args.repeats) for extra in args.extras.split(",")]
    heading = (f"Install footprint of {wheel.name} in a fresh venv (Python {sys.version.split()[0]}); "
               f"import = `import dgmjax, dgmjax.models, dgmjax.bijectors` in a new process, "
               f"{args.repeats} runs after a first one that writes the .pyc files.")
    print(to_markdown(write_results(args.out, rows, heading), heading))


if __name__ == "__main__":
    main()
