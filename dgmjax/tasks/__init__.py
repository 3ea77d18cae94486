"""Tasks: a model paired with its data and objective, built from a config."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from dgmjax.data import IMAGE_DATASETS, TOY_DENSITIES, load_images
from dgmjax.dequantization import VariationalDequantizer
from dgmjax.models import IAF, MAF, Glow, ImageRealNVP, IntegerDiscreteFlow, PixelCNN, RealNVP
from dgmjax.tasks.base import Task
from dgmjax.tasks.flows import (
    continuous_to_levels,
    density_2d_task,
    discrete_image_task,
    image_flow_task,
    logit_space_flow_task,
)
from dgmjax.tasks.vae import vae_task
from dgmjax.vae.model import VAE

__all__ = ["MODELS", "Task", "build_task", "continuous_to_levels", "density_2d_task",
           "discrete_image_task", "image_flow_task", "logit_space_flow_task", "make_model", "vae_task"]

# name -> (module class, data kind it models). "images": a density on [0,1)^D met through
# dequantization; "discrete_images": a model of the integers; "vectors": on an image dataset,
# fitted to the flattened images in logit space (the MAF paper's setup).
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


def _as_dict(cfg) -> dict[str, Any]:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def make_model(name: str, kwargs: Mapping[str, Any], **shape_kwargs):
    """Instantiates model `name` with config `kwargs`, rejecting unknown keys by name."""
    if name not in MODELS:
        raise ValueError(f"unknown `model.name` {name!r}; expected one of {sorted(MODELS)}.")
    cls = MODELS[name][0]
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"`model` config keys {unknown} are not fields of {cls.__name__}; "
                         f"expected a subset of {sorted(fields - set(shape_kwargs))}.")
    kw = {k: tuple(val) if isinstance(val, list) else val for k, val in kwargs.items()}
    return cls(**shape_kwargs, **kw)


def build_task(config) -> Task:
    """Builds the task of an experiment config (`data`, `model`, `objective` sections)."""
    data = _as_dict(config.data)
    model_cfg = _as_dict(config.model)
    name = model_cfg.pop("name")
    if name not in MODELS:
        raise ValueError(f"unknown `model.name` {name!r}; expected one of {sorted(MODELS)}.")
    kind = MODELS[name][1]
    objective = _as_dict(config.get("objective", {}))
    num_samples = int(config.train.get("num_samples", 64))
    if kind == "vae":
        return _build_vae_task(config, data, model_cfg, objective, num_samples)
    if data["name"] in TOY_DENSITIES:
        if kind != "vectors":
            raise ValueError(f"`model.name` {name!r} models images; the 2-D toy {data['name']!r} "
                             "needs a vector model such as 'realnvp'.")
        model = make_model(name, model_cfg, event_size=2)
        return density_2d_task(model, data["name"], num_test=int(data.get("num_test", 10_000)),
                               num_samples=max(num_samples, 1000))
    if data["name"] not in IMAGE_DATASETS:
        raise ValueError(f"unknown `data.name` {data['name']!r}; expected one of "
                         f"{sorted(IMAGE_DATASETS) + list(TOY_DENSITIES)}.")
    kw = {"manual_dir": data.get("manual_dir") or None, "data_dir": data.get("data_dir") or None}
    train = load_images(data["name"], data.get("train_split", "train"), **kw)
    test = load_images(data["name"], data.get("test_split", "test"), **kw)
    if kind == "vectors":
        model = make_model(name, model_cfg, event_size=math.prod(train.image_shape))
        return logit_space_flow_task(model, train, test,
                                     logit_alpha=float(objective.get("logit_alpha", 1e-6)),
                                     num_samples=num_samples)
    if kind == "discrete_images":
        model = make_model(name, model_cfg, image_shape=train.image_shape, num_levels=train.num_levels)
        return discrete_image_task(model, train, test, num_samples=num_samples)
    model = make_model(name, model_cfg, image_shape=train.image_shape)
    dequantization = objective.get("dequantization", "uniform")
    dequantizer = None
    if dequantization == "variational":
        deq_cfg = _as_dict(config.get("dequantizer", {}))
        dequantizer = VariationalDequantizer(image_shape=train.image_shape,
                                             num_levels=train.num_levels, **deq_cfg)
    return image_flow_task(model, train, test, dequantization=dequantization,
                           dequantizer=dequantizer,
                           eval_importance_samples=int(objective.get("eval_importance_samples", 0)),
                           num_samples=num_samples)


def _build_vae_task(config, data, model_cfg, objective, num_samples) -> Task:
    iwae = int(objective.get("eval_iwae_samples", 0))
    if data["name"] in TOY_DENSITIES:
        import jax
        import numpy as np

        from dgmjax.data import sample_toy

        test_x = np.asarray(sample_toy(data["name"], jax.random.PRNGKey(1234),
                                       int(data.get("num_test", 10_000))))
        model = make_model("vae", model_cfg, data_shape=(2,), num_levels=None)
        return vae_task(model, {}, {"x": test_x}, data_name=data["name"], toy=data["name"],
                        eval_iwae_samples=iwae, num_samples=num_samples)
    if data["name"] not in IMAGE_DATASETS:
        raise ValueError(f"unknown `data.name` {data['name']!r}; expected one of "
                         f"{sorted(IMAGE_DATASETS) + list(TOY_DENSITIES)}.")
    kw = {"manual_dir": data.get("manual_dir") or None, "data_dir": data.get("data_dir") or None}
    train = load_images(data["name"], data.get("train_split", "train"), **kw)
    test = load_images(data["name"], data.get("test_split", "test"), **kw)
    model = make_model("vae", model_cfg, data_shape=train.image_shape, num_levels=train.num_levels)
    return vae_task(model, {"x": train.images}, {"x": test.images}, data_name=data["name"],
                    eval_iwae_samples=iwae, num_samples=num_samples)
