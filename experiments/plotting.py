"""PNG output: image sample grids, 2-D density/sample plots and learning curves.

Figures are built with matplotlib's object-oriented API (`matplotlib.figure.Figure`),
which needs no pyplot and no backend: importing this module changes nothing for
other matplotlib users in the same process (a notebook's inline figures included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def save_image_grid(images, num_levels: int, path: str | Path, *, ncols: int | None = None,
                    title: str | None = None) -> Path:
    """Saves integer images (N, H, W, C) in [0, num_levels) as one grid PNG."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must be (N, H, W, 1 or 3); got shape {images.shape}.")
    n, h, w, c = images.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.ones((nrows * (h + 1) + 1, ncols * (w + 1) + 1, c), np.float32)
    scaled = np.clip(images.astype(np.float32) / (num_levels - 1), 0.0, 1.0)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + col * (w + 1): 1 + col * (w + 1) + w] = scaled[i]
    fig = Figure(figsize=(max(2.0, ncols * w / 14), max(2.0, nrows * h / 14)))
    ax = fig.subplots()
    ax.imshow(grid[..., 0] if c == 1 else grid, cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_density_plot(log_prob_fn: Callable[[np.ndarray], np.ndarray], model_samples,
                      data_samples, path: str | Path, *, extent: float = 4.0, resolution: int = 200,
                      true_log_prob_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                      title: str | None = None) -> Path:
    """Saves panels: [true density], model density, model samples, data samples."""
    grid, xx = _grid(extent, resolution)
    panels = []
    if true_log_prob_fn is not None:
        panels.append(("true density", np.exp(np.asarray(true_log_prob_fn(grid))).reshape(xx.shape)))
    panels.append(("model density", np.exp(np.asarray(log_prob_fn(grid))).reshape(xx.shape)))
    fig = Figure(figsize=(3.2 * (len(panels) + 2), 3.2))
    axes = fig.subplots(1, len(panels) + 2)
    for ax, (name, dens) in zip(axes, panels, strict=False):
        _density_panel(ax, name, dens, extent)
    for ax, (name, pts) in zip(axes[len(panels):], (("model samples", model_samples),
                                                   ("data samples", data_samples)), strict=True):
        _scatter_panel(ax, name, pts, extent)
    return _save_panels(fig, axes, title, path)


def save_latent_plot(prior_log_prob_fn: Callable[[np.ndarray], np.ndarray],
                     aggregated_log_prob_fn: Callable[[np.ndarray], np.ndarray], posterior_means,
                     path: str | Path, *, resolution: int = 150, title: str | None = None) -> Path:
    """A 2-D latent space: prior density, aggregated-posterior density, and the posterior means."""
    means = np.asarray(posterior_means)
    extent = float(max(3.0, np.abs(means).max() * 1.2))
    grid, xx = _grid(extent, resolution)
    panels = [("prior p(z)", np.exp(np.asarray(prior_log_prob_fn(grid))).reshape(xx.shape)),
              ("aggregated posterior q_agg(z)",
               np.exp(np.asarray(aggregated_log_prob_fn(grid))).reshape(xx.shape))]
    fig = Figure(figsize=(9.6, 3.2))
    axes = fig.subplots(1, 3)
    for ax, (name, dens) in zip(axes, panels, strict=False):
        _density_panel(ax, name, dens, extent)
    _scatter_panel(axes[2], "posterior means", means, extent)
    return _save_panels(fig, axes, title, path)


def save_learning_curves(runs: dict, path: str | Path, *, ylabel: str, ymax: float | None = None,
                         target: float | None = None, title: str | None = None) -> Path:
    """Learning curves of several runs in one panel, one colour per run.

    `runs` maps a run's label to `{"train": (steps, values), "test": (steps, values)}`
    (either split may be empty): train as a thin line, test as markers joined by a line.
    `ymax` cuts off early spikes that would flatten the rest; `target` draws a dashed
    horizontal line.
    """
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    lowest = []
    for i, (label, splits) in enumerate(runs.items()):
        color = f"C{i}"
        train_steps, train_values = splits.get("train", ((), ()))
        test_steps, test_values = splits.get("test", ((), ()))
        if len(train_steps):
            ax.plot(train_steps, train_values, color=color, linewidth=1.0, alpha=0.55,
                    label=f"{label}, train")
        if len(test_steps):
            ax.plot(test_steps, test_values, color=color, linewidth=1.5, marker="o", markersize=4,
                    label=f"{label}, test")
        lowest.extend(np.asarray(list(train_values) + list(test_values), np.float64))
    if target is not None:
        ax.axhline(target, color="k", linestyle="--", linewidth=1.0, label=f"target {target:g}")
        lowest.append(target)
    if ymax is not None:
        finite = np.asarray(lowest)[np.isfinite(lowest)]
        bottom = float(finite.min()) if finite.size else ymax - 1.0
        ax.set_ylim(bottom - 0.05 * (ymax - bottom), ymax)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _save_panels(fig, axes, title, path) -> Path:
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _grid(extent: float, resolution: int):
    """Points of a resolution x resolution grid over [-extent, extent]^2, and its x coordinates."""
    g = np.linspace(-extent, extent, resolution, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    return np.stack([xx, yy], -1).reshape(-1, 2), xx


def _density_panel(ax, name, dens, extent):
    ax.imshow(dens, origin="lower", extent=(-extent, extent, -extent, extent), cmap="magma")
    ax.set_title(name, fontsize=9)


def _scatter_panel(ax, name, pts, extent):
    pts = np.asarray(pts)
    ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_title(name, fontsize=9)
