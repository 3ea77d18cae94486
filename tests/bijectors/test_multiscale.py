"""Multi-scale plumbing: DepthToSpace's layout, FactorOut, and the builder's latent layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import random_conditioner

from dgmjax.bijectors import (
    DepthToSpace,
    FactorOut,
    Scale,
    affine_coupling,
    channel_mask,
    merge_latent,
    multiscale_flow,
    multiscale_shapes,
    split_latent,
)


def test_depth_to_space_layout_and_round_trip():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    d2s = DepthToSpace()
    z, ld = d2s.inverse_and_log_det(x)  # the squeeze of the density direction
    assert z.shape == (2, 2, 3, 12)
    np.testing.assert_array_equal(ld, 0.0)
    np.testing.assert_array_equal(d2s.forward(z), x)
    # the 2x2 block at (0, 0) becomes the 12 channels of squeezed pixel (0, 0), row-major
    np.testing.assert_array_equal(z[0, 0, 0], x[0, :2, :2, :].reshape(-1))
    with pytest.raises(ValueError, match="divisible"):
        d2s.inverse(jnp.zeros((1, 3, 4, 1)))
    with pytest.raises(ValueError, match="divisible"):
        d2s.forward(jnp.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="factor"):
        DepthToSpace(0)


def test_factor_out_passes_the_rest_through():
    cond = random_conditioner(jax.random.PRNGKey(4), (2, 2, 2), 2.0)
    inner = affine_coupling(channel_mask((2, 2, 2)), cond)
    b = FactorOut(inner, num_kept=2)
    x = jax.random.normal(jax.random.PRNGKey(5), (3, 2, 2, 4))
    y = b.forward(x)
    np.testing.assert_array_equal(y[..., 2:], x[..., 2:])
    np.testing.assert_allclose(y[..., :2], inner.forward(x[..., :2]), atol=1e-6)
    with pytest.raises(ValueError, match="num_kept"):
        FactorOut(inner, 0)
    with pytest.raises(ValueError, match="more than num_kept"):
        b.forward(jnp.zeros((1, 2, 2, 2)))


def test_shapes_of_the_realnvp_and_glow_layouts():
    # RealNVP on 28 x 28 x 1, 3 scales: squeeze inside every scale but the last
    assert multiscale_shapes((28, 28, 1), [True, True, False]) == [
        ((28, 28, 1), (14, 14, 4)), ((14, 14, 2), (7, 7, 8)), ((7, 7, 4), (7, 7, 4))]
    # Glow, 2 scales: squeeze first in every scale
    assert multiscale_shapes((28, 28, 1), [True, True]) == [((28, 28, 1), (14, 14, 4)),
                                                             ((14, 14, 2), (7, 7, 8))]
    with pytest.raises(ValueError, match="divisible"):
        multiscale_shapes((6, 6, 1), [True, True])


def test_the_latent_of_a_multiscale_flow_splits_where_the_flow_factors_out():
    """With identity layers, the flow's latent is the data; its parts are what FactorOut passes."""
    shape = (8, 8, 1)
    squeezes = [True, True, False]
    # DepthToSpace(1) is the identity: a layer for the last scale, which does not squeeze
    flow = multiscale_flow(shape, [Scale(None, True), Scale(None, True), Scale(DepthToSpace(1), False)])
    x = jax.random.normal(jax.random.PRNGKey(0), (2,) + shape)
    z = flow.inverse(x)
    np.testing.assert_allclose(z, x)  # permutations only: the latent keeps the data's layout
    parts = split_latent(z, shape, squeezes)
    assert [p.shape for p in parts] == [(2, 4, 4, 2), (2, 2, 2, 4), (2, 2, 2, 4)]
    # scale 0's factored-out half: channels 2..3 of the squeezed data
    np.testing.assert_array_equal(parts[0], DepthToSpace().inverse(x)[..., 2:])
    np.testing.assert_array_equal(merge_latent(parts, shape, squeezes), z)
    with pytest.raises(ValueError, match="one array per scale"):
        merge_latent(parts[:2], shape, squeezes)
