"""experiments/curves.py: the curves and the table are the logged records, run by run."""

import pytest
from curves import curves_table, load_curves

from dgmjax.training.metrics import MetricWriter


def _run(workdir, train, test):
    logger = MetricWriter(workdir, tensorboard=False)
    for step, value in train.items():
        logger.write(step, "train", {"bpd_bound": value, "grad_norm": 1.0})
    for step, value in test.items():
        logger.write(step, "test", {"bpd_bound": value})
    logger.close()
    return workdir


@pytest.fixture
def two_runs(tmp_path):
    a = _run(tmp_path / "a", {250: 3.0, 500: 2.5, 750: 2.2, 1000: 2.0}, {1000: 2.1})
    b = _run(tmp_path / "b", {500: 2.4, 1000: 1.9}, {500: 2.45, 1000: 1.95})
    return a, b


def test_the_curves_are_each_runs_records_in_step_order(two_runs):
    curves = load_curves(two_runs, ["residual", "gated"])
    assert curves["residual"]["train"] == ((250, 500, 750, 1000), (3.0, 2.5, 2.2, 2.0))
    assert curves["residual"]["test"] == ((1000,), (2.1,))
    assert curves["gated"]["test"] == ((500, 1000), (2.45, 1.95))
    assert list(load_curves(two_runs)) == ["a", "b"]  # labels default to the directories' names


def test_the_table_has_a_column_per_multiple_of_every_and_per_test_step(two_runs):
    table = curves_table(load_curves(two_runs, ["r", "g"]), every=500)
    lines = table.splitlines()
    assert lines[0] == "| run | 500 | 1000 |"  # step 250 and 750 are not multiples of 500
    assert lines[2] == "| r, train bpd_bound | 2.500 | 2.000 |"
    assert lines[3] == "| r, test bpd_bound |  | 2.100 |"
    assert lines[5] == "| g, test bpd_bound | 2.450 | 1.950 |"
    header = curves_table(load_curves(two_runs[:1]), every=250).splitlines()[0]
    assert header == "| run | 250 | 500 | 750 | 1000 |"


def test_bad_arguments_are_named(two_runs, tmp_path):
    with pytest.raises(ValueError, match="`labels` must give one label per workdir"):
        load_curves(two_runs, ["only"])
    with pytest.raises(ValueError, match="`labels` must be distinct"):
        load_curves(two_runs, ["x", "x"])
    with pytest.raises(ValueError, match="`workdirs`: .* has no metrics.jsonl records"):
        load_curves([tmp_path / "empty"])
    with pytest.raises(ValueError, match=r"`metric` 'nats' is in no record .* \['bpd_bound', 'grad_norm'\]"):
        load_curves(two_runs, metric="nats")
    with pytest.raises(ValueError, match="`every` must be >= 1; got 0"):
        curves_table(load_curves(two_runs), every=0)


def test_the_plot_is_written(two_runs, tmp_path):
    from plotting import save_learning_curves

    curves = load_curves(two_runs)
    path = save_learning_curves(curves, tmp_path / "c.png", ylabel="bits/dim", ymax=3.0, target=1.3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
