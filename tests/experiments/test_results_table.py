"""Study scripts add or replace their rows in the committed results and keep the rows they did not
run: the merge rule itself, and each script's writing checked against the committed files (copied
into a temporary directory), row by row."""

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest
from results_table import (
    kept_rows,
    markdown_sections,
    merge_rows,
    merge_sections,
    read_rows,
    require_same,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
BENCHMARKS = ROOT / "experiments" / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def copy_results(directory: Path, name: str, tmp_path: Path, suffixes=(".md", ".json")) -> Path:
    """Copies the committed `directory/name.{md,json}` into `tmp_path`; returns the copy's stem."""
    for suffix in suffixes:
        shutil.copy(directory / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / name


def read(path: Path) -> str:
    return path.read_text()


# ----------------------------------------------------------------------------- the merge rule
ROWS = [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "c", "v": 3}]


def test_a_row_with_a_committed_key_replaces_it_in_place():
    merged = merge_rows(ROWS, [{"k": "b", "v": 20}], "k")
    assert merged == [{"k": "a", "v": 1}, {"k": "b", "v": 20}, {"k": "c", "v": 3}]
    assert ROWS[1] == {"k": "b", "v": 2}  # the committed list is not changed


def test_a_new_key_is_appended_or_placed_by_order():
    assert merge_rows(ROWS, [{"k": "z", "v": 0}], "k") == ROWS + [{"k": "z", "v": 0}]
    order = ["a", "ab", "b", "c", "d"]
    merged = merge_rows(ROWS, [{"k": "d", "v": 4}, {"k": "ab", "v": 0}], "k", order=order)
    assert [r["k"] for r in merged] == ["a", "ab", "b", "c", "d"]
    # Rows the order does not know stay where they are; a new key the order does not know is appended.
    merged = merge_rows([{"k": "x"}, {"k": "c"}], [{"k": "b"}, {"k": "y"}], "k", order=order)
    assert [r["k"] for r in merged] == ["x", "b", "c", "y"]


def test_merge_by_a_tuple_of_fields():
    committed = [{"prior": "standard", "posterior": "gaussian", "nll": 91.0},
                 {"prior": "standard", "posterior": "iaf", "nll": 89.0}]
    new = [{"prior": "standard", "posterior": "iaf", "nll": 88.0},
           {"prior": "gmm", "posterior": "iaf", "nll": 87.0}]
    merged = merge_rows(committed, new, ("prior", "posterior"))
    assert merged == [committed[0], new[0], new[1]]
    assert kept_rows(committed, [("standard", "iaf")], ("prior", "posterior")) == [committed[0]]


def test_read_rows_of_a_list_a_field_and_a_missing_file(tmp_path):
    assert read_rows(tmp_path / "none.json") == []
    assert read_rows(tmp_path / "none.json", "rows") == []
    (tmp_path / "list.json").write_text(json.dumps(ROWS))
    assert read_rows(tmp_path / "list.json") == ROWS
    (tmp_path / "object.json").write_text(json.dumps({"budget": {"steps": 1}, "rows": ROWS}))
    assert read_rows(tmp_path / "object.json", "rows") == ROWS
    with pytest.raises(ValueError, match="no list of rows"):
        read_rows(tmp_path / "object.json")


def test_sections_not_run_are_kept():
    committed = {"machine": "m", "throughput": {"rows": [1]}, "compile": {"rows": [2]}, "sampling": {"x": 3}}
    merged = merge_sections(committed, {"machine": "m", "compile": {"rows": [20]}, "extra": {}})
    assert list(merged) == ["machine", "throughput", "compile", "sampling", "extra"]
    assert merged["throughput"] == {"rows": [1]} and merged["sampling"] == {"x": 3}
    assert merged["compile"] == {"rows": [20]}


def test_markdown_sections_split_and_join_back():
    text = "# Title\n\nintro\n\n## One (a)\n\ntable\n\n\n## Two\n\nx ## not a heading\n\n"
    preamble, blocks = markdown_sections(text)
    assert preamble == "# Title\n\nintro\n\n"
    assert blocks == ["## One (a)\n\ntable\n\n\n", "## Two\n\nx ## not a heading\n\n"]
    assert preamble + "".join(blocks) == text
    assert markdown_sections("no headings\n") == ("no headings\n", [])


def test_require_same_refuses_only_when_rows_are_kept():
    require_same([], "the budget", {"steps": 1}, {"steps": 2}, "out.json")  # nothing kept: fine
    require_same([{"k": "a"}], "the budget", {"steps": 1}, {"steps": 1}, "out.json")
    with pytest.raises(ValueError, match="out.json keeps 1 row.*the budget"):
        require_same([{"k": "a"}], "the budget", {"steps": 1}, {"steps": 2}, "out.json")


# ----------------------------------------------------------------------------- image_flow_ablation
def fake_finished_row(root: Path, name: str, bpd: float, params: int, wall_s: float) -> None:
    """A finished workdir as `run_row` reads it back: its final metrics, wall time and log."""
    (root / name).mkdir(parents=True)
    (root / name / "final_metrics.json").write_text(json.dumps({"bpd_bound": bpd, "step": 400}))
    (root / name / "wall_s.txt").write_text(f"{wall_s:.1f}\n")
    (root / f"{name}.log").write_text(f"image_realnvp: {params:,} parameters, 1 device(s)\nstep 400\n")


def test_image_flow_ablation_rerun_of_one_row_keeps_every_committed_row(tmp_path):
    import image_flow_ablation

    out = copy_results(RESULTS, "image_flow_ablation", tmp_path)
    committed = json.loads(read(out.with_suffix(".json")))
    committed_md = read(out.with_suffix(".md")).splitlines()
    assert len(committed["rows"]) == 18
    fake_finished_row(tmp_path / "runs", "realnvp_lr3", bpd=1.5, params=123_456, wall_s=60.0)

    rows = image_flow_ablation.main(["--rows=realnvp_lr3", "--manual_dir=DIR", f"--out={out}",
                                     f"--workdir_root={tmp_path / 'runs'}"])

    written = json.loads(read(out.with_suffix(".json")))
    assert written["rows"] == rows
    assert [r["row"] for r in written["rows"]] == [r["row"] for r in committed["rows"]]
    for old, new in zip(committed["rows"], written["rows"], strict=True):
        if old["row"] != "realnvp_lr3":
            assert new == old
    new, old = written["rows"][-1], committed["rows"][-1]
    assert (new["bpd"], new["params"], new["wall_s"], new["what"]) == (1.5, 123_456, 60.0, old["what"])
    assert written["budget"] == committed["budget"]
    # The Markdown lists all 18 rows and their commands; only the rerun row's two lines changed.
    md = read(out.with_suffix(".md")).splitlines()
    assert len(md) == len(committed_md)
    changed = [(a, b) for a, b in zip(committed_md, md, strict=True) if a != b]
    assert len(changed) == 2
    assert changed[0][1] == (f"| `realnvp_lr3` | {old['what']} | 1.5000 | 123,456 | 1.0 min |")
    assert changed[1][1].startswith("- `realnvp_lr3`: `python experiments/main.py")
    for r in committed["rows"]:
        assert sum(line.startswith(f"| `{r['row']}` |") for line in md) == 1
        assert sum(line.startswith(f"- `{r['row']}`: ") for line in md) == 1


def test_image_flow_ablation_rerun_reproducing_a_row_leaves_the_files_byte_for_byte(tmp_path, monkeypatch):
    import image_flow_ablation

    (tmp_path / "results").mkdir()
    out = copy_results(RESULTS, "image_flow_ablation", tmp_path / "results")
    row = json.loads(read(out.with_suffix(".json")))["rows"][-1]
    # Relative to the working directory, as the committed commands name it.
    monkeypatch.chdir(tmp_path)
    fake_finished_row(Path("runs/image_flow_ablation"), "realnvp_lr3", row["bpd"], row["params"],
                      row["wall_s"])
    image_flow_ablation.main(["--rows=realnvp_lr3", "--manual_dir=DIR", f"--out={out}"])
    for suffix in (".md", ".json"):
        assert read(out.with_suffix(suffix)) == read(RESULTS / f"image_flow_ablation{suffix}")


def test_image_flow_ablation_refuses_to_keep_rows_of_another_budget(tmp_path):
    import image_flow_ablation

    out = copy_results(RESULTS, "image_flow_ablation", tmp_path)
    fake_finished_row(tmp_path / "runs", "realnvp_lr3", bpd=1.5, params=1, wall_s=1.0)
    with pytest.raises(ValueError, match="keeps 17 row.*screening budget"):
        image_flow_ablation.main(["--rows=realnvp_lr3", "--num_steps=100", f"--out={out}",
                                  f"--workdir_root={tmp_path / 'runs'}"])
    assert read(out.with_suffix(".json")) == read(RESULTS / "image_flow_ablation.json")


def test_image_flow_ablation_new_file_holds_the_rows_run(tmp_path):
    import image_flow_ablation

    for name, bpd in (("realnvp_lr3", 1.7), ("glow_logit", 2.4)):
        fake_finished_row(tmp_path / "runs", name, bpd=bpd, params=10, wall_s=6.0)
    out = tmp_path / "new" / "ablation"
    rows = image_flow_ablation.main(["--rows=realnvp_lr3,glow_logit", f"--out={out}",
                                     f"--workdir_root={tmp_path / 'runs'}"])
    assert [r["row"] for r in rows] == ["glow_logit", "realnvp_lr3"]  # the order of ROWS
    assert json.loads(read(out.with_suffix(".json")))["budget"]["num_steps"] == 400


# ----------------------------------------------------------------------------- made_pmf_fit
def fake_fit(levels: int, ce: float) -> dict:
    return {"levels": levels, "num_mixtures": 20, "entropy": 6.5, "cross_entropy": ce, "gap": ce - 6.5,
            "uniform": 6.93, "independent_marginals": 6.6, "steps": 100, "learning_rate": 0.01,
            "wall_s": 3.25, "devices": "[CpuDevice(id=0)]", "cross_entropy_every_chunk": [ce], "chunk": 100}


def test_made_pmf_fit_committed_files_are_what_the_script_writes(tmp_path):
    import made_pmf_fit

    out = copy_results(RESULTS, "made_pmf_fit", tmp_path)
    made_pmf_fit.write_results(out, None)
    for suffix in (".md", ".json"):
        assert read(out.with_suffix(suffix)) == read(RESULTS / f"made_pmf_fit{suffix}")


def test_made_pmf_fit_keeps_a_single_object_json_as_a_row_and_adds_a_level(tmp_path):
    import made_pmf_fit

    (committed,) = json.loads(read(RESULTS / "made_pmf_fit.json"))
    out = tmp_path / "made_pmf_fit"
    out.with_suffix(".json").write_text(json.dumps(committed, indent=2) + "\n")  # one fit as an object
    rows = made_pmf_fit.write_results(out, fake_fit(32, 6.51))
    assert rows == [committed, fake_fit(32, 6.51)]
    assert json.loads(read(out.with_suffix(".json"))) == rows
    md = read(out.with_suffix(".md"))
    assert md == made_pmf_fit.to_markdown(rows)
    lines = md.splitlines()
    assert "| 128 | 9.5425 | 9.5482 | 0.0057 | 0.1616 | 0.0616 | 600 | 0.003 | 425.8 | [CpuDevice(id=0)] |" \
        == lines[-2]
    assert "| 32 | 6.5000 | 6.5100 | 0.0100 | 0.4300 | 0.1000 | 100 | 0.01 | 3.2 | [CpuDevice(id=0)] |" \
        == lines[-1]
    # A rerun of 128 levels replaces that row in place; 32 stays.
    rerun = {**committed, "cross_entropy": 9.55, "wall_s": 1.0}
    rows = made_pmf_fit.write_results(out, rerun)
    assert rows == [rerun, fake_fit(32, 6.51)]
    assert read(out.with_suffix(".md")).count("\n| ") == 3  # the header and two rows


# ----------------------------------------------------------------------------- vae_analysis
def test_vae_analysis_adds_and_replaces_rows_by_prior_and_posterior(tmp_path, monkeypatch):
    import vae_analysis

    out = copy_results(RESULTS, "vae_binarized_mnist", tmp_path)
    committed = json.loads(read(out.with_suffix(".json")))
    fakes = {"w_gmm": {**copy.deepcopy(committed[1]), "nll_iwae": 80.0, "workdir": "w_gmm"},
             "w_new": {**copy.deepcopy(committed[0]), "prior": "vamp", "posterior": "iaf",
                       "workdir": "w_new"}}
    monkeypatch.setattr(vae_analysis, "analyse", lambda workdir, *args: fakes[str(workdir)])
    vae_analysis.main(["--workdirs=w_gmm,w_new", f"--out={out}"])
    written = json.loads(read(out.with_suffix(".json")))
    assert written == committed[:1] + [fakes["w_gmm"]] + committed[2:] + [fakes["w_new"]]
    md = read(out.with_suffix(".md"))
    assert md == vae_analysis.to_markdown(written) + "\n"
    assert "| gmm | gaussian | 80.00 ± 0.55 |" in md and "| vamp | iaf |" in md
    for r in committed:
        assert f"| {r['prior']} | {r['posterior']} |" in md


# ----------------------------------------------------------------------------- gpu_configs
def test_gpu_configs_one_job_replaces_its_row_and_keeps_the_others(tmp_path, monkeypatch):
    import gpu_configs

    out = copy_results(BENCHMARKS / "results", "gpu_configs", tmp_path)
    committed = json.loads(read(out.with_suffix(".json")))
    i = next(i for i, r in enumerate(committed["rows"]) if r["job"] == "maf_mnist")
    counted = {k: committed["rows"][i][k] for k in ("job", "steps", "batch", "evals", "params")}
    counted.update(train_flops=2.0 * committed["rows"][i]["train_flops"], eval_flops_per_example=1e9)
    monkeypatch.setattr(gpu_configs, "reference_flops", lambda directory: committed["reference_flops"])
    monkeypatch.setattr(gpu_configs, "job_flops", lambda job, directory: dict(counted))
    gpu_configs.main(["--jobs=maf_mnist", f"--out={out}"])
    written = json.loads(read(out.with_suffix(".json")))
    rate = committed["reference_flops"] / gpu_configs.REFERENCE_MS
    expected = committed["rows"][:i] + [gpu_configs.estimate(counted, rate)] + committed["rows"][i + 1:]
    assert written["rows"] == expected
    md, committed_md = read(out.with_suffix(".md")).splitlines(), read(BENCHMARKS / "results/gpu_configs.md")
    changed = [line for line, old in zip(md, committed_md.splitlines(), strict=True) if line != old]
    gflops = f"{counted['train_flops'] / 1e9:.1f}"
    assert len(changed) == 1
    assert changed[0].startswith(f"| `maf_mnist` | 12,063,040 | 100 | 100,000 | {gflops} |")

    monkeypatch.setattr(gpu_configs, "reference_flops", lambda directory: 1.0)
    with pytest.raises(ValueError, match=f"keeps {len(committed['rows']) - 1} row.*the reference"):
        gpu_configs.main(["--jobs=maf_mnist", f"--out={out}"])


# ----------------------------------------------------------------------------- flows (sections)
def test_flows_sections_not_run_are_kept_byte_for_byte(tmp_path):
    import flows

    out = copy_results(BENCHMARKS / "results", "flows", tmp_path)
    committed = json.loads(read(out.with_suffix(".json")))
    preamble, blocks = markdown_sections(read(out.with_suffix(".md")))
    # Nothing run: both files come back as they are.
    flows.write_results(out, committed["machine"], {}, {})
    assert read(out.with_suffix(".md")) == read(BENCHMARKS / "results/flows.md")
    assert read(out.with_suffix(".json")) == read(BENCHMARKS / "results/flows.json")
    # Only the compile section run: it alone changes, in its place.
    compile_result = {"rows": [{"model": "maf", "implementation": "dgmjax", "layers": 4, "compile_s": 9.0,
                                "ratio_to_4_layers": 1.0}]}
    block = "## Compile time of the train step against depth (median of 1 on cpu)\n\n| fake |\n\n"
    text = flows.write_results(out, committed["machine"], {"compile": compile_result}, {"compile": block})
    assert text == preamble + blocks[0] + block + blocks[2]
    assert read(out.with_suffix(".md")) == text
    written = json.loads(read(out.with_suffix(".json")))
    assert written == {**committed, "compile": compile_result}
    assert list(written) == list(committed)


# ----------------------------------------------------------------------------- install, idf_ablation
def test_install_adds_an_extra_and_keeps_the_core_row(tmp_path):
    import install

    out = copy_results(BENCHMARKS / "results", "install", tmp_path).with_suffix(".md")  # --out names the .md
    committed = json.loads(read(out.with_suffix(".json")))
    heading = read(out).splitlines()[0]
    row = {**committed[0], "extra": "experiments", "site_packages_mb": 1500.0, "largest": ["tensorflow 1 MB"]}
    rows = install.write_results(out, [row], heading)
    assert rows == committed + [row] == json.loads(read(out.with_suffix(".json")))
    lines = read(out).splitlines()
    assert lines[:-1] == read(BENCHMARKS / "results/install.md").splitlines()
    assert lines[-1].startswith("| experiments | 1500 MB |")
    with pytest.raises(ValueError, match="keeps 2 row.*the heading"):
        install.write_results(out, [{**row, "extra": "docs"}], heading.replace("Python", "CPython"))


def test_idf_ablation_keeps_runs_it_did_not_make(tmp_path):
    import idf_ablation

    out = copy_results(RESULTS, "idf_ablation", tmp_path)
    committed = json.loads(read(out.with_suffix(".json")))
    idf_ablation.write_results(out, [], 2000, 64)
    for suffix in (".md", ".json"):
        assert read(out.with_suffix(suffix)) == read(RESULTS / f"idf_ablation{suffix}")
    new = {**committed[3], "test_bpd": 2.0}
    extra = {"run": "IDF, coupling learning rate x 3", **{k: 1.0 for k in committed[3] if k != "run"}}
    rows = idf_ablation.write_results(out, [new, extra], 2000, 64)
    assert rows == committed[:3] + [new, extra] == json.loads(read(out.with_suffix(".json")))
    assert read(out.with_suffix(".md")) == idf_ablation.to_markdown(rows, 2000, 64)
