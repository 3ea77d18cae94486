"""RealNVP and the multi-scale ImageRealNVP: identity at init, log_prob by change of variables."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import brute_force_log_prob, perturb

from dgmjax.bijectors import sigmoid_scale, tanh_scale
from dgmjax.models import ImageRealNVP, RealNVP


@pytest.mark.parametrize("scale_fn, coupling, permutation", [
    (tanh_scale, "masked", None), (sigmoid_scale, "masked", "random"), (tanh_scale, "split", None),
    (sigmoid_scale, "split", "random")])
def test_realnvp_identity_at_init_and_log_prob(scale_fn, coupling, permutation):
    model = RealNVP(event_size=5, num_layers=4, hidden_sizes=(16,), scale_fn=scale_fn,
                    coupling=coupling, permutation=permutation)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    params = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    bij = model.bind(params).bijector()
    if model._permutation() == "none":  # identity at init; with permutations, a permutation
        np.testing.assert_allclose(bij.forward(x), x, atol=1e-6)
    else:
        np.testing.assert_allclose(np.sort(bij.forward(x), -1), np.sort(x, -1), atol=1e-6)
    np.testing.assert_allclose(model.apply(params, x), jax.scipy.stats.norm.logpdf(x).sum(-1), rtol=1e-6)
    params = perturb(params, 2)
    lp = model.apply(params, x)
    with jax.default_matmul_precision("float32"):
        np.testing.assert_allclose(lp[:3], brute_force_log_prob(lambda: model.bind(params).bijector(), x[:3]),
            atol=1e-4)
    bij = model.bind(params).bijector()
    np.testing.assert_allclose(bij.forward(bij.inverse(x)), x, atol=1e-5)


def test_realnvp_samples_and_distribution_agree():
    model = RealNVP(event_size=3, num_layers=3, hidden_sizes=(8,))
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 3))), 1)
    s, lp = model.apply(params, jax.random.PRNGKey(2), 7, method=model.sample_and_log_prob)
    assert s.shape == (7, 3)
    np.testing.assert_allclose(lp, model.apply(params, s), atol=1e-4)
    dist = model.bind(params).distribution()
    assert isinstance(dist, distrax.Transformed)
    np.testing.assert_allclose(dist.log_prob(s), lp, atol=1e-4)


def test_sampling_temperature_scales_the_base_draws():
    model = RealNVP(event_size=3, num_layers=3, hidden_sizes=(8,))
    params = perturb(jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 3))), 1)
    key, bound = jax.random.PRNGKey(2), model.bind(params)
    z = jax.random.normal(key, (500, 3))  # the base's own draws for this key
    np.testing.assert_allclose(bound.sample(key, 500), bound.bijector().forward(z), atol=1e-5)
    s, lp = bound.sample_and_log_prob(key, 500, temperature=0.5)
    np.testing.assert_allclose(s, bound.bijector().forward(0.5 * z), atol=1e-5)
    np.testing.assert_allclose(lp, model.apply(params, s), atol=1e-4)  # the model's density, T = 1
    np.testing.assert_allclose(bound.bijector().inverse(s).std(), 0.5 * z.std(), rtol=1e-4)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
            bound.sample(key, 2, temperature=bad)


def _image_model(**kw):
    cfg = dict(image_shape=(4, 4, 1), num_scales=2, num_checkerboard=2, num_channelwise=2, features=8,
               num_blocks=1)
    cfg.update(kw)
    return ImageRealNVP(**cfg)


@pytest.fixture(scope="module")
def image_params():
    """Perturbed parameters of the small image model (they do not depend on logit_alpha)."""
    return perturb(jax.jit(_image_model().init)(jax.random.PRNGKey(1), jnp.full((1, 4, 4, 1), 0.5)), 2)


@pytest.mark.parametrize("logit_alpha", [0.05])  # the whole flow with the sigmoid on top
def test_image_realnvp_log_prob_matches_change_of_variables(logit_alpha, image_params):
    model = _image_model(logit_alpha=logit_alpha)
    x = jax.random.uniform(jax.random.PRNGKey(0), (3, 4, 4, 1), minval=0.05, maxval=0.95)
    params = image_params
    lp = jax.jit(model.apply)(params, x)
    with jax.default_matmul_precision("float32"):
        np.testing.assert_allclose(lp[:2], brute_force_log_prob(lambda: model.bind(params).bijector(), x[:2]),
            atol=2e-3, rtol=1e-5)
    round_trip = jax.jit(lambda p, x: (lambda b: b.forward(b.inverse(x)))(model.bind(p).bijector()))
    np.testing.assert_allclose(round_trip(params, x), x, atol=2e-5)
    eager = model.apply(params, x)  # jit and vmap agree with eager evaluation
    np.testing.assert_allclose(lp, eager, rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(lambda xi: model.apply(params, xi))(x), eager, rtol=1e-5)


def test_image_realnvp_identity_at_init_and_three_scales():
    model = _image_model(image_shape=(8, 8, 2), num_scales=3, logit_alpha=None)
    z = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 2))
    params = jax.jit(model.init)(jax.random.PRNGKey(1), z)
    forward = jax.jit(lambda p, z: model.bind(p).bijector().forward(z))
    np.testing.assert_allclose(forward(params, z), z, atol=1e-6)
    assert set(params["params"]) == {"checkerboard_0", "checkerboard_1", "checkerboard_2",
                                     "channelwise_0", "channelwise_1"}
    sample = jax.jit(lambda p, k: model.apply(p, k, 5, method=model.sample))(params, jax.random.PRNGKey(3))
    assert sample.shape == (5, 8, 8, 2)


def test_model_bad_inputs(image_params):
    model = _image_model()
    params = image_params
    with pytest.raises(ValueError, match="trailing shape"):
        model.apply(params, jnp.zeros((1, 4, 5, 1)))
    with pytest.raises(ValueError, match="floating"):
        model.apply(params, jnp.zeros((1, 4, 4, 1), jnp.int32))
    with pytest.raises(ValueError, match="divisible"):
        _image_model(image_shape=(6, 6, 1), num_scales=3).init(jax.random.PRNGKey(0), jnp.zeros((1, 6, 6, 1)))
    with pytest.raises(ValueError, match="event_size"):
        RealNVP(event_size=1).init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
    with pytest.raises(ValueError, match="split couplings need"):
        RealNVP(event_size=4, coupling="split", permutation="none").init(jax.random.PRNGKey(0),
                                                                         jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="coupling"):
        RealNVP(event_size=4, coupling="diagonal").init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="num_samples"):
        model.apply(params, jax.random.PRNGKey(0), 0, method=model.sample)
