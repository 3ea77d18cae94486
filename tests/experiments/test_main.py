"""The main job as a user runs it: a subprocess on the embedded digits and on moons."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
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
    assert str(workdir) in second.stdout.strip().splitlines()[-1]  # the last line says where it all went
    # The trained run back from its workdir: the same test metrics, and samples at a temperature.
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "evaluate.py"), f"--workdir={workdir}",
                           "--temperature=0.7", "--num_samples=4"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((workdir / "eval" / "test_metrics_step6.json").read_text())
    assert again == pytest.approx(final, rel=1e-6)
    assert (workdir / "eval" / "samples_step6_T0.7.png").exists() and "test bits/dim" in proc.stdout
    from runs import load_run

    run = load_run(workdir)
    assert run.step == 6 and run.config.train.num_steps == 6
    sample = jax.jit(lambda v, key: run.model.apply(v, key, 3, temperature=0.7,
                                                    method=run.model.sample_and_log_prob))
    x, log_p = sample(run.variables, jax.random.PRNGKey(0))
    assert x.shape == (3, 8, 8, 1) and 0 <= float(x.min()) and float(x.max()) <= 1  # image flows: [0, 1)^D
    np.testing.assert_allclose(jax.jit(run.log_prob)(x), log_p, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("script", ["main.py", "evaluate.py"])
def test_help_answers_at_once_with_status_0(script):
    proc = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "experiments" / script),
                           "--helpshort"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and "--workdir" in proc.stdout, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "absl.app" in imported and not imported & {"jax", "flax", "dgmjax"}  # flags only


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
    ("--config.train.num_samples=0", "`config.train.num_samples` must be >= 1; got 0"),
    ("--config.train.checkpoint_every=-1", "`config.train.checkpoint_every` must be >= 0"),
])
def test_main_bad_input_raises_value_error(tmp_path, arg, message):
    extra = ["--config.data.name=mnist"] if "manual_dir" in arg else []
    proc = run_main(f"--workdir={tmp_path}", arg, *extra, timeout=120)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and message in proc.stderr, proc.stderr[-2000:]


def test_main_trains_maf_on_npy_points_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.where(rng.random((2000, 1)) < 0.5, -1.5, 1.5)
    points = (centres + 0.4 * rng.standard_normal((2000, 2))).astype(np.float32)  # two Gaussian blobs
    np.save(tmp_path / "points.npy", points)
    workdir = tmp_path / "run"
    args = ["--config=experiments/configs/moons.py:maf", f"--workdir={workdir}",
            f"--config.data.name={tmp_path / 'points.npy'}", "--config.model.hidden_sizes=(16,)",
            "--config.model.num_layers=2", "--config.train.num_steps=6", "--config.train.log_every=2",
            "--config.train.checkpoint_every=3", "--config.train.max_steps_per_run=3",
            "--config.train.sample_every=3"]
    first = run_main(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Stopped at step 3 of 6" in first.stdout and "MAF on points.npy" in first.stdout
    second = run_main(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resumed from the checkpoint at step 3" in second.stdout
    assert "test NLL" in second.stdout and "the 200 test rows of points.npy" in second.stdout
    final = json.loads((workdir / "final_metrics.json").read_text())
    assert np.isfinite(final["nll_nats"]) and 0 < final["nll_nats"] < 20
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 3, 4, 6]
    assert (workdir / "samples_0000003.png").exists() and (workdir / "samples_0000006.png").exists()


def test_main_image_model_on_npy_vectors_names_the_file(tmp_path):
    np.save(tmp_path / "points.npy", np.zeros((50, 2), np.float32))
    proc = run_main(f"--workdir={tmp_path / 'run'}", f"--config.data.name={tmp_path / 'points.npy'}",
                    timeout=120)  # the default config's model is an image flow
    assert proc.returncode != 0
    message = "`model.name` 'image_realnvp' models images; the float vectors of points.npy need a vector"
    assert "ValueError" in proc.stderr and message in proc.stderr, proc.stderr[-2000:]
