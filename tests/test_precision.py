"""The precision policy: conditioners may compute in bfloat16, everything a flow's density rests on stays
float32 (parameters, the transforms, log-dets, the base density), and the invertible linear maps run at
full float32 whatever the default matmul precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import brute_force_log_prob, perturb

from dgmjax.bijectors import Invertible1x1Conv, ScaledSigmoid
from dgmjax.models import MAF, Glow, ImageRealNVP, RealNVP
from dgmjax.nn import MADE, MLP, ConvResNet

BF16_EPS = 2.0 ** -8  # bfloat16's unit round-off (8 significand bits)


@pytest.mark.parametrize("make, x", [
    (lambda dt: MLP((5, 2), (32, 32), zero_init_output=False, compute_dtype=dt), np.ones((4, 5))),
    (lambda dt: ConvResNet(3, 8, 1, zero_init_output=False, compute_dtype=dt), np.ones((2, 4, 4, 2))),
    (lambda dt: MADE(5, (32,), 2, zero_init_output=False, compute_dtype=dt), np.ones((4, 5))),
], ids=["mlp", "convresnet", "made"])
def test_bfloat16_conditioners_keep_float32_parameters_and_outputs(make, x):
    x = jnp.asarray(np.random.default_rng(0).normal(size=x.shape), jnp.float32)
    params = make(None).init(jax.random.PRNGKey(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(make(jnp.bfloat16).init(
        jax.random.PRNGKey(0), x)))
    full, half = make(None).apply(params, x), make(jnp.bfloat16).apply(params, x)  # the same parameters
    assert half.dtype == jnp.float32 and half.shape == full.shape
    assert not np.array_equal(half, full)  # it did compute in bfloat16
    # each layer rounds its inputs and weights to bfloat16: a few units of round-off of the output's scale
    np.testing.assert_allclose(half, full, atol=50 * BF16_EPS * float(jnp.abs(full).max()))


def test_compute_dtype_is_checked():
    with pytest.raises(ValueError, match="`compute_dtype` must be None or one of"):
        MLP((2,), (8,), compute_dtype=jnp.int8).init(jax.random.PRNGKey(0), jnp.ones((1, 2)))


@pytest.mark.parametrize("make, x, num_layers", [
    (lambda: RealNVP(event_size=4, num_layers=3, hidden_sizes=(16,), compute_dtype=jnp.bfloat16),
     (5, 4), 3),
    (lambda: MAF(event_size=4, num_layers=2, hidden_sizes=(16,), compute_dtype=jnp.bfloat16), (5, 4), 2),
    (lambda: ImageRealNVP(image_shape=(4, 4, 1), num_checkerboard=2, num_channelwise=2, features=8,
                          num_blocks=1, compute_dtype=jnp.bfloat16), (3, 4, 4, 1), 6),
    (lambda: Glow(image_shape=(4, 4, 1), num_scales=2, num_steps=2, features=8, compute_dtype=jnp.bfloat16),
     (3, 4, 4, 1), 4),
], ids=["realnvp", "maf", "image_realnvp", "glow"])
def test_bfloat16_flows_invert_exactly_and_keep_their_log_det(make, x, num_layers):
    """With bfloat16 conditioners a flow is still an exact float32 bijection: the conditioner sees
    the same input in both directions, so the round trip holds to float32 round-off. Its log-det
    is that of the map it computes, up to bfloat16 rounding: a separately compiled program (the
    autodiff Jacobian) may round a conditioner output one bfloat16 unit differently, which moves
    a log-scale (|s| <= 1 here) by at most BF16_EPS, per dimension and layer."""
    model = make()
    x = jax.random.uniform(jax.random.PRNGKey(0), x, minval=0.05, maxval=0.95)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x), 2)
    log_p = jax.jit(model.apply)(params, x)
    assert log_p.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(log_p)))
    bound = model.bind(params)
    z = jax.jit(lambda x: bound.bijector().inverse(x))(x)
    assert z.dtype == jnp.float32
    np.testing.assert_allclose(jax.jit(lambda z: bound.bijector().forward(z))(z), x, atol=2e-5)
    dims = int(np.prod(x.shape[1:]))
    with jax.default_matmul_precision("float32"):
        brute = brute_force_log_prob(bound.bijector, x[:2])
    np.testing.assert_allclose(log_p[:2], brute, rtol=1e-5, atol=dims * num_layers * BF16_EPS)


def test_invertible_1x1_conv_is_exact_at_any_default_precision():
    """The policy: the 1x1 convolution's matrix products run at Precision.HIGHEST, so a bfloat16
    default (GPUs and TPUs honour it; the CPU computes in float32 either way) leaves the round
    trip and log-det at float32 accuracy."""
    c = 8
    g = np.random.default_rng(0)
    bij = Invertible1x1Conv(g.permutation(c), 0.3 * g.normal(size=(c, c)), 0.3 * g.normal(size=(c, c)),
                            0.2 * g.normal(size=c))
    z = jnp.asarray(g.normal(size=(2, 4, 4, c)), jnp.float32)
    with jax.default_matmul_precision("bfloat16"):
        x, log_det = jax.jit(bij.forward_and_log_det)(z)
        z_back = jax.jit(bij.inverse)(x)
    exact = np.einsum("ij,...j->...i", np.asarray(bij.matrix(), np.float64), np.asarray(z, np.float64))
    np.testing.assert_allclose(x, exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z_back, z, atol=1e-4)
    sign, logabs = np.linalg.slogdet(np.asarray(bij.matrix(), np.float64))
    np.testing.assert_allclose(log_det, 16 * logabs, rtol=1e-5)


# Unit round-off of a float32 matmul at an accelerator's default precision:
# TF32 (10 explicit significand bits) on GPUs, one bfloat16 pass on TPUs.
DEFAULT_EPS = {"gpu": 2.0 ** -11, "cuda": 2.0 ** -11, "rocm": 2.0 ** -11, "tpu": 2.0 ** -8}


@pytest.mark.skipif(jax.default_backend() == "cpu", reason=(
    "the CPU's default float32 matmul precision is full float32: the program compared is the reference "
    "itself, so the check means something only on GPUs and TPUs"))
@pytest.mark.parametrize("make, x, matmuls", [
    (lambda: RealNVP(event_size=6, num_layers=3, hidden_sizes=(16, 16)), (8, 6), 3 * 3 * 4),
    (lambda: MAF(event_size=6, num_layers=3, hidden_sizes=(16,)), (8, 6), 3 * 2 * 4),
    (lambda: ImageRealNVP(image_shape=(4, 4, 1), num_checkerboard=2, num_channelwise=2, features=8,
                          num_blocks=1), (4, 4, 4, 1), 6 * 4 * 9),
    (lambda: Glow(image_shape=(4, 4, 1), num_scales=2, num_steps=2, features=8), (4, 4, 4, 1), 4 * 4 * 9),
], ids=["coupling", "autoregressive", "multiscale", "glow"])
def test_round_trip_and_log_det_at_the_backends_default_precision(make, x, matmuls):
    """Every family at the backend's default matmul precision (the session fixes "highest" for the
    exactness tests): the round trip and the log-det stay within a bound from that precision's unit
    round-off. `matmuls` counts layers x matmuls per conditioner x sqrt(reduction width), the
    growth of a rounding error through the conditioners."""
    eps = DEFAULT_EPS.get(jax.default_backend(), 2.0 ** -8)
    model = make()
    x = jax.random.uniform(jax.random.PRNGKey(0), x, minval=0.05, maxval=0.95)
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(1), x), 2)
    bij = lambda: model.bind(params).bijector()
    with jax.default_matmul_precision("highest"):
        z_ref, log_det_ref = jax.jit(lambda x: bij().inverse_and_log_det(x))(x)
    with jax.default_matmul_precision("default"):
        z, log_det = jax.jit(lambda x: bij().inverse_and_log_det(x))(x)
        x_back = jax.jit(lambda z: bij().forward(z))(z)
    scale = 1.0 + float(jnp.abs(z_ref).max())
    tol = 4 * matmuls * eps * scale
    np.testing.assert_allclose(z, z_ref, atol=tol)
    np.testing.assert_allclose(x_back, x, atol=tol)
    np.testing.assert_allclose(log_det, log_det_ref, atol=tol * int(np.prod(x.shape[1:])))


LOW_PRECISION = [jnp.float16, jnp.bfloat16]


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=["float16", "bfloat16"])
def test_logit_preprocessing_of_low_precision_images_computes_in_float32(dtype):
    """The logit y = log s - log(1 - s), s = alpha + (1 - 2 alpha) x, and its log-det of float16 /
    bfloat16 pixels, against float64 on the same values: float32 round-off (in float16 the
    log-det alone was off by about 1%)."""
    alpha = 0.05
    x = jnp.linspace(0.0, 1.0, 257).astype(dtype)
    y, log_det = ScaledSigmoid(alpha).inverse_and_log_det(x)
    assert y.dtype == jnp.float32 and log_det.dtype == jnp.float32
    s = alpha + (1 - 2 * alpha) * np.asarray(x, np.float64)
    np.testing.assert_allclose(y, np.log(s) - np.log1p(-s), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_det, np.log1p(-2 * alpha) - np.log(s) - np.log1p(-s), rtol=1e-5, atol=1e-6)
    x_back = ScaledSigmoid(alpha).forward(y.astype(dtype))
    assert x_back.dtype == jnp.float32


@pytest.mark.parametrize("make, shape, dtype", [
    (lambda: RealNVP(event_size=4, num_layers=2, hidden_sizes=(16,)), (5, 4), jnp.float16),
    (lambda: MAF(event_size=4, num_layers=2, hidden_sizes=(16,), actnorm=True), (5, 4), jnp.bfloat16),
    (lambda: ImageRealNVP(image_shape=(4, 4, 1), num_checkerboard=2, num_channelwise=2, features=8,
                          num_blocks=1), (3, 4, 4, 1), jnp.float16),
    (lambda: Glow(image_shape=(4, 4, 1), num_scales=2, num_steps=2, features=8, logit_alpha=None),
     (3, 4, 4, 1), jnp.bfloat16),
], ids=["realnvp-float16", "maf_actnorm-bfloat16", "image_realnvp_logit-float16", "glow_no_logit-bfloat16"])
def test_low_precision_data_is_read_as_float32(make, shape, dtype):
    """float16 / bfloat16 data (each model with one of them; between them every bijector that reads
    data: the couplings, the autoregressive layer, ActNorm, the 1x1 convolution, the logit): log_prob
    (and the data-dependent init) equal those of the float32 batch of the same values, to float32
    round-off, and come out float32: the transforms and log-dets compute in float32 (docs/DESIGN.md)."""
    model = make()
    x = jax.random.uniform(jax.random.PRNGKey(0), shape, minval=0.02, maxval=0.98).astype(dtype)
    x32 = x.astype(jnp.float32)  # exactly the same values
    init = jax.jit(model.init)
    init_low, init_full = init(jax.random.PRNGKey(1), x), init(jax.random.PRNGKey(1), x32)
    for a, b in zip(jax.tree_util.tree_leaves(init_low), jax.tree_util.tree_leaves(init_full), strict=True):
        assert a.dtype == b.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    params = perturb(init_full, 2)
    apply = jax.jit(model.apply)
    low, full = apply(params, x), apply(params, x32)
    assert low.dtype == jnp.float32
    np.testing.assert_allclose(low, full, rtol=1e-6, atol=1e-6)
