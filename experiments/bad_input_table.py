"""The bad-input cases the tests try, run once more and tabled by function with how each fails.

    python experiments/bad_input_table.py

Reads the `CASES` of tests/test_bad_input_*.py (function, case, thunk, expected), runs
each thunk and writes experiments/results/bad_input.md and .json: per function the
number of cases, how many raised a ValueError naming the expected argument, how
many valid-but-unusual inputs were accepted, and anything else (which the tests
would fail on); then every case with the start of its message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_cases() -> list[tuple[str, str, object, str]]:
    sys.path.insert(0, str(ROOT / "tests"))
    cases = []
    for path in sorted((ROOT / "tests").glob("test_bad_input_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases += [(path.stem, *case) for case in module.CASES]
    return cases


def outcome(thunk, expected: str) -> tuple[str, str]:
    import numpy as np

    try:
        result = thunk()
    except ValueError as e:
        message = str(e).splitlines()[0]
        if expected != "accepted" and expected in str(e):
            return "ValueError naming it", message
        return "ValueError, other", message
    except Exception as e:  # noqa: BLE001 (a table of what happens)
        return f"{type(e).__name__}", str(e).splitlines()[0] if str(e) else ""
    if expected != "accepted":
        return "no error", ""
    import jax

    finite = all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree_util.tree_leaves(result)
                 if np.issubdtype(np.asarray(leaf).dtype, np.inexact))
    return ("accepted" if finite else "accepted, non-finite"), ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bad_input"))
    args = parser.parse_args(argv)
    rows = []
    for source, function, description, thunk, expected in load_cases():
        kind, message = outcome(thunk, expected)
        rows.append({"source": source, "function": function, "case": description, "expected": expected,
                     "outcome": kind, "message": message})
    by_function = defaultdict(lambda: defaultdict(int))
    for r in rows:
        by_function[r["function"]][r["outcome"]] += 1
    kinds = ["ValueError naming it", "accepted"]
    others = sorted({r["outcome"] for r in rows} - set(kinds))
    lines = ["# Bad input across the public API", "",
             "`python experiments/bad_input_table.py` runs the cases of tests/test_bad_input_*.py.", "",
             f"{len(rows)} cases over {len(by_function)} functions.", "",
             "| function | cases | " + " | ".join(kinds + others) + " |",
             "|---|---:|" + "---:|" * (len(kinds) + len(others))]
    for function in sorted(by_function):
        counts = by_function[function]
        lines.append(f"| `{function}` | {sum(counts.values())} | "
                     + " | ".join(str(counts.get(k, 0)) for k in kinds + others) + " |")
    lines += ["", "## Every case", "", "| function | case | outcome | message (start) |", "|---|---|---|---|"]
    for r in rows:
        msg = r["message"][:110].replace("|", "\\|")
        lines.append(f"| `{r['function']}` | {r['case']} | {r['outcome']} | {msg} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines[: 8 + len(by_function)]))
    bad = [r for r in rows if r["outcome"] not in kinds]
    if bad:
        print(f"\n{len(bad)} cases not as expected:", *(f"  {r}" for r in bad), sep="\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
