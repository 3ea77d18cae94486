"""RealNVP (Dinh et al. 2017) for vectors and multi-scale RealNVP for images.

Both are Flax modules that give a `distrax.Transformed` distribution:

    model = RealNVP(event_size=2)
    variables = model.init(key, x)                   # __call__ is log_prob
    log_prob = model.apply(variables, x)             # nats per example
    samples = model.apply(variables, key, 16, method=model.sample)
    dist = model.bind(variables).distribution()      # a distrax distribution

Identical coupling layers are stacked and run with `ScanChain` (lax.scan), so
compile time does not grow with depth. The vector `RealNVP` also takes
`scan_layers=False`: separate per-layer parameters in a Python loop, the
faster train step at small depth on CPU (see `ScanChain`).
"""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import jax.numpy as jnp
import numpy as np

from dgmjax import _validation as v
from dgmjax.bijectors import (
    FactorOut,
    Logit,
    Permute,
    ScanChain,
    Squeeze,
    affine_coupling,
    affine_split_coupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
)
from dgmjax.models.base import FlowModule
from dgmjax.nn.conditioners import MLP, ConvResNet, init_layerwise, init_stacked, layers_as_list

__all__ = ["RealNVP", "ImageRealNVP", "layer_permutations"]

PERMUTATIONS = ("none", "reversed", "random")


def layer_permutations(kind: str, size: int, num_layers: int, seed: int = 0):
    """Per-layer permutations (num_layers, size) of a vector flow, or None for "none"."""
    if kind not in PERMUTATIONS:
        raise ValueError(f"`permutation` must be one of {PERMUTATIONS}; got {kind!r}.")
    if kind == "none":
        return None
    if kind == "reversed":
        return np.tile(np.arange(size)[::-1], (num_layers, 1))
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(size) for _ in range(num_layers)])


def scanned_permutation(perms):
    """How a stack of per-layer permutations enters a `ScanChain`.

    Returns (shared, stacked): `shared` is a NumPy permutation when every
    layer uses the same one (it is then a compile-time constant of the scan
    body: no per-layer slicing and no sort), else None; `stacked` is then a
    dict with the per-layer rows ("perm") and their inverses ("inv"), computed
    once in NumPy, to scan over. (None, None) when `perms` is None.
    """
    if perms is None:
        return None, None
    perms = np.asarray(perms)
    if (perms == perms[:1]).all():
        return perms[0], None
    return None, {"perm": jnp.asarray(perms), "inv": jnp.asarray(np.argsort(perms, axis=-1))}


def layer_permute(shared, p):
    """The Permute bijector of one layer, given `scanned_permutation`'s result."""
    if shared is not None:
        return Permute(shared)
    return Permute(p["perm"]["perm"], p["perm"]["inv"])


class RealNVP(FlowModule):
    """RealNVP on vectors of size `event_size`: a stack of affine coupling layers.

    Attributes:
      event_size: D, the data dimension (>= 2).
      num_layers: number of coupling layers.
      hidden_sizes: widths of each layer's MLP conditioner.
      activation: MLP activation.
      scale_fn: bound on the coupling scale, "tanh" or "sigmoid".
      coupling: "masked" (`distrax.MaskedCoupling` with masks alternating
        even/odd entries; the conditioner sees all D inputs, zeros where
        masked) or "split" (`distrax.SplitCoupling`: the first D//2 entries
        condition the rest; half the conditioner input and output).
      permutation: a fixed permutation of the entries in every layer:
        "none", "reversed" or "random". Default: "none" for masked couplings,
        "reversed" for split ones (which need one, or the same half would be
        transformed in every layer).
      remat: recompute activations in the backward pass to save memory.
      scan_layers: True (default): parameters stacked on a layer axis and the
        layers run with `lax.scan`, compile time flat in depth. False:
        parameters `{"layer_i": ...}` per layer and a Python loop, a faster
        step at small depth (`dgmjax.nn.stack_layers` / `unstack_layers`
        convert between the two layouts).
    """

    event_size: int
    num_layers: int = 8
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    scale_fn: str = "tanh"
    coupling: str = "masked"
    permutation: str | None = None
    remat: bool = False
    scan_layers: bool = True

    def _split_index(self) -> int:
        return self.event_size // 2

    def _net(self) -> MLP:
        out = self.event_size if self.coupling == "masked" else self.event_size - self._split_index()
        return MLP(tuple(self.hidden_sizes), (out, 2), self.activation, parent=None)

    def _permutation(self) -> str:
        if self.permutation is not None:
            return self.permutation
        return "none" if self.coupling == "masked" else "reversed"

    def setup(self):
        v.check_positive_int(self.num_layers, "num_layers")
        if self.event_size < 2:
            raise ValueError(f"`event_size` must be >= 2 for coupling; got {self.event_size}.")
        if self.coupling not in ("masked", "split"):
            raise ValueError(f"`coupling` must be 'masked' or 'split'; got {self.coupling!r}.")
        if self.coupling == "split" and self._permutation() == "none":
            raise ValueError("split couplings need `permutation` 'reversed' or 'random'; with 'none' "
                             "the same half would be transformed in every layer.")
        width = self.event_size if self.coupling == "masked" else self._split_index()
        dummy = jnp.zeros((1, width))
        init = init_stacked if self.scan_layers else init_layerwise
        self.conditioners = self.param(
            "conditioners", lambda rng: init(self._net(), rng, self.num_layers, dummy)
        )

    def event_shape(self):
        return (self.event_size,)

    def base_distribution(self):
        return distrax.MultivariateNormalDiag(jnp.zeros(self.event_size))

    def bijector(self, context=None):
        net = self._net()
        perms = layer_permutations(self._permutation(), self.event_size, self.num_layers)
        masks = np.stack([alternating_mask(self.event_size, i % 2) for i in range(self.num_layers)])
        if self.scan_layers:
            params = {"net": self.conditioners}
            if self.coupling == "masked":
                params["mask"] = jnp.asarray(masks)
            shared, stacked = scanned_permutation(perms)
            if stacked is not None:
                params["perm"] = stacked
        else:  # per-layer constants stay NumPy: compile-time constants of each layer
            params = [{"net": p} for p in layers_as_list(self.conditioners)]
            for i, p in enumerate(params):
                if self.coupling == "masked":
                    p["mask"] = masks[i]
                if perms is not None:
                    p["perm"] = perms[i]

        def layer(p):
            cond = lambda h: net.apply({"params": p["net"]}, h)
            if self.coupling == "masked":
                coupling = affine_coupling(p["mask"], cond, scale_fn=self.scale_fn)
            else:
                coupling = affine_split_coupling(self._split_index(), cond, event_ndims=1,
                                                 scale_fn=self.scale_fn)
            if perms is None:
                return coupling
            permute = layer_permute(shared, p) if self.scan_layers else Permute(p["perm"])
            return distrax.Chain([permute, coupling])

        return ScanChain(layer, params, event_ndims=1, remat=self.remat,
                         layerwise=not self.scan_layers)


class ImageRealNVP(FlowModule):
    """Multi-scale RealNVP for NHWC images with values in [0, 1).

    Data -> noise, at scale s with shape (h, w, c): `num_checkerboard` affine
    couplings with checkerboard masks; then (except at the last scale) a
    squeeze to (h/2, w/2, 4c), `num_channelwise` couplings with channel masks,
    and a factor-out: 2c channels continue to scale s + 1, the other 2c go to
    the latent. The latent has the data's shape and a standard normal base.
    With `logit_alpha` set, a `Logit(alpha)` preprocessing bijector sits on the
    data side and its log-det is part of `log_prob`.

    Conditioners are ResNets whose last conv is zero-initialized, so the flow
    starts as the identity (up to the logit). Checkerboard conditioners also
    see the mask, since convolutions cannot tell the two parities apart.
    """

    image_shape: Sequence[int]
    num_scales: int = 2
    num_checkerboard: int = 4
    num_channelwise: int = 3
    features: int = 64
    num_blocks: int = 2
    activation: str = "gelu"
    scale_fn: str = "tanh"
    logit_alpha: float | None = 0.05
    remat: bool = False

    def _shapes(self):
        if len(self.image_shape) != 3:
            raise ValueError(f"`image_shape` must be (H, W, C); got {tuple(self.image_shape)}.")
        h, w, c = self.image_shape
        v.check_positive_int(self.num_scales, "num_scales")
        div = 2 ** (self.num_scales - 1)
        if h % div or w % div:
            raise ValueError(
                f"`image_shape` {tuple(self.image_shape)} must have H and W divisible by "
                f"2**(num_scales-1) = {div} for num_scales={self.num_scales}."
            )
        shapes = []
        for _ in range(self.num_scales):
            shapes.append((h, w, c))
            h, w, c = h // 2, w // 2, 2 * c
        return shapes

    def _net(self, out_channels: int) -> ConvResNet:
        return ConvResNet(self.features, self.num_blocks, out_channels, self.activation, parent=None)

    def setup(self):
        v.check_positive_int(self.num_checkerboard, "num_checkerboard")
        stacks = {}
        for s, (h, w, c) in enumerate(self._shapes()):
            stacks[f"checkerboard_{s}"] = self.param(
                f"checkerboard_{s}",
                lambda rng, h=h, w=w, c=c: init_stacked(
                    self._net(2 * c), rng, self.num_checkerboard, jnp.zeros((1, h, w, 2 * c))),
            )
            if s < self.num_scales - 1:
                v.check_positive_int(self.num_channelwise, "num_channelwise")
                stacks[f"channelwise_{s}"] = self.param(
                    f"channelwise_{s}",
                    lambda rng, h=h, w=w, c=c: init_stacked(
                        self._net(8 * c), rng, self.num_channelwise,
                        jnp.zeros((1, h // 2, w // 2, 4 * c))),
                )
        self.stacks = stacks

    def event_shape(self):
        return tuple(self.image_shape)

    def base_distribution(self):
        return distrax.Independent(distrax.Normal(jnp.zeros(self.event_shape()), 1.0), 3)

    def _coupling_stack(self, params, masks, shape, with_mask_input: bool) -> ScanChain:
        net = self._net(2 * shape[-1])

        def layer(p):
            mask = p["mask"]

            def cond(xm):
                inp = xm
                if with_mask_input:
                    inp = jnp.concatenate([xm, jnp.broadcast_to(mask, xm.shape).astype(xm.dtype)], -1)
                out = net.apply({"params": p["net"]}, inp)
                return out.reshape(xm.shape + (2,))

            return affine_coupling(mask, cond, scale_fn=self.scale_fn)

        return ScanChain(layer, {"net": params, "mask": jnp.asarray(masks)}, event_ndims=3,
                         remat=self.remat)

    def _scale(self, s: int, shapes) -> distrax.Bijector:
        h, w, c = shapes[s]
        cb_masks = np.stack([checkerboard_mask((h, w, c), i % 2) for i in range(self.num_checkerboard)])
        checkerboard = self._coupling_stack(self.stacks[f"checkerboard_{s}"], cb_masks, (h, w, c), True)
        if s == self.num_scales - 1:
            return checkerboard
        sq_shape = (h // 2, w // 2, 4 * c)
        ch_masks = np.stack([channel_mask(sq_shape, i % 2) for i in range(self.num_channelwise)])
        channelwise = self._coupling_stack(self.stacks[f"channelwise_{s}"], ch_masks, sq_shape, False)
        deeper = FactorOut(self._scale(s + 1, shapes), num_kept=2 * c)
        # Listed data side first: forward (noise -> data) runs right to left.
        return distrax.Chain([checkerboard, distrax.Inverse(Squeeze()), channelwise, deeper, Squeeze()])

    def bijector(self, context=None):
        flow = self._scale(0, self._shapes())
        if self.logit_alpha is None:
            return flow
        return distrax.Chain([distrax.Block(distrax.Inverse(Logit(self.logit_alpha)), 3), flow])
