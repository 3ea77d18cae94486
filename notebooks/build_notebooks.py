"""Writes the notebooks in this folder from the cell lists below (outputs stripped).

    python notebooks/build_notebooks.py

The .ipynb files are what users open (and Colab runs); this script is their
source, so edits happen here and the notebooks stay consistent and
output-free in git. CI executes every notebook (FAST mode) with nbmake.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

INSTALL = '''# In Colab (or anywhere dgmjax is missing), install it first.
import importlib.util
import subprocess
import sys

DGMJAX_SOURCE = "git+https://github.com/dgmjax/dgmjax.git"  # or the path of your checkout
if importlib.util.find_spec("dgmjax") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", DGMJAX_SOURCE], check=True)'''

FAST = '''# FAST = True finishes in a few minutes on a laptop CPU; set False for longer training.
FAST = True
STEPS = 400 if FAST else 5000'''


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text):
    return nbformat.v4.new_code_cell(text.strip("\n"))


NOTEBOOKS = {}

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["01_autoregressive_flows.ipynb"] = [
    md("""
# Autoregressive flows: MAF and IAF

An affine autoregressive flow maps noise z to data x one dimension at a time,
`x_j = sigma_j(x_<j) z_j + mu_j(x_<j)` (MAF) or `x_j = sigma_j(z_<j) z_j + mu_j(z_<j)` (IAF).
The lecture's recap in one line each:

* **MAF**: density (x -> z) in one pass, sampling sequential; fitted by forward KL (maximum likelihood
  on samples).
* **IAF**: sampling in one pass, density sequential; fitted by reverse KL (to an unnormalized density).

dgmjax has one class, `MaskedAutoregressive`, whose inverse is the MAF; `InverseAutoregressive` is its
`distrax.Inverse`. Below: both on 2-D data, timing of the two directions, and fixed-point sampling.
"""),
    code(INSTALL),
    code(FAST),
    code('''
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from dgmjax.data import sample_toy, toy_log_prob
from dgmjax.models import IAF, MAF
'''),
    md("## Forward KL: fit a MAF to samples of the moons density"),
    code('''
def fit(model, loss_fn, steps, lr=1e-3, seed=0, params=None):
    """A minimal optax loop: loss_fn(params, key) -> scalar."""
    key = jax.random.PRNGKey(seed)
    params = model.init(key, jnp.zeros((1, 2))) if params is None else params
    tx = optax.adam(lr)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    for i in range(steps):
        params, opt, loss = step(params, opt, jax.random.fold_in(key, i))
    return params, float(loss)


maf = MAF(event_size=2, num_layers=4, hidden_sizes=(64, 64))
forward_kl = lambda p, k: -jnp.mean(maf.apply(p, sample_toy("moons", k, 256)))  # -E_data log q
maf_params, loss = fit(maf, forward_kl, 5 * STEPS)  # 2-D steps are cheap
print(f"MAF: negative log-likelihood {loss:.3f} nats")
'''),
    code('''
def density_panel(ax, log_prob, title, extent=4.0, n=120):
    g = np.linspace(-extent, extent, n, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    lp = np.asarray(log_prob(jnp.stack([xx, yy], -1).reshape(-1, 2))).reshape(n, n)
    ax.imshow(np.exp(lp), origin="lower", extent=(-extent, extent, -extent, extent), cmap="magma")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]); ax.set_yticks([])


fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
density_panel(axes[0], lambda z: toy_log_prob("moons", z), "true density")
density_panel(axes[1], jax.jit(lambda z: maf.apply(maf_params, z)), "MAF density (one pass)")
s = maf.apply(maf_params, jax.random.PRNGKey(1), 2000, method=maf.sample)
axes[2].scatter(s[:, 0], s[:, 1], s=1, alpha=0.4); axes[2].set_title("MAF samples (sequential)", fontsize=9)
axes[2].set_xlim(-4, 4); axes[2].set_ylim(-4, 4)
plt.show()
'''),
    md("""
## Reverse KL: fit an IAF to an unnormalized density

With only `log p~(x)` (no samples), minimize `KL(q || p) = E_q[log q(x) - log p~(x)] + const`. The
expectation needs samples of q **and** their density: an IAF gives both in one pass.
"""),
    code('''
iaf = IAF(event_size=2, num_layers=4, hidden_sizes=(64, 64))


def reverse_kl(p, k):
    x, log_q = iaf.apply(p, k, 256, method=iaf.sample_and_log_prob)  # one pass each
    return jnp.mean(log_q - toy_log_prob("moons", x))


iaf_params, loss = fit(iaf, reverse_kl, 5 * STEPS)
print(f"IAF: reverse KL up to the log normalizer: {loss:.3f} nats")
fig, axes = plt.subplots(1, 2, figsize=(6.6, 3.3))
density_panel(axes[0], jax.jit(lambda z: iaf.apply(iaf_params, z)), "IAF density (sequential)")
s = iaf.apply(iaf_params, jax.random.PRNGKey(2), 2000, method=iaf.sample)
axes[1].scatter(s[:, 0], s[:, 1], s=1, alpha=0.4); axes[1].set_title("IAF samples (one pass)", fontsize=9)
axes[1].set_xlim(-4, 4); axes[1].set_ylim(-4, 4)
plt.show()
'''),
    md("""
Reverse KL is mode-seeking: the IAF may cover one moon better than the other, where the MAF fitted by
forward KL spreads mass over both.

## One pass against D passes

In D dimensions the sequential direction costs D conditioner passes. Time both directions of a MAF and an
IAF of the same size at D = 64.
"""),
    code('''
D = 64
x64 = jax.random.normal(jax.random.PRNGKey(3), (256, D))
timings = {}
for name, model in (("MAF", MAF(event_size=D, num_layers=2, hidden_sizes=(256,))),
                    ("IAF", IAF(event_size=D, num_layers=2, hidden_sizes=(256,)))):
    p = model.init(jax.random.PRNGKey(0), x64)
    density = jax.jit(lambda p, x, m=model: m.apply(p, x))
    sample = jax.jit(lambda p, k, m=model: m.apply(p, k, 256, method=m.sample))
    for label, fn, arg in (("density", density, x64), ("sampling", sample, jax.random.PRNGKey(0))):
        jax.block_until_ready(fn(p, arg))
        t = time.perf_counter()
        for _ in range(5):
            jax.block_until_ready(fn(p, arg))
        timings[(name, label)] = (time.perf_counter() - t) / 5
for (name, label), sec in timings.items():
    print(f"{name:4s} {label:9s} {1e3 * sec:8.2f} ms")
labels = ["MAF density", "MAF sampling", "IAF density", "IAF sampling"]
plt.bar(labels, [1e3 * timings[tuple(l.split())] for l in labels])
plt.ylabel("ms per 256 vectors (D = 64)"); plt.yscale("log"); plt.show()
'''),
    md("""
## Fixed-point sampling

MAF sampling solves `x = z * s(x) + mu(x)`. Iterating that map (Jacobi) makes one more variable exact per
iteration, so D iterations are exact; trained flows usually converge much sooner. `sampling="fixed_point"`
stops when no entry moves by more than a tolerance. Here: a MAF on the 8x8 digits (64-D, in logit space).
"""),
    code('''
from dgmjax.bijectors import Logit
from dgmjax.data import load_images
from dgmjax.dequantization import uniform_dequantize

digits = load_images("digits", "train")
logit = Logit(0.05)
maf64 = MAF(event_size=64, num_layers=3, hidden_sizes=(256,), actnorm=True)


def digits_nll(p, k):
    idx = jax.random.randint(k, (128,), 0, len(digits))
    x, _ = uniform_dequantize(k, jnp.asarray(digits.images)[idx], 17)
    return -jnp.mean(maf64.apply(p, logit.forward(x).reshape(128, 64)))


key = jax.random.PRNGKey(0)
x0, _ = uniform_dequantize(key, jnp.asarray(digits.images[:256]), 17)
params64 = maf64.init(key, logit.forward(x0).reshape(256, 64))  # data-dependent ActNorm init
params64, loss = fit(maf64, digits_nll, STEPS, params=params64)
print(f"MAF on digits (logit space): {loss:.1f} nats")

run = jax.jit(lambda p, k, mode, tol: maf64.clone(tolerance=tol).apply(
    p, k, 64, mode, method="sample_with_iterations"), static_argnums=(2, 3))
x_seq, it_seq = run(params64, key, "sequential", 1e-5)
for tol in (1e-2, 1e-4, 1e-6):
    x_fp, it_fp = run(params64, key, "fixed_point", tol)
    print(f"tolerance {tol:g}: passes per layer {np.asarray(it_fp).tolist()} (sequential: "
          f"{np.asarray(it_seq).tolist()}), max |dx| = {float(jnp.max(jnp.abs(x_fp - x_seq))):.2e}")
'''),
    code('''
images = np.clip(np.floor(np.asarray(jax.nn.sigmoid(x_seq) - 0.05) / 0.9 * 17), 0, 16).reshape(-1, 8, 8)
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, im in zip(axes.ravel(), images):
    ax.imshow(im, cmap="gray", vmin=0, vmax=16); ax.axis("off")
plt.suptitle("MAF samples of 8x8 digits"); plt.show()
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["02_coupling_and_image_flows.ipynb"] = [
    md("""
# Coupling layers and multi-scale image flows

A coupling layer keeps half the variables and transforms the other half with an affine map whose
parameters depend on the kept half: one pass in both directions, and a special case of an
autoregressive flow. Stacked with checkerboard and channel masks, squeezes and factor-outs, it gives
RealNVP; with ActNorm and invertible 1x1 convolutions, Glow. Here both train on the embedded 8x8 digits
(17 levels) with uniform dequantization, through the same training loop as `experiments/main.py`.
"""),
    code(INSTALL),
    code(FAST),
    code('''
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dgmjax.data import load_images
from dgmjax.models import Glow, ImageRealNVP
from dgmjax.tasks import continuous_to_levels, image_flow_task
from dgmjax.training import default_config, load_params, train

train_set, test_set = load_images("digits", "train"), load_images("digits", "test")
config = default_config()  # seed, train and optimizer sections, as experiments/main.py uses
config.train.num_steps = STEPS
config.train.eval_every = 0
config.train.sample_every = 0
'''),
    code('''
def fit(model, steps=STEPS):
    """Trains `model` on the digits; returns (test bits/dim bound, trained parameters)."""
    config.train.num_steps = steps
    task = image_flow_task(model, train_set, test_set)
    with tempfile.TemporaryDirectory() as workdir:
        final = train(task, config, workdir, verbose=False)
        return final["bpd_bound"], load_params(workdir)


realnvp = ImageRealNVP(image_shape=(8, 8, 1), num_scales=2, features=32, num_blocks=1)
bpd_realnvp, p_realnvp = fit(realnvp)
glow = Glow(image_shape=(8, 8, 1), num_scales=2, num_steps=4, features=32)
bpd_glow, p_glow = fit(glow)
print(f"test bits/dim (uniform-dequantized bound): RealNVP {bpd_realnvp:.3f}, Glow {bpd_glow:.3f}")
'''),
    code('''
def show(images, title, ncols=8):
    rows = -(-len(images) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(ncols, rows * 1.05))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im in zip(axes.ravel(), images):
        ax.imshow(im[..., 0], cmap="gray", vmin=0, vmax=16)
    fig.suptitle(title); plt.show()


for name, model, params in (("RealNVP", realnvp, p_realnvp), ("Glow", glow, p_glow)):
    x = model.apply(params, jax.random.PRNGKey(0), 16, method=model.sample)
    show(np.asarray(continuous_to_levels(x, 17)), f"{name} samples")
'''),
    md("""
## Latent interpolation

The flow is invertible: encode two test digits, interpolate their latents, decode every point.
"""),
    code('''
bij = realnvp.bind(p_realnvp).bijector()
x_pair = (jnp.asarray(test_set.images[:2], jnp.float32) + 0.5) / 17
z_pair = bij.inverse(x_pair)
alphas = jnp.linspace(0, 1, 8)[:, None, None, None]
z_path = (1 - alphas) * z_pair[0] + alphas * z_pair[1]
show(np.asarray(continuous_to_levels(bij.forward(z_path), 17)), "interpolation in latent space")
'''),
    md("""
## The effect of depth

More coupling layers per scale: a richer map, a better likelihood (at the same number of steps), and
the same compile time, since identical layers run in one `lax.scan`.
"""),
    code('''
depths = (1, 3) if FAST else (1, 2, 4, 8)
results = []
for depth in depths:
    model = ImageRealNVP(image_shape=(8, 8, 1), num_scales=2, num_checkerboard=depth,
                         num_channelwise=depth, features=32, num_blocks=1)
    results.append(fit(model)[0])
plt.plot(depths, results, "o-"); plt.xlabel("coupling layers per scale (checkerboard and channel-wise)")
plt.ylabel("test bits/dim (bound)"); plt.show()
'''),
    md("""
## MNIST, where the files are at hand

The same multi-scale flow on 28x28 MNIST (256 levels). tfds builds MNIST offline from the four original
files in `MNIST_DIR`; set it to where yours are (this cell skips itself when they are missing, and in
`FAST` mode). `experiments/configs/mnist.py` is the full run.
"""),
    code('''
import os

MNIST_DIR = os.environ.get("MNIST_DIR", "../../shared/data/mnist")
if not FAST and os.path.isdir(MNIST_DIR):
    mnist_train = load_images("mnist", "train", manual_dir=MNIST_DIR)
    mnist_test = load_images("mnist", "test", manual_dir=MNIST_DIR)
    mnist_flow = ImageRealNVP(image_shape=(28, 28, 1), num_scales=3, features=32, num_blocks=1)
    config.train.batch_size = 64
    config.train.num_steps = STEPS
    task = image_flow_task(mnist_flow, mnist_train, mnist_test)
    with tempfile.TemporaryDirectory() as workdir:
        final = train(task, config, workdir, verbose=True)
        p_mnist = load_params(workdir)
    print(f"MNIST test bits/dim (bound): {final['bpd_bound']:.3f}")
    x = mnist_flow.apply(p_mnist, jax.random.PRNGKey(0), 16, method=mnist_flow.sample)
    levels = np.asarray(continuous_to_levels(x, 256))
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
    for ax, im in zip(axes.ravel(), levels):
        ax.imshow(im[..., 0], cmap="gray", vmin=0, vmax=255); ax.axis("off")
    plt.show()
else:
    print("skipped: FAST mode, or no MNIST files at", MNIST_DIR)
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["03_discrete_data.ipynb"] = [
    md("""
# Discrete data: discretize the model, or dequantize the data

Pixels are integers. A continuous density fitted to integers can pile its mass on them and score
arbitrarily well, so the lecture gives two honest routes:

* **discretize the model**: `P(y) = F(y + 1/2) - F(y - 1/2)` with a mixture of logistics (PixelCNN++),
  the edge levels taking the whole tails;
* **dequantize the data**: fit `p` to `x = y + u`; with `u ~ U[0,1)` this maximizes a lower bound on
  `log P(y)`, and a learned `q(u|y)` (Flow++) tightens it.

And a model can stay discrete: the integer discrete flow.
"""),
    code(INSTALL),
    code(FAST),
    code('''
import math

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from dgmjax.likelihoods import discretized_logistic_mixture_log_prob
'''),
    md("""
## The discretized logistic mixture, edge levels included

A mixture with most of its mass beyond the edge of the range still sums to one over the levels: the
lowest and highest levels absorb the tails.
"""),
    code('''
L = 17
levels = jnp.arange(L)
weights = jnp.log(jnp.array([0.5, 0.3, 0.2]))
means = jnp.array([-1.3, 0.1, 0.9])  # the first component sits beyond the lowest level
log_scales = jnp.log(jnp.array([0.15, 0.1, 0.2]))
pmf = jnp.exp(discretized_logistic_mixture_log_prob(levels, weights, means, log_scales, L))
plt.bar(np.arange(L), pmf); plt.xlabel("level"); plt.ylabel("P(level)")
plt.title(f"sum over all {L} levels = {float(pmf.sum()):.6f}"); plt.show()
'''),
    md("""
## A discretized 2-D density, two ways

Take the moons density and discretize each coordinate to 16 levels. Fit (a) a discretized
mixture model, P(y1) P(y2 | y1), and (b) a continuous flow on uniformly dequantized data, and look at
what the flow learns inside each cell.
"""),
    code('''
from dgmjax.data import sample_toy
from dgmjax.models import RealNVP
from dgmjax.nn import MLP

K = 16
def discretize(x):  # [-4, 4] -> 16 levels per coordinate
    return jnp.clip(jnp.floor((x + 4.0) / 8.0 * K), 0, K - 1).astype(jnp.int32)

data = discretize(sample_toy("moons", jax.random.PRNGKey(0), 20000))

# (a) P(y1) P(y2 | y1): a 5-component discretized mixture for y1, and one for y2 from an MLP of y1.
head = MLP((64,), (2, 15))
def log_p_mixture(p, y):
    first = p["y1"]
    cond = head.apply(p["mlp"], (2.0 * y[:, :1] / (K - 1) - 1.0))[:, 1]
    lp1 = discretized_logistic_mixture_log_prob(y[:, 0], first[:5], first[5:10], first[10:], K)
    lp2 = discretized_logistic_mixture_log_prob(y[:, 1], cond[:, :5], cond[:, 5:10], cond[:, 10:], K)
    return lp1 + lp2

params_a = {"y1": jnp.concatenate([jnp.zeros(5), jnp.linspace(-0.8, 0.8, 5), jnp.full(5, -1.0)]),
            "mlp": head.init(jax.random.PRNGKey(1), jnp.zeros((1, 1)))}

# (b) RealNVP on (y + u) / K, u ~ U[0, 1): the uniform-dequantization bound.
flow = RealNVP(event_size=2, num_layers=6, hidden_sizes=(64, 64))
params_b = flow.init(jax.random.PRNGKey(2), jnp.zeros((1, 2)))

def nll_a(p, k):
    idx = jax.random.randint(k, (256,), 0, data.shape[0])
    return -jnp.mean(log_p_mixture(p, data[idx]))

def nll_b(p, k):
    idx = jax.random.randint(k, (256,), 0, data.shape[0])
    u = jax.random.uniform(jax.random.fold_in(k, 1), (256, 2))
    x = (data[idx] + u) / K
    return -jnp.mean(flow.apply(p, (x - 0.5) * 6.0) + 2 * math.log(6.0) - 2 * math.log(K))

def fit(params, loss_fn, steps=STEPS * 2):
    tx = optax.adam(2e-3); opt = tx.init(params)
    @jax.jit
    def step(p, o, k):
        loss, g = jax.value_and_grad(loss_fn)(p, k)
        updates, o = tx.update(g, o, p)
        return optax.apply_updates(p, updates), o, loss
    for i in range(steps):
        params, opt, loss = step(params, opt, jax.random.PRNGKey(i))
    return params, float(loss)

params_a, loss_a = fit(params_a, nll_a)
params_b, loss_b = fit(params_b, nll_b)
print(f"discretized mixture: -log P = {loss_a:.3f} nats; flow, uniform dequantization bound: {loss_b:.3f}")
'''),
    code('''
g = np.linspace(0, 1, 256, endpoint=False, dtype=np.float32) + 0.5 / 256
xx, yy = np.meshgrid(g, g, indexing="ij")
pts = jnp.asarray(np.stack([xx, yy], -1).reshape(-1, 2))
dens = np.exp(np.asarray(flow.apply(params_b, (pts - 0.5) * 6.0))).reshape(256, 256)
cells = np.stack(np.meshgrid(np.arange(K), np.arange(K), indexing="ij"), -1).reshape(-1, 2)
pmf = np.exp(np.asarray(log_p_mixture(params_a, jnp.asarray(cells)))).reshape(K, K)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
axes[0].imshow(np.histogram2d(data[:, 0], data[:, 1], bins=K, range=[[0, K], [0, K]])[0].T, origin="lower")
axes[0].set_title("data (counts per cell)", fontsize=9)
axes[1].imshow(pmf.T, origin="lower"); axes[1].set_title("discretized mixture P(y)", fontsize=9)
axes[2].imshow(dens.T, origin="lower"); axes[2].set_title("flow density on (y+u)/K", fontsize=9)
for ax in axes: ax.set_xticks([]); ax.set_yticks([])
plt.show()
'''),
    md("""
## Variational dequantization: the bound tightens

Uniform noise asks the continuous model to be flat inside every cell; the learned `q(u|y)` (a
conditional flow) lets it be smooth instead, and the bound `E_q[log p(y+u) - log q(u|y)]` rises toward
`log P(y)`. The importance-weighted estimate with S samples tightens either bound further.
"""),
    code('''
from dgmjax.dequantization import (VariationalDequantizer, dequantization_bound,
                                   importance_weighted_log_likelihood, uniform_proposal)

images = data.reshape(-1, 1, 2, 1)  # treat a pair as a 1x2 image for the dequantizer
deq = VariationalDequantizer(image_shape=(1, 2, 1), num_levels=K, num_layers=4, features=32)
log_p = lambda p: (lambda x: flow.apply(p, (x.reshape(x.shape[0], 2) - 0.5) * 6.0) + 2 * math.log(6.0))
params_c = {"flow": params_b, "deq": deq.init(jax.random.PRNGKey(3), jax.random.PRNGKey(4), images[:8])}

def nll_c(p, k):
    idx = jax.random.randint(k, (256,), 0, images.shape[0])
    y = images[idx]
    u, log_q = deq.apply(p["deq"], jax.random.fold_in(k, 1), y)
    return -jnp.mean(dequantization_bound(log_p(p["flow"]), y, u, log_q, K))

params_c, loss_c = fit(params_c, nll_c)
test = images[:500]
rows = []
for name, proposal, fp in (("uniform", uniform_proposal, params_b),
                           ("variational", lambda k, y: deq.apply(params_c["deq"], k, y), params_c["flow"])):
    for s in (1, 16):
        est = importance_weighted_log_likelihood(jax.random.PRNGKey(5), test, s, proposal, log_p(fp), K)
        rows.append((name, s, float(-est.mean())))
for name, s, v in rows:
    print(f"{name:12s} S={s:3d}: -log P(y) <= {v:.4f} nats")
'''),
    md("""
## The integer discrete flow

A flow that maps integers to integers (additive couplings with rounded translations) has no Jacobian
term: `log P(x) = log P_Z(f(x))` exactly, with no dequantization and no bound. dgmjax's IDF factors
out half the channels at each scale with a prior conditioned on the kept half, which learns with exact
gradients; the couplings learn through the rounding by straight-through gradients, and on the digits
that still costs more than they add (the ablation in `experiments/README.md`).
"""),
    code('''
import tempfile
from dgmjax.data import load_images
from dgmjax.models import IntegerDiscreteFlow
from dgmjax.tasks import discrete_image_task
from dgmjax.training import default_config, train

config = default_config()
config.train.num_steps = STEPS
config.train.eval_every = 0
config.train.sample_every = 0
idf = IntegerDiscreteFlow(image_shape=(8, 8, 1), num_levels=17, num_layers=4, features=16)
task = discrete_image_task(idf, load_images("digits", "train"), load_images("digits", "test"))
with tempfile.TemporaryDirectory() as workdir:
    final = train(task, config, workdir, verbose=False)
print(f"integer flow on digits: {final['nll_nats']:.2f} nats per image, {final['bpd']:.3f} bits/dim (exact)")
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["04_elbo_surgery_and_priors.ipynb"] = [
    md("""
# ELBO surgery and VAE priors

The average ELBO splits into **reconstruction - I_q[x, z] - KL(q_agg || p)**, with
`q_agg(z) = (1/n) sum_i q(z | x_i)` the aggregated posterior. The prior appears only in the last term,
so the best prior is `q_agg` itself — which is a mixture of n Gaussians (expensive) and fits the
training set only (it overfits). Learnable priors (a Gaussian mixture, a flow, the VampPrior) try to
get close to `q_agg` cheaply. With a 2-D latent space we can look at all of it.
"""),
    code(INSTALL),
    code(FAST),
    code('''
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dgmjax.data import load_images
from dgmjax.tasks import vae_task
from dgmjax.training import default_config, load_params, train
from dgmjax.vae import VAE, aggregated_posterior_log_prob, gaussian_elbo_surgery

train_set, test_set = load_images("digits", "train"), load_images("digits", "test")
config = default_config()
config.train.update(batch_size=128, eval_every=0, sample_every=0, ema_decay=0.0)

def train_vae(prior, steps=STEPS * 3):
    config.train.num_steps = steps
    model = VAE(data_shape=(8, 8, 1), num_levels=17, latent_size=2, hidden_sizes=(256, 256),
                decoder="categorical", prior=prior, prior_components=50, prior_flow_hidden=(64,))
    task = vae_task(model, {"x": train_set.images}, {"x": test_set.images}, data_name="digits")
    with tempfile.TemporaryDirectory() as workdir:
        train(task, config, workdir, verbose=False)
        return model, load_params(workdir, ema=False), task

models = {prior: train_vae(prior) for prior in ("standard", "gmm", "maf", "vamp")}
'''),
    code('''
def latent_panels(model, params, x, title):
    mean, log_std, _ = model.apply(params, x, method=model.encode)
    ext = float(max(3.0, np.abs(np.asarray(mean)).max() * 1.2))
    g = np.linspace(-ext, ext, 120, dtype=np.float32)
    grid = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
    prior = np.exp(np.asarray(model.apply(params, grid, method=model.prior_log_prob))).reshape(120, 120)
    agg = np.exp(np.asarray(aggregated_posterior_log_prob(grid, mean, log_std))).reshape(120, 120)
    return prior, agg, ext

fig, axes = plt.subplots(2, 4, figsize=(12, 6))
for col, (prior_name, (model, params, task)) in enumerate(models.items()):
    x = jnp.asarray(task.test_arrays["x"])
    prior, agg, ext = latent_panels(model, params, x, prior_name)
    for row, (img, label) in enumerate(((prior, f"{prior_name} prior p(z)"), (agg, "q_agg(z), test set"))):
        axes[row, col].imshow(img, origin="lower", extent=(-ext, ext, -ext, ext), cmap="magma")
        axes[row, col].set_title(label, fontsize=9)
        axes[row, col].set_xticks([]); axes[row, col].set_yticks([])
plt.tight_layout(); plt.show()
'''),
    md("## The surgery table across priors"),
    code('''
print(f"{'prior':9s} {'ELBO':>8s} {'recon':>8s} {'avg KL':>7s} {'MI':>6s} {'log n':>6s} {'marg KL':>8s}")
for prior_name, (model, params, task) in models.items():
    x = jnp.asarray(task.test_arrays["x"])
    terms = model.apply(params, x, jax.random.PRNGKey(0))
    mean, log_std, _ = model.apply(params, x, method=model.encode)
    prior_fn = lambda z, m=model, p=params: m.apply(p, z, method=m.prior_log_prob)
    s = gaussian_elbo_surgery(jax.random.PRNGKey(1), mean, log_std, prior_fn, num_samples=8,
                              reconstruction=np.asarray(terms["reconstruction"]))
    print(f"{prior_name:9s} {s['elbo']:8.2f} {s['reconstruction']:8.2f} {s['avg_kl']:7.2f} "
          f"{s['mutual_info']:6.2f} {s['log_n']:6.2f} {s['marginal_kl']:8.2f}")
'''),
    md("""
## The aggregated posterior is the optimal prior — on the data it was built from

Swap in `q_agg` of the **training** set as the prior: the marginal KL vanishes on the training set by
construction, but test points see a mixture of training posteriors, not their own.
"""),
    code('''
model, params, task = models["standard"]
train_x = jnp.asarray(train_set.images)
test_x = jnp.asarray(task.test_arrays["x"])
m_tr, s_tr, _ = model.apply(params, train_x, method=model.encode)
q_agg_train = lambda z: aggregated_posterior_log_prob(z, m_tr, s_tr)
for name, x in (("train", train_x), ("test", test_x)):
    terms = model.apply(params, x, jax.random.PRNGKey(0))
    mean, log_std, _ = model.apply(params, x, method=model.encode)
    z = mean + jnp.exp(log_std) * jax.random.normal(jax.random.PRNGKey(2), mean.shape)
    log_q = -0.5 * jnp.sum(((z - mean) / jnp.exp(log_std)) ** 2 + 2 * log_std + jnp.log(2 * jnp.pi), -1)
    elbo_std = float(terms["elbo"].mean())
    elbo_agg = float((terms["reconstruction"] - (log_q - q_agg_train(z))).mean())
    print(f"{name:5s}: ELBO with N(0, I) prior {elbo_std:8.2f}; with q_agg(train) as prior {elbo_agg:8.2f}")
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["05_flow_posteriors.ipynb"] = [
    md("""
# Flow posteriors: IAF and planar

`q(z|x) = N(mu, sigma^2)` is unimodal; `log p(x) - ELBO = KL(q(z|x) || p(z|x))` is the price. A flow on
top of the Gaussian (IAF steps conditioned on the encoder, or planar steps whose parameters the encoder
outputs) makes q richer. First on a 2-D target density, then inside a VAE.
"""),
    code(INSTALL),
    code(FAST),
    code('''
import tempfile

import distrax
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from dgmjax.bijectors import InverseAutoregressive, Planar
from dgmjax.nn import MADE
'''),
    md("""
## Fitting a 2-D unnormalized density by reverse KL

The target is a ring-shaped "energy" density. Three families: a Gaussian, a Gaussian followed by 8
planar steps, and one followed by 4 IAF steps (MADE conditioners). Each minimizes
`E_q[log q(z) - log p~(z)]`.
"""),
    code('''
def log_target(z):  # an unnormalized ring with two lobes
    r = jnp.linalg.norm(z, axis=-1)
    return -0.5 * ((r - 2.0) / 0.4) ** 2 + jnp.log(jnp.exp(-0.5 * ((z[..., 0] - 2) / 0.6) ** 2)
                                                    + jnp.exp(-0.5 * ((z[..., 0] + 2) / 0.6) ** 2) + 1e-8)

made = MADE(2, (32, 32))

def make_q(p, kind):
    base = distrax.MultivariateNormalDiag(p["loc"], jnp.exp(p["log_scale"]))
    if kind == "gaussian":
        return base
    if kind == "planar":
        steps = [Planar(p["u"][i], p["w"][i], p["b"][i]) for i in range(8)]
        return distrax.Transformed(base, distrax.Chain(steps[::-1]))
    layers = [InverseAutoregressive(lambda x, q=q: made.apply(q, x)) for q in p["made"]]
    return distrax.Transformed(base, distrax.Chain(layers))

def init(kind, key):
    k = jax.random.split(key, 4)
    p = {"loc": jnp.zeros(2), "log_scale": jnp.zeros(2)}
    if kind == "planar":
        p.update(u=0.1 * jax.random.normal(k[0], (8, 2)), w=jax.random.normal(k[1], (8, 2)),
                 b=0.1 * jax.random.normal(k[2], (8,)))
    if kind == "iaf":
        p["made"] = [made.init(kk, jnp.zeros((1, 2))) for kk in jax.random.split(k[3], 4)]
    return p

def reverse_kl(p, key, kind):
    z, log_q = make_q(p, kind).sample_and_log_prob(seed=key, sample_shape=(512,))
    return jnp.mean(log_q - log_target(z))

tx = optax.adam(5e-3)

def fit(kind, steps=STEPS * 3):
    p = init(kind, jax.random.PRNGKey(0))
    opt = tx.init(p)

    @jax.jit
    def step(p, opt, key):
        loss, grads = jax.value_and_grad(reverse_kl)(p, key, kind)
        updates, opt = tx.update(grads, opt, p)
        return optax.apply_updates(p, updates), opt, loss

    for i in range(steps):
        p, opt, loss = step(p, opt, jax.random.PRNGKey(i))
    return p, float(loss)

fits = {kind: fit(kind) for kind in ("gaussian", "planar", "iaf")}
for kind, (_, loss) in fits.items():
    print(f"{kind:9s}: KL(q || p) - log Z = {loss:.3f}")
'''),
    code('''
fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
g = np.linspace(-4, 4, 150, dtype=np.float32)
grid = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
axes[0].imshow(np.exp(np.asarray(log_target(grid))).reshape(150, 150), origin="lower", cmap="magma")
axes[0].set_title("target (unnormalized)", fontsize=9)
for ax, (kind, (p, loss)) in zip(axes[1:], fits.items()):
    s = make_q(p, kind).sample(seed=jax.random.PRNGKey(1), sample_shape=(3000,))
    ax.scatter(s[:, 0], s[:, 1], s=1, alpha=0.3); ax.set_xlim(-4, 4); ax.set_ylim(-4, 4)
    ax.set_title(f"{kind} q, loss {loss:.2f}", fontsize=9)
for ax in axes: ax.set_xticks([]); ax.set_yticks([])
plt.show()
'''),
    md("""
## Inside a VAE: the gap log p(x) - ELBO

On binarized digits (the 8x8 digits thresholded at 8/16, or binarized MNIST when its files are at hand),
the same encoder and decoder with a Gaussian, a planar and an IAF posterior. IWAE with k samples
estimates log p(x); `IWAE - ELBO` estimates `KL(q(z|x) || p(z|x))`, which a richer posterior shrinks.
"""),
    code('''
from dgmjax.data import load_images
from dgmjax.tasks import vae_task
from dgmjax.training import default_config, load_params, train
from dgmjax.vae import VAE, iwae_bound

binarize = lambda d: (d.images >= 8).astype(np.int32)
train_x = binarize(load_images("digits", "train")); test_x = binarize(load_images("digits", "test"))
config = default_config()
config.train.update(num_steps=STEPS * 4, eval_every=0, sample_every=0, ema_decay=0.0)
rows = []
for posterior in ("gaussian", "planar", "iaf"):
    vae = VAE(data_shape=(8, 8, 1), num_levels=2, latent_size=8, hidden_sizes=(128, 128),
              posterior=posterior, posterior_flow_layers=4, posterior_flow_hidden=(64,), posterior_context=16)
    task = vae_task(vae, {"x": train_x}, {"x": test_x}, data_name="binarized digits")
    with tempfile.TemporaryDirectory() as workdir:
        final = train(task, config, workdir, verbose=False)
        params = load_params(workdir, ema=False)
    x = jnp.asarray(test_x)
    log_w = jax.jit(lambda k: vae.apply(params, x, k, 100, method=vae.log_weights))
    iwae = float(iwae_bound(jax.random.PRNGKey(0), log_w, 1000 if not FAST else 200, chunk_size=100).mean())
    rows.append((posterior, final["elbo"], iwae))
for posterior, elbo, iwae in rows:
    print(f"{posterior:9s}: ELBO {elbo:8.3f}  IWAE {iwae:8.3f}  gap {iwae - elbo:6.3f} nats")
'''),
]


def main(out_dir: Path = HERE):
    for name, cells in NOTEBOOKS.items():
        for i, cell in enumerate(cells):
            cell["id"] = f"cell-{i:02d}"  # stable ids, so rebuilding changes nothing
        nb = nbformat.v4.new_notebook(cells=cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []}})
        nbformat.write(nb, out_dir / name)
        print("wrote", out_dir / name)


if __name__ == "__main__":
    main()
