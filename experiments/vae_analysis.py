"""Evaluate trained VAEs: test NLL by IWAE, the ELBO, and the ELBO surgery table.

    python experiments/vae_analysis.py --workdirs=runs/vae_standard,runs/vae_vamp,... \
        [--num_test=2000] [--iwae_samples=5000] [--surgery_points=2000] [--out=experiments/results/vae]

For each workdir (written by experiments/main.py with a "vae" model) it
reloads the config and the trained parameters and reports, on `num_test`
test images drawn at random (seed 0, the same images for every workdir):
the ELBO and its terms, the IWAE bound with k samples (drawn in chunks, so
k = 5000 fits), the gap IWAE - ELBO (an
estimate of KL(q(z|x) || p(z|x))), and ELBO surgery on the first `surgery_points`
of them: reconstruction - mutual information - marginal KL, with the
mutual information against its bound log n. Writes one Markdown table and a
JSON file: a workdir's row (its prior and posterior) is added to those at --out
or replaces the row of the same prior and posterior there; the others are kept.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_table import merge_rows, read_rows  # noqa: E402
from tasks import build_task, vae_distributions  # noqa: E402

from dgmjax.objectives import elbo_surgery, iwae_bound  # noqa: E402
from dgmjax.training import load_params  # noqa: E402


def _config_from_workdir(workdir: Path):
    import ml_collections

    return ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))


def analyse(workdir: Path, num_test: int, iwae_samples: int, surgery_points: int, batch: int,
            chunk: int, seed: int = 0) -> dict:
    config = _config_from_workdir(workdir)
    task = build_task(config)  # the model and test split exactly as training had them
    vae = task.model
    # A fixed random subset: the binarized-MNIST test file is sorted by digit class, so its first
    # images would be nearly all zeros and ones.
    test = np.asarray(task.test_arrays["x"])
    x_all = test[np.random.default_rng(seed).permutation(len(test))[:num_test]]
    params = load_params(workdir, ema=False)
    key = jax.random.PRNGKey(seed)
    t0 = time.time()

    terms_fn = jax.jit(lambda x, k: vae.apply(params, k, x))

    @jax.jit
    def iwae_fn(x, k):
        return iwae_bound(k, x, *vae_distributions(vae, params, x), iwae_samples, chunk_size=chunk)

    elbo, rec, kl, iwae = [], [], [], []
    for start in range(0, len(x_all), batch):
        x = jnp.asarray(x_all[start:start + batch])
        k = jax.random.fold_in(key, start)
        t = terms_fn(x, k)
        elbo.append(np.asarray(t["elbo"]))
        rec.append(np.asarray(t["reconstruction"]))
        kl.append(np.asarray(t["kl"]))
        iwae.append(np.asarray(iwae_fn(x, jax.random.fold_in(k, 1))))
    elbo, rec, kl, iwae = (np.concatenate(a).astype(np.float64) for a in (elbo, rec, kl, iwae))
    eval_seconds = time.time() - t0

    # ELBO surgery on the first `surgery_points` test images: q(z | x_j) for every pair, in chunks.
    n = min(surgery_points, len(x_all))
    encoder = lambda x: vae.apply(params, x, method=vae.posterior)
    prior = vae.apply(params, method=vae.prior_distribution)
    t1 = time.time()
    surgery = elbo_surgery(jax.random.fold_in(key, 7), jnp.asarray(x_all[:n]), encoder, prior,
                           chunk_size=min(250, n), reconstruction=rec[:n])
    surgery_seconds = time.time() - t1
    se = lambda a: float(a.std(ddof=1) / math.sqrt(a.size))
    return {
        "workdir": str(workdir), "prior": config.model.prior, "posterior": config.model.posterior,
        "num_test": len(x_all), "iwae_samples": iwae_samples,
        "elbo": float(elbo.mean()), "elbo_se": se(elbo), "reconstruction": float(rec.mean()),
        "kl": float(kl.mean()), "nll_iwae": float(-iwae.mean()), "nll_iwae_se": se(iwae),
        "gap_iwae_minus_elbo": float(iwae.mean() - elbo.mean()),
        "eval_seconds": eval_seconds, "surgery": surgery, "surgery_seconds": surgery_seconds,
    }


def to_markdown(results: list[dict]) -> str:
    lines = ["| prior | posterior | test NLL (IWAE) | ELBO | reconstruction | KL | IWAE - ELBO |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['prior']} | {r['posterior']} | {r['nll_iwae']:.2f} ± {r['nll_iwae_se']:.2f} | "
                     f"{r['elbo']:.2f} | {r['reconstruction']:.2f} | {r['kl']:.2f} | "
                     f"{r['gap_iwae_minus_elbo']:.2f} |")
    lines += ["", "ELBO surgery (nats; average ELBO = reconstruction - MI - marginal KL):", "",
              "| prior | posterior | n | reconstruction | avg KL | MI (bound log n) | marginal KL | "
              "MI + marginal KL - avg KL |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["surgery"]
        lines.append(f"| {r['prior']} | {r['posterior']} | {s['num_points']} | {s['reconstruction']:.2f} | "
                     f"{s['avg_kl']:.2f} | {s['mutual_info']:.2f} ({s['log_n']:.2f}) | "
                     f"{s['marginal_kl']:.2f} | {-s['identity_gap']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdirs", required=True, help="comma-separated workdirs")
    parser.add_argument("--num_test", type=int, default=10_000)
    parser.add_argument("--iwae_samples", type=int, default=5000)
    parser.add_argument("--surgery_points", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--out", default="experiments/results/vae")
    args = parser.parse_args(argv)
    results = []
    for w in args.workdirs.split(","):
        r = analyse(Path(w), args.num_test, args.iwae_samples, args.surgery_points, args.batch,
                    min(args.chunk, args.iwae_samples))
        print(json.dumps({k: v for k, v in r.items() if k != "surgery"}), flush=True)
        results.append(r)
    out = Path(args.out)
    results = merge_rows(read_rows(out.with_suffix(".json")), results, ("prior", "posterior"))
    md = to_markdown(results)
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
