"""RealNVP (Dinh et al. 2017) for vectors and multi-scale RealNVP for images.

Both are Flax modules that give a `distrax.Transformed` distribution:

    model = RealNVP(event_size=2)
    variables = model.init(key, x)                   # __call__ is log_prob
    log_prob = model.apply(variables, x)             # nats per example
    samples = model.apply(variables, key, 16, method=model.sample)
    dist = model.bind(variables).distribution()      # a distrax distribution

Identical coupling layers form a `LayerStack`, scanned so that compile time
does not grow with depth (the vector `RealNVP` can run them unrolled with
`scan_layers=False`).

Data in float16 or bfloat16 is upcast to float32 by the data-side layer (the
logit preprocessing `ScaledSigmoid` of `ImageRealNVP`, otherwise the first
`LayerStack`), so the transforms, log-dets and log_prob are float32 and equal
those of the float32 batch of the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from dgmjax import _checks as v
from dgmjax.bijectors import (
    LayerStack,
    Permute,
    Scale,
    ScaledSigmoid,
    affine_coupling,
    affine_split_coupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    multiscale_flow,
    multiscale_shapes,
    tanh_scale,
)
from dgmjax.bijectors.coupling import check_scale_fn
from dgmjax.models.autoregressive import PERMUTATIONS, permutation_constants
from dgmjax.models.base import FlowModule, build_conditioner, check_image_conditioner, check_logit_alpha
from dgmjax.nn.conditioners import MLP, ConvResNet, ModuleDef, ResidualBlock
from dgmjax.nn.stack import stack_params

__all__ = ["ImageRealNVP", "RealNVP"]


class RealNVP(FlowModule):
    """RealNVP on vectors of size `event_size`: a stack of affine coupling layers.

    Attributes:
      event_size: D, the data dimension (>= 2).
      num_layers: number of coupling layers.
      hidden_sizes, activation: the default conditioner, an `MLP` with these
        hidden widths and activation function.
      conditioner: your own conditioner instead: a factory `n -> Flax module`
        mapping the kept entries (..., D, or ..., D//2 for split couplings)
        to n = 2 x (transformed entries) outputs, shift and raw log-scale
        (e.g. `functools.partial(dgmjax.nn.MLP, hidden_sizes=(64,))` or a
        module class); one copy per layer. Its last layer should start at
        zero, so that the flow starts as the identity.
      scale_fn: raw log-scale -> log-scale (`dgmjax.bijectors.tanh_scale`,
        the default, or `sigmoid_scale`, or any function).
      coupling: "masked" (`distrax.MaskedCoupling` with masks alternating
        even/odd entries; the conditioner sees all D inputs, zeros where
        masked) or "split" (`distrax.SplitCoupling`: the first D//2 entries
        condition the rest; half the conditioner input and output).
      permutation: a fixed permutation of the entries in every layer:
        "none", "reversed" or "random". Default: "none" for masked couplings,
        "reversed" for split ones (which need one, or the same half would be
        transformed in every layer).
      remat: recompute activations in the backward pass to save memory.
      scan_layers: True: stacked parameters, scanned (compile time flat in
        depth); False: per-layer parameters run unrolled (a faster step at
        small depth). See `LayerStack`.
      compute_dtype: the default conditioner's compute dtype: None (float32)
        or `jnp.bfloat16` / `jnp.float16` for mixed precision (see
        `dgmjax.nn.MLP`); the transforms, log-dets and the base density stay
        float32.
    """

    event_size: int
    num_layers: int = 8
    hidden_sizes: Sequence[int] = (256, 256)
    activation: Callable = nn.relu
    conditioner: ModuleDef | None = None
    scale_fn: Callable = tanh_scale
    coupling: str = "masked"
    permutation: str | None = None
    remat: bool = False
    scan_layers: bool = True
    compute_dtype: Any = None

    def _split_index(self) -> int:
        return self.event_size // 2

    def _transformed(self) -> int:
        return self.event_size if self.coupling == "masked" else self.event_size - self._split_index()

    def _default_conditioner(self, num_outputs: int) -> MLP:
        return MLP(num_outputs, tuple(self.hidden_sizes), self.activation, compute_dtype=self.compute_dtype,
                   parent=None)

    def _permutation(self) -> str:
        if self.permutation is not None:
            return self.permutation
        return "none" if self.coupling == "masked" else "reversed"

    def check_hyperparameters(self):
        if isinstance(self.event_size, bool) or not isinstance(self.event_size, (int, np.integer)) \
                or self.event_size < 2:
            raise ValueError(f"`event_size` must be an int >= 2 for coupling; got {self.event_size!r}.")
        v.check_positive_int(self.num_layers, "num_layers")
        v.check_sizes(self.hidden_sizes, "hidden_sizes", allow_empty=True)
        v.check_callable(self.activation, "activation", "an activation function")
        check_scale_fn(self.scale_fn)
        v.check_choice(self.coupling, ("masked", "split"), "coupling")
        if self.permutation is not None:
            v.check_choice(self.permutation, PERMUTATIONS, "permutation")
        if self.coupling == "split" and self._permutation() == "none":
            raise ValueError("split couplings need `permutation` 'reversed' or 'random'; with 'none' "
                             "the same half would be transformed in every layer.")
        v.check_bool(self.remat, "remat")
        v.check_bool(self.scan_layers, "scan_layers")
        v.as_compute_dtype(self.compute_dtype)

    def setup(self):
        self.check_hyperparameters()
        width = self.event_size if self.coupling == "masked" else self._split_index()
        net = build_conditioner(self.conditioner or self._default_conditioner, 2 * self._transformed())
        self.conditioners = self.param("conditioners", lambda rng: stack_params(
            net, rng, self.num_layers, jnp.zeros((1, width)), scan=self.scan_layers))
        self._apply_conditioner = net.apply

    def event_shape(self):
        return (self.event_size,)

    def base_distribution(self):
        return distrax.MultivariateNormalDiag(jnp.zeros(self.event_size))

    def bijector(self, context=None):
        n = self._transformed()
        constants = permutation_constants(self._permutation(), self.event_size, self.num_layers) or {}
        if self.coupling == "masked":
            constants["mask"] = np.stack([alternating_mask(self.event_size, i % 2)
                                          for i in range(self.num_layers)])

        def layer(p, c):
            def cond(h):
                out = self._apply_conditioner({"params": p}, h)
                return out.reshape(out.shape[:-1] + (n, 2))

            if self.coupling == "masked":
                coupling = affine_coupling(c["mask"], cond, scale_fn=self.scale_fn)
            else:
                coupling = affine_split_coupling(self._split_index(), cond, event_ndims=1,
                                                 scale_fn=self.scale_fn)
            if "perm" not in c:
                return coupling
            return distrax.Chain([Permute(c["perm"], c["inv"]), coupling])

        return LayerStack(layer, self.conditioners, event_ndims=1, constants=constants,
                          remat=self.remat)


class ImageRealNVP(FlowModule):
    """Multi-scale RealNVP for NHWC images with values in [0, 1).

    Data -> noise, at scale s with shape (h, w, c): `num_checkerboard` affine
    couplings with checkerboard masks; then (except at the last scale) a
    squeeze to (h/2, w/2, 4c), `num_channelwise` couplings with channel masks,
    and a factor-out: 2c channels continue to scale s + 1, the other 2c go to
    the latent. The latent has the data's shape and a standard normal base.
    With `logit_alpha` set, a `ScaledSigmoid(alpha)` sits on the data side (the
    logit preprocessing of the density direction) and its log-det is part of
    `log_prob`.

    The default conditioners are ResNets whose last conv is zero-initialized,
    so the flow starts as the identity (up to the logit). Checkerboard
    conditioners also see the mask (concatenated as channels), since
    convolutions cannot tell the two parities apart.

    Attributes:
      image_shape: (H, W, C); H and W divisible by 2**(num_scales - 1).
      num_scales: scales, each but the last ending in a factor-out.
      num_checkerboard, num_channelwise: couplings per scale.
      features, num_blocks, activation, block: the default conditioner, a
        `dgmjax.nn.ConvResNet` of these (blocks `ResidualBlock`, or
        `GatedResidualBlock` with `activation=concat_elu` as in Flow++).
      conditioner: your own conditioner instead: a factory `n -> Flax module`
        mapping NHWC input (the masked image, with the mask as extra channels
        for checkerboard couplings) to n output channels, shift and raw
        log-scale per channel (e.g. `functools.partial(dgmjax.nn.ConvResNet,
        features=96)` or a module class); one copy per layer, its last layer
        best zero-initialized.
      scale_fn: raw log-scale -> log-scale (`dgmjax.bijectors.tanh_scale`,
        the default, or `sigmoid_scale`, or any function).
      logit_alpha: the logit preprocessing's alpha, or None for none.
      remat: recompute activations in the backward pass to save memory.
      compute_dtype: the default conditioner's compute dtype: None (float32)
        or `jnp.bfloat16` / `jnp.float16` for mixed precision (see
        `dgmjax.nn.MLP`); the transforms, log-dets and the base density stay
        float32.
    """

    image_shape: Sequence[int]
    num_scales: int = 2
    num_checkerboard: int = 4
    num_channelwise: int = 3
    features: int = 64
    num_blocks: int = 2
    activation: Callable = nn.gelu
    block: ModuleDef = ResidualBlock
    conditioner: ModuleDef | None = None
    scale_fn: Callable = tanh_scale
    logit_alpha: float | None = 0.05
    remat: bool = False
    compute_dtype: Any = None

    def _squeezes(self):
        v.check_positive_int(self.num_scales, "num_scales")
        return [s + 1 < self.num_scales for s in range(self.num_scales)]

    def _shapes(self):
        return multiscale_shapes(self.image_shape, self._squeezes())

    def _default_conditioner(self, out_channels: int) -> ConvResNet:
        return ConvResNet(out_channels, self.features, self.num_blocks, self.activation, self.block,
                          compute_dtype=self.compute_dtype, parent=None)

    unit_interval_data = True

    def check_hyperparameters(self):
        v.check_image_shape(self.image_shape)
        v.check_positive_int(self.num_scales, "num_scales")
        v.check_positive_int(self.num_checkerboard, "num_checkerboard")
        v.check_positive_int(self.num_channelwise, "num_channelwise")
        v.check_positive_int(self.features, "features")
        v.check_nonnegative_int(self.num_blocks, "num_blocks")
        check_image_conditioner(self)
        check_scale_fn(self.scale_fn)
        check_logit_alpha(self.logit_alpha)
        v.check_bool(self.remat, "remat")
        for (h, w, _), _ in self._shapes():
            if h * w < 2:
                fits = max(s for s in range(1, self.num_scales) if (self.image_shape[0] >> (s - 1))
                           * (self.image_shape[1] >> (s - 1)) >= 2)
                raise ValueError(f"`num_scales` {self.num_scales} leaves {h}x{w} pixels at the last scale of "
                                 f"`image_shape` {tuple(self.image_shape)}, too few for a checkerboard "
                                 f"coupling; expected at most {fits} scales.")

    def setup(self):
        self.check_hyperparameters()
        stacks, nets = {}, {}
        factory = self.conditioner or self._default_conditioner
        for s, ((h, w, c), (hs, ws, cs)) in enumerate(self._shapes()):
            net = build_conditioner(factory, 2 * c)
            stacks[f"checkerboard_{s}"] = self.param(
                f"checkerboard_{s}", lambda rng, h=h, w=w, c=c, net=net: stack_params(
                    net, rng, self.num_checkerboard, jnp.zeros((1, h, w, 2 * c))))
            nets[f"checkerboard_{s}"] = net.apply
            if s < self.num_scales - 1:
                net = build_conditioner(factory, 2 * cs)
                stacks[f"channelwise_{s}"] = self.param(
                    f"channelwise_{s}", lambda rng, hs=hs, ws=ws, cs=cs, net=net: stack_params(
                        net, rng, self.num_channelwise, jnp.zeros((1, hs, ws, cs))))
                nets[f"channelwise_{s}"] = net.apply
        self.stacks = stacks
        self._apply_conditioner = nets

    def event_shape(self):
        return tuple(self.image_shape)

    def base_distribution(self):
        return distrax.Independent(distrax.Normal(jnp.zeros(self.event_shape()), 1.0), 3)

    def _coupling_stack(self, name: str, masks, with_mask_input: bool) -> LayerStack:
        apply = self._apply_conditioner[name]

        def layer(p, c):
            mask = c["mask"]

            def cond(xm):
                inp = xm
                if with_mask_input:
                    inp = jnp.concatenate([xm, jnp.broadcast_to(mask, xm.shape).astype(xm.dtype)], -1)
                return apply({"params": p}, inp).reshape(xm.shape + (2,))

            return affine_coupling(mask, cond, scale_fn=self.scale_fn)

        return LayerStack(layer, self.stacks[name], event_ndims=3, constants={"mask": masks},
                          remat=self.remat)

    def bijector(self, context=None):
        scales = []
        for s, (shape, squeezed) in enumerate(self._shapes()):
            cb = np.stack([checkerboard_mask(shape, i % 2) for i in range(self.num_checkerboard)])
            checkerboard = self._coupling_stack(f"checkerboard_{s}", cb, True)
            if s == self.num_scales - 1:
                scales.append(Scale(checkerboard, squeeze=False))
                continue
            ch = np.stack([channel_mask(squeezed, i % 2) for i in range(self.num_channelwise)])
            channelwise = self._coupling_stack(f"channelwise_{s}", ch, False)
            scales.append(Scale(checkerboard, squeeze=True, post=channelwise))
        flow = multiscale_flow(self.image_shape, scales)
        if self.logit_alpha is None:
            return flow
        return distrax.Chain([distrax.Block(ScaledSigmoid(self.logit_alpha), 3), flow])
