"""Bad input to the flows, their networks, the models built on them, dequantization and data loaders.

`CASES` is a table: `(function_name, description, thunk, expected)`. `expected` is a substring the
ValueError must contain (the argument's name in backticks), or "accepted" for valid but unusual
input (numpy scalars, Python lists, ...), whose result must be finite. One parametrized test runs
them all; models are built once (tiny shapes) and reused.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax import bijectors as B
from dgmjax import data as D
from dgmjax import dequantization as DQ
from dgmjax import models as M
from dgmjax import nn as N
from dgmjax.objectives import dequantization as Q

KEY = jax.random.PRNGKey(0)
X4 = np.linspace(-1.0, 1.0, 8, dtype=np.float32).reshape(2, 4)
IMG = np.linspace(0.05, 0.95, 2 * 4 * 4 * 2, dtype=np.float32).reshape(2, 4, 4, 2)
LEVELS = (np.arange(2 * 4 * 4 * 1) % 16).astype(np.uint8).reshape(2, 4, 4, 1)
X4C = X4 + 0.5j  # complex64
IMGC = IMG + 0.5j
zero_cond = lambda xm: jnp.zeros(xm.shape + (2,))
split_cond = lambda kept: jnp.zeros(kept.shape + (2,))  # a rest of the kept part's size


def _made_cond(d, context_size=0):
    made = N.MADE(d, (8,), 2, context_size=context_size)
    args = [jnp.zeros((1, d))] + ([jnp.zeros((1, context_size))] if context_size else [])
    params = made.init(KEY, *args)
    return lambda x, c=None: made.apply(params, x, c)


@functools.cache
def made_cond():
    return _made_cond(4)


@functools.cache
def made_cond_ctx():
    return _made_cond(4, context_size=3)


def conv(**kw):
    c = 2
    args = dict(
        permutation=np.array([1, 0]),
        lower=np.zeros((c, c), np.float32),
        upper=np.zeros((c, c), np.float32),
        log_diag=np.zeros(c, np.float32),
    )
    args.update(kw)
    return B.Invertible1x1Conv(**args)


def planar(**kw):
    args = dict(u=np.ones(4, np.float32), w=np.ones(4, np.float32), b=np.float32(0.0))
    args.update(kw)
    return B.Planar(**args)


def stack(params=None, constants=None, event_ndims=1, fn=None):
    params = {"shift": jnp.zeros((3, 4))} if params is None else params
    fn = fn or (lambda p, c: distrax_shift(p["shift"]))
    return B.LayerStack(fn, params, event_ndims, constants=constants)


def distrax_shift(shift):
    import distrax  # noqa: PLC0415

    return distrax.Block(distrax.Shift(shift), 1)


# ---- models, built once -------------------------------------------------------------------------


@functools.cache
def maf():
    m = M.MAF(4, num_layers=2, hidden_sizes=(8,))
    return zero_init(m, X4)


@functools.cache
def cmaf():
    m = M.MAF(4, num_layers=1, hidden_sizes=(8,), context_size=3)
    return zero_init(m, X4, np.zeros((2, 3), np.float32))


@functools.cache
def realnvp():
    m = M.RealNVP(4, num_layers=2, hidden_sizes=(8,))
    return zero_init(m, X4)


@functools.cache
def image_realnvp():
    m = M.ImageRealNVP((4, 4, 2), num_scales=1, num_checkerboard=1, features=4, num_blocks=0)
    return zero_init(m, IMG)


@functools.cache
def glow():
    m = M.Glow((4, 4, 2), num_scales=1, num_steps=1, features=4, num_blocks=0)
    return zero_init(m, IMG)


@functools.cache
def idf():
    m = M.IntegerDiscreteFlow(
        (4, 4, 1), 16, num_scales=1, num_layers=1, features=4, num_blocks=0, num_mixtures=2
    )
    return zero_init(m, LEVELS)


@functools.cache
def made_density():
    m = M.MADEDensity(3, 4, hidden_sizes=(8,))
    return zero_init(m, np.zeros((1, 3), np.int32))


@functools.cache
def pixelcnn():
    m = M.PixelCNN((2, 2, 1), 4, features=4, num_blocks=1, context_size=2)
    return zero_init(m, np.zeros((1, 2, 2, 1), np.int32), np.zeros((1, 2), np.float32))


@functools.cache
def dequantizer():
    m = M.VariationalDequantizer((4, 4, 1), 16, num_layers=1, features=4, num_blocks=0, context_features=2)
    return zero_init(m, KEY, LEVELS)


def iaf_fixed_point_log_prob(x):
    m = M.IAF(4, num_layers=2, hidden_sizes=(8,), solver="fixed_point")
    return m.apply(init(m, x), x)


def apply(factory, *args, method=None, **kw):
    m, variables = factory()
    return m.apply(variables, *args, method=None if method is None else getattr(m, method), **kw)


def zero_init(model, *args):
    """The model and zero variables of the shapes `init` gives (traced, never compiled or run):
    enough for the checks, which come before any compute; the flows are the identity at zero."""
    shapes = jax.eval_shape(model.init, KEY, *args)
    return model, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def init(model, *args):
    return model.init(KEY, *args)


# ---- the table ----------------------------------------------------------------------------------

CASES = [
    # coupling
    ("affine_coupling", "integer mask", lambda: B.affine_coupling(np.ones(4, np.int32), zero_cond), "`mask`"),
    (
        "affine_coupling",
        "all-True mask (identity)",
        lambda: B.affine_coupling(np.ones(4, bool), zero_cond),
        "`mask`",
    ),
    (
        "affine_coupling",
        "unknown scale_fn",
        lambda: B.affine_coupling(B.alternating_mask(4), zero_cond, scale_fn="exp"),
        "`scale_fn`",
    ),
    (
        "affine_coupling",
        "scale_fn a number",
        lambda: B.affine_coupling(B.alternating_mask(4), zero_cond, scale_fn=2.0),
        "`scale_fn`",
    ),
    (
        "affine_coupling",
        "conditioner not callable",
        lambda: B.affine_coupling(B.alternating_mask(4), 3.0),
        "`conditioner`",
    ),
    (
        "affine_coupling",
        "input of another event shape than the mask",
        lambda: B.affine_coupling(B.alternating_mask(4), zero_cond).forward(np.zeros((2, 5), np.float32)),
        "`z`",
    ),
    (
        "affine_coupling",
        "integer input to inverse",
        lambda: B.affine_coupling(B.alternating_mask(4), zero_cond).inverse(np.zeros((2, 4), np.int32)),
        "`x`",
    ),
    (
        "affine_coupling",
        "conditioner output of wrong shape",
        lambda: B.affine_coupling(B.alternating_mask(4), lambda x: jnp.zeros(x.shape + (3,))).forward(X4),
        "`conditioner`",
    ),
    (
        "affine_coupling",
        "mask as a Python list; tanh_scale with an np.float32 bound",
        lambda: B.affine_coupling([True, False, True, False], zero_cond,
                                  scale_fn=functools.partial(B.tanh_scale, bound=np.float32(2.0))
                                  ).forward(X4),
        "accepted",
    ),
    (
        "affine_split_coupling",
        "split_index 0",
        lambda: B.affine_split_coupling(0, split_cond),
        "`split_index`",
    ),
    (
        "affine_split_coupling",
        "split_index -1",
        lambda: B.affine_split_coupling(-1, split_cond),
        "`split_index`",
    ),
    (
        "affine_split_coupling",
        "split_index >= D (identity)",
        lambda: B.affine_split_coupling(4, split_cond, event_ndims=1).forward(X4),
        "`split_index`",
    ),
    (
        "affine_split_coupling",
        "event_ndims 0",
        lambda: B.affine_split_coupling(2, split_cond, event_ndims=0),
        "`event_ndims`",
    ),
    (
        "affine_split_coupling",
        "swap not a bool",
        lambda: B.affine_split_coupling(2, split_cond, swap="yes"),
        "`swap`",
    ),
    (
        "affine_split_coupling",
        "unknown scale_fn",
        lambda: B.affine_split_coupling(2, split_cond, scale_fn="softplus"),
        "`scale_fn`",
    ),
    (
        "affine_split_coupling",
        "conditioner output not rest.shape + (2,)",
        lambda: B.affine_split_coupling(1, split_cond, event_ndims=1).forward(X4),
        "`conditioner`",
    ),
    (
        "affine_split_coupling",
        "input with fewer axes than event_ndims",
        lambda: B.affine_split_coupling(2, split_cond, event_ndims=3).forward(X4),
        "`z`",
    ),
    (
        "affine_split_coupling",
        "np.int64 split_index",
        lambda: B.affine_split_coupling(np.int64(2), split_cond, event_ndims=1).inverse(X4),
        "accepted",
    ),
    ("tanh_scale", "bound 0", lambda: B.tanh_scale(jnp.zeros(3), 0.0), "`bound`"),
    (
        "tanh_scale",
        "np.float32 bound",
        lambda: B.tanh_scale(jnp.asarray([1.0, -2.0]), np.float32(3.0)),
        "accepted",
    ),
    ("checkerboard_mask", "shape (H, W)", lambda: B.checkerboard_mask((4, 4)), "`shape`"),
    ("checkerboard_mask", "a single pixel", lambda: B.checkerboard_mask((1, 1, 3)), "`shape`"),
    ("checkerboard_mask", "parity 0.5", lambda: B.checkerboard_mask((2, 2, 1), 0.5), "`parity`"),
    ("channel_mask", "odd channels", lambda: B.channel_mask((4, 4, 3)), "`shape`"),
    ("channel_mask", "zero height", lambda: B.channel_mask((0, 4, 2)), "`shape`"),
    ("alternating_mask", "size 1", lambda: B.alternating_mask(1), "`size`"),
    (
        "alternating_mask",
        "np.int64 size",
        lambda: B.alternating_mask(np.int64(4)).astype(np.float32),
        "accepted",
    ),
    # autoregressive
    (
        "MaskedAutoregressive",
        "unknown scale_fn",
        lambda: B.MaskedAutoregressive(made_cond(), scale_fn="exp"),
        "`scale_fn`",
    ),
    (
        "MaskedAutoregressive",
        "unknown solver",
        lambda: B.MaskedAutoregressive(made_cond(), solver="newton"),
        "`solver`",
    ),
    (
        "MaskedAutoregressive",
        "negative tolerance",
        lambda: B.MaskedAutoregressive(made_cond(), tolerance=-1.0),
        "`tolerance`",
    ),
    (
        "MaskedAutoregressive",
        "max_iterations 0",
        lambda: B.MaskedAutoregressive(made_cond(), max_iterations=0),
        "`max_iterations`",
    ),
    (
        "MaskedAutoregressive",
        "scale_fn named, not given",
        lambda: B.MaskedAutoregressive(made_cond(), scale_fn="tanh"),
        "`scale_fn`",
    ),
    (
        "MaskedAutoregressive",
        "conditioner not callable",
        lambda: B.MaskedAutoregressive(None),
        "`conditioner`",
    ),
    (
        "MaskedAutoregressive",
        "integer data",
        lambda: B.MaskedAutoregressive(made_cond()).inverse(np.zeros((2, 4), np.int32)),
        "`x`",
    ),
    (
        "MaskedAutoregressive",
        "scalar noise",
        lambda: B.MaskedAutoregressive(made_cond()).forward(jnp.float32(1.0)),
        "`z`",
    ),
    (
        "MaskedAutoregressive",
        "context batch 3 for data batch 2",
        lambda: B.MaskedAutoregressive(made_cond_ctx(), context=np.zeros((3, 3), np.float32)).inverse(X4),
        "`context`",
    ),
    (
        "MaskedAutoregressive",
        "context batch 3 for noise batch 2 (sampling)",
        lambda: B.MaskedAutoregressive(made_cond_ctx(), context=np.zeros((3, 3), np.float32)).forward(X4),
        "`context`",
    ),
    (
        "MaskedAutoregressive",
        "conditioner output of wrong shape",
        lambda: B.MaskedAutoregressive(lambda x: jnp.zeros(x.shape + (3,))).inverse(X4),
        "`conditioner`",
    ),
    (
        "MaskedAutoregressive",
        "np.float32 tanh bound and tolerance, list context",
        lambda: B.MaskedAutoregressive(
            made_cond_ctx(),
            context=[0.1, 0.2, 0.3],
            scale_fn=functools.partial(B.tanh_scale, bound=np.float32(2.0)),
            tolerance=np.float32(1e-5),
            solver="fixed_point",
        ).forward(X4),
        "accepted",
    ),
    (
        "InverseAutoregressive",
        "unknown solver",
        lambda: B.InverseAutoregressive(made_cond(), solver="exact"),
        "`solver`",
    ),
    (
        "InverseAutoregressive",
        "context batch mismatch",
        lambda: B.InverseAutoregressive(made_cond_ctx(), context=np.zeros((3, 3), np.float32)).forward(X4),
        "`context`",
    ),
    ("Permute", "not a permutation", lambda: B.Permute(np.array([0, 0, 1])), "`permutation`"),
    ("Permute", "float permutation", lambda: B.Permute(np.array([0.0, 1.0])), "`permutation`"),
    ("Permute", "input of another size", lambda: B.Permute([1, 0, 2]).forward(X4), "`x`"),
    ("Permute", "Python list", lambda: B.Permute([3, 1, 0, 2]).inverse(X4), "accepted"),
    # glow
    (
        "Invertible1x1Conv",
        "non-permutation (singular W)",
        lambda: conv(permutation=np.array([0, 0])),
        "`permutation`",
    ),
    (
        "Invertible1x1Conv",
        "float permutation",
        lambda: conv(permutation=np.array([1.0, 0.0])),
        "`permutation`",
    ),
    ("Invertible1x1Conv", "non-square lower", lambda: conv(lower=np.zeros((2, 3), np.float32)), "`lower`"),
    (
        "Invertible1x1Conv",
        "log_diag -inf (singular U)",
        lambda: conv(log_diag=np.array([0.0, -np.inf], np.float32)),
        "`log_diag`",
    ),
    (
        "Invertible1x1Conv",
        "log_diag underflowing exp",
        lambda: conv(log_diag=np.array([0.0, -200.0], np.float32)),
        "`log_diag`",
    ),
    (
        "Invertible1x1Conv",
        "sign 0 (singular U)",
        lambda: conv(sign=np.array([1.0, 0.0], np.float32)),
        "`sign`",
    ),
    ("Invertible1x1Conv", "integer lower", lambda: conv(lower=np.zeros((2, 2), np.int32)), "`lower`"),
    (
        "Invertible1x1Conv",
        "input with 3 channels for C = 2",
        lambda: conv().forward(np.zeros((1, 2, 2, 3), np.float32)),
        "`z`",
    ),
    ("Invertible1x1Conv", "integer input", lambda: conv().inverse(np.zeros((1, 2, 2, 2), np.int32)), "`x`"),
    (
        "Invertible1x1Conv",
        "parameters as Python lists",
        lambda: conv(
            permutation=[1, 0],
            lower=[[0.0, 0.0], [0.5, 0.0]],
            upper=[[0.0, 0.3], [0.0, 0.0]],
            log_diag=[0.1, -0.2],
            sign=[1.0, -1.0],
        ).inverse(IMG),
        "accepted",
    ),
    (
        "ActNorm",
        "loc and log_scale of different lengths",
        lambda: B.ActNorm(np.zeros(2), np.zeros(3)),
        "`loc`",
    ),
    ("ActNorm", "event_ndims 0", lambda: B.ActNorm(np.zeros(2), np.zeros(2), event_ndims=0), "`event_ndims`"),
    ("ActNorm", "NaN log_scale", lambda: B.ActNorm(np.zeros(2), np.array([0.0, np.nan])), "`log_scale`"),
    ("ActNorm", "integer loc", lambda: B.ActNorm(np.zeros(2, np.int32), np.zeros(2)), "`loc`"),
    (
        "ActNorm",
        "input with another channel count",
        lambda: B.ActNorm(np.zeros(3), np.zeros(3)).forward(IMG),
        "`z`",
    ),
    ("ActNorm", "integer input", lambda: B.ActNorm(np.zeros(1), np.zeros(1)).inverse(LEVELS), "`x`"),
    (
        "ActNorm",
        "Python lists, np.int64 event_ndims",
        lambda: B.ActNorm([0.1, 0.2], [0.0, 0.5], event_ndims=np.int64(3)).inverse(IMG),
        "accepted",
    ),
    ("actnorm_init", "a single vector", lambda: B.actnorm_init(np.zeros(4, np.float32)), "`x`"),
    ("actnorm_init", "eps 0", lambda: B.actnorm_init(IMG, eps=0.0), "`eps`"),
    ("actnorm_init", "integer levels", lambda: B.actnorm_init(LEVELS), "`x`"),
    # logit preprocessing
    ("ScaledSigmoid", "alpha 0.5", lambda: B.ScaledSigmoid(0.5), "`alpha`"),
    ("ScaledSigmoid", "alpha as a string", lambda: B.ScaledSigmoid("0.05"), "`alpha`"),
    ("ScaledSigmoid", "uint8 levels to inverse", lambda: B.ScaledSigmoid(0.05).inverse(LEVELS), "`x`"),
    (
        "ScaledSigmoid",
        "float levels in [0, 16] (not scaled)",
        lambda: B.ScaledSigmoid(0.05).inverse(LEVELS.astype(np.float32)),
        "scale levels to [0, 1]",
    ),
    (
        "ScaledSigmoid",
        "NaN pixel",
        lambda: B.ScaledSigmoid(0.05).inverse(np.array([0.5, np.nan], np.float32)),
        "`x`",
    ),
    (
        "ScaledSigmoid",
        "integer logits to forward",
        lambda: B.ScaledSigmoid(0.05).forward(np.arange(3)),
        "`y`",
    ),
    ("ScaledSigmoid", "np.float32 alpha", lambda: B.ScaledSigmoid(np.float32(0.05)).inverse(IMG), "accepted"),
    (
        "ScaledSigmoid",
        "0-d array alpha, Python list input",
        lambda: B.ScaledSigmoid(jnp.asarray(1e-6)).inverse([0.0, 0.5, 1.0]),
        "accepted",
    ),
    # planar
    ("Planar", "u and w of different shapes", lambda: planar(u=np.ones(3, np.float32)), "`u`"),
    ("Planar", "b of the wrong shape", lambda: planar(b=np.zeros(2, np.float32)), "`b`"),
    ("Planar", "NaN in w", lambda: planar(w=np.array([1.0, np.nan, 0.0, 0.0], np.float32)), "`w`"),
    ("Planar", "bisection_steps 0", lambda: planar(bisection_steps=0), "`bisection_steps`"),
    ("Planar", "input of another size", lambda: planar().forward(np.zeros((2, 3), np.float32)), "`z`"),
    ("Planar", "integer input to inverse", lambda: planar().inverse(np.zeros((2, 4), np.int32)), "`y`"),
    (
        "Planar",
        "Python lists",
        lambda: planar(u=[0.1, 0.2, 0.3, 0.4], w=[1.0, 0.0, 0.0, -1.0], b=0.5).inverse(X4),
        "accepted",
    ),
    # stacks and multi-scale
    ("LayerStack", "bijector_fn not callable", lambda: B.LayerStack(None, [{}], 1), "`bijector_fn`"),
    (
        "LayerStack",
        "params leaves with different layer counts",
        lambda: stack({"a": jnp.zeros((3, 4)), "b": jnp.zeros((2, 4))}),
        "`params`",
    ),
    (
        "LayerStack",
        "constants with another layer count",
        lambda: stack(constants={"m": np.zeros((2, 4))}),
        "`constants`",
    ),
    ("LayerStack", "event_ndims -1", lambda: stack(event_ndims=-1), "`event_ndims`"),
    ("LayerStack", "empty list of layers", lambda: B.LayerStack(lambda p, c: None, [], 1), "`params`"),
    ("LayerStack", "input with too few axes", lambda: stack(event_ndims=2).forward(jnp.zeros(4)), "`x`"),
    (
        "LayerStack",
        "a layer that changes shape",
        lambda: stack(fn=lambda p, c: B.DepthToSpace(1) if False else B.Permute(np.arange(4))).forward(
            jnp.zeros((2, 5))
        ),
        "`x`",
    ),
    ("DepthToSpace", "factor 0", lambda: B.DepthToSpace(0), "`factor`"),
    ("DepthToSpace", "channels not divisible by 4", lambda: B.DepthToSpace(2).forward(IMG), "`z`"),
    (
        "DepthToSpace",
        "odd height to space-to-depth",
        lambda: B.DepthToSpace(2).inverse(np.zeros((1, 3, 4, 1), np.float32)),
        "`x`",
    ),
    ("FactorOut", "num_kept 0", lambda: B.FactorOut(B.DepthToSpace(1), 0), "`num_kept`"),
    ("FactorOut", "vector bijector", lambda: B.FactorOut(B.Permute([0, 1]), 1), "`bijector`"),
    (
        "FactorOut",
        "no channel left to pass through",
        lambda: B.FactorOut(B.DepthToSpace(1), 2).forward(IMG),
        "`x`",
    ),
    (
        "FactorOut",
        "np.int64 num_kept",
        lambda: B.FactorOut(B.DepthToSpace(1), np.int64(1)).forward(IMG),
        "accepted",
    ),
    ("multiscale_shapes", "image_shape (H, W)", lambda: B.multiscale_shapes((4, 4), [True]), "`image_shape`"),
    (
        "multiscale_shapes",
        "height not divisible by 2",
        lambda: B.multiscale_shapes((6, 6, 1), [True, True]),
        "`image_shape`",
    ),
    ("multiscale_shapes", "no scales", lambda: B.multiscale_shapes((4, 4, 1), []), "`scales`"),
    ("multiscale_flow", "scales not Scale tuples", lambda: B.multiscale_flow((4, 4, 1), [None]), "`scales`"),
    (
        "split_latent",
        "latent of another shape",
        lambda: B.split_latent(np.zeros((1, 4, 4, 2), np.float32), (4, 4, 1), [True]),
        "`z`",
    ),
    (
        "merge_latent",
        "one part for two scales",
        lambda: B.merge_latent([np.zeros((1, 2, 2, 4))], (4, 4, 1), [True, True]),
        "`parts`",
    ),
    (
        "merge_latent",
        "a part of the wrong shape",
        lambda: B.merge_latent([np.zeros((1, 2, 2, 3)), np.zeros((1, 1, 1, 8))], (4, 4, 1), [True, True]),
        "`parts`",
    ),
    # vector flow models
    ("MAF", "event_size 0", lambda: init(M.MAF(0), X4), "`event_size`"),
    ("MAF", "num_layers 0", lambda: init(M.MAF(4, num_layers=0), X4), "`num_layers`"),
    ("MAF", "hidden_sizes ()", lambda: init(M.MAF(4, hidden_sizes=()), X4), "`hidden_sizes`"),
    ("MAF", "a hidden width 0", lambda: init(M.MAF(4, hidden_sizes=(8, 0)), X4), "`hidden_sizes`"),
    ("MAF", "unknown activation", lambda: init(M.MAF(4, activation="swish"), X4), "`activation`"),
    ("MAF", "context_size -1", lambda: init(M.MAF(4, context_size=-1), X4), "`context_size`"),
    ("MAF", "unknown permutation", lambda: init(M.MAF(4, permutation="sideways"), X4), "`permutation`"),
    ("MAF", "unknown scale_fn", lambda: init(M.MAF(4, scale_fn="exp"), X4), "`scale_fn`"),
    ("MAF", "tanh bound 0", lambda: init(M.MAF(4, scale_fn=functools.partial(B.tanh_scale, bound=0.0)), X4),
     "`bound`"),
    ("MAF", "unknown solver", lambda: init(M.MAF(4, solver="newton"), X4), "`solver`"),
    ("MAF", "negative tolerance", lambda: init(M.MAF(4, tolerance=-1.0), X4), "`tolerance`"),
    ("MAF", "unknown compute_dtype", lambda: init(M.MAF(4, compute_dtype="int8"), X4), "`compute_dtype`"),
    ("MAF", "integer data", lambda: apply(maf, X4.astype(np.int32)), "`x`"),
    ("MAF", "data of another size", lambda: apply(maf, np.zeros((2, 5), np.float32)), "`x`"),
    ("MAF", "num_samples 0", lambda: apply(maf, KEY, 0, method="sample"), "`num_samples`"),
    ("MAF", "num_samples 2.5", lambda: apply(maf, KEY, 2.5, method="sample"), "`num_samples`"),
    ("MAF", "temperature 0", lambda: apply(maf, KEY, 2, method="sample", temperature=0.0), "`temperature`"),
    (
        "MAF",
        "context given to an unconditional MAF",
        lambda: apply(maf, X4, np.zeros((2, 3), np.float32)),
        "`context`",
    ),
    (
        "MAF",
        "np.int64 num_samples, np.float32 temperature",
        lambda: apply(maf, KEY, np.int64(3), method="sample", temperature=np.float32(0.8)),
        "accepted",
    ),
    ("MAF", "data as a Python list", lambda: apply(maf, X4.tolist()), "accepted"),
    (
        "MAF (conditional)",
        "context batch 3 for data batch 2",
        lambda: apply(cmaf, X4, np.zeros((3, 3), np.float32)),
        "`context`",
    ),
    (
        "MAF (conditional)",
        "context of another size",
        lambda: apply(cmaf, X4, np.zeros((2, 4), np.float32)),
        "`context`",
    ),
    ("MAF (conditional)", "no context", lambda: apply(cmaf, X4), "`context`"),
    (
        "MAF (conditional)",
        "integer context",
        lambda: apply(cmaf, X4, np.zeros((2, 3), np.int32)),
        "`context`",
    ),
    (
        "MAF (conditional)",
        "sampling with a context batch other than num_samples",
        lambda: apply(cmaf, KEY, 4, np.zeros((3, 3), np.float32), method="sample"),
        "`context`",
    ),
    (
        "MAF (conditional)",
        "sample_with_iterations: context batch mismatch",
        lambda: apply(cmaf, KEY, 4, context=np.zeros((3, 3), np.float32), method="sample_with_iterations"),
        "`context`",
    ),
    (
        "MAF (conditional)",
        "one shared context as a list",
        lambda: apply(cmaf, X4, [0.1, 0.2, 0.3]),
        "accepted",
    ),
    ("IAF", "num_layers 0", lambda: init(M.IAF(4, num_layers=0), X4), "`num_layers`"),
    ("IAF", "actnorm not a bool", lambda: init(M.IAF(4, actnorm="yes"), X4), "`actnorm`"),
    ("RealNVP", "event_size 1", lambda: init(M.RealNVP(1), X4[:, :1]), "`event_size`"),
    ("RealNVP", "unknown coupling", lambda: init(M.RealNVP(4, coupling="additive"), X4), "`coupling`"),
    (
        "RealNVP",
        "unknown permutation",
        lambda: init(M.RealNVP(4, permutation="shuffled"), X4),
        "`permutation`",
    ),
    (
        "RealNVP",
        "split coupling without permutation",
        lambda: init(M.RealNVP(4, coupling="split", permutation="none"), X4),
        "`permutation`",
    ),
    ("RealNVP", "a hidden width 0", lambda: init(M.RealNVP(4, hidden_sizes=(0,)), X4), "`hidden_sizes`"),
    ("RealNVP", "data of another size", lambda: apply(realnvp, np.zeros((2, 3), np.float32)), "`x`"),
    (
        "RealNVP",
        "np.int64 num_samples",
        lambda: apply(realnvp, KEY, np.int64(2), method="sample"),
        "accepted",
    ),
    # image flow models
    ("ImageRealNVP", "features 0", lambda: init(M.ImageRealNVP((4, 4, 2), features=0), IMG), "`features`"),
    (
        "ImageRealNVP",
        "unknown conditioner",
        lambda: init(M.ImageRealNVP((4, 4, 2), conditioner="dense"), IMG),
        "`conditioner`",
    ),
    (
        "ImageRealNVP",
        "num_scales 0",
        lambda: init(M.ImageRealNVP((4, 4, 2), num_scales=0), IMG),
        "`num_scales`",
    ),
    (
        "ImageRealNVP",
        "num_checkerboard 0",
        lambda: init(M.ImageRealNVP((4, 4, 2), num_checkerboard=0), IMG),
        "`num_checkerboard`",
    ),
    (
        "ImageRealNVP",
        "num_blocks -1",
        lambda: init(M.ImageRealNVP((4, 4, 2), num_blocks=-1), IMG),
        "`num_blocks`",
    ),
    (
        "ImageRealNVP",
        "image_shape not divisible for 3 scales",
        lambda: init(M.ImageRealNVP((6, 6, 2), num_scales=3), np.full((1, 6, 6, 2), 0.5, np.float32)),
        "`image_shape`",
    ),
    (
        "ImageRealNVP",
        "logit_alpha 0.7",
        lambda: init(M.ImageRealNVP((4, 4, 2), logit_alpha=0.7), IMG),
        "`logit_alpha`",
    ),
    ("ImageRealNVP", "uint8 levels", lambda: apply(image_realnvp, (IMG * 255).astype(np.uint8)), "`x`"),
    (
        "ImageRealNVP",
        "float levels in [0, 16] (not scaled)",
        lambda: apply(image_realnvp, IMG * 16),
        "scale levels to [0, 1]",
    ),
    (
        "ImageRealNVP",
        "image of another shape",
        lambda: apply(image_realnvp, np.full((2, 4, 4, 1), 0.5, np.float32)),
        "`x`",
    ),
    ("Glow", "num_steps 0", lambda: init(M.Glow((4, 4, 2), num_steps=0), IMG), "`num_steps`"),
    ("Glow", "features 0", lambda: init(M.Glow((4, 4, 2), features=0), IMG), "`features`"),
    ("Glow", "unknown scale_fn", lambda: init(M.Glow((4, 4, 2), scale_fn="exp"), IMG), "`scale_fn`"),
    ("Glow", "unknown conditioner", lambda: init(M.Glow((4, 4, 2), conditioner="dense"), IMG),
     "`conditioner`"),
    ("Glow", "image_shape (H, W)", lambda: init(M.Glow((4, 4)), IMG), "`image_shape`"),
    ("Glow", "uint8 levels", lambda: apply(glow, (IMG * 255).astype(np.uint8)), "`x`"),
    ("Glow", "float levels in [0, 16] (not scaled)", lambda: apply(glow, IMG * 16), "scale levels to [0, 1]"),
    (
        "Glow",
        "uint8 levels at init",
        lambda: init(M.Glow((4, 4, 2), num_steps=1, features=4, num_blocks=0), (IMG * 255).astype(np.uint8)),
        "`x`",
    ),
    (
        "IntegerDiscreteFlow",
        "num_levels 1",
        lambda: init(M.IntegerDiscreteFlow((4, 4, 1), 1), LEVELS),
        "`num_levels`",
    ),
    (
        "IntegerDiscreteFlow",
        "num_mixtures 0",
        lambda: init(M.IntegerDiscreteFlow((4, 4, 1), 16, num_mixtures=0), LEVELS),
        "`num_mixtures`",
    ),
    (
        "IntegerDiscreteFlow",
        "features 0",
        lambda: init(M.IntegerDiscreteFlow((4, 4, 1), 16, features=0), LEVELS),
        "`features`",
    ),
    ("IntegerDiscreteFlow", "float images", lambda: apply(idf, LEVELS / 16.0), "`x`"),
    ("IntegerDiscreteFlow", "levels out of range", lambda: apply(idf, LEVELS + 16), "`x`"),
    ("IntegerDiscreteFlow", "image of another shape", lambda: apply(idf, LEVELS[:, :2]), "`x`"),
    (
        "IntegerDiscreteFlow",
        "latent of another shape",
        lambda: apply(idf, LEVELS[:, :2], method="latent"),
        "`x`",
    ),
    ("IntegerDiscreteFlow", "num_samples 0", lambda: apply(idf, KEY, 0, method="sample"), "`num_samples`"),
    (
        "MADEDensity",
        "event_size 0",
        lambda: init(M.MADEDensity(0, 4), np.zeros((1, 0), np.int32)),
        "`event_size`",
    ),
    (
        "MADEDensity",
        "num_levels 1",
        lambda: init(M.MADEDensity(3, 1), np.zeros((1, 3), np.int32)),
        "`num_levels`",
    ),
    (
        "MADEDensity",
        "unknown input_encoding",
        lambda: init(M.MADEDensity(3, 4, input_encoding="real"), np.zeros((1, 3), np.int32)),
        "`input_encoding`",
    ),
    ("MADEDensity", "float data", lambda: apply(made_density, np.zeros((1, 3), np.float32)), "`x`"),
    ("MADEDensity", "levels out of range", lambda: apply(made_density, np.full((1, 3), 4, np.int32)), "`x`"),
    (
        "PixelCNN",
        "features 0",
        lambda: init(M.PixelCNN((2, 2, 1), 4, features=0), np.zeros((1, 2, 2, 1), np.int32)),
        "`features`",
    ),
    (
        "PixelCNN",
        "unknown conv_impl",
        lambda: init(M.PixelCNN((2, 2, 1), 4, conv_impl="fft"), np.zeros((1, 2, 2, 1), np.int32)),
        "`conv_impl`",
    ),
    (
        "PixelCNN",
        "float images",
        lambda: apply(pixelcnn, np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 2), np.float32)),
        "`x`",
    ),
    (
        "PixelCNN",
        "context batch 3 for image batch 1",
        lambda: apply(pixelcnn, np.zeros((1, 2, 2, 1), np.int32), np.zeros((3, 2), np.float32)),
        "`context`",
    ),
    (
        "PixelCNN",
        "num_samples 0",
        lambda: apply(pixelcnn, KEY, 0, np.zeros(2, np.float32), method="sample"),
        "`num_samples`",
    ),
    (
        "VariationalDequantizer",
        "num_layers 0",
        lambda: init(M.VariationalDequantizer((4, 4, 1), 16, num_layers=0), KEY, LEVELS),
        "`num_layers`",
    ),
    (
        "VariationalDequantizer",
        "unknown scale_fn",
        lambda: init(M.VariationalDequantizer((4, 4, 1), 16, scale_fn="exp"), KEY, LEVELS),
        "`scale_fn`",
    ),
    ("VariationalDequantizer", "float images", lambda: apply(dequantizer, KEY, LEVELS / 16.0), "`x`"),
    # networks
    ("MLP", "a hidden width 0", lambda: init(N.MLP((4, 2), hidden_sizes=(0,)), X4), "`hidden_sizes`"),
    ("MLP", "out_shape ()", lambda: init(N.MLP((), hidden_sizes=(8,)), X4), "`out_shape`"),
    ("MLP", "activation named, not given", lambda: init(N.MLP(2, activation="mish"), X4), "`activation`"),
    ("MLP", "integer input", lambda: init(N.MLP(2, hidden_sizes=(8,)), X4.astype(np.int32)), "`x`"),
    ("ConvResNet", "features 0", lambda: init(N.ConvResNet(2, features=0, num_blocks=1), IMG), "`features`"),
    ("ConvResNet", "num_blocks -1", lambda: init(N.ConvResNet(2, features=4, num_blocks=-1), IMG),
     "`num_blocks`"),
    ("ConvResNet", "out_channels 0", lambda: init(N.ConvResNet(0, features=4, num_blocks=1), IMG),
     "`out_channels`"),
    ("ConvResNet", "a vector input", lambda: init(N.ConvResNet(2, features=4, num_blocks=1), X4), "`x`"),
    ("ConvResNet", "block named, not given", lambda: init(N.ConvResNet(2, features=4, block="dense"), IMG),
     "`block`"),
    ("ResidualBlock", "input channels other than features", lambda: init(N.ResidualBlock(4), IMG), "`x`"),
    ("Conv", "features 0", lambda: init(N.Conv(0), IMG), "`features`"),
    ("Conv", "kernel_size (3,)", lambda: init(N.Conv(2, (3,)), IMG), "`kernel_size`"),
    ("conv2d_same", "unknown impl", lambda: N.conv2d_same(IMG, np.zeros((3, 3, 2, 2)), impl="fft"), "`impl`"),
    (
        "conv2d_same",
        "padding not adding kh - 1 rows",
        lambda: N.conv2d_same(IMG, np.zeros((3, 3, 2, 2), np.float32), padding=((0, 0), (1, 1))),
        "`padding`",
    ),
    (
        "conv2d_same",
        "kernel with other input channels",
        lambda: N.conv2d_same(IMG, np.zeros((3, 3, 3, 2), np.float32)),
        "`kernel`",
    ),
    ("MADE", "event_size 0", lambda: init(N.MADE(0, (8,)), np.zeros((1, 0), np.float32)), "`event_size`"),
    ("MADE", "hidden_sizes ()", lambda: init(N.MADE(4, ()), X4), "`hidden_sizes`"),
    ("MADE", "num_params 0", lambda: init(N.MADE(4, (8,), 0), X4), "`num_params`"),
    ("MADE", "order not a permutation", lambda: init(N.MADE(4, (8,), order=[0, 1, 1, 2]), X4), "`order`"),
    (
        "MADE",
        "context batch 3 for data batch 2",
        lambda: init(N.MADE(4, (8,), context_size=3), X4, np.zeros((3, 3), np.float32)),
        "`context`",
    ),
    ("MADE", "input of another size", lambda: init(N.MADE(5, (8,)), X4), "`x`"),
    ("made_order", "unknown order", lambda: N.made_order("shuffled", 4), "`order`"),
    ("made_masks", "num_params 0", lambda: N.made_masks(4, (8,), np.arange(4), 0), "`num_params`"),
    ("stack_params", "num_layers 0", lambda: N.stack_params(N.MLP(2, hidden_sizes=(2,)), KEY, 0, X4),
     "`num_layers`"),
    (
        "zip_layers",
        "per-layer lists of different lengths",
        lambda: N.zip_layers(a=[{}, {}], b=[{}]),
        "`parts`",
    ),
    # dequantization objectives
    (
        "dequantization_bound",
        "float data",
        lambda: Q.dequantization_bound(KEY, lambda x: x.sum(-1), X4, 16),
        "`x`",
    ),
    (
        "dequantization_bound",
        "num_levels 1",
        lambda: Q.dequantization_bound(KEY, lambda x: x.sum(-1), np.zeros((2, 4), np.int32), 1),
        "`num_levels`",
    ),
    (
        "dequantization_bound",
        "levels out of range",
        lambda: Q.dequantization_bound(KEY, lambda x: x.sum(-1), np.full((2, 4), 16, np.int32), 16),
        "`x`",
    ),
    (
        "dequantization_bound",
        "event_ndims 3 for 2-D data",
        lambda: Q.dequantization_bound(
            KEY, lambda x: x.sum(-1), np.zeros((2, 4), np.int32), 16, event_ndims=3
        ),
        "`event_ndims`",
    ),
    (
        "dequantization_bound",
        "dequantizer returning the wrong shape",
        lambda: Q.dequantization_bound(
            KEY,
            lambda x: x.sum(-1),
            np.zeros((2, 4), np.int32),
            16,
            dequantizer=lambda k, x: (jnp.zeros((2, 3)), jnp.zeros(2)),
        ),
        "`dequantizer`",
    ),
    (
        "dequantization_bound",
        "np.int64 num_levels, Python list data",
        lambda: Q.dequantization_bound(KEY, lambda x: -jnp.sum(x, -1), [[0, 1, 2, 3]], np.int64(16)),
        "accepted",
    ),
    ("bits_per_dim", "num_dims 0", lambda: Q.bits_per_dim(jnp.zeros(2), 0), "`num_dims`"),
    ("bits_per_dim", "np.int64 num_dims", lambda: Q.bits_per_dim(jnp.zeros(2), np.int64(4)), "accepted"),
    (
        "logit_space_log_prob",
        "alpha 0.5",
        lambda: Q.logit_space_log_prob(KEY, lambda t: t.sum(-1), np.zeros((2, 4), np.int32), 16, alpha=0.5),
        "`alpha`",
    ),
    (
        "logit_space_log_prob",
        "float data",
        lambda: Q.logit_space_log_prob(KEY, lambda t: t.sum(-1), X4, 16),
        "`x`",
    ),
    (
        "logit_space_log_prob",
        "np.float32 alpha",
        lambda: Q.logit_space_log_prob(
            KEY, lambda t: -jnp.sum(t * t, -1), np.zeros((2, 4), np.int32), 16, alpha=np.float32(1e-6)
        )["bound"],
        "accepted",
    ),
    # data
    ("sample_toy", "unknown name", lambda: D.sample_toy(KEY, "spiral", 4), "`name`"),
    ("sample_toy", "num_samples 0", lambda: D.sample_toy(KEY, "moons", 0), "`num_samples`"),
    ("sample_toy", "np.int64 num_samples", lambda: D.sample_toy(KEY, "moons", np.int64(4)), "accepted"),
    ("toy_log_prob", "points of size 3", lambda: D.toy_log_prob("moons", np.zeros((2, 3))), "`x`"),
    ("toy_log_prob", "Python list point", lambda: D.toy_log_prob("eight_gaussians", [0.0, 2.0]), "accepted"),
    ("load_arrays", "not a .npy/.npz path", lambda: D.load_arrays("data.csv"), "`path`"),
    ("load_arrays", "missing file", lambda: D.load_arrays("/nonexistent/x.npy"), "`path`"),
    (
        "ArrayBatches",
        "batch_size 0",
        lambda: D.ArrayBatches({"x": np.zeros((4, 2))}, 0, key=KEY),
        "`batch_size`",
    ),
    (
        "ArrayBatches",
        "batch_size above the number of examples",
        lambda: D.ArrayBatches({"x": np.zeros((4, 2))}, 8, key=KEY),
        "`batch_size`",
    ),
    (
        "ArrayBatches",
        "arrays of different lengths",
        lambda: D.ArrayBatches({"x": np.zeros((4, 2)), "y": np.zeros(3)}, 2, key=KEY),
        "`arrays`",
    ),
    (
        "ArrayBatches",
        "np.int64 batch_size",
        lambda: D.ArrayBatches({"x": np.zeros((4, 2), np.float32)}, np.int64(2), key=KEY)(0)["x"],
        "accepted",
    ),
    (
        "SamplerBatches",
        "batch_size 0",
        lambda: D.SamplerBatches(lambda k, n: jnp.zeros((n, 2)), 0, key=KEY),
        "`batch_size`",
    ),
    (
        "eval_batches",
        "batch_size -1",
        lambda: list(D.eval_batches({"x": np.zeros((4, 2))}, -1)),
        "`batch_size`",
    ),
    ("load_images", "unknown dataset", lambda: D.load_images("svhn", "train"), "`name`"),
    ("load_images", "unknown split of digits", lambda: D.load_images("digits", "valid"), "`split`"),
    # complex input: refused by the shared checks (dgmjax/_checks.py), never cast to its real part
    ("MAF", "complex x", lambda: apply(maf, X4C), "`x` must be real"),
    (
        "MAF",
        "complex context",
        lambda: apply(cmaf, X4, np.zeros((2, 3), np.complex64)),
        "`context` must be real",
    ),
    ("RealNVP", "complex x", lambda: apply(realnvp, X4C), "`x` must be real"),
    ("ImageRealNVP", "complex pixels", lambda: apply(image_realnvp, IMGC), "`x` must be real"),
    ("Glow", "complex pixels", lambda: apply(glow, IMGC), "`x` must be real"),
    (
        "IntegerDiscreteFlow",
        "complex levels",
        lambda: apply(idf, LEVELS.astype(np.complex64)),
        "`x` must be real",
    ),
    (
        "MADEDensity",
        "complex x",
        lambda: apply(made_density, np.zeros((1, 3), np.complex64)),
        "`x` must be real",
    ),
    (
        "PixelCNN",
        "complex context",
        lambda: apply(pixelcnn, np.zeros((1, 2, 2, 1), np.int32), np.zeros((1, 2), np.complex64)),
        "`context` must be real",
    ),
    (
        "VariationalDequantizer",
        "complex levels",
        lambda: apply(dequantizer, KEY, LEVELS.astype(np.complex64)),
        "`x` must be real",
    ),
    (
        "MaskedAutoregressive",
        "complex z (fixed-point sampling)",
        lambda: B.MaskedAutoregressive(made_cond(), solver="fixed_point").forward(X4C),
        "`z` must be real",
    ),
    (
        "MaskedAutoregressive",
        "complex context",
        lambda: B.MaskedAutoregressive(made_cond_ctx(), context=np.zeros((2, 3), np.complex64)),
        "`context` must be real",
    ),
    (
        "affine_coupling",
        "complex z",
        lambda: B.affine_coupling(B.alternating_mask(4), zero_cond).forward(X4C),
        "`z` must be real",
    ),
    (
        "affine_split_coupling",
        "complex x",
        lambda: B.affine_split_coupling(2, split_cond, event_ndims=1).inverse(X4C),
        "`x` must be real",
    ),
    ("ScaledSigmoid", "complex pixels", lambda: B.ScaledSigmoid(0.05).inverse(IMGC), "`x` must be real"),
    (
        "ActNorm",
        "complex loc",
        lambda: B.ActNorm(np.zeros(2, np.complex64), np.zeros(2, np.float32)),
        "`loc` must be real",
    ),
    ("actnorm_init", "complex batch", lambda: B.actnorm_init(IMGC), "`x` must be real"),
    ("Invertible1x1Conv", "complex z", lambda: conv().forward(IMGC), "`z` must be real"),
    (
        "Invertible1x1Conv",
        "complex lower",
        lambda: conv(lower=np.zeros((2, 2), np.complex64)),
        "`lower` must be real",
    ),
    ("Planar", "complex w", lambda: planar(w=np.ones(4, np.complex64)), "`w` must be real"),
    ("Permute", "complex x", lambda: B.Permute(np.arange(4)).forward(X4C), "`x` must be real"),
    ("DepthToSpace", "complex x", lambda: B.DepthToSpace().inverse(IMGC), "`x` must be real"),
    ("LayerStack", "complex x", lambda: stack().forward(X4C), "`x` must be real"),
    (
        "merge_latent",
        "complex part",
        lambda: B.merge_latent([np.zeros((2, 2, 2, 8), np.complex64)], (4, 4, 2), [True]),
        "`parts[0]` must be real",
    ),
    ("MADE", "complex x", lambda: N.MADE(4, (8,), 2).init(KEY, X4C), "`x` must be real"),
    ("ConvResNet", "complex x", lambda: N.ConvResNet(2, features=4, num_blocks=1).init(KEY, IMGC),
     "`x` must be real"),
    (
        "uniform_dequantize",
        "complex levels",
        lambda: DQ.uniform_dequantize(KEY, LEVELS.astype(np.complex64), 16),
        "`x` must be real",
    ),
    ("to_levels", "complex values", lambda: DQ.to_levels(IMGC, 16), "`x_cont` must be real"),
    (
        "dequantization_bound",
        "complex levels",
        lambda: Q.dequantization_bound(KEY, lambda x: jnp.zeros(x.shape[0]), LEVELS.astype(np.complex64), 16),
        "`x` must be real",
    ),
    # float16 / bfloat16 data: accepted (bfloat16 counts as floating point), computed in float32
    ("MAF", "bfloat16 x", lambda: apply(maf, X4.astype(jnp.bfloat16)), "accepted"),
    (
        "IAF",
        "float16 x, fixed-point density",
        lambda: iaf_fixed_point_log_prob(X4.astype(jnp.float16)),
        "accepted",
    ),
    ("ImageRealNVP", "bfloat16 pixels", lambda: apply(image_realnvp, IMG.astype(jnp.bfloat16)), "accepted"),
    ("Glow", "float16 pixels", lambda: apply(glow, IMG.astype(jnp.float16)), "accepted"),
    (
        "ScaledSigmoid",
        "bfloat16 pixels",
        lambda: B.ScaledSigmoid(0.05).inverse_and_log_det(IMG.astype(jnp.bfloat16)),
        "accepted",
    ),
    ("actnorm_init", "bfloat16 batch", lambda: B.actnorm_init(IMG.astype(jnp.bfloat16)), "accepted"),
]


def _finite(result) -> bool:
    leaves = [
        leaf
        for leaf in jax.tree_util.tree_leaves(result)
        if hasattr(leaf, "dtype") or isinstance(leaf, (int, float))
    ]
    arrays = [np.asarray(leaf) for leaf in leaves]
    numeric = [a for a in arrays if np.issubdtype(a.dtype, np.number)]
    return bool(numeric) and all(np.all(np.isfinite(a)) for a in numeric)


@pytest.mark.parametrize(
    ("function_name", "description", "thunk", "expected"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_bad_input(function_name, description, thunk, expected):
    if expected == "accepted":
        result = thunk()
        assert _finite(result), f"{function_name} ({description}) returned non-finite values: {result}"
    else:
        with pytest.raises(ValueError) as info:
            thunk()
        assert expected in str(info.value), str(info.value)
