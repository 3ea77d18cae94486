"""Does training the integer flow's couplings help? An ablation on the embedded digits.

    python experiments/idf_ablation.py [--num_steps=2000] [--out=experiments/results/idf_ablation]

Trains the integer discrete flow of `experiments/configs/idf.py` (digits) with
the optimizer, schedule, batch and steps of `main.py`, with the learning rate
of the coupling networks scaled by 0 (couplings frozen at their zero init, so
the flow is the identity and only the prior learns), 0.1 and 1 (the usual
run). The prior always gets the full rate. Beside them, the independent-pixel
baseline: each pixel's empirical histogram over the training set (add-1/2
smoothing), which any model of the pixels should beat. All in exact test
bits/dim. Writes a Markdown table and a JSON file; their rows are merged by
run name into those at --out (rows of other runs there are kept).

The model is `tasks.make_model` of the config's model section, the optimizer
`dgmjax.training.make_optimizer` of its optimizer section (one per parameter
group, in `optax.multi_transform`), and the training `dgmjax.training.train`
(no EMA: the raw parameters are evaluated).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dgmjax.data import ArrayBatches, load_images
from dgmjax.training import TrainState, make_optimizer, train

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # the application's modules, and the configs' `from configs import ...`
    sys.path.insert(0, str(_HERE))

from main import load_config  # noqa: E402
from results_table import kept_rows, merge_rows, read_rows, require_same  # noqa: E402
from tasks import make_model  # noqa: E402

CONFIG = _HERE / "configs" / "idf.py"


def histogram_bpd(train: np.ndarray, test: np.ndarray, num_levels: int) -> float:
    """Test bits/dim of independent per-pixel categoricals fitted by counting (add-1/2)."""
    train, test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    counts = np.stack([(train == k).sum(0) for k in range(num_levels)], -1) + 0.5
    log_p = np.log(counts / counts.sum(-1, keepdims=True))
    ll = log_p[np.arange(train.shape[1])[None], test].sum(1)
    return float(-ll.mean() / train.shape[1] / math.log(2))


def train_idf(config, train_data, test_data, coupling_lr_scale: float, num_steps: int):
    model_cfg = config.model.to_dict()
    model = make_model(model_cfg.pop("name"), model_cfg, image_shape=train_data.image_shape,
                       num_levels=train_data.num_levels)
    images, test_images = train_data.arrays()["image"], jnp.asarray(test_data.arrays()["image"])
    num_dims = math.prod(train_data.image_shape)
    batch_size = int(config.train.batch_size)
    key = jax.random.PRNGKey(int(config.seed))
    batches = ArrayBatches({"image": images}, batch_size, key=key)
    params = model.init(key, batches(0)["image"])

    def bpd(p, x):
        return -model.apply(p, x).mean() / num_dims / math.log(2)

    def loss_fn(key, p, batch):
        del key  # the integer flow's likelihood is exact: no randomness
        return bpd(p, batch["image"]), {}

    settings = {**config.optimizer.to_dict(), "num_steps": num_steps}
    coupling_opt = (optax.set_to_zero() if coupling_lr_scale == 0 else make_optimizer(
        **{**settings, "learning_rate": settings["learning_rate"] * coupling_lr_scale}))
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: "prior" if "prior" in jax.tree_util.keystr(path) else "coupling", params)
    opt = optax.multi_transform({"prior": make_optimizer(**settings), "coupling": coupling_opt}, labels)
    state = TrainState.create(params=params, tx=opt)  # no EMA, as the recorded runs

    evaluate = jax.jit(bpd)
    init_bpd = float(evaluate(params, test_images))
    # Batch 0 initialized the model; step t trains on batch t + 1, the order of the recorded runs.
    train_batches = lambda step: batches(step + 1)
    # The last step's loss: its batch at the parameters before its update (a hook after step
    # num_steps - 1, evaluated at once: on accelerators the next step donates those buffers).
    last = {}

    def last_step_loss(step, s):
        if step == num_steps - 1:
            last["bpd"] = float(evaluate(s.params, train_batches(step)["image"]))

    evaluate(params, train_batches(0)["image"])  # compiled at the batch's shape outside the timing
    if num_steps == 1:
        last_step_loss(0, state)
    start = time.time()
    state = train(loss_fn, state, train_batches, num_steps=num_steps, key=key, verbose=False,
                  hooks=[(num_steps - 1, last_step_loss)] if num_steps > 1 else [])
    wall = time.time() - start
    return {"test_bpd_init": init_bpd, "test_bpd": float(evaluate(state.params, test_images)),
            "train_bpd_last_batch": last["bpd"], "wall_s": wall}


def to_markdown(rows: list[dict], num_steps: int, batch_size: int) -> str:
    """The table of `rows` under a heading naming the steps and batch they share."""
    lines = [f"Integer discrete flow ablation on the digits ({num_steps} steps, batch "
             f"{batch_size}; exact test bits/dim)", "",
             "| run | test bits/dim at init | test bits/dim | train bits/dim (last batch) | wall |",
             "|---|---|---|---|---|"]
    for r in rows:
        if "wall_s" in r:
            lines.append(f"| {r['run']} | {r['test_bpd_init']:.3f} | {r['test_bpd']:.3f} | "
                         f"{r['train_bpd_last_batch']:.3f} | {r['wall_s']:.0f} s |")
        else:
            lines.append(f"| {r['run']} | | {r['test_bpd']:.3f} | | |")
    return "\n".join(lines) + "\n"


def write_results(out: str | Path, rows: list[dict], num_steps: int, batch_size: int) -> list[dict]:
    """Merges `rows` into those of OUT.json by "run" (a row replaces the row of the same run; the
    others are kept, when made with the same steps and batch) and writes them to OUT.json and their
    table to OUT.md. Returns the rows written."""
    out = Path(out)
    committed = read_rows(out.with_suffix(".json"))
    md = out.with_suffix(".md")
    heading = md.read_text().splitlines()[0] if md.exists() else None
    table = to_markdown(rows, num_steps, batch_size)
    require_same(kept_rows(committed, [r["run"] for r in rows], "run"), "the heading", heading,
                 table.splitlines()[0], md)
    rows = merge_rows(committed, rows, "run")
    out.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(to_markdown(rows, num_steps, batch_size))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_steps", type=int, default=0, help="0: the config's num_steps")
    parser.add_argument("--out", default="experiments/results/idf_ablation")
    args = parser.parse_args(argv)
    config = load_config(CONFIG)
    num_steps = args.num_steps or int(config.train.num_steps)
    train_data, test_data = load_images("digits", "train"), load_images("digits", "test")

    rows = [{"run": "independent pixels (training histograms)",
             "test_bpd": histogram_bpd(np.asarray(train_data.arrays()["image"]),
                                       np.asarray(test_data.arrays()["image"]), train_data.num_levels)}]
    for scale in (0.0, 0.1, 1.0):
        result = train_idf(config, train_data, test_data, scale, num_steps)
        rows.append({"run": f"IDF, coupling learning rate x {scale:g}", **result})
        print(rows[-1], flush=True)
    rows = write_results(args.out, rows, num_steps, int(config.train.batch_size))
    print(to_markdown(rows, num_steps, int(config.train.batch_size)))
    return rows


if __name__ == "__main__":
    main()
