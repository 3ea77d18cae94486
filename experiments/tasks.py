"""Task wiring: a config's data + model + objective, as `train.py` consumes it.

The losses are module-level functions of (key, params, batch) built on
`dgmjax.objectives`; `build_task(config)` binds the model and data to them.
Every config key is read here or in `train.py`, with no default of its own:
the defaults are `configs/default.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dgmjax.bijectors import sigmoid_scale, tanh_scale
from dgmjax.data import (
    IMAGE_DATASETS,
    TOY_DENSITIES,
    ArrayBatches,
    SamplerBatches,
    VectorData,
    load_arrays,
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
from dgmjax.nn import GatedResidualBlock, ResidualBlock, concat_elu
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

# The configs name what the library takes as objects; these tables map the names.
ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "gelu": nn.gelu, "elu": nn.elu, "silu": nn.silu,
                                    "tanh": jnp.tanh}
SCALE_FNS: dict[str, Callable] = {"tanh": tanh_scale, "sigmoid": sigmoid_scale}
# model.conditioner: the image flows' ConvResNet blocks, and the activation that goes with them
# (the gated blocks of Flow++ use concat-ELU; the residual ones take model.activation)
CONDITIONER_BLOCKS: dict[str, tuple[Callable, Callable | None]] = {
    "residual": (ResidualBlock, None), "gated": (GatedResidualBlock, concat_elu)}
COMPUTE_DTYPES: dict[str, Any] = {"float32": None, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def named(table: Mapping[str, Any], value, key: str):
    """The object a config's name stands for; a ValueError naming the config key otherwise."""
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"`config.{key}` must be one of {sorted(table)}; got {value!r}.")
    return table[value]


def _objects_from_names(kw: dict[str, Any]) -> dict[str, Any]:
    """A model config section with its names (activation, scale function, conditioner blocks)
    replaced by the objects the model takes."""
    kw = dict(kw)
    if "activation" in kw:
        kw["activation"] = named(ACTIVATIONS, kw["activation"], "model.activation")
    if "scale_fn" in kw:
        kw["scale_fn"] = named(SCALE_FNS, kw["scale_fn"], "model.scale_fn")
    if "scale_bound" in kw:  # the bound of the tanh scale
        bound = kw.pop("scale_bound")
        if kw.get("scale_fn", tanh_scale) is not tanh_scale:
            raise ValueError(f"`config.model.scale_bound` bounds the tanh scale; got it with "
                             f"`config.model.scale_fn` {kw['scale_fn'].__name__}.")
        kw["scale_fn"] = functools.partial(tanh_scale, bound=bound)
    if "conditioner" in kw:
        block, activation = named(CONDITIONER_BLOCKS, kw.pop("conditioner"), "model.conditioner")
        kw["block"] = block
        if activation is not None:
            kw["activation"] = activation
    return kw
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
      save_samples: `(params, key, path_prefix, temperature=1.0) -> [written
        paths]`, or None; a temperature other than 1 is for flows only.
      headline: `(metrics) -> str`, one line of final results.
      model: the Flax module.
      model_params: `params -> the model's variables` (the identity, except
        where the task trains more than the model, e.g. a dequantizer too).
      data_fingerprint: what identifies the training data: a SHA-256 of the
        training arrays, or the name of a 2-D toy density (its samples are a
        function of the key).
    """

    name: str
    init: Callable
    loss_fn: Callable
    eval_fn: Callable
    make_batches: Callable
    test_arrays: Mapping[str, np.ndarray]
    save_samples: Callable | None
    headline: Callable[[dict], str]
    model: Any = None
    model_params: Callable = lambda params: params
    data_fingerprint: str = ""


def _as_dict(cfg) -> dict[str, Any]:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def head_from_config(name: str, num_mixtures: int, channels: int = 1, *, key: str = "model.head"):
    """The likelihood head a config's string names ("mixture" couples RGB channels); `key` is the
    config key that named it, for the error."""
    if name not in HEADS:
        raise ValueError(f"`config.{key}` must be one of {HEADS}; got {name!r}.")
    if name == "mixture":
        return RGBLogisticMixtureHead(num_mixtures) if channels == 3 else LogisticMixtureHead(num_mixtures)
    return {"bernoulli": BernoulliHead(), "categorical": CategoricalHead(), "gaussian": GaussianHead()}[name]


def make_model(name: str, kwargs: Mapping[str, Any], *, compute_dtype: str = "float32", **shape_kwargs):
    """Model `name` from its config section `kwargs`, rejecting unknown keys by name.

    `compute_dtype` (the config's top-level setting) goes to the models that
    have the option (the flows); for the others it must be "float32".
    """
    if name not in MODELS:
        raise ValueError(f"unknown `model.name` {name!r}; expected one of {sorted(MODELS)}.")
    cls = MODELS[name][0]
    has_option = "compute_dtype" in {f.name for f in dataclasses.fields(cls)}
    if compute_dtype != "float32" and not has_option:
        raise ValueError(f"`compute_dtype` {compute_dtype!r} is for the flows' conditioners; "
                         f"{cls.__name__} computes in float32 only (expected 'float32').")
    if name == "vae":
        return make_vae(kwargs, **shape_kwargs)
    kw = {k: tuple(val) if isinstance(val, list) else val for k, val in kwargs.items()}
    kw = _objects_from_names(kw)
    if has_option:
        kw["compute_dtype"] = named(COMPUTE_DTYPES, compute_dtype, "compute_dtype")
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


def _dtype(config) -> str:
    return str(config.get("compute_dtype", "float32"))


def make_vae(cfg: Mapping[str, Any], *, data_shape, num_levels) -> VAE:
    """A VAE from the config's model section: encoder, decoder and prior by name."""
    unknown = sorted(set(cfg) - set(VAE_KEYS))
    missing = sorted(set(VAE_KEYS) - set(cfg))
    if unknown or missing:
        raise ValueError(f"the VAE `model` config has unknown keys {unknown} and lacks {missing}; expected "
                         f"exactly {sorted(VAE_KEYS)}.")
    c = {k: tuple(val) if isinstance(val, list) else val for k, val in cfg.items()}
    d, hidden = c["latent_size"], c["hidden_sizes"]
    act = named(ACTIVATIONS, c["activation"], "model.activation")
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
    head = head_from_config(c["decoder"], c["num_mixtures"], key="model.decoder")
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
    """`save(params, key, prefix, temperature=1.0)` of `sample_fn(params, key, n, temperature)`."""
    from plotting import save_image_grid

    sample = jax.jit(sample_fn, static_argnums=(2, 3))

    def save(params, key, prefix: Path, temperature: float = 1.0):
        images = np.asarray(sample(params, key, num_samples, float(temperature)))
        return [save_image_grid(images, num_levels, f"{prefix}.png", title=title)]

    return save


def _no_temperature(model, temperature: float) -> None:
    if temperature != 1.0:
        raise ValueError(f"`temperature` applies to flows' Gaussian base; {type(model).__name__} samples at "
                         f"temperature 1 only; got {temperature!r}.")


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

    def sample(params, key, n, temperature):
        flow = params if dequantizer is None else params["flow"]
        return to_levels(model.apply(flow, key, n, temperature=temperature, method=model.sample), num_levels)

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
                _sample_writer(sample, num_levels, f"{name} samples, {train.name}", num_samples), headline,
                model, (lambda params: params) if dequantizer is None else (lambda params: params["flow"]))


def discrete_image_task(model, train, test, *, num_samples=16) -> Task:
    """A model of the integers themselves (PixelCNN, integer flow): exact log P(x), no bound."""
    _check_splits(train, test)
    num_levels, num_dims = train.num_levels, math.prod(train.image_shape)

    def sample(params, key, n, temperature):
        _no_temperature(model, temperature)
        return jnp.clip(model.apply(params, key, n, method=model.sample), 0, num_levels - 1)

    def headline(m):
        return (f"test {m['nll_nats']:.2f} nats/image = {m['nll_nats'] / num_dims:.4f} nats/dim = "
                f"{m['bpd']:.4f} bits/dim (exact discrete likelihood)")

    name = type(model).__name__
    return Task(f"{name} on {train.name}", lambda key, batch: model.init(key, batch["image"]),
                functools.partial(discrete_loss, model=model), functools.partial(discrete_eval, model=model),
                _image_batches(train), test.arrays(),
                _sample_writer(sample, num_levels, f"{name} samples, {train.name}", num_samples), headline,
                model)


def logit_space_task(model, train, test, *, alpha=1e-6, num_samples=64) -> Task:
    """A vector flow on flattened images in logit space, as in the MAF paper's MNIST experiments."""
    _check_splits(train, test)
    num_levels, shape = train.num_levels, train.image_shape
    kw = dict(model=model, num_levels=num_levels, alpha=alpha)

    def init(key, batch):
        x, _ = uniform_dequantize(key, batch["image"], num_levels)
        return model.init(key, x.reshape(x.shape[0], -1))

    def sample(params, key, n, temperature):
        from dgmjax.bijectors import ScaledSigmoid

        t = model.apply(params, key, n, temperature=temperature, method=model.sample)
        t = t.reshape((n,) + tuple(shape))
        return to_levels(ScaledSigmoid(alpha).forward(t), num_levels)

    def headline(m):
        return (f"test log-likelihood in logit space {m['logit_ll_nats']:.1f} nats (alpha={alpha:g}); "
                f"{m['bpd_bound']:.4f} bits/dim on the pixels (upper bound)")

    name = type(model).__name__
    return Task(f"{name} on {train.name} in logit space", init, functools.partial(logit_space_loss, **kw),
                functools.partial(logit_space_eval, **kw), _image_batches(train), test.arrays(),
                _sample_writer(sample, num_levels, f"{name} samples, {train.name}", num_samples), headline,
                model)


def toy_task(model, toy, *, num_test, num_samples=2000, test_seed=1234) -> Task:
    """A density fitted to fresh samples of a 2-D toy; eval adds KL(data || model) from its exact density."""
    test_x = np.asarray(sample_toy(jax.random.PRNGKey(test_seed), toy, num_test))
    log_prob = jax.jit(lambda params, x: model.apply(params, x))
    sample = jax.jit(lambda params, key, temperature: model.apply(
        params, key, num_samples, temperature=temperature, method=model.sample), static_argnums=2)

    def save_samples(params, key, prefix: Path, temperature: float = 1.0):
        from plotting import save_density_plot

        return [save_density_plot(
            lambda g: log_prob(params, jnp.asarray(g)), sample(params, key, float(temperature)),
            test_x[:num_samples],
            f"{prefix}.png", true_log_prob_fn=lambda g: toy_log_prob(toy, jnp.asarray(g)),
            title=f"{type(model).__name__} on {toy}")]

    def headline(m):
        return f"test NLL {m['nll_nats']:.4f} nats, KL(data || model) {m['kl_nats']:.4f} nats"

    return Task(f"{type(model).__name__} on {toy}", lambda key, batch: model.init(key, batch["x"]),
                functools.partial(nll_loss, model=model), functools.partial(toy_eval, model=model, toy=toy),
                _toy_batches(toy), {"x": test_x}, save_samples, headline, model)


def _toy_batches(toy):
    return lambda batch_size, key, sharding: SamplerBatches(lambda k, n: sample_toy(k, toy, n), batch_size,
                                                            key=key, name="x", sharding=sharding)


def vae_task(model: VAE, make_batches, test_arrays, *, data_name, iwae_samples=0, num_samples=64) -> Task:
    """A VAE trained by maximizing the mean ELBO; eval adds bits/dim for discrete data and IWAE."""
    discrete = model.num_levels is not None

    def save_samples(params, key, prefix: Path, temperature: float = 1.0):
        from plotting import save_image_grid, save_latent_plot

        _no_temperature(model, temperature)
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
                test_arrays, save_samples, headline, model)


def vector_eval(key, params, batch, *, model):
    return {"nll_nats": -model.apply(params, batch["x"])}


def _vector_batches(x):
    return lambda batch_size, key, sharding: ArrayBatches({"x": x}, batch_size, key=key, sharding=sharding)


def vector_task(model, data: VectorData, *, source: str | None = None, num_samples=2000) -> Task:
    """A density fitted by NLL to a user's float vectors (`VectorData`); for D = 2, density plots too.

    Unlike `toy_task` there is no exact density: eval is the test NLL in nats per example.
    """
    source, d = source or data.name, data.event_size
    save_samples = None
    if d == 2:
        log_prob = jax.jit(lambda params, x: model.apply(params, x))
        sample = jax.jit(lambda params, key, temperature: model.apply(
            params, key, num_samples, temperature=temperature, method=model.sample), static_argnums=2)
        # the plot's square [-extent, extent]^2 covers all but the farthest 0.5% of the coordinates
        extent = 1.25 * float(np.quantile(np.abs(data.train), 0.995)) or 1.0

        def save_samples(params, key, prefix: Path, temperature: float = 1.0):
            from plotting import save_density_plot

            return [save_density_plot(lambda g: log_prob(params, jnp.asarray(g)),
                                      sample(params, key, float(temperature)),
                                      data.train[:num_samples], f"{prefix}.png", extent=extent,
                                      title=f"{type(model).__name__} on {source}")]

    def headline(m):
        return (f"test NLL {m['nll_nats']:.4f} nats ({m['nll_nats'] / d:.4f} nats/dim) on the "
                f"{len(data.test)} test rows of {source}")

    return Task(f"{type(model).__name__} on {source}", lambda key, batch: model.init(key, batch["x"]),
                functools.partial(nll_loss, model=model), functools.partial(vector_eval, model=model),
                _vector_batches(data.train), {"x": data.test}, save_samples, headline, model)


def load_array_file(data) -> VectorData | tuple:
    """The config's own .npy/.npz (`data.name`): float vectors, or images when `data.num_levels` > 0."""
    return load_arrays(data["name"], num_levels=int(data["num_levels"]) or None,
                       test_fraction=float(data["test_fraction"]))


def _from_file(task: Task, file_name: str, image_shape=None) -> Task:
    """`task` saying the data file's name in its name and headline; sample grids need 1 or 3 channels."""
    name = task.name if file_name in task.name else f"{task.name}, from {file_name}"
    save = task.save_samples if image_shape is None or image_shape[-1] in (1, 3) else None
    return dataclasses.replace(task, name=name, headline=lambda m: f"{file_name}: {task.headline(m)}",
                               save_samples=save)


def _image_task(config, name, kind, model_cfg, objective, train, test, num_samples) -> Task:
    """The task of a non-VAE model on integer images (`ImageData` train/test splits)."""
    if kind == "vectors":
        model = make_model(name, model_cfg, compute_dtype=_dtype(config),
                           event_size=math.prod(train.image_shape))
        return logit_space_task(model, train, test, alpha=float(objective["logit_alpha"]),
                                num_samples=num_samples)
    if kind == "discrete_images":
        model = make_model(name, model_cfg, compute_dtype=_dtype(config), image_shape=train.image_shape,
                           num_levels=train.num_levels)
        return discrete_image_task(model, train, test, num_samples=num_samples)
    model = make_model(name, model_cfg, compute_dtype=_dtype(config), image_shape=train.image_shape)
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


def load_splits(data) -> tuple:
    """The train and test splits of a built-in image dataset. `data.num_levels` (for the user's own
    files) must be 0 or the dataset's own number of levels."""
    kw = {"manual_dir": data["manual_dir"] or None, "data_dir": data["data_dir"] or None}
    train, test = (load_images(data["name"], data["train_split"], **kw),
                   load_images(data["name"], data["test_split"], **kw))
    levels = int(data["num_levels"])
    if levels and levels != train.num_levels:
        raise ValueError(f"`config.data.num_levels` is {levels}, but {data['name']} has {train.num_levels} "
                         "levels; the setting is for your own .npy/.npz files: leave it 0 for a built-in "
                         "dataset.")
    return train, test


def fingerprint(*arrays) -> str:
    """A SHA-256 of arrays' dtypes, shapes and bytes (the training data's identity in a run's record)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def build_task(config) -> Task:
    """The task of an experiment config (`data`, `model`, `objective` sections), with the training
    data's fingerprint.

    `data.name` is a built-in dataset, a 2-D toy, or the path of the user's own .npy/.npz
    (`load_array_file`): float vectors train vector flows (`vector_task`) or a Gaussian-decoder VAE;
    integer images take the same routes as the built-in image datasets.
    """
    data = _as_dict(config.data)
    source = data["name"]
    from_file = isinstance(source, str) and source.endswith((".npy", ".npz"))
    if not from_file and source not in IMAGE_DATASETS and source not in TOY_DENSITIES:
        raise ValueError(f"unknown `data.name` {source!r}; expected one of "
                         f"{sorted(IMAGE_DATASETS) + list(TOY_DENSITIES)}, or the path of a .npy or .npz "
                         "file.")
    if source in TOY_DENSITIES:
        return dataclasses.replace(_build_task(config, None), data_fingerprint=f"toy:{source}")
    loaded = load_array_file(data) if from_file else load_splits(data)
    train = loaded.train if isinstance(loaded, VectorData) else loaded[0].images
    return dataclasses.replace(_build_task(config, loaded), data_fingerprint=fingerprint(train))


def _build_task(config, loaded) -> Task:
    """`build_task` given the loaded data: VectorData or (train, test) images, None for a 2-D toy."""
    data, model_cfg = _as_dict(config.data), _as_dict(config.model)
    objective = _as_dict(config.objective)
    name = model_cfg.pop("name")
    if name not in MODELS:
        raise ValueError(f"unknown `model.name` {name!r}; expected one of {sorted(MODELS)}.")
    kind = MODELS[name][1]
    dtype = _dtype(config)
    num_samples = int(config.train.num_samples)
    source = data["name"]
    from_file = isinstance(source, str) and source.endswith((".npy", ".npz"))
    toy = loaded is None
    file_name = Path(source).name
    vectors = loaded if isinstance(loaded, VectorData) else None
    if vectors is not None and kind not in ("vectors", "vae"):
        raise ValueError(f"`model.name` {name!r} models images; the float vectors of {file_name} need a "
                         "vector model such as 'realnvp' (or integer images with `data.num_levels` set).")
    if kind == "vae":
        iwae = int(objective["eval_iwae_samples"])
        if toy:
            test_x = np.asarray(sample_toy(jax.random.PRNGKey(1234), data["name"], int(data["num_test"])))
            model = make_model(name, model_cfg, compute_dtype=dtype, data_shape=(2,), num_levels=None)
            return vae_task(model, _toy_batches(data["name"]), {"x": test_x}, data_name=data["name"],
                            iwae_samples=iwae, num_samples=num_samples)
        if vectors is not None:
            decoder = model_cfg.get("decoder")
            if decoder != "gaussian":
                raise ValueError(f"`model.decoder` must be 'gaussian' for the float vectors of {file_name}; "
                                 f"got {decoder!r} (set `data.num_levels` for integer data).")
            model = make_model(name, model_cfg, compute_dtype=dtype, data_shape=(vectors.event_size,),
                               num_levels=None)
            return _from_file(vae_task(model, _vector_batches(vectors.train), {"x": vectors.test},
                                       data_name=file_name, iwae_samples=iwae, num_samples=num_samples),
                              file_name)
        train, test = loaded
        model = make_model(name, model_cfg, compute_dtype=dtype, data_shape=train.image_shape,
                           num_levels=train.num_levels)
        batches = lambda batch_size, key, sharding: ArrayBatches({"x": train.images}, batch_size, key=key,
                                                                 sharding=sharding)
        task = vae_task(model, batches, {"x": test.images}, data_name=train.name, iwae_samples=iwae,
                        num_samples=num_samples)
        return _from_file(task, file_name, train.image_shape) if from_file else task
    if toy:
        if kind != "vectors":
            raise ValueError(f"`model.name` {name!r} models images; the 2-D toy {data['name']!r} needs a "
                             "vector model such as 'realnvp'.")
        model = make_model(name, model_cfg, compute_dtype=dtype, event_size=2)
        return toy_task(model, data["name"], num_test=int(data["num_test"]),
                        num_samples=max(num_samples, 1000))
    if vectors is not None:
        model = make_model(name, model_cfg, compute_dtype=dtype, event_size=vectors.event_size)
        return vector_task(model, vectors, source=file_name,
                           num_samples=max(num_samples, 1000) if vectors.event_size == 2 else num_samples)
    train, test = loaded
    task = _image_task(config, name, kind, model_cfg, objective, train, test, num_samples)
    return _from_file(task, file_name, train.image_shape) if from_file else task
