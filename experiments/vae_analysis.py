"""Evaluate trained VAEs: test NLL by IWAE, the ELBO, and the ELBO surgery table.

    python experiments/vae_analysis.py --workdirs=runs/vae_standard,runs/vae_vamp,... \
        [--num_test=2000] [--iwae_samples=5000] [--surgery_points=2000] [--out=experiments/results/vae]

For each workdir (written by experiments/main.py with a "vae" model) it
reloads the config and the trained parameters and reports, on the first
`num_test` test images: the ELBO and its terms, the IWAE bound with k
samples (drawn in chunks, so k = 5000 fits), the gap IWAE - ELBO (an
estimate of KL(q(z|x) || p(z|x))), and ELBO surgery on `surgery_points`
test images: reconstruction - mutual information - marginal KL, with the
mutual information against its bound log n. Writes one Markdown table and a
JSON file.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax.data import IMAGE_DATASETS, TOY_DENSITIES
from dgmjax.tasks import build_task, make_model
from dgmjax.training import load_params
from dgmjax.vae.objectives import gaussian_kl, iwae_bound
from dgmjax.vae.surgery import elbo_surgery


def _config_from_workdir(workdir: Path):
    import ml_collections

    return ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))


def analyse(workdir: Path, num_test: int, iwae_samples: int, surgery_points: int, batch: int,
            chunk: int, seed: int = 0) -> dict:
    config = _config_from_workdir(workdir)
    task = build_task(config)  # loads the test split exactly as training did
    model_cfg = config.model.to_dict()
    model_cfg.pop("name")
    x_all = np.asarray(task.test_arrays["x"])[:num_test]
    num_levels = None if config.data.name in TOY_DENSITIES else IMAGE_DATASETS[config.data.name].num_levels
    vae = make_model("vae", model_cfg, data_shape=x_all.shape[1:], num_levels=num_levels)
    params = load_params(workdir, ema=False)
    key = jax.random.PRNGKey(seed)
    t0 = time.time()

    terms_fn = jax.jit(lambda x, k: vae.apply(params, x, k))
    log_w_fn = jax.jit(lambda x, k: vae.apply(params, x, k, chunk, method=vae.log_weights))
    elbo, rec, kl, iwae = [], [], [], []
    for start in range(0, len(x_all), batch):
        x = jnp.asarray(x_all[start:start + batch])
        k = jax.random.fold_in(key, start)
        t = terms_fn(x, k)
        elbo.append(np.asarray(t["elbo"]))
        rec.append(np.asarray(t["reconstruction"]))
        kl.append(np.asarray(t["kl"]))
        iwae.append(np.asarray(iwae_bound(jax.random.fold_in(k, 1), lambda kk, x=x: log_w_fn(x, kk),
                                          iwae_samples, chunk_size=chunk)))
    elbo, rec, kl, iwae = (np.concatenate(a).astype(np.float64) for a in (elbo, rec, kl, iwae))
    eval_seconds = time.time() - t0

    # ELBO surgery on the first `surgery_points` test images.
    n = min(surgery_points, len(x_all))
    xs = jnp.asarray(x_all[:n])
    bound = vae.bind(params)
    enc = jax.jit(lambda x: vae.apply(params, x, method=vae.encode))
    encoded = [enc(xs[i:i + batch]) for i in range(0, n, batch)]
    mean = jnp.concatenate([e[0] for e in encoded])
    log_std = jnp.concatenate([e[1] for e in encoded])
    extra = jnp.concatenate([e[2] for e in encoded])

    def sample_fn(k, idx):
        z, log_q = bound.posterior_sample(k, (mean[idx], log_std[idx], extra[idx]), 1)
        return jnp.swapaxes(z, 0, 1), jnp.swapaxes(log_q, 0, 1)

    def log_q_fn(z, idx):
        # log q(z_r | x_j) for every pair: the batch axis of the posterior is the j axis
        zz = jnp.broadcast_to(z[:, None, :], (z.shape[0], idx.shape[0], z.shape[1]))
        return bound.posterior_log_prob(zz, (mean[idx], log_std[idx], extra[idx]))

    prior = lambda z: bound.prior_log_prob(z)
    closed = None
    if vae.posterior == "gaussian" and vae.prior == "standard":
        closed = np.asarray(gaussian_kl(mean, log_std))
    t1 = time.time()
    surgery = elbo_surgery(jax.random.fold_in(key, 7), n, sample_fn, log_q_fn, prior, num_samples=1,
                           chunk_size=min(250, n), kl_per_point=closed, reconstruction=rec[:n])
    surgery_seconds = time.time() - t1
    se = lambda a: float(a.std(ddof=1) / math.sqrt(a.size))
    return {
        "workdir": str(workdir), "prior": vae.prior, "posterior": vae.posterior,
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdirs", required=True, help="comma-separated workdirs")
    parser.add_argument("--num_test", type=int, default=10_000)
    parser.add_argument("--iwae_samples", type=int, default=5000)
    parser.add_argument("--surgery_points", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--out", default="experiments/results/vae")
    args = parser.parse_args()
    jax.config.update("jax_compilation_cache_dir", str(Path("~/.cache/dgmjax/xla").expanduser()))
    results = []
    for w in args.workdirs.split(","):
        r = analyse(Path(w), args.num_test, args.iwae_samples, args.surgery_points, args.batch,
                    min(args.chunk, args.iwae_samples))
        print(json.dumps({k: v for k, v in r.items() if k != "surgery"}), flush=True)
        results.append(r)
    md = to_markdown(results)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
