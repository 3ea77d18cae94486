"""MAF and IAF for vectors (Papamakarios et al. 2017; Kingma et al. 2016) as Flax modules.

Each layer (noise -> data) is `Chain([ActNorm?, Permute?, AR])` where AR is a
`MaskedAutoregressive` (MAF) or `InverseAutoregressive` (IAF) layer with a
MADE conditioner. The layers form a `LayerStack`, scanned by default so that
compile time does not grow with depth. The permutation between layers
("reversed" by default, as in the MAF paper) lets every variable be
conditioned on every other across layers. The optional ActNorm
(data-dependent init on the batch given to `init`) stands in for the batch
norm the MAF paper puts between layers; unlike batch norm it is an ordinary
invertible layer at test time.

MAF: density one pass per layer; sampling D passes per layer ("sequential")
or a fixed-point iteration with early exit ("fixed_point").
IAF: sampling one pass per layer; density D passes per layer, or the
fixed-point iteration. Either solver can be trained through (reverse-mode
gradients; the fixed point's by the implicit function theorem, see
`dgmjax.bijectors.MaskedAutoregressive`). With "fixed_point", an example
whose values are not finite gets a NaN result (sample or log-density) and
does not change the others'.

Data in float16 or bfloat16 is upcast to float32 where the layer stack
starts (`LayerStack`), so the transforms, log-dets and log_prob are float32.
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
    SOLVERS,
    ActNorm,
    InverseAutoregressive,
    LayerStack,
    MaskedAutoregressive,
    Permute,
)
from dgmjax.bijectors.autoregressive import TANH_SCALE_3
from dgmjax.bijectors.coupling import check_scale_fn
from dgmjax.models.base import FlowModule, actnorm_stack_init
from dgmjax.nn.made import MADE
from dgmjax.nn.stack import stack_params, zip_layers

__all__ = ["IAF", "MAF", "PERMUTATIONS", "layer_permutations"]

PERMUTATIONS = ("none", "reversed", "random")


def layer_permutations(kind: str, size: int, num_layers: int, seed: int = 0):
    """Per-layer permutations (num_layers, size) of a vector flow, or None for "none"."""
    v.check_choice(kind, PERMUTATIONS, "permutation")
    size = v.check_positive_int(size, "size")
    num_layers = v.check_positive_int(num_layers, "num_layers")
    if kind == "none":
        return None
    if kind == "reversed":
        return np.tile(np.arange(size)[::-1], (num_layers, 1))
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(size) for _ in range(num_layers)])


def permutation_constants(kind: str, size: int, num_layers: int):
    """`LayerStack` constants for per-layer permutations: {"perm", "inv"}, or None."""
    perms = layer_permutations(kind, size, num_layers)
    return None if perms is None else {"perm": perms, "inv": np.argsort(perms, axis=-1)}


class _AutoregressiveFlow(FlowModule):
    event_size: int
    num_layers: int = 5
    hidden_sizes: Sequence[int] = (512,)
    activation: Callable = nn.relu
    context_size: int = 0
    permutation: str = "reversed"
    actnorm: bool = False
    scale_fn: Callable = TANH_SCALE_3
    solver: str = "sequential"
    tolerance: float = 1e-5
    remat: bool = False
    scan_layers: bool = True
    compute_dtype: Any = None

    _inverse_layers = False  # IAF: True

    def _made(self) -> MADE:
        return MADE(self.event_size, tuple(self.hidden_sizes), 2, "natural",
                    context_size=self.context_size, activation=self.activation,
                    compute_dtype=self.compute_dtype, parent=None)

    def check_hyperparameters(self):
        v.check_positive_int(self.event_size, "event_size")
        v.check_positive_int(self.num_layers, "num_layers")
        v.check_sizes(self.hidden_sizes, "hidden_sizes")
        v.check_callable(self.activation, "activation", "an activation function")
        v.check_nonnegative_int(self.context_size, "context_size")
        v.check_choice(self.permutation, PERMUTATIONS, "permutation")
        v.check_bool(self.actnorm, "actnorm")
        check_scale_fn(self.scale_fn)
        v.check_choice(self.solver, SOLVERS, "solver")
        v.check_nonnegative_float(self.tolerance, "tolerance")
        v.check_bool(self.remat, "remat")
        v.check_bool(self.scan_layers, "scan_layers")
        v.as_compute_dtype(self.compute_dtype)

    def setup(self):
        self.check_hyperparameters()
        dummy = [jnp.zeros((1, self.event_size))]
        if self.context_size:
            dummy.append(jnp.zeros((1, self.context_size)))
        self.conditioners = self.param("conditioners", lambda rng: stack_params(
            self._made(), rng, self.num_layers, *dummy, scan=self.scan_layers))
        if self.actnorm:
            zeros = lambda rng: jnp.zeros((self.num_layers, self.event_size), jnp.float32)
            self.param("actnorm", lambda rng: {"loc": zeros(rng), "log_scale": zeros(rng)})

    def event_shape(self):
        return (self.event_size,)

    def base_distribution(self):
        return distrax.MultivariateNormalDiag(jnp.zeros(self.event_size))

    def _constants(self):
        return permutation_constants(self.permutation, self.event_size, self.num_layers)

    def _ar_layer(self, p, context, solver=None):
        made = self._made()
        cond = lambda x, c=None: made.apply({"params": p["net"]}, x, c)
        layer = InverseAutoregressive if self._inverse_layers else MaskedAutoregressive
        return layer(cond, context=context, scale_fn=self.scale_fn,
                     solver=solver or self.solver, tolerance=self.tolerance)

    def _rest(self, p, c, context, solver=None):
        """The layer without its ActNorm: Chain([Permute, AR]) (permute on the data side)."""
        ar = self._ar_layer(p, context, solver)
        return ar if c is None else distrax.Chain([Permute(c["perm"], c["inv"]), ar])

    def _actnorm(self, p):
        return ActNorm(p["actnorm"]["loc"], p["actnorm"]["log_scale"], event_ndims=1)

    def _stack(self, context, with_actnorm: bool = True) -> LayerStack:
        an = self.get_variable("params", "actnorm") if (self.actnorm and with_actnorm) else None

        def layer(p, c):
            rest = self._rest(p, c, context)
            return distrax.Chain([self._actnorm(p), rest]) if "actnorm" in p else rest

        return LayerStack(layer, zip_layers(net=self.conditioners, actnorm=an), event_ndims=1,
                          constants=self._constants(), remat=self.remat)

    def bijector(self, context=None):
        return self._stack(context)

    def __call__(self, x, context=None):
        if self.actnorm and self.is_initializing():
            self.check_hyperparameters()
            x = self.check_x(x)
            ctx = self.check_context(context, x.shape[:-1])
            flat = v.upcast_low_precision(x.reshape(-1, self.event_size))  # float32 statistics
            if ctx is not None and ctx.ndim > 1:
                ctx = jnp.broadcast_to(ctx, x.shape[:-1] + ctx.shape[-1:]).reshape(-1, ctx.shape[-1])
            stats, _ = actnorm_stack_init(flat, self._stack(ctx, with_actnorm=False), 1)
            self.put_variable("params", "actnorm", stats)
        return super().__call__(x, context)


class MAF(_AutoregressiveFlow):
    """Masked autoregressive flow on vectors: one-pass density, sequential sampling.

    Attributes:
      event_size: D.
      num_layers: MADE layers.
      hidden_sizes: each MADE's hidden widths.
      context_size: if > 0, a conditional flow (`context` of that size).
      permutation: between layers: "reversed", "random" or "none".
      actnorm: data-dependent ActNorm in every layer (MAF's batch-norm role).
      activation: the MADEs' activation function.
      scale_fn: raw log-scale -> log-scale of each layer (default
        `dgmjax.bijectors.tanh_scale` with bound 3; see `affine_coupling`).
      solver: how sampling (the sequential direction) is solved:
        "sequential" (D passes per layer) or "fixed_point" (Jacobi iteration
        with a per-example early exit; a non-finite example comes back NaN).
      tolerance: fixed-point stopping threshold (per example: max |x_new - x|).
      remat: recompute activations in the backward pass to save memory.
      scan_layers: True: the layers' parameters are stacked and scanned
        (compile time flat in depth); False: a list of per-layer parameters
        run unrolled (a faster step at small depth). See `LayerStack`.
      compute_dtype: the conditioners' compute dtype: None (float32) or
        `jnp.bfloat16` / `jnp.float16` for mixed precision (see
        `dgmjax.nn.MLP`); the transforms, log-dets and the base density stay
        float32.
    """

    def sample_with_iterations(self, key, num_samples: int, context=None, *, solver: str | None = None):
        """Samples, and the conditioner passes each layer's solver used (shape (num_layers,)).

        The arguments of `sample` (no temperature), and `solver` to solve with another solver
        than the model's own."""
        self.check_hyperparameters()
        num_samples = v.check_positive_int(num_samples, "num_samples")
        if solver is not None:
            v.check_choice(solver, SOLVERS, "solver")
        context = self.check_context(context, (num_samples,))
        z = self.base_distribution().sample(seed=key, sample_shape=(num_samples,))
        stack = self._stack(context)

        def body(x, p, c):
            x0 = x
            x, _, iters = self._ar_layer(p, context, solver).forward_with_iterations(x)
            if c is not None:
                x = Permute(c["perm"], c["inv"]).forward(x)
            if "actnorm" in p:
                x = self._actnorm(p).forward(x)
            return x.astype(x0.dtype), iters

        return stack.scan(body, z)


class IAF(_AutoregressiveFlow):
    """Inverse autoregressive flow on vectors: one-pass sampling, sequential density.

    Attributes as `MAF`; `solver` says how the density (here the sequential
    direction) is solved. Both solvers are differentiable, so either trains;
    "fixed_point" exits early per example, and gives NaN log-density for an
    example that is not finite without changing the others'.
    """

    _inverse_layers = True
