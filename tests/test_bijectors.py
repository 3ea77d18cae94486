"""Bijectors: round trips, and log-dets against slogdet of the autodiff Jacobian."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.bijectors import (
    FactorOut,
    Logit,
    ScanChain,
    Squeeze,
    affine_coupling,
    alternating_mask,
    bounded_log_scale,
    channel_mask,
    checkerboard_mask,
)


def jac_logdet(fn, x):
    """log|det J| of fn at a single (unbatched) x, by autodiff."""
    flat = lambda v: fn(v.reshape(x.shape)).reshape(-1)
    jac = jax.jacfwd(flat)(x.reshape(-1))
    return jnp.linalg.slogdet(jac)[1]


def random_conditioner(key, event_shape, scale=0.5):
    """A fixed nonlinear conditioner with nonzero outputs (so layers are not the identity)."""
    d = int(np.prod(event_shape))
    w = scale * jax.random.normal(key, (d, 2 * d)) / np.sqrt(d)

    def cond(xm):
        flat = xm.reshape(xm.shape[: xm.ndim - len(event_shape)] + (d,))
        out = jnp.tanh(flat @ w + 0.3)
        return out.reshape(xm.shape[: xm.ndim - len(event_shape)] + tuple(event_shape) + (2,))

    return cond


# ----------------------------------------------------------------------------- Logit
@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05, 0.3])
def test_logit_round_trip_and_log_det(alpha):
    x = jax.random.uniform(jax.random.PRNGKey(0), (50,), minval=0.01, maxval=0.99)
    b = Logit(alpha)
    y, ld = b.forward_and_log_det(x)
    x_back, ild = b.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=2e-6)
    np.testing.assert_allclose(ild, -ld, rtol=1e-5, atol=1e-5)
    grad = jax.vmap(jax.grad(lambda t: b.forward(t)))(x)
    np.testing.assert_allclose(ld, jnp.log(jnp.abs(grad)), rtol=1e-5, atol=1e-5)
    ref = jnp.log(alpha + (1 - 2 * alpha) * x) - jnp.log1p(-(alpha + (1 - 2 * alpha) * x))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_logit_block_log_det_matches_slogdet():
    b = distrax.Block(Logit(0.05), 3)
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 3, 2))
    _, ld = b.forward_and_log_det(x)
    np.testing.assert_allclose(ld, jac_logdet(b.forward, x), rtol=1e-5, atol=1e-4)


def test_logit_inverse_finite_for_extreme_inputs():
    y = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    x, ld = Logit(0.05).inverse_and_log_det(y)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(ld))


@pytest.mark.parametrize("alpha", [-0.1, 0.5, 1.0, "a"])
def test_logit_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        Logit(alpha)


# ----------------------------------------------------------------------------- coupling
@pytest.mark.parametrize("scale_fn", ["tanh", "sigmoid"])
def test_vector_coupling_round_trip_and_log_det(scale_fn):
    d = 7
    mask = jnp.asarray(alternating_mask(d, 1))
    layer = affine_coupling(mask, random_conditioner(jax.random.PRNGKey(0), (d,), 3.0),
                            scale_fn=scale_fn)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, d))
    y, ld = layer.forward_and_log_det(x)
    x_back, ild = layer.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=1e-5)
    np.testing.assert_allclose(ild, -ld, atol=1e-5)
    for i in range(4):
        np.testing.assert_allclose(ld[i], jac_logdet(layer.forward, x[i]), atol=1e-4)
    # masked (kept) entries are unchanged
    np.testing.assert_array_equal(y[:, mask], x[:, mask])


@pytest.mark.parametrize("kind", ["checkerboard0", "checkerboard1", "channel0", "channel1"])
def test_image_coupling_round_trip_and_log_det(kind):
    shape = (4, 4, 2)
    mask = (checkerboard_mask if kind.startswith("checker") else channel_mask)(shape, int(kind[-1]))
    layer = affine_coupling(jnp.asarray(mask), random_conditioner(jax.random.PRNGKey(2), shape, 3.0))
    x = jax.random.normal(jax.random.PRNGKey(3), (2,) + shape)
    y, ld = layer.forward_and_log_det(x)
    np.testing.assert_allclose(layer.inverse(y), x, atol=1e-5)
    np.testing.assert_allclose(ld[1], jac_logdet(layer.forward, x[1]), atol=1e-4)
    assert mask.sum() * 2 == mask.size


def test_masks_are_complementary():
    for make, shape in ((checkerboard_mask, (5, 4, 3)), (channel_mask, (3, 3, 4))):
        np.testing.assert_array_equal(make(shape, 0), ~make(shape, 1))
    np.testing.assert_array_equal(alternating_mask(5, 0), ~alternating_mask(5, 1))


def test_coupling_identity_at_zero_conditioner():
    mask = jnp.asarray(checkerboard_mask((4, 4, 1)))
    layer = affine_coupling(mask, lambda xm: jnp.zeros(xm.shape + (2,)))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 1))
    y, ld = layer.forward_and_log_det(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(ld, 0.0)


def test_bounded_log_scale_is_bounded_on_the_density_side_and_zero_at_zero():
    raw = jnp.linspace(-1e3, 1e3, 101)
    raw64 = np.asarray(raw, np.float64)
    for fn in ("tanh", "sigmoid"):
        assert float(bounded_log_scale(jnp.zeros(()), fn)) == pytest.approx(0.0, abs=1e-7)
        ls = bounded_log_scale(raw, fn)
        assert np.all(np.isfinite(ls))
        # data -> noise scales by exp(-ls): at most e^2 (tanh) or 2 (sigmoid), whatever `raw` is.
        assert float((-ls).max()) <= (2.0 if fn == "tanh" else np.log(2.0)) + 1e-6
    np.testing.assert_allclose(bounded_log_scale(raw, "tanh"), 2.0 * np.tanh(raw64 / 2.0), rtol=1e-6)
    # Glow: the density side multiplies by 2 sigmoid(raw) (float64, written independently).
    log_inverse_scale = np.log(2.0) - np.logaddexp(0.0, -raw64)
    np.testing.assert_allclose(-bounded_log_scale(raw, "sigmoid"), log_inverse_scale,
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="scale_fn"):
        bounded_log_scale(raw, "exp")


@pytest.mark.parametrize("scale_fn", ["tanh", "sigmoid"])
def test_coupling_density_side_stays_bounded_for_any_conditioner_output(scale_fn):
    """A conditioner emitting +-1e4 cannot make data -> noise expand past the bound."""
    d = 6
    mask = jnp.asarray(alternating_mask(d, 0))
    raw = jnp.array([1e4, -1e4, -1e4, 1e4, -1e4, -1e4])
    layer = affine_coupling(mask, lambda kept: jnp.stack([jnp.zeros_like(kept), raw + 0 * kept], -1),
                            scale_fn=scale_fn)
    x = jax.random.normal(jax.random.PRNGKey(7), (5, d))
    z, ld = layer.inverse_and_log_det(x)
    bound = 2.0 if scale_fn == "tanh" else np.log(2.0)
    assert np.all(np.isfinite(z)) and np.all(np.isfinite(ld))
    assert np.all(np.abs(z) <= np.exp(bound) * np.abs(x) + 1e-5)
    assert np.all(ld <= (d // 2) * bound + 1e-4)


def test_coupling_bad_inputs():
    with pytest.raises(ValueError, match="mask"):
        affine_coupling(jnp.ones(4), lambda x: x)
    with pytest.raises(ValueError, match="scale_fn"):
        affine_coupling(jnp.ones(4, bool), lambda x: x, scale_fn="exp")
    bad = affine_coupling(jnp.asarray(alternating_mask(4)), lambda x: jnp.zeros(x.shape + (3,)))
    with pytest.raises(ValueError, match="conditioner"):
        bad.forward(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="even number of channels"):
        channel_mask((4, 4, 3))


# ----------------------------------------------------------------------------- squeeze / factor-out
def test_squeeze_round_trip_and_layout():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    sq = Squeeze()
    y, ld = sq.forward_and_log_det(x)
    assert y.shape == (2, 2, 3, 12)
    np.testing.assert_array_equal(ld, 0.0)
    np.testing.assert_array_equal(sq.inverse(y), x)
    # the 2x2 block at (0, 0) becomes the 12 channels of output pixel (0, 0), row-major
    np.testing.assert_array_equal(y[0, 0, 0], x[0, :2, :2, :].reshape(-1))
    with pytest.raises(ValueError, match="divisible"):
        sq.forward(jnp.zeros((1, 3, 4, 1)))
    with pytest.raises(ValueError, match="divisible"):
        sq.inverse(jnp.zeros((1, 2, 2, 3)))


def test_factor_out_round_trip_and_log_det():
    shape = (2, 2, 4)
    inner = affine_coupling(jnp.asarray(channel_mask((2, 2, 2))),
                            random_conditioner(jax.random.PRNGKey(4), (2, 2, 2), 2.0))
    b = FactorOut(inner, num_kept=2)
    x = jax.random.normal(jax.random.PRNGKey(5), shape)
    y, ld = b.forward_and_log_det(x)
    np.testing.assert_array_equal(y[..., 2:], x[..., 2:])
    np.testing.assert_allclose(b.inverse(y), x, atol=1e-5)
    np.testing.assert_allclose(ld, jac_logdet(b.forward, x), atol=1e-4)
    with pytest.raises(ValueError, match="num_kept"):
        FactorOut(inner, 0)


# ----------------------------------------------------------------------------- ScanChain
def _stack():
    d, num = 6, 5
    keys = jax.random.split(jax.random.PRNGKey(7), num)
    weights = jax.vmap(lambda k: 0.8 * jax.random.normal(k, (d, 2 * d)) / np.sqrt(d))(keys)
    masks = jnp.stack([jnp.asarray(alternating_mask(d, i % 2)) for i in range(num)])

    def layer(p):
        cond = lambda xm: jnp.tanh(xm @ p["w"] + 0.2).reshape(xm.shape + (2,))
        return affine_coupling(p["mask"], cond)

    return ScanChain(layer, {"w": weights, "mask": masks}, event_ndims=1), layer, weights, masks


def test_scan_chain_equals_unrolled_chain():
    scanned, layer, weights, masks = _stack()
    layers = [layer({"w": weights[i], "mask": masks[i]}) for i in range(len(masks))]
    unrolled = distrax.Chain(layers[::-1])  # Chain applies its last element first
    x = jax.random.normal(jax.random.PRNGKey(8), (3, 6))
    y1, ld1 = scanned.forward_and_log_det(x)
    y2, ld2 = unrolled.forward_and_log_det(x)
    np.testing.assert_allclose(y1, y2, atol=1e-6)
    np.testing.assert_allclose(ld1, ld2, atol=1e-5)
    z1, ild1 = scanned.inverse_and_log_det(x)
    z2, ild2 = unrolled.inverse_and_log_det(x)
    np.testing.assert_allclose(z1, z2, atol=1e-6)
    np.testing.assert_allclose(ild1, ild2, atol=1e-5)
    np.testing.assert_allclose(scanned.layer(2).forward(x), layers[2].forward(x))
    # The layerwise form (a list of per-layer params, a Python loop) is the same chain.
    looped = ScanChain(layer, [{"w": weights[i], "mask": masks[i]} for i in range(len(masks))],
                       event_ndims=1, layerwise=True)
    for got, want in ((looped.forward_and_log_det(x), (y2, ld2)),
                      (looped.inverse_and_log_det(x), (z2, ild2))):
        np.testing.assert_allclose(got[0], want[0], atol=1e-6)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    assert looped.num_layers == len(masks) and looped.layerwise


def test_scan_chain_round_trip_log_det_and_remat():
    scanned, layer, weights, masks = _stack()
    x = jax.random.normal(jax.random.PRNGKey(9), (6,))
    y, ld = scanned.forward_and_log_det(x)
    np.testing.assert_allclose(scanned.inverse(y), x, atol=1e-5)
    np.testing.assert_allclose(ld, jac_logdet(scanned.forward, x), atol=1e-4)
    remat = ScanChain(layer, {"w": weights, "mask": masks}, event_ndims=1, remat=True)
    def loss(w, remat):
        return ScanChain(layer, {"w": w, "mask": masks}, 1, remat=remat).forward(x).sum()

    g1, g2 = jax.grad(loss)(weights, False), jax.grad(loss)(weights, True)
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remat.forward(x), y, atol=1e-6)


def test_scan_chain_jit_and_vmap_agree():
    scanned, *_ = _stack()
    x = jax.random.normal(jax.random.PRNGKey(10), (4, 6))
    y, ld = scanned.forward_and_log_det(x)
    yj, ldj = jax.jit(scanned.forward_and_log_det)(x)
    yv, ldv = jax.vmap(scanned.forward_and_log_det)(x)
    np.testing.assert_allclose(yj, y, atol=1e-6)
    np.testing.assert_allclose(yv, y, atol=1e-6)
    np.testing.assert_allclose(ldv, ld, atol=1e-5)


def test_scan_chain_bad_params():
    with pytest.raises(ValueError, match="leading"):
        ScanChain(lambda p: distrax.Lambda(lambda x: x), {"a": jnp.zeros((3, 2)), "b": jnp.zeros((4,))}, 1)
    with pytest.raises(ValueError, match="at least one"):
        ScanChain(lambda p: None, {}, 1)
    with pytest.raises(ValueError, match="non-empty list"):
        ScanChain(lambda p: None, {"w": jnp.zeros((3, 2))}, 1, layerwise=True)
