"""The Glow model: data-dependent init, log_prob by change of variables, scanned = unrolled steps."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import brute_force_log_prob, perturb

from dgmjax.bijectors import DepthToSpace, sigmoid_scale
from dgmjax.models import Glow
from dgmjax.nn import GatedResidualBlock, concat_elu


@pytest.fixture(scope="module")
def glow_and_params():
    model = Glow(image_shape=(4, 4, 1), num_scales=2, num_steps=2, features=8, logit_alpha=None,
                 scale_fn=sigmoid_scale)  # the Glow paper's variant (defaults: below)
    x = jax.random.uniform(jax.random.PRNGKey(0), (16, 4, 4, 1))
    return model, jax.jit(model.init)(jax.random.PRNGKey(1), x), x


def test_glow_data_dependent_init(glow_and_params):
    model, params, x = glow_and_params
    # the data side of the first scale's first-applied step normalizes the squeezed data
    an = params["params"]["actnorm_0"]
    squeezed = DepthToSpace().inverse(x)
    np.testing.assert_allclose(an["loc"][-1], squeezed.mean((0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(jnp.exp(an["log_scale"][-1]), squeezed.std((0, 1, 2)), rtol=1e-4)
    assert not np.allclose(an["loc"][0], 0.0)  # every step got data-dependent values


def test_glow_log_prob_by_change_of_variables(glow_and_params):
    model, params, x = glow_and_params
    params = perturb(params, 5, 0.2)
    lp = jax.jit(model.apply)(params, x[:2])
    with jax.default_matmul_precision("float32"):
        np.testing.assert_allclose(lp[:2], brute_force_log_prob(lambda: model.bind(params).bijector(), x[:2]),
            atol=2e-3, rtol=1e-5)
    round_trip = jax.jit(lambda p, v: (lambda b: b.forward(b.inverse(v)))(model.bind(p).bijector()))
    np.testing.assert_allclose(round_trip(params, x), x, atol=1e-4)
    s = jax.jit(lambda p, k: model.apply(p, k, 3, method=model.sample))(params, jax.random.PRNGKey(2))
    assert s.shape == (3, 4, 4, 1) and np.all(np.isfinite(s))


def test_glow_scanned_steps_equal_unrolled(glow_and_params):
    model, params, x = glow_and_params
    steps = model.bind(params)._steps(0)
    unrolled = distrax.Chain([steps.layer(i) for i in range(steps.num_layers)][::-1])
    h = DepthToSpace().inverse(x[:3])
    z1, ld1 = steps.inverse_and_log_det(h)
    z2, ld2 = unrolled.inverse_and_log_det(h)
    np.testing.assert_allclose(z1, z2, atol=1e-5)
    np.testing.assert_allclose(ld1, ld2, atol=1e-4)


def test_glow_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        Glow(image_shape=(6, 6, 1), num_scales=2).init(jax.random.PRNGKey(0), jnp.zeros((1, 6, 6, 1)))


def test_gated_glow_with_logit_by_change_of_variables():
    """The gated concat-ELU conditioners and the logit preprocessing: log_prob by autodiff Jacobian,
    the round trip, and identity conditioners at init (only the logit and ActNorm act)."""
    model = Glow(image_shape=(4, 4, 1), num_scales=2, num_steps=2, features=8, block=GatedResidualBlock,
                 activation=concat_elu,
                 logit_alpha=0.05)
    x = jax.random.uniform(jax.random.PRNGKey(0), (16, 4, 4, 1), minval=0.02, maxval=0.98)
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    for s in range(2):  # the output conv (after the gated block) starts at zero
        out = params["params"][f"coupling_{s}"]["Conv_1"]
        assert np.all(out["kernel"] == 0) and np.all(out["bias"] == 0)
    params = perturb(params, 6, 0.2)
    lp = jax.jit(model.apply)(params, x[:2])
    with jax.default_matmul_precision("float32"):
        np.testing.assert_allclose(lp, brute_force_log_prob(lambda: model.bind(params).bijector(), x[:2]),
                                   atol=2e-3, rtol=1e-5)
    round_trip = jax.jit(lambda p, v: (lambda b: b.forward(b.inverse(v)))(model.bind(p).bijector()))
    np.testing.assert_allclose(round_trip(params, x), x, atol=1e-4)
