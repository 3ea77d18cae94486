"""The main job as a user runs it: a subprocess on the embedded digits and on moons."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_IMAGE = ["--config.model.features=8", "--config.model.num_blocks=1",
              "--config.model.num_checkerboard=2", "--config.model.num_channelwise=2"]


def run_main(*args, timeout=600):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "main.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def test_main_default_config_trains_and_resumes(tmp_path):
    workdir = tmp_path / "digits"
    args = [f"--workdir={workdir}", "--config.train.num_steps=6", "--config.train.log_every=2",
            "--config.train.checkpoint_every=3", "--config.train.sample_every=3",
            "--config.train.max_steps_per_run=3", *TINY_IMAGE]
    first = run_main(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Stopped at step 3 of 6" in first.stdout
    second = run_main(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resumed from the checkpoint at step 3" in second.stdout
    assert "test bits/dim" in second.stdout
    final = json.loads((workdir / "final_metrics.json").read_text())
    assert 0 < final["bpd_bound"] < 10
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 3, 4, 6]
    assert (workdir / "samples_0000003.png").exists() and (workdir / "samples_0000006.png").exists()
    assert any((workdir / "tensorboard").iterdir())


def test_main_moons_config(tmp_path):
    proc = run_main("--config=experiments/configs/moons.py", f"--workdir={tmp_path}",
                    "--config.train.num_steps=20", "--config.model.hidden_sizes=(16,)",
                    "--config.data.num_test=500")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test NLL" in proc.stdout and (tmp_path / "samples_0000020.png").exists()


@pytest.mark.parametrize("arg, message", [
    ("--config.model.nope=1", "config key 'model.nope'"),
    ("--config.data.name=mnsit", "unknown `data.name` 'mnsit'"),
    ("--config.data.manual_dir=/nonexistent", "lacks"),
])
def test_main_bad_input_raises_value_error(tmp_path, arg, message):
    extra = ["--config.data.name=mnist"] if "manual_dir" in arg else []
    proc = run_main(f"--workdir={tmp_path}", arg, *extra, timeout=120)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and message in proc.stderr, proc.stderr[-2000:]
