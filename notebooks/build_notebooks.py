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

INSTALL = '''# Installs dgmjax when this kernel lacks it (Colab, a fresh environment); a kernel that has
# it skips this. DGMJAX_SOURCE is what pip installs: the package with the extra these notebooks
# use ("dgmjax[plotting]"), a git URL ("git+https://...") or your checkout
# ("path/to/dgmjax[plotting]"). It adds only what is missing: Colab's own jax, TensorFlow and
# matplotlib stay as they are.
import importlib.util
import os
import subprocess
import sys

DGMJAX_SOURCE = os.environ.get("DGMJAX_SOURCE", "dgmjax[plotting]")
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

In dgmjax the layer `MaskedAutoregressive` is a MAF layer and `InverseAutoregressive` is its
`distrax.Inverse`; the models `MAF` and `IAF` stack them. Below: both on 2-D data, timing of the two
directions, and fixed-point sampling.
"""),
    code(INSTALL),
    code(FAST),
    code('''
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dgmjax.data import ArrayBatches, sample_toy, toy_log_prob
from dgmjax.models import IAF, MAF
from dgmjax.training import TrainState, make_evaluator, make_optimizer, train
'''),
    md("""
## Forward KL: fit a MAF to samples of the moons density

Every model here trains with the library's loop, `dgmjax.training.train(loss_fn, state, batches,
num_steps=..., key=...)`: `loss_fn(key, params, batch)` returns the loss and a dict of metrics,
`batches(step)` is the batch of a step (`ArrayBatches` shuffles a training set into batches; any pure
function of the step will do), and `state` is a `TrainState` holding the parameters and an optax optimizer
(`make_optimizer`). `make_evaluator` averages per-example metrics over a test set.
"""),
    code('''
init_key, data_key, train_key, eval_key = jax.random.split(jax.random.PRNGKey(0), 4)
num_steps = 5 * STEPS  # 2-D steps are cheap
x_train = sample_toy(jax.random.PRNGKey(1), "moons", 50_000)
x_test = sample_toy(jax.random.PRNGKey(2), "moons", 10_000)
maf = MAF(event_size=2, num_layers=4, hidden_sizes=(64, 64))


def forward_kl(key, params, batch):  # -E_data log q(x): maximum likelihood
    return -jnp.mean(maf.apply(params, batch["x"])), {}


def maf_eval(key, params, batch):  # per-example values
    log_q = maf.apply(params, batch["x"])
    return {"nll": -log_q, "kl": toy_log_prob("moons", batch["x"]) - log_q}


state = TrainState.create(params=maf.init(init_key, x_train[:1]),
                          tx=make_optimizer(1e-3, num_steps=num_steps))
state = train(forward_kl, state, ArrayBatches({"x": x_train}, 256, key=data_key), num_steps=num_steps,
              key=train_key, verbose=False)
maf_params = state.params
metrics = make_evaluator(maf_eval, {"x": x_test}, 1000, eval_key)(state)
print(f"MAF: test negative log-likelihood {metrics['nll']:.3f} nats; KL(data || MAF) {metrics['kl']:.3f}")
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
expectation needs samples of q **and** their density: an IAF gives both in one pass. Reparameterized,
the expectation is over the base noise z ~ N(0, I), x = f(z), so the batches are draws of that noise.
"""),
    code('''
iaf = IAF(event_size=2, num_layers=4, hidden_sizes=(64, 64))


def reverse_kl(key, params, batch):
    flow, z = iaf.bind(params), batch["z"]
    x, log_det = flow.bijector().forward_and_log_det(z)  # noise -> data, one pass
    log_q = flow.base_distribution().log_prob(z) - log_det
    return jnp.mean(log_q - toy_log_prob("moons", x)), {}


noise = lambda step: {"z": jax.random.normal(jax.random.fold_in(data_key, step), (128, 2))}  # fresh draws
state = TrainState.create(params=iaf.init(init_key, jnp.zeros((1, 2))),
                          tx=make_optimizer(1e-3, num_steps=num_steps))
iaf_params = train(reverse_kl, state, noise, num_steps=num_steps, key=train_key, verbose=False).params

kl, _ = jax.jit(reverse_kl)(eval_key, iaf_params, {"z": jax.random.normal(eval_key, (10_000, 2))})
print(f"IAF: reverse KL up to the log normalizer: {float(kl):.3f} nats")
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
iteration, so D iterations are exact; trained flows usually converge much sooner. `solver="fixed_point"`
stops when no entry moves by more than a tolerance (`solver="sequential"` always runs D iterations).
Here: a MAF on the 8x8 digits (64-D), in logit space as in the MAF paper: the pixels are uniformly
dequantized and mapped by `ScaledSigmoid(alpha).inverse`, `t = logit(alpha + (1 - 2 alpha) x)`
(`dgmjax.objectives.logit_space_log_prob` does both and also returns the bound on the pixels).
"""),
    code('''
from dgmjax.bijectors import ScaledSigmoid
from dgmjax.data import ArrayBatches, load_images
from dgmjax.dequantization import to_levels, uniform_dequantize
from dgmjax.objectives import bits_per_dim, logit_space_log_prob

digits, digits_test = load_images("digits", "train"), load_images("digits", "test")
ALPHA = 0.05
maf64 = MAF(event_size=64, num_layers=3, hidden_sizes=(256,), actnorm=True)


def digits_terms(key, params, images):
    log_p = lambda t: maf64.apply(params, t.reshape(t.shape[0], 64))  # t has the images' shape
    return logit_space_log_prob(key, log_p, images, 17, alpha=ALPHA)


def digits_loss(key, params, batch):  # the MAF paper's objective: -log p(t) in logit space
    return -jnp.mean(digits_terms(key, params, batch["image"])["logit_space"]), {}


def digits_eval(key, params, batch):
    terms = digits_terms(key, params, batch["image"])
    return {"nll_logit_space": -terms["logit_space"], "bpd_bound": bits_per_dim(terms["bound"], 64)}


x0, _ = uniform_dequantize(init_key, digits.images[:256], 17)
t0 = ScaledSigmoid(ALPHA).inverse(x0).reshape(256, 64)
state = TrainState.create(params=jax.jit(maf64.init)(init_key, t0),  # data-dependent ActNorm init
                          tx=make_optimizer(1e-3, num_steps=STEPS))
state = train(digits_loss, state, ArrayBatches({"image": digits.images}, 128, key=data_key),
              num_steps=STEPS, key=train_key, verbose=False)
params64 = state.params
metrics = make_evaluator(digits_eval, {"image": digits_test.images}, 360, eval_key)(state)
print(f"MAF on digits, test set: {metrics['nll_logit_space']:.1f} nats in logit space, "
      f"{metrics['bpd_bound']:.3f} bits/dim on the pixels (bound)")

run = jax.jit(lambda p, k, solver, tol: maf64.clone(tolerance=tol).apply(
    p, k, 64, solver=solver, method="sample_with_iterations"), static_argnums=(2, 3))
key = jax.random.PRNGKey(0)
x_seq, it_seq = run(params64, key, "sequential", 1e-5)
for tol in (1e-2, 1e-4, 1e-6):
    x_fp, it_fp = run(params64, key, "fixed_point", tol)
    print(f"tolerance {tol:g}: passes per layer {np.asarray(it_fp).tolist()} (sequential: "
          f"{np.asarray(it_seq).tolist()}), max |dx| = {float(jnp.max(jnp.abs(x_fp - x_seq))):.2e}")
'''),
    code('''
images = np.asarray(to_levels(ScaledSigmoid(ALPHA).forward(x_seq), 17)).reshape(-1, 8, 8)
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
(17 levels) with uniform dequantization, with the library's training loop (`dgmjax.training.train`, the
loop `experiments/main.py` runs too).
"""),
    code(INSTALL),
    code(FAST),
    code('''
import math

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dgmjax.data import ArrayBatches, load_images
from dgmjax.dequantization import to_levels, uniform_dequantize
from dgmjax.models import Glow, ImageRealNVP
from dgmjax.objectives import bits_per_dim, dequantization_bound
from dgmjax.training import TrainState, make_evaluator, make_optimizer, train

train_set, test_set = load_images("digits", "train"), load_images("digits", "test")
'''),
    md("""
`fit` below is the whole recipe: the loss is the uniform-dequantization bound in bits per dimension
(`dequantization_bound`: log p((x + u)/K) - D log K with u ~ U[0, 1)), the optimizer AdamW with warmup,
cosine decay and gradient clipping, an EMA of the parameters for evaluation, and `make_evaluator` for
the bound on the whole test set. `jax.jit(model.init)` initializes in one compiled program, faster than
running the initializers op by op. Give `train` a `workdir=` to keep checkpoints and metrics (a rerun
resumes from them).
"""),
    code('''
def fit(model, train_data, test_data, steps=STEPS, batch_size=64, verbose=False):
    """Trains `model` on dequantized images; returns (test bits/dim bound, trained parameters)."""
    num_levels, num_dims = train_data.num_levels, math.prod(train_data.image_shape)
    init_key, data_key, train_key, eval_key = jax.random.split(jax.random.PRNGKey(0), 4)

    def bound(key, params, images):  # a lower bound on log P(images), nats per image
        return dequantization_bound(key, lambda x: model.apply(params, x), images, num_levels)

    def loss_fn(key, params, batch):
        return jnp.mean(bits_per_dim(bound(key, params, batch["image"]), num_dims)), {}

    def eval_fn(key, params, batch):
        return {"bpd_bound": bits_per_dim(bound(key, params, batch["image"]), num_dims)}

    batches = ArrayBatches({"image": train_data.images}, batch_size, key=data_key)
    x0, _ = uniform_dequantize(init_key, batches(0)["image"], num_levels)
    state = TrainState.create(
        params=jax.jit(model.init)(init_key, x0),  # Glow's ActNorm initializes from this batch
        tx=make_optimizer(1e-3, num_steps=steps, warmup_steps=200, grad_clip_norm=20.0), ema_decay=0.999)
    state = train(loss_fn, state, batches, num_steps=steps, key=train_key, verbose=verbose)
    evaluate = make_evaluator(eval_fn, {"image": test_data.images}, 360, eval_key)
    return evaluate(state)["bpd_bound"], state.eval_params()  # the EMA parameters


realnvp = ImageRealNVP(image_shape=(8, 8, 1), num_scales=2, num_checkerboard=3, num_channelwise=3,
                       features=32, num_blocks=1)
bpd_realnvp, p_realnvp = fit(realnvp, train_set, test_set)
glow = Glow(image_shape=(8, 8, 1), num_scales=2, num_steps=4, features=32)
bpd_glow, p_glow = fit(glow, train_set, test_set)
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
    sample = jax.jit(lambda p, k, m=model: m.apply(p, k, 16, method=m.sample))  # in [0, 1)
    show(np.asarray(to_levels(sample(params, jax.random.PRNGKey(0)), 17)), f"{name} samples")
'''),
    md("""
## Latent interpolation

The flow is invertible: map two test digits to their latents (`bijector.inverse`, data -> noise),
interpolate, and map every point back (`bijector.forward`).
"""),
    code('''
@jax.jit
def interpolate(params, x_pair, alphas):
    bij = realnvp.bind(params).bijector()
    z_pair = bij.inverse(x_pair)  # data -> latent
    z_path = (1 - alphas) * z_pair[0] + alphas * z_pair[1]
    return bij.forward(z_path)  # latent -> data


x_pair = (jnp.asarray(test_set.images[:2], jnp.float32) + 0.5) / 17
path = interpolate(p_realnvp, x_pair, jnp.linspace(0, 1, 8)[:, None, None, None])
show(np.asarray(to_levels(path, 17)), "interpolation in latent space")
'''),
    md("""
## The effect of depth

More coupling layers per scale: a richer map, a better likelihood (at the same number of steps), and
the same compile time, since identical layers run in one `lax.scan` (a `LayerStack`). The RealNVP above
is the point at depth 3.
"""),
    code('''
depths = (1, 3) if FAST else (1, 2, 3, 4, 8)
results = {3: bpd_realnvp}  # trained above
for depth in depths:
    if depth not in results:
        model = ImageRealNVP(image_shape=(8, 8, 1), num_scales=2, num_checkerboard=depth,
                             num_channelwise=depth, features=32, num_blocks=1)
        results[depth] = fit(model, train_set, test_set)[0]
plt.plot(depths, [results[d] for d in depths], "o-")
plt.xlabel("coupling layers per scale (checkerboard and channel-wise)")
plt.ylabel("test bits/dim (bound)"); plt.show()
'''),
    md("""
## MNIST

The same multi-scale flow on 28x28 MNIST (256 levels), in the full mode only (`FAST = False`).
`load_images` downloads the four original files once (to `~/.cache/dgmjax/datasets`, checksums verified).
Offline, set `MNIST_DIR` to a folder holding them (`train-images-idx3-ubyte.gz`,
`train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`).
`experiments/configs/mnist.py` is the full run.
"""),
    code('''
MNIST_DIR = None  # None downloads MNIST; offline, a folder with the four original .gz files
if not FAST:
    mnist_train = load_images("mnist", "train", manual_dir=MNIST_DIR)
    mnist_test = load_images("mnist", "test", manual_dir=MNIST_DIR)
    mnist_flow = ImageRealNVP(image_shape=(28, 28, 1), num_scales=3, features=32, num_blocks=1)
    bpd_mnist, p_mnist = fit(mnist_flow, mnist_train, mnist_test, verbose=True)
    print(f"MNIST test bits/dim (bound): {bpd_mnist:.3f}")
    x = mnist_flow.apply(p_mnist, jax.random.PRNGKey(0), 16, method=mnist_flow.sample)
    levels = np.asarray(to_levels(x, 256))
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
    for ax, im in zip(axes.ravel(), levels):
        ax.imshow(im[..., 0], cmap="gray", vmin=0, vmax=255); ax.axis("off")
    plt.show()
else:
    print("skipped in FAST mode")
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

from dgmjax.data import ArrayBatches
from dgmjax.distributions import DiscretizedLogisticMixture, LogisticMixtureHead
from dgmjax.training import TrainState, make_optimizer, train
'''),
    md("""
## The discretized logistic mixture, edge levels included

`DiscretizedLogisticMixture` is a distrax distribution over the levels 0..L-1. A mixture with most of its
mass beyond the edge of the range still sums to one over the levels: the lowest and highest levels absorb
the tails, and its samples fall on the levels with those probabilities.
"""),
    code('''
L = 17
levels = jnp.arange(L)
mixture = DiscretizedLogisticMixture(
    logit_weights=jnp.log(jnp.array([0.5, 0.3, 0.2])),
    means=jnp.array([-1.3, 0.1, 0.9]),  # on [-1, 1]; the first component sits beyond the lowest level
    log_scales=jnp.log(jnp.array([0.15, 0.1, 0.2])), num_levels=L)
pmf = jnp.exp(mixture.log_prob(levels))
draws = np.asarray(mixture.sample(seed=jax.random.PRNGKey(0), sample_shape=(20_000,)))
plt.bar(np.arange(L), pmf, label="P(level)")
plt.plot(np.arange(L), np.bincount(draws, minlength=L) / draws.size, "k.", label="sample frequency")
plt.xlabel("level"); plt.legend()
plt.title(f"sum over all {L} levels = {float(pmf.sum()):.6f}"); plt.show()
'''),
    md("""
## A discretized 2-D density, two ways

Take the moons density and discretize each coordinate to 16 levels. Fit (a) a discretized
mixture model, P(y1) P(y2 | y1), and (b) a continuous flow on uniformly dequantized data, and look at
what the flow learns inside each cell. A likelihood head (`LogisticMixtureHead(5)`) turns 15 numbers
into a discretized mixture of 5 logistics; `dequantization_bound` is the uniform-dequantization bound.
"""),
    code('''
from dgmjax.data import sample_toy
from dgmjax.models import RealNVP
from dgmjax.nn import MLP
from dgmjax.objectives import dequantization_bound

K = 16
def discretize(x):  # [-4, 4] -> 16 levels per coordinate
    return jnp.clip(jnp.floor((x + 4.0) / 8.0 * K), 0, K - 1).astype(jnp.int32)

data = discretize(sample_toy(jax.random.PRNGKey(0), "moons", 20000))

# (a) P(y1) P(y2 | y1): a 5-component discretized mixture for y1, and one for y2 from an MLP of y1.
head = LogisticMixtureHead(5)
start = jnp.asarray(head.initial_params(K))  # components spread over the range
net = MLP((head.num_params(K),), (64,))
def log_p_mixture(p, y):
    first = head(p["y1"], K)  # P(y1)
    second = head(start + net.apply(p["mlp"], 2.0 * y[:, :1] / (K - 1) - 1.0), K)  # P(y2 | y1)
    return first.log_prob(y[:, 0]) + second.log_prob(y[:, 1])

params_a = {"y1": start, "mlp": net.init(jax.random.PRNGKey(1), jnp.zeros((1, 1)))}

# (b) RealNVP on x = (y + u) / K, u ~ U[0, 1), moved to [-3, 3]: the uniform-dequantization bound.
flow = RealNVP(event_size=2, num_layers=6, hidden_sizes=(64, 64))
params_b = flow.init(jax.random.PRNGKey(2), jnp.zeros((1, 2)))
def flow_log_prob(p):  # the flow's density on [0, 1)^2
    return lambda x: flow.apply(p, (x - 0.5) * 6.0) + 2 * math.log(6.0)

def nll_a(key, p, batch):
    return -jnp.mean(log_p_mixture(p, batch["y"])), {}

def nll_b(key, p, batch):
    return -jnp.mean(dequantization_bound(key, flow_log_prob(p), batch["y"], K)), {}

def fit(loss_fn, params, arrays, steps=STEPS * 2):
    """The library's loop on batches of 256 drawn from `arrays`; returns the trained parameters."""
    state = TrainState.create(params=params, tx=make_optimizer(2e-3, num_steps=steps))
    batches = ArrayBatches(arrays, 256, key=jax.random.PRNGKey(10))
    return train(loss_fn, state, batches, num_steps=steps, key=jax.random.PRNGKey(11), verbose=False).params

params_a = fit(nll_a, params_a, {"y": data})
params_b = fit(nll_b, params_b, {"y": data})
loss_a = float(jax.jit(nll_a)(None, params_a, {"y": data})[0])  # over all 20000 points
loss_b = float(jax.jit(nll_b)(jax.random.PRNGKey(3), params_b, {"y": data})[0])
print(f"discretized mixture: -log P = {loss_a:.3f} nats; flow, uniform dequantization bound: {loss_b:.3f}")
'''),
    code('''
g = np.linspace(0, 1, 256, endpoint=False, dtype=np.float32) + 0.5 / 256
xx, yy = np.meshgrid(g, g, indexing="ij")
pts = jnp.asarray(np.stack([xx, yy], -1).reshape(-1, 2))
dens = np.exp(np.asarray(flow_log_prob(params_b)(pts))).reshape(256, 256)
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
conditional flow, `VariationalDequantizer`) lets it be smooth instead, and the bound
`E_q[log p(y+u) - log q(u|y)]` rises toward `log P(y)`. The importance-weighted estimate with S samples
(`importance_weighted_dequantization_bound`) tightens either bound further.
"""),
    code('''
from dgmjax.models import VariationalDequantizer
from dgmjax.objectives import importance_weighted_dequantization_bound

images = data.reshape(-1, 1, 2, 1)  # treat a pair as a 1x2 image for the dequantizer
deq = VariationalDequantizer(image_shape=(1, 2, 1), num_levels=K, num_layers=4, features=32)
pair_log_prob = lambda p: (lambda x: flow_log_prob(p)(x.reshape(x.shape[0], 2)))
deq_params = jax.jit(deq.init)(jax.random.PRNGKey(3), jax.random.PRNGKey(4), images[:8])
params_c = {"flow": params_b, "deq": deq_params}  # the flow starts from (b)

def nll_c(key, p, batch):
    q = lambda k, y: deq.apply(p["deq"], k, y)  # (key, y) -> (u, log q(u|y))
    return -jnp.mean(dequantization_bound(key, pair_log_prob(p["flow"]), batch["y"], K, dequantizer=q)), {}

params_c = fit(nll_c, params_c, {"y": images})
test = images[:500]
rows = []
for name, fp, q in (("uniform", params_b, None),
                    ("variational", params_c["flow"], lambda k, y: deq.apply(params_c["deq"], k, y))):
    for s in (1, 16):
        est = importance_weighted_dequantization_bound(jax.random.PRNGKey(5), pair_log_prob(fp), test, K, s,
                                                       dequantizer=q)
        rows.append((name, s, float(-est.mean())))
for name, s, v in rows:
    print(f"{name:12s} S={s:3d}: -log P(y) <= {v:.4f} nats")
'''),
    md("""
## The integer discrete flow

A flow that maps integers to integers (additive couplings with rounded translations) has no Jacobian
term: `log P(x) = log P_Z(f(x))` exactly, with no dequantization and no bound. dgmjax's
`IntegerDiscreteFlow` factors out half the channels at each scale with a prior conditioned on the kept
half, which learns with exact gradients; the couplings learn through the rounding by straight-through
gradients, and on the digits that still costs more than they add (the ablation in
`experiments/README.md`). `latent(x)` is the integer latent f(x) and `image(z)` maps it back exactly.
"""),
    code('''
from dgmjax.data import load_images
from dgmjax.models import IntegerDiscreteFlow
from dgmjax.objectives import bits_per_dim
from dgmjax.training import make_evaluator

digits_train, digits_test = load_images("digits", "train"), load_images("digits", "test")
idf = IntegerDiscreteFlow(image_shape=(8, 8, 1), num_levels=17, num_layers=4, features=16)

def idf_loss(key, params, batch):  # exact bits/dim: no noise, no bound
    return jnp.mean(bits_per_dim(idf.apply(params, batch["image"]), 64)), {}

def idf_eval(key, params, batch):
    log_p = idf.apply(params, batch["image"])
    return {"nll_nats": -log_p, "bpd": bits_per_dim(log_p, 64)}

init_key, data_key, train_key, eval_key = jax.random.split(jax.random.PRNGKey(0), 4)
batches = ArrayBatches({"image": digits_train.images}, 64, key=data_key)
state = TrainState.create(params=jax.jit(idf.init)(init_key, batches(0)["image"]),  # the prior fits the data
                          tx=make_optimizer(1e-3, num_steps=STEPS, warmup_steps=200, grad_clip_norm=20.0),
                          ema_decay=0.999)
state = train(idf_loss, state, batches, num_steps=STEPS, key=train_key, verbose=False)
final = make_evaluator(idf_eval, {"image": digits_test.images}, 360, eval_key)(state)
print(f"integer flow on digits: {final['nll_nats']:.2f} nats per image, {final['bpd']:.3f} bits/dim (exact)")

@jax.jit
def round_trip(params, x):
    z = idf.apply(params, x, method=idf.latent)
    return z, idf.apply(params, z, method=idf.image)

x = jnp.asarray(digits_test.images[:16])
z, x_back = round_trip(state.eval_params(), x)
print(f"the latent holds integers: {bool(jnp.all(z == jnp.round(z)))}; image(latent(x)) == x: "
      f"{bool(jnp.all(x_back == x))}")
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

dgmjax's `VAE` is composed of an encoder q(z|x), a decoder p(x|z) and a prior p(z), each a Flax module
that returns a distrax distribution; the ELBO, IWAE, q_agg and the surgery are pure functions of those
distributions (`dgmjax.objectives`).
"""),
    code(INSTALL),
    code(FAST),
    code('''
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dgmjax.data import ArrayBatches, load_images
from dgmjax.distributions import CategoricalHead
from dgmjax.models import (
    MAF,
    VAE,
    FlowPrior,
    GaussianEncoder,
    GaussianMixturePrior,
    MLPDecoder,
    StandardNormalPrior,
    VampPrior,
)
from dgmjax.objectives import aggregated_posterior, elbo, elbo_surgery
from dgmjax.training import TrainState, make_optimizer, train

train_set, test_set = load_images("digits", "train"), load_images("digits", "test")
train_x, test_x = jnp.asarray(train_set.images), jnp.asarray(test_set.images)

PRIORS = {  # p(z) on a 2-D latent space
    "standard": StandardNormalPrior(latent_size=2),
    "gmm": GaussianMixturePrior(latent_size=2, num_components=50),
    "maf": FlowPrior(MAF(event_size=2, num_layers=4, hidden_sizes=(64,))),
    "vamp": VampPrior(num_components=50, input_size=64),  # 50 learned pseudo-images
}


def train_vae(prior, steps=STEPS * 3):
    model = VAE(data_shape=(8, 8, 1), num_levels=17,
                encoder=GaussianEncoder(latent_size=2, hidden_sizes=(256, 256)),
                decoder=MLPDecoder((8, 8, 1), CategoricalHead(), num_levels=17, hidden_sizes=(256, 256)),
                prior=prior)

    def loss_fn(key, params, batch):  # the negative mean ELBO
        terms = model.apply(params, key, batch["x"])
        return -jnp.mean(terms["elbo"]), {name: jnp.mean(t) for name, t in terms.items()}

    init_key, data_key, train_key = jax.random.split(jax.random.PRNGKey(0), 3)
    batches = ArrayBatches({"x": train_set.images}, 128, key=data_key)
    state = TrainState.create(params=jax.jit(model.init)(init_key, init_key, batches(0)["x"]),
                              tx=make_optimizer(1e-3, num_steps=steps, warmup_steps=200, grad_clip_norm=20.0))
    return model, train(loss_fn, state, batches, num_steps=steps, key=train_key, verbose=False).params


def distributions(model, params, x):
    """q(z|x) for the batch x, z -> p(x|z), and p(z) of a trained VAE."""
    return (model.apply(params, x, method=model.posterior),
            lambda z: model.apply(params, z, method=model.likelihood),
            model.apply(params, method=model.prior_distribution))


models = {name: train_vae(prior) for name, prior in PRIORS.items()}
'''),
    code('''
fig, axes = plt.subplots(2, 4, figsize=(12, 6))
for col, (prior_name, (model, params)) in enumerate(models.items()):
    posterior, _, prior = distributions(model, params, test_x)
    ext = float(max(3.0, np.abs(np.asarray(posterior.mean())).max() * 1.2))
    g = np.linspace(-ext, ext, 120, dtype=np.float32)
    grid = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))
    panels = ((prior.log_prob(grid), f"{prior_name} prior p(z)"),
              (aggregated_posterior(posterior).log_prob(grid), "q_agg(z), test set"))
    for row, (log_density, label) in enumerate(panels):
        img = np.exp(np.asarray(log_density)).reshape(120, 120)
        axes[row, col].imshow(img, origin="lower", extent=(-ext, ext, -ext, ext), cmap="magma")
        axes[row, col].set_title(label, fontsize=9)
        axes[row, col].set_xticks([]); axes[row, col].set_yticks([])
plt.tight_layout(); plt.show()
'''),
    md("""
## The surgery table across priors

`elbo_surgery(key, x, encoder, prior)` estimates the average KL, the mutual information `I_q[x, z]`
(at most `log n`) and the marginal KL `KL(q_agg || p)` on the test set, evaluating `q_agg` as the mixture
over all n points.
"""),
    code('''
print(f"{'prior':9s} {'ELBO':>8s} {'recon':>8s} {'avg KL':>7s} {'MI':>6s} {'log n':>6s} {'marg KL':>8s}")
for prior_name, (model, params) in models.items():
    terms = model.apply(params, jax.random.PRNGKey(0), test_x)
    encoder = lambda x, m=model, p=params: m.apply(p, x, method=m.posterior)
    prior = model.apply(params, method=model.prior_distribution)
    s = elbo_surgery(jax.random.PRNGKey(1), test_x, encoder, prior, num_samples=8,
                     reconstruction=np.asarray(terms["reconstruction"]))
    print(f"{prior_name:9s} {s['elbo']:8.2f} {s['reconstruction']:8.2f} {s['avg_kl']:7.2f} "
          f"{s['mutual_info']:6.2f} {s['log_n']:6.2f} {s['marginal_kl']:8.2f}")
'''),
    md("""
## The aggregated posterior is the optimal prior — on the data it was built from

Swap in `q_agg` of the **training** set as the prior (`elbo` takes any distribution as the prior): the
marginal KL vanishes on the training set by construction, but test points see a mixture of training
posteriors, not their own.
"""),
    code('''
model, params = models["standard"]
q_agg_train = aggregated_posterior(model.apply(params, train_x, method=model.posterior))
for name, x in (("train", train_x), ("test", test_x)):
    posterior, likelihood, prior = distributions(model, params, x)
    key = jax.random.PRNGKey(2)
    elbo_std = float(elbo(key, x, posterior, likelihood, prior)["elbo"].mean())
    elbo_agg = float(elbo(key, x, posterior, likelihood, q_agg_train)["elbo"].mean())
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
import distrax
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dgmjax.bijectors import InverseAutoregressive, Planar
from dgmjax.nn import MADE
from dgmjax.training import TrainState, make_optimizer, train
'''),
    md("""
## Fitting a 2-D unnormalized density by reverse KL

The target is a ring-shaped "energy" density. Three families: a Gaussian, a Gaussian followed by 8
planar steps, and one followed by 4 IAF steps (MADE conditioners). Each is a bijector applied to
standard normal noise eps (the Gaussian's mean and scale are its first step), and each minimizes
`E_q[log q(z) - log p~(z)]`, an expectation over eps: the training batches are draws of eps.
"""),
    code('''
def log_target(z):  # an unnormalized ring with two lobes
    r = jnp.linalg.norm(z, axis=-1)
    return -0.5 * ((r - 2.0) / 0.4) ** 2 + jnp.log(jnp.exp(-0.5 * ((z[..., 0] - 2) / 0.6) ** 2)
                                                    + jnp.exp(-0.5 * ((z[..., 0] + 2) / 0.6) ** 2) + 1e-8)

made = MADE(2, (32, 32))
standard = distrax.MultivariateNormalDiag(jnp.zeros(2))

def make_q(p, kind):
    gaussian = distrax.Block(distrax.ScalarAffine(p["loc"], jnp.exp(p["log_scale"])), 1)
    if kind == "gaussian":
        steps = []
    elif kind == "planar":
        steps = [Planar(p["u"][i], p["w"][i], p["b"][i]) for i in range(8)][::-1]  # step 0 runs first
    else:
        steps = [InverseAutoregressive(lambda x, q=q: made.apply(q, x)) for q in p["made"]]
    return distrax.Transformed(standard, distrax.Chain(steps + [gaussian]))

def init(kind, key):
    k = jax.random.split(key, 4)
    p = {"loc": jnp.zeros(2), "log_scale": jnp.zeros(2)}
    if kind == "planar":
        p.update(u=0.1 * jax.random.normal(k[0], (8, 2)), w=jax.random.normal(k[1], (8, 2)),
                 b=0.1 * jax.random.normal(k[2], (8,)))
    if kind == "iaf":
        p["made"] = [made.init(kk, jnp.zeros((1, 2))) for kk in jax.random.split(k[3], 4)]
    return p

def sample_and_log_q(p, kind, eps):
    """z = f(eps) and log q(z): one pass of the bijector, for all three families."""
    q = make_q(p, kind)
    z, log_det = q.bijector.forward_and_log_det(eps)
    return z, q.distribution.log_prob(eps) - log_det

def reverse_kl(kind):
    def loss_fn(key, params, batch):
        z, log_q = sample_and_log_q(params, kind, batch["eps"])
        return jnp.mean(log_q - log_target(z)), {}
    return loss_fn

noise = lambda step: {"eps": jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(1), step), (512, 2))}

def fit(kind, steps=STEPS * 3):
    state = TrainState.create(params=init(kind, jax.random.PRNGKey(0)),
                              tx=make_optimizer(5e-3, num_steps=steps))
    state = train(reverse_kl(kind), state, noise, num_steps=steps, key=jax.random.PRNGKey(2), verbose=False)
    return state.params

eps_test = jax.random.normal(jax.random.PRNGKey(3), (10_000, 2))
fits = {}
for kind in ("gaussian", "planar", "iaf"):
    p = fit(kind)
    fits[kind] = (p, float(jax.jit(reverse_kl(kind))(None, p, {"eps": eps_test})[0]))
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

On binarized digits (the 8x8 digits thresholded at 8/16; `experiments/configs/vae_binarized_mnist.py`
compares posteriors on binarized MNIST), the same encoder MLP and decoder with a Gaussian
(`GaussianEncoder`), a planar (`PlanarEncoder`) and an IAF (`IAFEncoder`) posterior. IWAE with k samples
(`dgmjax.objectives.iwae_bound`) estimates log p(x); `IWAE - ELBO` estimates `KL(q(z|x) || p(z|x))`,
which a richer posterior shrinks.
"""),
    code('''
from dgmjax.data import ArrayBatches, load_images
from dgmjax.distributions import BernoulliHead
from dgmjax.models import VAE, GaussianEncoder, IAFEncoder, MLPDecoder, PlanarEncoder, StandardNormalPrior
from dgmjax.objectives import iwae_bound

binarize = lambda d: (d.images >= 8).astype(np.int32)
train_x = binarize(load_images("digits", "train"))
test_x = jnp.asarray(binarize(load_images("digits", "test")))
ENCODERS = {  # q(z|x) on an 8-D latent space
    "gaussian": GaussianEncoder(latent_size=8, hidden_sizes=(128, 128)),
    "planar": PlanarEncoder(latent_size=8, hidden_sizes=(128, 128), num_layers=4),
    "iaf": IAFEncoder(latent_size=8, hidden_sizes=(128, 128), num_layers=4, flow_hidden_sizes=(64,),
                      context_size=16),
}


def test_bounds(vae, params, key, k=200 if FAST else 1000):
    """The test set's mean ELBO and mean k-sample IWAE bound."""
    posterior = vae.apply(params, test_x, method=vae.posterior)
    likelihood = lambda z: vae.apply(params, z, method=vae.likelihood)
    prior = vae.apply(params, method=vae.prior_distribution)
    elbo = vae.apply(params, key, test_x, num_samples=k)["elbo"]  # its expectation, closely
    return elbo.mean(), iwae_bound(key, test_x, posterior, likelihood, prior, k, chunk_size=100).mean()


num_steps = STEPS * 4
init_key, data_key, train_key = jax.random.split(jax.random.PRNGKey(0), 3)
batches = ArrayBatches({"x": train_x}, 64, key=data_key)
rows = []
for posterior_name, encoder in ENCODERS.items():
    vae = VAE(data_shape=(8, 8, 1), num_levels=2, encoder=encoder,
              decoder=MLPDecoder((8, 8, 1), BernoulliHead(), num_levels=2, hidden_sizes=(128, 128)),
              prior=StandardNormalPrior(latent_size=8))
    loss_fn = lambda key, params, batch, vae=vae: (-jnp.mean(vae.apply(params, key, batch["x"])["elbo"]), {})
    tx = make_optimizer(1e-3, num_steps=num_steps, warmup_steps=200, grad_clip_norm=20.0)
    state = TrainState.create(params=jax.jit(vae.init)(init_key, init_key, batches(0)["x"]), tx=tx)
    params = train(loss_fn, state, batches, num_steps=num_steps, key=train_key, verbose=False).params
    test_elbo, iwae = jax.jit(lambda p, k, vae=vae: test_bounds(vae, p, k))(params, jax.random.PRNGKey(1))
    rows.append((posterior_name, float(test_elbo), float(iwae)))
for posterior_name, test_elbo, iwae in rows:
    print(f"{posterior_name:9s}: ELBO {test_elbo:8.3f}  IWAE {iwae:8.3f}  gap {iwae - test_elbo:6.3f} nats")
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
