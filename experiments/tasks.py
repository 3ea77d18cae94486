"""Task wiring: a config's data + model + objective, as `train.py` consumes it.

The losses are module-level functions of (key, params, batch) built on
`dgmjax.objectives`; `build_task(config)` binds the model and data to them.
Every config key is read here or in `train.py`, with no default of its own:
the defaults are `configs/default.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dgmjax.data import (
    IMAGE_DATASETS,
    TOY_DENSITIES,
    ArrayBatches,
    SamplerBatches,
    load_images,
    sample_toy,
    toy_log_prob,
)
from dgmjax.dequantization import to_levels, uniform_dequantize
from dgmjax.distributions import (
    BernoulliHead,
    CategoricalHead,
    GaussianHead,
    LogisticMixtureHead,
    RGBLogisticMixtureHead,
)
from dgmjax.models import (
    IAF,
    MAF,
    VAE,
    FlowPrior,
    GaussianEncoder,
    GaussianMixturePrior,
    Glow,
    IAFEncoder,
    ImageRealNVP,
    IntegerDiscreteFlow,
    MLPDecoder,
    PixelCNN,
    PlanarEncoder,
    RealNVP,
    StandardNormalPrior,
    VampPrior,
    VariationalDequantizer,
)
from dgmjax.objectives import (
    aggregated_posterior,
    bits_per_dim,
    dequantization_bound,
    importance_weighted_dequantization_bound,
    iwae_bound,
    logit_space_log_prob,
)

# name -> (module class, what it models). "images": a density on [0,1)^D met through
# dequantization; "discrete_images": a model of the integers; "vectors": a vector flow (on an image
# dataset, fitted to the flattened images in logit space, the MAF paper's setup).
MODELS: dict[str, tuple[type, str]] = {
    "image_realnvp": (ImageRealNVP, "images"),
    "glow": (Glow, "images"),
    "pixelcnn": (PixelCNN, "discrete_images"),
    "idf": (IntegerDiscreteFlow, "discrete_images"),
    "realnvp": (RealNVP, "vectors"),
    "maf": (MAF, "vectors"),
    "iaf": (IAF, "vectors"),
    "vae": (VAE, "vae"),
}
HEADS = ("bernoulli", "categorical", "mixture", "gaussian")
PRIORS = ("standard", "gmm", "vamp", "realnvp", "maf", "iaf")
POSTERIORS = ("gaussian", "iaf", "planar")


@dataclasses.dataclass(frozen=True)
class Task:
    """A trainable model paired with its data and objective.

    Attributes:
      name: a short description for logs.
      init: `(key, batch) -> params` (the variables; may use the batch for
        data-dependent initialization).
      loss_fn: `(key, params, batch) -> (loss, metrics)`, averaged over the batch.
      eval_fn: `(key, params, batch) -> {name: per-example values (B,)}`.
      make_batches: `(batch_size, key, sharding) -> batches`, `batches(step)`
        the batch of a global step.
      test_arrays: the evaluation split as host arrays.
      save_samples: `(params, key, path_prefix) -> [written paths]`, or None.
      headline: `(metrics) -> str`, one line of final results.
    """

    name: str
    init: Callable
    loss_fn: Callable
    eval_fn: Callable
    make_batches: Callable
    test_arrays: Mapping[str, np.ndarray]
    save_samples: Callable | None
    headline: Callable[[dict], str]


def _as_dict(cfg) -> dict[str, Any]:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def head_from_config(name: str, num_mixtures: int, channels: int = 1):
    """The likelihood head a config's string names ("mixture" couples RGB channels)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; expected one of {HEADS}.")
    if name == "mixture":
        return RGBLogisticMixtureHead(num_mixtures) if channels == 3 else LogisticMixtureHead(num_mixtures)
    return {"bernoulli": BernoulliHead(), "categorical": CategoricalHead(), "gaussian": GaussianHead()}[name]


def make_model(name: str, kwargs: Mapping[str, Any], **shape_kwargs):
    """Model `name` from its config section `kwargs`, rejecting unknown keys by name."""
    if name not in MODELS:
        raise ValueError(f"unknown `model.name` {name!r}; expected one of {sorted(MODELS)}.")
    if name == "vae":
        return make_vae(kwargs, **shape_kwargs)
    cls = MODELS[name][0]
    kw = {k: tuple(val) if isinstance(val, list) else val for k, val in kwargs.items()}
    if cls is PixelCNN:
        channels = shape_kwargs["image_shape"][-1]
        kw["head"] = head_from_config(kw.pop("head"), kw.pop("num_mixtures"), channels)
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise ValueError(f"`model` config keys {unknown} are not fields of {cls.__name__}; "
                         f"expected a subset of {sorted(fields - set(shape_kwargs))}.")
    return cls(**shape_kwargs, **kw)


VAE_KEYS = ("latent_size", "hidden_sizes", "activation", "decoder", "num_mixtures", "prior",
            "prior_components", "prior_flow_layers", "prior_flow_hidden", "posterior",
            "posterior_flow_layers", "posterior_flow_hidden", "posterior_context")


def make_vae(cfg: Mapping[str, Any], *, data_shape, num_levels) -> VAE:
    """A VAE from the config's model section: encoder, decoder and prior by name."""
    unknown = sorted(set(cfg) - set(VAE_KEYS))
    missing = sorted(set(VAE_KEYS) - set(cfg))
    if unknown or missing:
        raise ValueError(f"the VAE `model` config has unknown keys {unknown} and lacks {missing}; expected "
                         f"exactly {sorted(VAE_KEYS)}.")
    c = {k: tuple(val) if isinstance(val, list) else val for k, val in cfg.items()}
    d, hidden, act = c["latent_size"], c["hidden_sizes"], c["activation"]
    if c["posterior"] not in POSTERIORS:
        raise ValueError(f"`model.posterior` must be one of {POSTERIORS}; got {c['posterior']!r}.")
    if c["prior"] not in PRIORS:
        raise ValueError(f"`model.prior` must be one of {PRIORS}; got {c['prior']!r}.")
    if c["posterior"] == "gaussian":
        encoder = GaussianEncoder(d, hidden, act)
    elif c["posterior"] == "iaf":
        encoder = IAFEncoder(d, hidden, act, c["posterior_flow_layers"], c["posterior_flow_hidden"],
                             c["posterior_context"])
    else:
        encoder = PlanarEncoder(d, hidden, act, c["posterior_flow_layers"])
    head = head_from_config(c["decoder"], c["num_mixtures"])
    decoder = MLPDecoder(tuple(data_shape), head, num_levels, tuple(hidden)[::-1], act)
    flow_kw = dict(event_size=d, num_layers=c["prior_flow_layers"], hidden_sizes=c["prior_flow_hidden"])
    prior = {
        "standard": lambda: StandardNormalPrior(d),
        "gmm": lambda: GaussianMixturePrior(d, c["prior_components"]),
        "vamp": lambda: VampPrior(c["prior_components"], math.prod(data_shape),
                                  bounded=num_levels is not None),
        "realnvp": lambda: FlowPrior(RealNVP(**flow_kw, coupling="masked", permutation="random")),
        "maf": lambda: FlowPrior(MAF(**flow_kw)),
        "iaf": lambda: FlowPrior(IAF(**flow_kw)),
    }[c["prior"]]()
    return VAE(tuple(data_shape), num_levels, encoder, decoder, prior)


# ------------------------------------------------------------------------------------- losses


def dequantized_flow_loss(key, params, batch, *, model, num_levels, dequantizer=None):
    """Mean bits/dim of the dequantization bound; params {"flow", "dequantizer"} when variational."""
    bound = _dequantized_bound(key, params, batch["image"], model, num_levels, dequantizer)
    bpd = jnp.mean(bits_per_dim(bound, math.prod(batch["image"].shape[1:])))
    return bpd, {"bpd_bound": bpd, "nll_bound_nats": -jnp.mean(bound)}


def _flow_and_dequantizer(params, model, dequantizer):
    if dequantizer is None:
        return (lambda x: model.apply(params, x)), None
    return (lambda x: model.apply(params["flow"], x),
            lambda k, x: dequantizer.apply(params["dequantizer"], k, x))


def _dequantized_bound(key, params, images, model, num_levels, dequantizer):
    log_prob, q = _flow_and_dequantizer(params, model, dequantizer)
    return dequantization_bound(key, log_prob, images, num_levels, dequantizer=q)


def dequantized_flow_eval(key, params, batch, *, model, num_levels, dequantizer=None, importance_samples=0):
    k1, k2 = jax.random.split(key)
    images = batch["image"]
    bound = _dequantized_bound(k1, params, images, model, num_levels, dequantizer)
    num_dims = math.prod(images.shape[1:])
    out = {"bpd_bound": bits_per_dim(bound, num_dims), "nll_bound_nats": -bound}
    if importance_samples > 1:
        log_prob, q = _flow_and_dequantizer(params, model, dequantizer)
        iw = importance_weighted_dequantization_bound(k2, log_prob, images, num_levels, importance_samples,
                                                      dequantizer=q, chunk_size=min(importance_samples, 8))
        out.update(bpd_iw=bits_per_dim(iw, num_dims), nll_iw_nats=-iw)
    return out


def discrete_loss(key, params, batch, *, model):
    """Mean exact bits/dim of a model of the integers (PixelCNN, integer flow)."""
    log_p = model.apply(params, batch["image"])
    bpd = jnp.mean(bits_per_dim(log_p, math.prod(batch["image"].shape[1:])))
    return bpd, {"bpd": bpd, "nll_nats": -jnp.mean(log_p)}


def discrete_eval(key, params, batch, *, model):
    log_p = model.apply(params, batch["image"])
    return {"bpd": bits_per_dim(log_p, math.prod(batch["image"].shape[1:])), "nll_nats": -log_p}


def _logit_terms(key, params, batch, model, num_levels, alpha):
    images = batch["image"]
    flat = lambda t: model.apply(params, t.reshape(t.shape[0], -1))
    return logit_space_log_prob(key, flat, images, num_levels, alpha=alpha)


def logit_space_loss(key, params, batch, *, model, num_levels, alpha):
    """Mean bits/dim of the pixels' bound for a vector flow in logit space (the MAF paper's setup)."""
    terms = _logit_terms(key, params, batch, model, num_levels, alpha)
    bpd = jnp.mean(bits_per_dim(terms["bound"], math.prod(batch["image"].shape[1:])))
    return bpd, {"bpd_bound": bpd, "logit_ll_nats": jnp.mean(terms["logit_space"])}


def logit_space_eval(key, params, batch, *, model, num_levels, alpha):
    terms = _logit_terms(key, params, batch, model, num_levels, alpha)
    return {"logit_ll_nats": terms["logit_space"], "nll_bound_nats": -terms["bound"],
            "bpd_bound": bits_per_dim(terms["bound"], math.prod(batch["image"].shape[1:]))}


def nll_loss(key, params, batch, *, model):
    """Mean negative log-likelihood (nats) of a density on vectors."""
    nll = -jnp.mean(model.apply(params, batch["x"]))
    return nll, {"nll_nats": nll}


def toy_eval(key, params, batch, *, model, toy):
    log_p = model.apply(params, batch["x"])
    return {"nll_nats": -log_p, "kl_nats": toy_log_prob(toy, batch["x"]) - log_p}


def vae_loss(key, params, batch, *, model):
    """Negative mean ELBO (nats per example)."""
    terms = model.apply(params, key, batch["x"])
    metrics = {k: jnp.mean(val) for k, val in terms.items()}
    return -metrics["elbo"], metrics


def vae_eval(key, params, batch, *, model, iwae_samples=0):
    k1, k2 = jax.random.split(key)
    x = batch["x"]
    out = dict(model.apply(params, k1, x))
    if model.num_levels is not None:
        out["bpd_bound"] = bits_per_dim(out["elbo"], math.prod(x.shape[1:]))
    if iwae_samples > 1:
        out["iwae"] = iwae_bound(k2, x, *vae_distributions(model, params, x), iwae_samples,
                                 chunk_size=min(iwae_samples, 100))
    return out


def vae_distributions(model: VAE, params, x):
    """(q(z|x), z -> p(x|z), p(z)) of a trained VAE, for the objectives."""
    return (model.apply(params, x, method=model.posterior),
            lambda z: model.apply(params, z, method=model.likelihood),
            model.apply(params, method=model.prior_distribution))


# ------------------------------------------------------------------------------------- tasks


def _check_splits(train, test):
    if train.num_levels != test.num_levels or train.image_shape != test.image_shape:
        raise ValueError(f"train and test splits disagree: {train.image_shape}/{train.num_levels} levels "
                         f"vs {test.image_shape}/{test.num_levels} levels.")


def _image_batches(train):
    return lambda batch_size, key, sharding: ArrayBatches(train.arrays(), batch_size, key=key,
                                                          sharding=sharding)


def _sample_writer(sample_fn, num_levels, title, num_samples):
    from plotting import save_image_grid

    sample = jax.jit(sample_fn, static_argnums=2)

    def save(params, key, prefix: Path):
        images = np.asarray(sample(params, key, num_samples))
        return [save_image_grid(images, num_levels, f"{prefix}.png", title=title)]

    return save


def image_flow_task(model, train, test, *, dequantizer=None, importance_samples=0, num_samples=64) -> Task:
    """A flow on [0, 1)^D fitted to integer images through (uniform or variational) dequantization."""
    _check_splits(train, test)
    kind = "uniform" if dequantizer is None else "variational"
    num_levels = train.num_levels
    kw = dict(model=model, num_levels=num_levels, dequantizer=dequantizer)

    def init(key, batch):
        k1, k2, k3 = jax.random.split(key, 3)
        x, _ = uniform_dequantize(k1, batch["image"], num_levels)
        flow = model.init(k2, x)
        if dequantizer is None:
            return flow
        return {"flow": flow, "dequantizer": dequantizer.init(k3, k1, batch["image"])}

    def sample(params, key, n):
        flow = params if dequantizer is None else params["flow"]
        return to_levels(model.apply(flow, key, n, method=model.sample), num_levels)

    def headline(m):
        line = (f"test bits/dim {m['bpd_bound']:.4f} ({kind}-dequantized upper bound; "
                f"{m['nll_bound_nats']:.2f} nats/image)")
        if "bpd_iw" in m:
            line += f"; importance-weighted (S={importance_samples}) {m['bpd_iw']:.4f}"
        return line

    name = type(model).__name__
    return Task(f"{name} on {train.name} ({kind} dequantization)", init,
                functools.partial(dequantized_flow_loss, **kw),
                functools.partial(dequantized_flow_eval, **kw, importance_samples=importance_samples),
                _image_batches(train), test.arrays(),
                _sample_writer(sample, num_levels, f"{name} samples, {train.name}", num_samples), headline)


def discrete_image_task(model, train, test, *, num_samples=16) -> Task:
    """A model of the integers themselves (PixelCNN, integer flow): exact log P(x), no bound."""
    _check_splits(train, test)
    num_levels, num_dims = train.num_levels, math.prod(train.image_shape)

    def sample(params, key, n):
        return jnp.clip(model.apply(params, key, n, method=model.sample), 0, num_levels - 1)

    def headline(m):
        return (f"test {m['nll_nats']:.2f} nats/image = {m['nll_nats'] / num_dims:.4f} nats/dim = "
                f"{m['bpd']:.4f} bits/dim (exact discrete likelihood)")

    name = type(model).__name__
    return Task(f"{name} on {train.name}", lambda key, batch: model.init(key, batch["image"]),
                functools.partial(discrete_loss, model=model), functools.partial(discrete_eval, model=model),
                _image_batches(train), test.arrays(),
                _sample_writer(sample, num_levels, f"{name} samples, {train.name}", num_samples), headline)


def logit_space_task(model, train, test, *, alpha=1e-6, num_samples=64) -> Task:
    """A vector flow on flattened images in logit space, as in the MAF paper's MNIST experiments."""
    _check_splits(train, test)
    num_levels, shape = train.num_levels, train.image_shape
    kw = dict(model=model, num_levels=num_levels, alpha=alpha)

    def init(key, batch):
        x, _ = uniform_dequantize(key, batch["image"], num_levels)
        return model.init(key, x.reshape(x.shape[0], -1))

    def sample(params, key, n):
        from dgmjax.bijectors import ScaledSigmoid

        t = model.apply(params, key, n, method=model.sample).reshape((n,) + tuple(shape))
        return to_levels(ScaledSigmoid(alpha).forward(t), num_levels)

    def headline(m):
        return (f"test log-likelihood in logit space {m['logit_ll_nats']:.1f} nats (alpha={alpha:g}); "
                f"{m['bpd_bound']:.4f} bits/dim on the pixels (upper bound)")

    name = type(model).__name__
    return Task(f"{name} on {train.name} in logit space", init, functools.partial(logit_space_loss, **kw),
                functools.partial(logit_space_eval, **kw), _image_batches(train), test.arrays(),
                _sample_writer(sample, num_levels, f"{name} samples, {train.name}", num_samples), headline)


def toy_task(model, toy, *, num_test, num_samples=2000, test_seed=1234) -> Task:
    """A density fitted to fresh samples of a 2-D toy; eval adds KL(data || model) from its exact density."""
    test_x = np.asarray(sample_toy(jax.random.PRNGKey(test_seed), toy, num_test))
    log_prob = jax.jit(lambda params, x: model.apply(params, x))
    sample = jax.jit(lambda params, key: model.apply(params, key, num_samples, method=model.sample))

    def save_samples(params, key, prefix: Path):
        from plotting import save_density_plot

        return [save_density_plot(
            lambda g: log_prob(params, jnp.asarray(g)), sample(params, key), test_x[:num_samples],
            f"{prefix}.png", true_log_prob_fn=lambda g: toy_log_prob(toy, jnp.asarray(g)),
            title=f"{type(model).__name__} on {toy}")]

    def headline(m):
        return f"test NLL {m['nll_nats']:.4f} nats, KL(data || model) {m['kl_nats']:.4f} nats"

    return Task(f"{type(model).__name__} on {toy}", lambda key, batch: model.init(key, batch["x"]),
                functools.partial(nll_loss, model=model), functools.partial(toy_eval, model=model, toy=toy),
                _toy_batches(toy), {"x": test_x}, save_samples, headline)


def _toy_batches(toy):
    return lambda batch_size, key, sharding: SamplerBatches(lambda k, n: sample_toy(k, toy, n), batch_size,
                                                            key=key, name="x", sharding=sharding)


def vae_task(model: VAE, make_batches, test_arrays, *, data_name, iwae_samples=0, num_samples=64) -> Task:
    """A VAE trained by maximizing the mean ELBO; eval adds bits/dim for discrete data and IWAE."""
    discrete = model.num_levels is not None

    def save_samples(params, key, prefix: Path):
        from plotting import save_image_grid, save_latent_plot

        paths = []
        if discrete and len(model.data_shape) == 3:
            images = np.asarray(jax.jit(lambda p, k: model.apply(p, k, num_samples, method=model.sample))(
                params, key))
            paths.append(save_image_grid(images, model.num_levels, f"{prefix}.png",
                                         title=f"VAE samples, {data_name}"))
        posterior = model.apply(params, jnp.asarray(test_arrays["x"][:2000]), method=model.posterior)
        if posterior.event_shape == (2,):
            prior = model.apply(params, method=model.prior_distribution)
            q_agg = aggregated_posterior(posterior)
            points = posterior.mean() if hasattr(posterior, "mean") else posterior.sample(seed=key)
            paths.append(save_latent_plot(lambda g: np.asarray(prior.log_prob(jnp.asarray(g))),
                                          lambda g: np.asarray(q_agg.log_prob(jnp.asarray(g))),
                                          np.asarray(points), f"{prefix}_latent.png",
                                          title=f"{data_name}: aggregated posterior vs prior"))
        return paths

    def headline(m):
        line = f"test ELBO {m['elbo']:.2f} nats (reconstruction {m['reconstruction']:.2f}, KL {m['kl']:.2f})"
        if "iwae" in m:
            line += f"; IWAE (k={iwae_samples}) {m['iwae']:.2f}"
        if "bpd_bound" in m:
            line += f"; {m['bpd_bound']:.4f} bits/dim bound"
        return line

    return Task(f"VAE ({type(model.encoder).__name__}, {type(model.prior).__name__}) on {data_name}",
                lambda key, batch: model.init(key, key, batch["x"]), functools.partial(vae_loss, model=model),
                functools.partial(vae_eval, model=model, iwae_samples=iwae_samples), make_batches,
                test_arrays, save_samples, headline)


def load_splits(data) -> tuple:
    kw = {"manual_dir": data["manual_dir"] or None, "data_dir": data["data_dir"] or None}
    return (load_images(data["name"], data["train_split"], **kw),
            load_images(data["name"], data["test_split"], **kw))


def build_task(config) -> Task:
    """The task of an experiment config (`data`, `model`, `objective` sections)."""
    data, model_cfg = _as_dict(config.data), _as_dict(config.model)
    objective = _as_dict(config.objective)
    name = model_cfg.pop("name")
    if name not in MODELS:
        raise ValueError(f"unknown `model.name` {name!r}; expected one of {sorted(MODELS)}.")
    kind = MODELS[name][1]
    num_samples = int(config.train.num_samples)
    if data["name"] not in IMAGE_DATASETS and data["name"] not in TOY_DENSITIES:
        raise ValueError(f"unknown `data.name` {data['name']!r}; expected one of "
                         f"{sorted(IMAGE_DATASETS) + list(TOY_DENSITIES)}.")
    toy = data["name"] in TOY_DENSITIES
    if kind == "vae":
        iwae = int(objective["eval_iwae_samples"])
        if toy:
            test_x = np.asarray(sample_toy(jax.random.PRNGKey(1234), data["name"], int(data["num_test"])))
            model = make_vae(model_cfg, data_shape=(2,), num_levels=None)
            return vae_task(model, _toy_batches(data["name"]), {"x": test_x}, data_name=data["name"],
                            iwae_samples=iwae, num_samples=num_samples)
        train, test = load_splits(data)
        model = make_vae(model_cfg, data_shape=train.image_shape, num_levels=train.num_levels)
        batches = lambda batch_size, key, sharding: ArrayBatches({"x": train.images}, batch_size, key=key,
                                                                 sharding=sharding)
        return vae_task(model, batches, {"x": test.images}, data_name=data["name"], iwae_samples=iwae,
                        num_samples=num_samples)
    if toy:
        if kind != "vectors":
            raise ValueError(f"`model.name` {name!r} models images; the 2-D toy {data['name']!r} needs a "
                             "vector model such as 'realnvp'.")
        model = make_model(name, model_cfg, event_size=2)
        return toy_task(model, data["name"], num_test=int(data["num_test"]),
                        num_samples=max(num_samples, 1000))
    train, test = load_splits(data)
    if kind == "vectors":
        model = make_model(name, model_cfg, event_size=math.prod(train.image_shape))
        return logit_space_task(model, train, test, alpha=float(objective["logit_alpha"]),
                                num_samples=num_samples)
    if kind == "discrete_images":
        model = make_model(name, model_cfg, image_shape=train.image_shape, num_levels=train.num_levels)
        return discrete_image_task(model, train, test, num_samples=num_samples)
    model = make_model(name, model_cfg, image_shape=train.image_shape)
    dequantization = objective["dequantization"]
    if dequantization not in ("uniform", "variational"):
        raise ValueError(f"`objective.dequantization` must be 'uniform' or 'variational'; got "
                         f"{dequantization!r}.")
    dequantizer = None
    if dequantization == "variational":
        dequantizer = VariationalDequantizer(image_shape=train.image_shape, num_levels=train.num_levels,
                                             **_as_dict(config.dequantizer))
    return image_flow_task(model, train, test, dequantizer=dequantizer,
                           importance_samples=int(objective["eval_importance_samples"]),
                           num_samples=num_samples)
