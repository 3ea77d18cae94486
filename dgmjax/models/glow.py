"""A Glow-style multi-scale image flow (Kingma & Dhariwal 2018) as a Flax module.

Data -> noise, at each scale: squeeze (space to depth), `num_steps` flow
steps, then (except at the last scale) factor-out: half the channels go to the
latent, the other half on to the next scale. A flow step is ActNorm
(data-dependent init) -> invertible 1x1 convolution (LU form) -> affine
coupling on a channel split (bounded scale, zero-initialized
conditioner). The latent has the data's shape and a standard normal base;
each scale's steps are one `LayerStack`, so compile time does not grow with
`num_steps`.

Data-dependent init: `model.init(key, x)` with a batch of data sets every
ActNorm so its inverse maps the batch to zero mean, unit variance per
channel (one `lax.scan` per scale).

Images in float16 or bfloat16 are upcast to float32 by the data-side layer
(the logit preprocessing `ScaledSigmoid`, or with `logit_alpha=None` the first
scale's `LayerStack`; `actnorm_init` too), so the transforms, log-dets and
log_prob are float32 and equal those of the float32 batch of the same values.
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
    ActNorm,
    DepthToSpace,
    Invertible1x1Conv,
    LayerStack,
    Scale,
    ScaledSigmoid,
    affine_split_coupling,
    multiscale_flow,
    multiscale_shapes,
    tanh_scale,
)
from dgmjax.bijectors.coupling import check_scale_fn
from dgmjax.models.base import (
    FlowModule,
    actnorm_stack_init,
    build_conditioner,
    check_image_conditioner,
    check_logit_alpha,
)
from dgmjax.nn.conditioners import ConvResNet, ModuleDef, ResidualBlock
from dgmjax.nn.stack import stack_params, zip_layers

__all__ = ["Glow"]


class Glow(FlowModule):
    """Multi-scale Glow flow for NHWC images with values in [0, 1).

    Attributes:
      image_shape: (H, W, C); H and W divisible by 2**num_scales.
      num_scales: scales, each squeezing first and each but the last ending
        in a factor-out (as in `ImageRealNVP`, where the last scale does not
        squeeze).
      num_steps: flow steps per scale.
      features, num_blocks, activation, block: the default coupling
        conditioner, a `dgmjax.nn.ConvResNet` of these (blocks
        `ResidualBlock`, or `GatedResidualBlock` with `activation=concat_elu`
        as in Flow++).
      conditioner: your own conditioner instead: a factory `n -> Flax module`
        mapping the kept half of the channels (NHWC) to n output channels,
        shift and raw log-scale for each transformed channel (e.g.
        `functools.partial(dgmjax.nn.ConvResNet, features=256)` or a module
        class); one copy per step, its last layer best zero-initialized.
      scale_fn: raw log-scale -> log-scale: `dgmjax.bijectors.tanh_scale`
        (the default: |log s| < 2, slope 1 at zero), `sigmoid_scale` as in
        the Glow paper, or any function.
      logit_alpha: the alpha of a logit preprocessing (`ScaledSigmoid` on the
        data side, its log-det counted in log_prob; the default 0.05), or None
        for the data as is in [0, 1), as in the Glow paper (the first
        ActNorm then centres it). The MNIST ablation in
        `experiments/RESULTS.md` chose the defaults.
      remat: recompute activations in the backward pass to save memory.
      compute_dtype: the default conditioner's compute dtype: None (float32)
        or `jnp.bfloat16` / `jnp.float16` for mixed precision (see
        `dgmjax.nn.MLP`); the transforms, log-dets and the base density stay
        float32.
    """

    image_shape: Sequence[int]
    num_scales: int = 2
    num_steps: int = 8
    features: int = 128
    num_blocks: int = 1
    activation: Callable = nn.relu
    block: ModuleDef = ResidualBlock
    conditioner: ModuleDef | None = None
    scale_fn: Callable = tanh_scale
    logit_alpha: float | None = 0.05
    remat: bool = False
    compute_dtype: Any = None

    def _squeezes(self):
        v.check_positive_int(self.num_scales, "num_scales")
        v.check_positive_int(self.num_steps, "num_steps")
        return [True] * self.num_scales

    def _channels(self) -> list[int]:
        """The channels each scale's steps act on (after its squeeze)."""
        return [after[2] for _, after in multiscale_shapes(self.image_shape, self._squeezes())]

    def _default_conditioner(self, out_channels: int) -> ConvResNet:
        return ConvResNet(out_channels, self.features, self.num_blocks, self.activation, self.block,
                          compute_dtype=self.compute_dtype, parent=None)

    unit_interval_data = True

    def check_hyperparameters(self):
        v.check_image_shape(self.image_shape)
        v.check_positive_int(self.num_scales, "num_scales")
        v.check_positive_int(self.num_steps, "num_steps")
        v.check_positive_int(self.features, "features")
        v.check_nonnegative_int(self.num_blocks, "num_blocks")
        check_image_conditioner(self)
        check_scale_fn(self.scale_fn)
        check_logit_alpha(self.logit_alpha)
        v.check_bool(self.remat, "remat")
        self._channels()

    def setup(self):
        self.check_hyperparameters()
        k, nets = self.num_steps, []
        for s, (_, (h, w, c)) in enumerate(multiscale_shapes(self.image_shape, self._squeezes())):
            net = build_conditioner(self.conditioner or self._default_conditioner, 2 * (c - c // 2))
            nets.append(net.apply)
            self.param(f"coupling_{s}", lambda rng, h=h, w=w, c=c, net=net: stack_params(
                net, rng, k, jnp.zeros((1, h, w, c // 2))))
            self.param(f"invconv_{s}", lambda rng, c=c: {
                "lower": jnp.zeros((k, c, c), jnp.float32), "upper": jnp.zeros((k, c, c), jnp.float32),
                "log_diag": jnp.zeros((k, c), jnp.float32)})
            self.param(f"actnorm_{s}", lambda rng, c=c: {
                "loc": jnp.zeros((k, c), jnp.float32), "log_scale": jnp.zeros((k, c), jnp.float32)})
        self._apply_conditioner = tuple(nets)

    def event_shape(self):
        return tuple(self.image_shape)

    def base_distribution(self):
        return distrax.Independent(distrax.Normal(jnp.zeros(self.event_shape()), 1.0), 3)

    def _permutations(self, s: int, c: int) -> np.ndarray:
        """Fixed channel permutations P of the 1x1 convs at scale s (W = P at init: orthogonal)."""
        rng = np.random.default_rng(1000 + s)
        return np.stack([rng.permutation(c) for _ in range(self.num_steps)])

    def _conv_and_coupling(self, p, perm, s: int, c: int) -> distrax.Bijector:
        """Chain([1x1 conv, coupling]): data -> noise runs the conv's inverse, then the coupling's."""
        apply = self._apply_conditioner[s]

        def cond(kept):
            out = apply({"params": p["net"]}, kept)
            return out.reshape(out.shape[:-1] + (c - c // 2, 2))

        coupling = affine_split_coupling(c // 2, cond, scale_fn=self.scale_fn)
        conv = Invertible1x1Conv(perm, p["conv"]["lower"], p["conv"]["upper"], p["conv"]["log_diag"])
        return distrax.Chain([conv, coupling])

    def _steps(self, s: int, with_actnorm: bool = True) -> LayerStack:
        c = self._channels()[s]
        actnorm = self.get_variable("params", f"actnorm_{s}") if with_actnorm else None

        def step(p, const):
            rest = self._conv_and_coupling(p, const["perm"], s, c)
            if "actnorm" not in p:
                return rest
            return distrax.Chain([ActNorm(p["actnorm"]["loc"], p["actnorm"]["log_scale"]), rest])

        params = zip_layers(net=self.get_variable("params", f"coupling_{s}"),
                            conv=self.get_variable("params", f"invconv_{s}"), actnorm=actnorm)
        return LayerStack(step, params, event_ndims=3, constants={"perm": self._permutations(s, c)},
                          remat=self.remat)

    def _preprocess(self):
        if self.logit_alpha is None:
            return None
        return distrax.Block(ScaledSigmoid(self.logit_alpha), 3)

    def bijector(self, context=None):
        flow = multiscale_flow(self.image_shape, [Scale(None, True, self._steps(s))
                                                  for s in range(self.num_scales)])
        pre = self._preprocess()
        return flow if pre is None else distrax.Chain([pre, flow])

    def _data_dependent_init(self, x):
        h = v.upcast_low_precision(x.reshape((-1,) + tuple(self.image_shape)))  # float32 statistics
        pre = self._preprocess()
        if pre is not None:
            h = pre.inverse(h)
        for s, c in enumerate(self._channels()):
            h = DepthToSpace().inverse(h)
            stats, h = actnorm_stack_init(h, self._steps(s, with_actnorm=False), 3)
            self.put_variable("params", f"actnorm_{s}", stats)
            h = h[..., : c // 2]

    def __call__(self, x, context=None):
        if self.is_initializing():
            self.check_hyperparameters()
            x = self.check_x(x)
            self._data_dependent_init(x)
        return super().__call__(x, context)
