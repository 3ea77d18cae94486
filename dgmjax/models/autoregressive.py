"""MAF and IAF for vectors (Papamakarios et al. 2017; Kingma et al. 2016) as Flax modules.

Each layer (noise -> data) is `Chain([ActNorm?, Permute, AR])` where AR is a
`MaskedAutoregressive` (MAF) or `InverseAutoregressive` (IAF) layer with a
MADE conditioner. Layers are stacked and run with `ScanChain`, so compile
time does not grow with depth. The permutation between layers ("reversed" by
default, as in the MAF paper) lets every variable be conditioned on every
other across layers. The optional ActNorm (data-dependent init on the batch
given to `init`) stands in for the batch norm the MAF paper puts between
layers; unlike batch norm it is an ordinary invertible layer at test time.

MAF: density one pass per layer; sampling D passes per layer ("sequential")
or a fixed-point iteration with early exit ("fixed_point").
IAF: sampling one pass per layer; density D passes per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import distrax
import jax
import jax.numpy as jnp

from dgmjax import _validation as v
from dgmjax.bijectors import (
    SOLVERS,
    ActNorm,
    InverseAutoregressive,
    MaskedAutoregressive,
    Permute,
    ScanChain,
)
from dgmjax.models.base import FlowModule, actnorm_stack_init
from dgmjax.models.realnvp import layer_permutations, layer_permute, scanned_permutation
from dgmjax.nn.conditioners import init_layerwise, init_stacked, layers_as_list
from dgmjax.nn.made import MADE

__all__ = ["IAF", "MAF"]


class _AutoregressiveFlow(FlowModule):
    event_size: int
    num_layers: int = 5
    hidden_sizes: Sequence[int] = (512,)
    activation: str = "relu"
    context_size: int = 0
    permutation: str = "reversed"
    actnorm: bool = False
    scale_fn: str = "tanh"
    scale_bound: float = 3.0
    tolerance: float = 1e-5
    remat: bool = False
    scan_layers: bool = True

    _inverse_layers = False  # IAF: True
    _solver_name = "sampling"  # the field that names the sequential direction's solver

    def _solver(self) -> str:
        return getattr(self, self._solver_name)

    def _made(self) -> MADE:
        return MADE(self.event_size, tuple(self.hidden_sizes), 2, "natural",
                    context_size=self.context_size, activation=self.activation, parent=None)

    def setup(self):
        v.check_positive_int(self.num_layers, "num_layers")
        v.check_positive_int(self.event_size, "event_size")
        if self._solver() not in SOLVERS:
            raise ValueError(f"`{self._solver_name}` must be one of {SOLVERS}; got {self._solver()!r}.")
        dummy = [jnp.zeros((1, self.event_size))]
        if self.context_size:
            dummy.append(jnp.zeros((1, self.context_size)))
        init = init_stacked if self.scan_layers else init_layerwise
        self.conditioners = self.param(
            "conditioners", lambda rng: init(self._made(), rng, self.num_layers, *dummy))
        if self.actnorm:
            zeros = lambda rng: jnp.zeros((self.num_layers, self.event_size))
            self.param("actnorm", lambda rng: {"loc": zeros(rng), "log_scale": zeros(rng)})

    def event_shape(self):
        return (self.event_size,)

    def base_distribution(self):
        return distrax.MultivariateNormalDiag(jnp.zeros(self.event_size))

    def _permutations(self):
        """(shared, stacked) as `scanned_permutation` gives them (both None for "none")."""
        return scanned_permutation(
            layer_permutations(self.permutation, self.event_size, self.num_layers))

    def _layer_params(self):
        """Stacked per-layer parameters (scan_layers) or a list of per-layer dicts (without ActNorm)."""
        if not self.scan_layers:
            perms = layer_permutations(self.permutation, self.event_size, self.num_layers)
            params = [{"net": p} for p in layers_as_list(self.conditioners)]
            if perms is not None:
                for i, p in enumerate(params):
                    p["perm"] = perms[i]  # NumPy: a compile-time constant of the layer
            return params
        params = {"net": self.conditioners}
        _, stacked = self._permutations()
        if stacked is not None:
            params["perm"] = stacked
        return params

    def _all_layer_params(self):
        """`_layer_params()` with each layer's ActNorm parameters added (when `actnorm`)."""
        params = self._layer_params()
        if not self.actnorm:
            return params
        an = self.get_variable("params", "actnorm")
        if self.scan_layers:
            params["actnorm"] = an
        else:
            for i, p in enumerate(params):
                p["actnorm"] = {"loc": an["loc"][i], "log_scale": an["log_scale"][i]}
        return params

    def _permute(self, p):
        """This layer's Permute, or None when the flow has no permutations."""
        if not self.scan_layers:
            return Permute(p["perm"]) if "perm" in p else None
        shared, stacked = self._permutations()
        if shared is None and stacked is None:
            return None
        return layer_permute(shared, p)

    def _ar_layer(self, p, context, solver=None):
        made = self._made()
        cond = lambda x, c=None: made.apply({"params": p["net"]}, x, c)
        kwargs = dict(context=context, scale_fn=self.scale_fn, scale_bound=self.scale_bound,
                      tolerance=self.tolerance)
        solver = solver or self._solver()
        if self._inverse_layers:
            return InverseAutoregressive(cond, density=solver, **kwargs)
        return MaskedAutoregressive(cond, sampling=solver, **kwargs)

    def _rest(self, p, context, solver=None):
        """The layer without its ActNorm: Chain([Permute, AR]) (permute on the data side)."""
        permute = self._permute(p)
        ar = self._ar_layer(p, context, solver)
        return ar if permute is None else distrax.Chain([permute, ar])

    def bijector(self, context=None):
        params = self._all_layer_params()

        def layer(p):
            rest = self._rest(p, context)
            if not self.actnorm:
                return rest
            an = p["actnorm"]
            return distrax.Chain([ActNorm(an["loc"], an["log_scale"], event_ndims=1), rest])

        return ScanChain(layer, params, event_ndims=1, remat=self.remat,
                         layerwise=not self.scan_layers)

    def __call__(self, x, context=None):
        if self.actnorm and self.is_initializing():
            v.check_event_shape(x, self.event_shape(), "x")
            ctx = self.check_context(context)
            flat = x.reshape(-1, self.event_size)
            if ctx is not None and ctx.ndim > 1:
                ctx = jnp.broadcast_to(ctx, x.shape[:-1] + ctx.shape[-1:]).reshape(-1, ctx.shape[-1])
            stats, _ = actnorm_stack_init(flat, lambda p: self._rest(p, ctx), self._layer_params(), 1)
            self.put_variable("params", "actnorm", stats)
        return super().__call__(x, context)


class MAF(_AutoregressiveFlow):
    """Masked autoregressive flow on vectors: one-pass density, sequential sampling.

    Attributes:
      event_size: D.
      num_layers: MADE layers.
      hidden_sizes: each MADE's hidden widths.
      context_size: > 0 for a conditional flow (`context` of that size).
      permutation: between layers: "reversed", "random" or "none".
      actnorm: data-dependent ActNorm in every layer (MAF's batch-norm role).
      scale_fn, scale_bound: bound on each layer's scale.
      sampling: "sequential" (D passes per layer) or "fixed_point".
      tolerance: fixed-point stopping threshold.
      remat: recompute activations in the backward pass to save memory.
      scan_layers: True (default): stacked parameters and `lax.scan` (compile
        time flat in depth); False: per-layer parameters `{"layer_i": ...}`
        and a Python loop (a faster step at small depth on CPU).
    """

    sampling: str = "sequential"

    def sample_with_iterations(self, key, num_samples: int, sampling: str | None = None,
                               context=None):
        """Samples, and the conditioner passes each layer's solver used (shape (num_layers,))."""
        num_samples = v.check_positive_int(num_samples, "num_samples")
        context = self.check_context(context)
        z = self.base_distribution().sample(seed=key, sample_shape=(num_samples,))
        params = self._all_layer_params()

        def body(x, p):
            x, _, iters = self._ar_layer(p, context, sampling).forward_with_iterations(x)
            permute = self._permute(p)
            if permute is not None:
                x = permute.forward(x)
            if self.actnorm:
                x = ActNorm(p["actnorm"]["loc"], p["actnorm"]["log_scale"], 1).forward(x)
            return x, iters

        if not self.scan_layers:
            iters = []
            x = z
            for p in params:
                x, it = body(x, p)
                iters.append(it)
            return x, jnp.stack(iters)
        x, iters = jax.lax.scan(body, z, params)
        return x, iters


class IAF(_AutoregressiveFlow):
    """Inverse autoregressive flow on vectors: one-pass sampling, sequential density.

    Attributes as `MAF`, with `density` ("sequential" or "fixed_point") for
    how the sequential inverse is solved.
    """

    density: str = "sequential"
    _inverse_layers = True
    _solver_name = "density"
