"""Bad input to the distributions, heads, dequantization, VAE parts, objectives and batch iterators: a
ValueError that names the argument (in backticks), raised at trace time; and unusual-but-valid input
(Python numbers and lists, numpy scalar types) that must work and give finite results.

`CASES` is a table of (function, description, thunk, expected): `expected` is a substring of the
ValueError's message, or "accepted" (the thunk's result must be finite).
"""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dgmjax.data import ArrayBatches, SamplerBatches, eval_batches, sample_toy
from dgmjax.dequantization import to_levels, uniform_dequantize, uniform_noise
from dgmjax.distributions import (
    BernoulliHead,
    CategoricalHead,
    DiscretizedLogisticMixture,
    DiscretizedRGBLogisticMixture,
    GaussianHead,
    IntegerLogisticMixture,
    LogisticMixtureHead,
    LogScaleNormal,
    RGBLogisticMixtureHead,
    diag_gaussian_kl,
    log1mexp,
)
from dgmjax.models.priors import GaussianMixturePrior, StandardNormalPrior, VampPrior
from dgmjax.models.vae import VAE, GaussianEncoder, MLPDecoder, PlanarEncoder
from dgmjax.objectives import (
    aggregated_posterior,
    analytic_kl,
    dequantization_bound,
    deterministic_flow_elbo,
    elbo,
    elbo_surgery,
    importance_weighted_bound,
    iwae_bound,
    log_mean_exp,
    logit_space_log_prob,
)

KEY = jax.random.PRNGKey(0)
Z2 = jnp.zeros((4, 2))  # parameters of a batch of 4, K = 2
NAN2 = jnp.array([[0.0, jnp.nan]] * 4)
INF2 = jnp.array([[0.0, jnp.inf]] * 4)
LEVELS4 = jnp.array([0, 3, 7, 255])


def dlm(lw=Z2, mu=Z2, ls=Z2, num_levels=256, **kw):
    return DiscretizedLogisticMixture(lw, mu, ls, num_levels, **kw)


def rgb(batch=(4,), k=2, num_levels=256, lw=None, channels=3, **kw):
    z = jnp.zeros(batch + (channels, k))
    return DiscretizedRGBLogisticMixture(
        jnp.zeros(batch + (k,)) if lw is None else lw, z, z, z, num_levels, **kw
    )


def ilm(lw=Z2, mu=Z2, ls=Z2, **kw):
    return IntegerLogisticMixture(lw, mu, ls, **kw)


def posterior(b=4, d=2):
    return LogScaleNormal(jnp.zeros((b, d)), jnp.zeros((b, d)))


def likelihood(z):
    return distrax.Independent(distrax.Bernoulli(logits=jnp.zeros(z.shape[:-1] + (3,)), dtype=jnp.int32), 1)


X_BIN = jnp.zeros((4, 3), jnp.int32)
PRIOR = LogScaleNormal(jnp.zeros(2), jnp.zeros(2))


def vae(num_levels=2, shape=(3,)):
    return VAE(
        data_shape=shape,
        num_levels=num_levels,
        encoder=GaussianEncoder(2, hidden_sizes=(4,)),
        decoder=MLPDecoder(
            shape, BernoulliHead() if num_levels == 2 else CategoricalHead(), num_levels, hidden_sizes=(4,)
        ),
        prior=StandardNormalPrior(2),
    )


def traced(f):
    """Runs `f` under `jax.eval_shape`: its trace-time checks run (closed-over arrays stay concrete,
    so value checks on them too), nothing compiles."""
    return jax.eval_shape(f)


def vae_init(x, num_levels=2, shape=(3,)):
    return traced(lambda: vae(num_levels, shape).init(KEY, KEY, x))


def vae_elbo(x, num_samples=1, eager=False):
    model = vae()
    if eager:
        return model.apply(model.init(KEY, KEY, X_BIN), KEY, x, num_samples)["elbo"]
    variables = traced(lambda: model.init(KEY, KEY, X_BIN))
    return jax.eval_shape(lambda v: model.apply(v, KEY, x, num_samples), variables)


def vae_sample(n):
    model = vae()
    variables = traced(lambda: model.init(KEY, KEY, X_BIN))
    return jax.eval_shape(lambda v: model.apply(v, KEY, n, method=VAE.sample), variables)


def vae_sample_with_key(key):
    model = vae()
    variables = traced(lambda: model.init(KEY, KEY, X_BIN))
    return model.apply(variables, key, 2, method=VAE.sample)


def surgery(**kw):
    x = jnp.zeros((6, 2))
    encoder = lambda xc: LogScaleNormal(xc, jnp.zeros_like(xc))
    out = elbo_surgery(KEY, x, encoder, LogScaleNormal(jnp.zeros(2), jnp.zeros(2)), **kw)
    return out["avg_kl"]


def iw(num_samples=3, chunk_size=None, fn=None):
    fn = (lambda k: jax.random.normal(k, (2,))) if fn is None else fn
    return importance_weighted_bound(KEY, fn, num_samples, chunk_size=chunk_size)


def head(h, params, num_levels, value):
    return h(params, num_levels).log_prob(value)


def lsn(batch=(4,), d=2):
    return LogScaleNormal(jnp.zeros(batch + (d,)), jnp.zeros(batch + (d,)))


def vae_parts(num_levels=17, decoder_levels=17, shape=(3,), decoder_shape=(3,)):
    return VAE(
        data_shape=shape,
        num_levels=num_levels,
        encoder=GaussianEncoder(2, hidden_sizes=(4,)),
        decoder=MLPDecoder(decoder_shape, CategoricalHead(), decoder_levels, hidden_sizes=(4,)),
        prior=StandardNormalPrior(2),
    )


def surgery_under(transform):
    """elbo_surgery on 6 points inside `transform` (jax.vmap over two data sets, or jax.jit)."""
    encoder = lambda xc: LogScaleNormal(xc, jnp.zeros_like(xc))
    x = jnp.zeros((2, 6, 2)) if transform is jax.vmap else jnp.zeros((6, 2))
    return transform(lambda xs: elbo_surgery(KEY, xs, encoder, PRIOR)["avg_kl"])(x)


def surgery_traced_encoder():
    """elbo_surgery on concrete data whose encoder closes over a traced parameter (inside jax.grad)."""
    x = np.zeros((6, 2), np.float32)

    def avg_kl(shift):
        encoder = lambda xc: LogScaleNormal(xc + shift, jnp.zeros_like(xc))
        return elbo_surgery(KEY, x, encoder, PRIOR)["avg_kl"]

    return jax.grad(avg_kl)(0.5)


def moons(key, n):
    return sample_toy(key, "moons", n)


ARRAYS = {"x": np.arange(10)[:, None]}
X_LEVELS = jnp.zeros((4, 3), jnp.int32)  # a batch of 4 examples of 3 levels


def per_element_log_p(x):
    """A 'model' that forgot to sum over the event: one log-density per element."""
    return -jnp.square(x)


def per_example_log_p(x):
    return -jnp.sum(jnp.square(x), -1)


def flow_elbo(prior):
    bijector = distrax.Block(distrax.ScalarAffine(0.5, 2.0), 1)
    return deterministic_flow_elbo(bijector, prior, jnp.zeros((4, 2)))["elbo"]


CASES = [
    # --- DiscretizedLogisticMixture
    (
        "DiscretizedLogisticMixture",
        "K axis missing: (B,) parameters, (B,) levels",
        lambda: DiscretizedLogisticMixture(jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), 256).log_prob(LEVELS4),
        "`value`",
    ),
    (
        "DiscretizedLogisticMixture",
        "levels (B, 1) against parameters (B, K)",
        lambda: dlm().log_prob(LEVELS4[:, None]),
        "`value`",
    ),
    (
        "DiscretizedLogisticMixture",
        "images (8, 8, 8, 1) against parameters (8, 8, 8, K)",
        lambda: dlm(*(jnp.zeros((8, 8, 8, 3)),) * 3).log_prob(jnp.zeros((8, 8, 8, 1), jnp.int32)),
        "`value`",
    ),
    (
        "DiscretizedLogisticMixture",
        "levels of the wrong batch size",
        lambda: dlm().log_prob(jnp.zeros(5, jnp.int32)),
        "`value`",
    ),
    ("DiscretizedLogisticMixture", "float levels", lambda: dlm().log_prob(jnp.zeros(4)), "`value`"),
    ("DiscretizedLogisticMixture", "bool levels", lambda: dlm().log_prob(jnp.zeros(4, bool)), "`value`"),
    ("DiscretizedLogisticMixture", "level = num_levels", lambda: dlm().log_prob(jnp.full(4, 256)), "`value`"),
    ("DiscretizedLogisticMixture", "negative level", lambda: dlm().log_prob(jnp.full(4, -1)), "`value`"),
    ("DiscretizedLogisticMixture", "means of another shape", lambda: dlm(mu=jnp.zeros((4, 3))), "`means`"),
    (
        "DiscretizedLogisticMixture",
        "scalar parameters (no K axis)",
        lambda: DiscretizedLogisticMixture(0.0, 0.0, 0.0, 256),
        "`means`",
    ),
    ("DiscretizedLogisticMixture", "num_levels = 1", lambda: dlm(num_levels=1), "`num_levels`"),
    ("DiscretizedLogisticMixture", "num_levels a float", lambda: dlm(num_levels=256.0), "`num_levels`"),
    ("DiscretizedLogisticMixture", "NaN mean", lambda: dlm(mu=NAN2), "`means`"),
    ("DiscretizedLogisticMixture", "infinite log-scale", lambda: dlm(ls=INF2), "`log_scales`"),
    ("DiscretizedLogisticMixture", "NaN logit weight", lambda: dlm(lw=NAN2), "`logit_weights`"),
    ("DiscretizedLogisticMixture", "+inf logit weight", lambda: dlm(lw=INF2), "`logit_weights`"),
    ("DiscretizedLogisticMixture", "bool parameters", lambda: dlm(mu=jnp.zeros((4, 2), bool)), "`means`"),
    (
        "DiscretizedLogisticMixture",
        "min_log_scale NaN",
        lambda: dlm(min_log_scale=float("nan")),
        "`min_log_scale`",
    ),
    (
        "DiscretizedLogisticMixture",
        "min_log_scale -100 (1/s overflows)",
        lambda: dlm(min_log_scale=-100.0),
        "`min_log_scale`",
    ),
    (
        "DiscretizedLogisticMixture",
        "min_log_scale above the upper clamp",
        lambda: dlm(min_log_scale=30.0),
        "`min_log_scale`",
    ),
    (
        "DiscretizedLogisticMixture",
        "sampling NaN parameters",
        lambda: DiscretizedLogisticMixture([0.0], [jnp.nan], [0.0], 17).sample(seed=KEY),
        "`means`",
    ),
    (
        "DiscretizedLogisticMixture",
        "Python float parameters (K = 1 lists)",
        lambda: DiscretizedLogisticMixture([0.0], [0.1], [-2.0], 17).log_prob(3),
        "accepted",
    ),
    (
        "DiscretizedLogisticMixture",
        "numpy scalars: np.int64 levels, np.float32 min_log_scale",
        lambda: dlm(num_levels=np.int64(256), min_log_scale=np.float32(-5)).log_prob(np.array([0, 1, 2, 3])),
        "accepted",
    ),
    (
        "DiscretizedLogisticMixture",
        "integer parameters, uint8 levels",
        lambda: dlm(mu=jnp.zeros((4, 2), jnp.int32)).log_prob(LEVELS4.astype(jnp.uint8)),
        "accepted",
    ),
    (
        "DiscretizedLogisticMixture",
        "-inf logit weight (a component off)",
        lambda: dlm(lw=jnp.array([[0.0, -jnp.inf]] * 4)).log_prob(LEVELS4),
        "accepted",
    ),
    (
        "DiscretizedLogisticMixture",
        "mean 1e30, log-scale 80",
        lambda: DiscretizedLogisticMixture([0.0], [1e30], [80.0], 256).log_prob(7),
        "accepted",
    ),
    (
        "DiscretizedLogisticMixture",
        "sampling a mean of 1e10 (levels stay in range)",
        lambda: DiscretizedLogisticMixture([0.0], [1e10], [0.0], 17).sample(seed=KEY, sample_shape=3) - 16,
        "accepted",
    ),
    (
        "DiscretizedLogisticMixture",
        "levels with a leading sample axis",
        lambda: dlm().log_prob(jnp.zeros((7, 4), jnp.int32)),
        "accepted",
    ),
    (
        "DiscretizedLogisticMixture",
        "levels (3,) against batch shape (4, 3): a batch axis missing",
        lambda: dlm(*(jnp.zeros((4, 3, 2)),) * 3).log_prob(jnp.zeros(3, jnp.int32)),
        "`value`",
    ),
    (
        "DiscretizedLogisticMixture",
        "one scalar level against a batch of 4",
        lambda: dlm().log_prob(3),
        "`value`",
    ),
    (
        "DiscretizedLogisticMixture",
        "images (8, 8, 1) against parameters (5, 8, 8, 1, K)",
        lambda: dlm(*(jnp.zeros((5, 8, 8, 1, 2)),) * 3).log_prob(jnp.zeros((8, 8, 1), jnp.int32)),
        "`value`",
    ),
    (
        "DiscretizedLogisticMixture",
        "parameter axis of size 1 against 4 levels (broadcasts)",
        lambda: dlm(*(jnp.zeros((1, 2)),) * 3).log_prob(LEVELS4),
        "accepted",
    ),
    # --- DiscretizedRGBLogisticMixture
    ("DiscretizedRGBLogisticMixture", "4 channels", lambda: rgb(channels=4), "`means`"),
    (
        "DiscretizedRGBLogisticMixture",
        "logit weights of the wrong K",
        lambda: rgb(lw=jnp.zeros((4, 3))),
        "`logit_weights`",
    ),
    (
        "DiscretizedRGBLogisticMixture",
        "pixels (B, 4) for event shape (3,)",
        lambda: rgb().log_prob(jnp.zeros((4, 4), jnp.int32)),
        "`value`",
    ),
    (
        "DiscretizedRGBLogisticMixture",
        "pixels (B, 1, 3) against a batch of B",
        lambda: rgb().log_prob(jnp.zeros((4, 1, 3), jnp.int32)),
        "`value`",
    ),
    (
        "DiscretizedRGBLogisticMixture",
        "one pixel (3,) against a batch of 4",
        lambda: rgb().log_prob(jnp.zeros(3, jnp.int32)),
        "`value`",
    ),
    (
        "DiscretizedRGBLogisticMixture",
        "level 256 of 256",
        lambda: rgb().log_prob(jnp.full((4, 3), 256)),
        "`value`",
    ),
    ("DiscretizedRGBLogisticMixture", "float pixels", lambda: rgb().log_prob(jnp.zeros((4, 3))), "`value`"),
    (
        "DiscretizedRGBLogisticMixture",
        "NaN coefficient",
        lambda: DiscretizedRGBLogisticMixture([0.0], [[0.0]] * 3, [[0.0]] * 3, [[jnp.nan]] * 3, 256),
        "`coeffs`",
    ),
    ("DiscretizedRGBLogisticMixture", "num_levels = 0", lambda: rgb(num_levels=0), "`num_levels`"),
    (
        "DiscretizedRGBLogisticMixture",
        "Python lists, K = 1",
        lambda: DiscretizedRGBLogisticMixture([0.0], [[0.0]] * 3, [[-1.0]] * 3, [[0.5]] * 3, 17).log_prob(
            [1, 2, 3]
        ),
        "accepted",
    ),
    (
        "DiscretizedRGBLogisticMixture",
        "sampling NaN means",
        lambda: DiscretizedRGBLogisticMixture([0.0], [[jnp.nan]] * 3, [[0.0]] * 3, [[0.0]] * 3, 17).sample(
            seed=KEY
        ),
        "`means`",
    ),
    # --- IntegerLogisticMixture
    (
        "IntegerLogisticMixture",
        "K axis missing: (B,) parameters, (B,) values",
        lambda: IntegerLogisticMixture(jnp.zeros(4), jnp.zeros(4), jnp.zeros(4)).log_prob(jnp.zeros(4)),
        "`value`",
    ),
    (
        "IntegerLogisticMixture",
        "values (B, 1) against parameters (B, K)",
        lambda: ilm().log_prob(jnp.zeros((4, 1))),
        "`value`",
    ),
    (
        "IntegerLogisticMixture",
        "non-integer float values",
        lambda: ilm().log_prob(jnp.full(4, 0.5)),
        "`value`",
    ),
    ("IntegerLogisticMixture", "bool values", lambda: ilm().log_prob(jnp.zeros(4, bool)), "`value`"),
    (
        "IntegerLogisticMixture",
        "values (3,) against batch shape (4, 3)",
        lambda: ilm(*(jnp.zeros((4, 3, 2)),) * 3).log_prob(jnp.zeros(3, jnp.int32)),
        "`value`",
    ),
    ("IntegerLogisticMixture", "a scalar against a batch of 4", lambda: ilm().log_prob(0.0), "`value`"),
    (
        "IntegerLogisticMixture",
        "log-scales of another shape",
        lambda: ilm(ls=jnp.zeros((4, 1))),
        "`log_scales`",
    ),
    ("IntegerLogisticMixture", "NaN mean", lambda: ilm(mu=NAN2), "`means`"),
    (
        "IntegerLogisticMixture",
        "sampling an infinite mean",
        lambda: IntegerLogisticMixture([0.0], [jnp.inf], [0.0]).sample(seed=KEY),
        "`means`",
    ),
    ("IntegerLogisticMixture", "min_log_scale a string", lambda: ilm(min_log_scale="-7"), "`min_log_scale`"),
    (
        "IntegerLogisticMixture",
        "floats holding integers, Python lists",
        lambda: IntegerLogisticMixture([0.0, 1.0], [3.0, -2.0], [0.0, 1.0]).log_prob([[-3.0], [4.0]]),
        "accepted",
    ),
    (
        "IntegerLogisticMixture",
        "sampling a mean of 1e10 (int32 saturates, no overflow)",
        lambda: IntegerLogisticMixture([0.0], [1e10], [0.0]).sample(seed=KEY).astype(jnp.float32) - 2.0**31,
        "accepted",
    ),
    (
        "IntegerLogisticMixture",
        "np.float32 min_log_scale",
        lambda: ilm(min_log_scale=np.float32(-3)).log_prob(jnp.zeros(4, jnp.int32)),
        "accepted",
    ),
    # --- log1mexp
    ("log1mexp", "Python float", lambda: log1mexp(0.5), "accepted"),
    ("log1mexp", "integer array", lambda: log1mexp(jnp.arange(1, 4)), "accepted"),
    # --- heads
    ("BernoulliHead", "num_levels 4", lambda: BernoulliHead().num_params(4), "`num_levels`"),
    (
        "BernoulliHead",
        "params without the parameter axis",
        lambda: BernoulliHead()(jnp.zeros(()), 2),
        "`params`",
    ),
    ("BernoulliHead", "params (B, 2)", lambda: BernoulliHead()(jnp.zeros((4, 2)), 2), "`params`"),
    (
        "BernoulliHead",
        "x = 2 (levels are 0 and 1)",
        lambda: head(BernoulliHead(), jnp.zeros((4, 1)), 2, jnp.array([0, 1, 2, 1])),
        "`value`",
    ),
    (
        "BernoulliHead",
        "x = -1",
        lambda: head(BernoulliHead(), jnp.zeros((4, 1)), 2, jnp.full(4, -1)),
        "`value`",
    ),
    (
        "BernoulliHead",
        "float x",
        lambda: head(BernoulliHead(), jnp.zeros((4, 1)), 2, jnp.array([0.0, 1.0, 0.5, 1.0])),
        "`value`",
    ),
    (
        "BernoulliHead",
        "x (B, 1) against a batch of B",
        lambda: head(BernoulliHead(), jnp.zeros((4, 1)), 2, jnp.zeros((4, 1), jnp.int32)),
        "`value`",
    ),
    (
        "BernoulliHead",
        "prob of x = 2",
        lambda: BernoulliHead()(jnp.zeros((4, 1)), 2).prob(jnp.full(4, 2)),
        "`value`",
    ),
    (
        "BernoulliHead",
        "levels with a leading sample axis; sample_and_log_prob",
        lambda: (
            head(BernoulliHead(), jnp.zeros((4, 1)), 2, jnp.ones((3, 4), jnp.int32)),
            BernoulliHead()(jnp.zeros((4, 1)), 2).sample_and_log_prob(seed=KEY, sample_shape=2)[1],
        ),
        "accepted",
    ),
    (
        "BernoulliHead",
        "Python list params, np.int64 num_levels",
        lambda: head(BernoulliHead(), [[0.3], [-1.0]], np.int64(2), jnp.array([1, 0])),
        "accepted",
    ),
    (
        "CategoricalHead",
        "one class (num_levels = 1)",
        lambda: CategoricalHead().num_params(1),
        "`num_levels`",
    ),
    ("CategoricalHead", "one class, called", lambda: CategoricalHead()(jnp.zeros((4, 1)), 1), "`num_levels`"),
    (
        "CategoricalHead",
        "logits of the wrong size",
        lambda: CategoricalHead()(jnp.zeros((4, 5)), 4),
        "`params`",
    ),
    ("CategoricalHead", "num_levels a string", lambda: CategoricalHead().num_params("4"), "`num_levels`"),
    (
        "CategoricalHead",
        "x (B, 1) against logits (B, L)",
        lambda: head(CategoricalHead(), jnp.zeros((4, 5)), 5, jnp.zeros((4, 1), jnp.int32)),
        "`value`",
    ),
    (
        "CategoricalHead",
        "level L = num_levels",
        lambda: head(CategoricalHead(), jnp.zeros((4, 5)), 5, jnp.array([0, 1, 5, 2])),
        "`value`",
    ),
    (
        "CategoricalHead",
        "level -1",
        lambda: head(CategoricalHead(), jnp.zeros((4, 5)), 5, jnp.full(4, -1)),
        "`value`",
    ),
    (
        "CategoricalHead",
        "float levels",
        lambda: head(CategoricalHead(), jnp.zeros((4, 5)), 5, jnp.zeros(4)),
        "`value`",
    ),
    (
        "CategoricalHead",
        "levels (3,) against batch shape (2, 3)",
        lambda: head(CategoricalHead(), jnp.zeros((2, 3, 5)), 5, jnp.zeros(3, jnp.int32)),
        "`value`",
    ),
    (
        "CategoricalHead",
        "prob of level L",
        lambda: CategoricalHead()(jnp.zeros((4, 5)), 5).prob(jnp.full(4, 5)),
        "`value`",
    ),
    (
        "CategoricalHead",
        "level L on one member (indexing keeps the check)",
        lambda: CategoricalHead()(jnp.zeros((4, 5)), 5)[1].log_prob(5),
        "`value`",
    ),
    (
        "CategoricalHead",
        "level L inside distrax.Independent (as the models use it)",
        lambda: distrax.Independent(CategoricalHead()(jnp.zeros((2, 3, 5)), 5), 1).log_prob(
            jnp.full((2, 3), 5)
        ),
        "`value`",
    ),
    (
        "CategoricalHead",
        "uint8 levels with a sample axis; sample_and_log_prob",
        lambda: (
            head(CategoricalHead(), jnp.zeros((4, 5)), 5, jnp.full((3, 4), 4, jnp.uint8)),
            CategoricalHead()(jnp.zeros((4, 5)), 5).sample_and_log_prob(seed=KEY, sample_shape=2)[1],
        ),
        "accepted",
    ),
    (
        "CategoricalHead",
        "integer logits",
        lambda: head(CategoricalHead(), jnp.zeros((2, 3), jnp.int32), 3, jnp.array([0, 2])),
        "accepted",
    ),
    ("LogisticMixtureHead", "num_mixtures 0", lambda: LogisticMixtureHead(0), "`num_mixtures`"),
    ("LogisticMixtureHead", "num_mixtures 2.5", lambda: LogisticMixtureHead(2.5), "`num_mixtures`"),
    (
        "LogisticMixtureHead",
        "8 params for K = 3",
        lambda: LogisticMixtureHead(3)(jnp.zeros((2, 8)), 17),
        "`params`",
    ),
    ("LogisticMixtureHead", "num_levels 1", lambda: LogisticMixtureHead(3).num_params(1), "`num_levels`"),
    (
        "LogisticMixtureHead",
        "NaN params",
        lambda: LogisticMixtureHead(1)(jnp.array([[0.0, jnp.nan, 0.0]]), 17),
        "`means`",
    ),
    (
        "LogisticMixtureHead",
        "np.int64 num_mixtures",
        lambda: head(LogisticMixtureHead(np.int64(2)), jnp.zeros((3, 6)), 17, jnp.array([0, 8, 16])),
        "accepted",
    ),
    ("RGBLogisticMixtureHead", "num_mixtures -1", lambda: RGBLogisticMixtureHead(-1), "`num_mixtures`"),
    (
        "RGBLogisticMixtureHead",
        "pixels without the channel axis",
        lambda: head(RGBLogisticMixtureHead(1), jnp.zeros((4, 10)), 256, jnp.zeros(4, jnp.int32)),
        "`value`",
    ),
    (
        "LogisticMixtureHead",
        "x (B, 1) against a batch of B",
        lambda: head(LogisticMixtureHead(2), jnp.zeros((4, 6)), 17, jnp.zeros((4, 1), jnp.int32)),
        "`value`",
    ),
    (
        "RGBLogisticMixtureHead",
        "29 params for K = 3",
        lambda: RGBLogisticMixtureHead(3)(jnp.zeros((2, 29)), 256),
        "`params`",
    ),
    ("GaussianHead", "num_levels given", lambda: GaussianHead().num_params(256), "`num_levels`"),
    ("GaussianHead", "min_log_std above max_log_std", lambda: GaussianHead(3.0, 1.0), "`min_log_std`"),
    ("GaussianHead", "NaN max_log_std", lambda: GaussianHead(max_log_std=float("nan")), "`max_log_std`"),
    ("GaussianHead", "params (B, 3)", lambda: GaussianHead()(jnp.zeros((4, 3)), None), "`params`"),
    (
        "GaussianHead",
        "x (B, 1) against a batch of B",
        lambda: head(GaussianHead(), jnp.zeros((4, 2)), None, jnp.zeros((4, 1))),
        "`value`",
    ),
    (
        "GaussianHead",
        "integer x (levels not dequantized)",
        lambda: head(GaussianHead(), jnp.zeros((4, 2)), None, jnp.zeros(4, jnp.int32)),
        "`value`",
    ),
    (
        "GaussianHead",
        "np.float32 clips, list params",
        lambda: head(GaussianHead(np.float32(-3), np.float32(2)), [[0.0, 5.0]], None, jnp.array([0.5])),
        "accepted",
    ),
    # --- LogScaleNormal / diag_gaussian_kl
    ("LogScaleNormal", "scalar loc (no event axis)", lambda: LogScaleNormal(0.0, 0.0), "`loc`"),
    (
        "LogScaleNormal",
        "log_scale not broadcasting with loc",
        lambda: LogScaleNormal(jnp.zeros((4, 2)), jnp.zeros((3, 2))),
        "`log_scale`",
    ),
    (
        "LogScaleNormal",
        "log_scale widening the event axis",
        lambda: LogScaleNormal(jnp.zeros((4, 1)), jnp.zeros((4, 3))),
        "`log_scale`",
    ),
    (
        "LogScaleNormal",
        "log-std -200 (exp underflows): log-density",
        lambda: LogScaleNormal([0.0], [-200.0]).log_prob(jnp.zeros(1)),
        "accepted",
    ),
    (
        "LogScaleNormal",
        "prior log-std -120: KL",
        lambda: LogScaleNormal([0.0], [-100.0]).kl_divergence(LogScaleNormal([0.0], [-120.0])),
        "accepted",
    ),
    (
        "LogScaleNormal",
        "log_prob of z (3, 2) against batch shape (4,)",
        lambda: lsn().log_prob(jnp.zeros((3, 2))),
        "`value`",
    ),
    (
        "LogScaleNormal",
        "log_prob of z (4, 1) for latent size 2",
        lambda: lsn().log_prob(jnp.zeros((4, 1))),
        "`value`",
    ),
    ("LogScaleNormal", "log_prob of a scalar", lambda: lsn().log_prob(0.0), "`value`"),
    (
        "LogScaleNormal",
        "kl_divergence between batch shapes (4,) and (3,)",
        lambda: lsn().kl_divergence(lsn((3,))),
        "`other_dist`",
    ),
    (
        "LogScaleNormal",
        "one z (d,) under every member; (S, 1, d) against batch (n,): every pair",
        lambda: (lsn().log_prob(jnp.zeros(2)), lsn().log_prob(jnp.zeros((5, 1, 2)))),
        "accepted",
    ),
    (
        "diag_gaussian_kl",
        "q of batch (4,) against p of batch (3,)",
        lambda: diag_gaussian_kl(jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.zeros((3, 2)), jnp.zeros((3, 2))),
        "`loc_p` of shape (3, 2)",
    ),
    (
        "diag_gaussian_kl",
        "loc_q (4, 1) against loc_p (2,): latent sizes differ",
        lambda: diag_gaussian_kl(jnp.zeros((4, 1)), 0.0, jnp.zeros(2), 0.0),
        "`loc_q` of shape (4, 1)",
    ),
    (
        "diag_gaussian_kl",
        "log_scale_p of another latent size",
        lambda: diag_gaussian_kl(jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.zeros(2), jnp.zeros(3)),
        "`log_scale_p`",
    ),
    (
        "diag_gaussian_kl",
        "one p (d,) against a batch of q (B, d), a shared scalar log-scale",
        lambda: diag_gaussian_kl(jnp.zeros((4, 2)), -1.0, jnp.ones(2), jnp.zeros(2)),
        "accepted",
    ),
    (
        "diag_gaussian_kl",
        "Python floats, log-std of p below -88.7",
        lambda: diag_gaussian_kl(0.0, -90.0, 0.0, -89.0),
        "accepted",
    ),
    # --- dequantization
    ("uniform_dequantize", "float x", lambda: uniform_dequantize(KEY, jnp.zeros((2, 3)), 4), "`x`"),
    (
        "uniform_dequantize",
        "level out of range",
        lambda: uniform_dequantize(KEY, jnp.full((2, 3), 4), 4),
        "`x`",
    ),
    (
        "uniform_dequantize",
        "num_levels 1",
        lambda: uniform_dequantize(KEY, jnp.zeros((2, 3), int), 1),
        "`num_levels`",
    ),
    (
        "uniform_dequantize",
        "event_ndims 3 for 2-d x",
        lambda: uniform_dequantize(KEY, jnp.zeros((2, 3), int), 4, event_ndims=3),
        "`event_ndims`",
    ),
    (
        "uniform_dequantize",
        "Python list x, np.int64 num_levels",
        lambda: uniform_dequantize(KEY, [[0, 1], [2, 3]], np.int64(4))[0],
        "accepted",
    ),
    (
        "uniform_noise",
        "event_ndims -1",
        lambda: uniform_noise(KEY, jnp.zeros((2, 3)), event_ndims=-1),
        "`event_ndims`",
    ),
    ("uniform_noise", "Python list x", lambda: uniform_noise(KEY, [[0, 1]])[0], "accepted"),
    ("to_levels", "NaN", lambda: to_levels(jnp.array([0.5, jnp.nan]), 4), "`x_cont`"),
    ("to_levels", "num_levels 0", lambda: to_levels(jnp.array([0.5]), 0), "`num_levels`"),
    ("to_levels", "Python float, np.int64 num_levels", lambda: to_levels(0.7, np.int64(10)), "accepted"),
    (
        "dequantization_bound",
        "a model giving one log p per element",
        lambda: dequantization_bound(KEY, per_element_log_p, X_LEVELS, 4),
        "`model`",
    ),
    (
        "dequantization_bound",
        "a dequantizer giving log q per element",
        lambda: dequantization_bound(
            KEY,
            per_example_log_p,
            X_LEVELS,
            4,
            dequantizer=lambda k, x: (jnp.full(x.shape, 0.5), jnp.zeros(x.shape)),
        ),
        "`dequantizer`",
    ),
    (
        "dequantization_bound",
        "a model and a dequantizer with one number per example",
        lambda: dequantization_bound(
            KEY,
            per_example_log_p,
            X_LEVELS,
            4,
            dequantizer=lambda k, x: (jnp.full(x.shape, 0.5), jnp.zeros(4)),
        ),
        "accepted",
    ),
    (
        "logit_space_log_prob",
        "a model giving one log p per element",
        lambda: logit_space_log_prob(KEY, per_element_log_p, X_LEVELS, 4),
        "`model`",
    ),
    (
        "deterministic_flow_elbo",
        "a prior over scalars (log p per element)",
        lambda: flow_elbo(distrax.Normal(0.0, 1.0)),
        "`prior`",
    ),
    ("deterministic_flow_elbo", "a prior over the vectors", lambda: flow_elbo(lsn((), 2)), "accepted"),
    # --- VAE and priors
    ("VAE", "x of the wrong data shape", lambda: vae_init(jnp.zeros((4, 5), jnp.int32)), "`x`"),
    ("VAE", "float x for discrete data", lambda: vae_init(jnp.zeros((4, 3))), "`x`"),
    ("VAE", "x level out of range", lambda: vae_init(jnp.full((4, 3), 2)), "`x`"),
    ("VAE", "num_levels 1", lambda: vae_init(X_BIN, num_levels=1), "`num_levels`"),
    ("VAE", "num_samples 0", lambda: vae_elbo(X_BIN, 0), "`num_samples`"),
    ("VAE.sample", "num_samples 0", lambda: vae_sample(0), "`num_samples`"),
    ("VAE.sample", "num_samples -2", lambda: vae_sample(-2), "`num_samples`"),
    ("VAE", "np.int64 num_samples", lambda: vae_elbo(X_BIN, np.int64(2), eager=True), "accepted"),
    ("VAE", "num_levels 17, decoder of 256 levels", lambda: vae_parts(17, 256), "`decoder.num_levels`"),
    ("VAE", "num_levels None, decoder of 2 levels", lambda: vae_parts(None, 2), "`decoder.num_levels`"),
    (
        "VAE",
        "data_shape (3,), decoder of data_shape (4,)",
        lambda: vae_parts(decoder_shape=(4,)),
        "`decoder.data_shape`",
    ),
    ("VAE", "an empty batch", lambda: vae_init(jnp.zeros((0, 3), jnp.int32)), "`x` got an empty batch"),
    (
        "VAE.posterior",
        "an empty batch",
        lambda: traced(lambda: vae().init(KEY, jnp.zeros((0, 3), jnp.int32), method=VAE.posterior)),
        "`x`",
    ),
    ("VAE", "one example", lambda: vae_elbo(X_BIN[:1], eager=True), "accepted"),
    (
        "VAE",
        "VampPrior input_size 5 for data of 3 features",
        lambda: VAE(
            (3,), 2, GaussianEncoder(2, (4,)), MLPDecoder((3,), BernoulliHead(), 2, (4,)), VampPrior(4, 5)
        ),
        "`prior.input_size`",
    ),
    ("VAE.sample", "key an int", lambda: vae_sample_with_key(0), "`key`"),
    (
        "GaussianEncoder",
        "latent_size 0",
        lambda: traced(lambda: GaussianEncoder(0).init(KEY, jnp.zeros((1, 3)))),
        "`latent_size`",
    ),
    (
        "PlanarEncoder",
        "num_layers 0",
        lambda: traced(lambda: PlanarEncoder(2, num_layers=0).init(KEY, jnp.zeros((1, 3)))),
        "`num_layers`",
    ),
    (
        "MLPDecoder",
        "an RGB head on per-element data",
        lambda: traced(lambda: MLPDecoder((3,), RGBLogisticMixtureHead(1), 256).init(KEY, jnp.zeros((1, 2)))),
        "`head`",
    ),
    ("StandardNormalPrior", "latent_size -1", lambda: StandardNormalPrior(-1)(), "`latent_size`"),
    (
        "GaussianMixturePrior",
        "num_components 0",
        lambda: traced(lambda: GaussianMixturePrior(2, num_components=0).init(KEY)),
        "`num_components`",
    ),
    (
        "VampPrior",
        "num_components 0",
        lambda: traced(lambda: VampPrior(0, 3).init(KEY, GaussianEncoder(2, hidden_sizes=(4,)))),
        "`num_components`",
    ),
    # --- objectives
    (
        "elbo",
        "posterior batch != data batch",
        lambda: elbo(KEY, X_BIN, posterior(b=5), likelihood, PRIOR),
        "`posterior`",
    ),
    (
        "elbo",
        "prior of another latent size",
        lambda: elbo(KEY, X_BIN, posterior(), likelihood, LogScaleNormal(jnp.zeros(3), jnp.zeros(3))),
        "`prior`",
    ),
    (
        "elbo",
        "num_samples 0",
        lambda: elbo(KEY, X_BIN, posterior(), likelihood, PRIOR, num_samples=0),
        "`num_samples`",
    ),
    ("elbo", "kl 'exact'", lambda: elbo(KEY, X_BIN, posterior(), likelihood, PRIOR, kl="exact"), "`kl`"),
    ("elbo", "likelihood not callable", lambda: elbo(KEY, X_BIN, posterior(), 3.0, PRIOR), "`likelihood`"),
    ("elbo", "scalar x", lambda: elbo(KEY, 0, posterior(), likelihood, PRIOR), "`x`"),
    (
        "elbo",
        "an empty batch",
        lambda: elbo(KEY, X_BIN[:0], posterior(b=0), likelihood, PRIOR),
        "`x` got an empty batch",
    ),
    (
        "elbo",
        "prior of batch shape (3,) for 4 examples",
        lambda: elbo(KEY, X_BIN, posterior(), likelihood, lsn((3,))),
        "`prior`",
    ),
    (
        "elbo",
        "prior of batch shape (3,), Monte Carlo KL",
        lambda: elbo(KEY, X_BIN, posterior(), likelihood, lsn((3,)), kl="monte_carlo"),
        "`prior`",
    ),
    (
        "elbo",
        "prior of batch shape (1,) for 4 examples",
        lambda: elbo(KEY, X_BIN, posterior(), likelihood, lsn((1,))),
        "`prior`",
    ),
    (
        "elbo",
        "likelihood with an event shape other than x's",
        lambda: elbo(KEY, jnp.zeros((4, 5), jnp.int32), posterior(), likelihood, PRIOR),
        "`likelihood`",
    ),
    (
        "elbo",
        "likelihood with per-element batch shape (no Independent)",
        lambda: elbo(
            KEY, X_BIN, posterior(), lambda z: distrax.Bernoulli(logits=jnp.zeros(z.shape[:-1] + (3,))), PRIOR
        ),
        "`likelihood`",
    ),
    (
        "elbo",
        "one prior per example (batch shape (B,)), both KLs",
        lambda: (
            elbo(KEY, X_BIN, posterior(), likelihood, lsn())["elbo"],
            elbo(KEY, X_BIN, posterior(), likelihood, lsn(), kl="monte_carlo")["elbo"],
        ),
        "accepted",
    ),
    (
        "elbo",
        "posterior log-std -100 against prior log-std -95 (analytic KL)",
        lambda: elbo(
            KEY,
            X_BIN,
            LogScaleNormal(jnp.zeros((4, 2)), jnp.full((4, 2), -100.0)),
            likelihood,
            LogScaleNormal(jnp.zeros(2), jnp.full(2, -95.0)),
        )["kl"],
        "accepted",
    ),
    (
        "iwae_bound",
        "num_samples 0",
        lambda: iwae_bound(KEY, X_BIN, posterior(), likelihood, PRIOR, 0),
        "`num_samples`",
    ),
    (
        "iwae_bound",
        "chunk_size 0",
        lambda: iwae_bound(KEY, X_BIN, posterior(), likelihood, PRIOR, 4, chunk_size=0),
        "`chunk_size`",
    ),
    (
        "iwae_bound",
        "an empty batch",
        lambda: iwae_bound(KEY, X_BIN[:0], posterior(b=0), likelihood, PRIOR, 4),
        "`x` got an empty batch",
    ),
    (
        "iwae_bound",
        "prior of batch shape (3,) for 4 examples",
        lambda: iwae_bound(KEY, X_BIN, posterior(), likelihood, lsn((3,)), 4),
        "`prior`",
    ),
    (
        "iwae_bound",
        "np.int64 num_samples and chunk_size",
        lambda: iwae_bound(KEY, X_BIN, posterior(), likelihood, PRIOR, np.int64(4), chunk_size=np.int64(3)),
        "accepted",
    ),
    ("importance_weighted_bound", "num_samples 0", lambda: iw(0), "`num_samples`"),
    ("importance_weighted_bound", "num_samples 2.0", lambda: iw(2.0), "`num_samples`"),
    ("importance_weighted_bound", "chunk_size -1", lambda: iw(3, chunk_size=-1), "`chunk_size`"),
    ("importance_weighted_bound", "log_weight_fn not callable", lambda: iw(3, fn=1.0), "`log_weight_fn`"),
    (
        "importance_weighted_bound",
        "key an int",
        lambda: importance_weighted_bound(0, lambda k: jax.random.normal(k, (2,)), 3),
        "`key`",
    ),
    (
        "importance_weighted_bound",
        "a typed key (jax.random.key)",
        lambda: importance_weighted_bound(jax.random.key(0), lambda k: jax.random.normal(k, (2,)), 3),
        "accepted",
    ),
    ("log_mean_exp", "empty axis", lambda: log_mean_exp(jnp.zeros((0, 3))), "`values`"),
    ("log_mean_exp", "axis out of range", lambda: log_mean_exp(jnp.zeros(3), axis=1), "`axis`"),
    ("log_mean_exp", "Python list", lambda: log_mean_exp([0.0, 1.0, 2.0]), "accepted"),
    (
        "aggregated_posterior",
        "batch shape (2, 3)",
        lambda: aggregated_posterior(LogScaleNormal(jnp.zeros((2, 3, 2)), 0.0)),
        "`posterior`",
    ),
    (
        "aggregated_posterior",
        "not a distribution",
        lambda: aggregated_posterior(jnp.zeros((3, 2))),
        "`posterior`",
    ),
    (
        "aggregated_posterior",
        "log_prob of z (3,) for latent size 2",
        lambda: aggregated_posterior(lsn()).log_prob(jnp.zeros(3)),
        "`value`",
    ),
    (
        "aggregated_posterior",
        "log_prob of z (5, 1) for latent size 2",
        lambda: aggregated_posterior(lsn()).log_prob(jnp.zeros((5, 1))),
        "`value`",
    ),
    (
        "aggregated_posterior",
        "log_prob of one z (d,) and of a grid (5, 3, d)",
        lambda: (
            aggregated_posterior(lsn()).log_prob(jnp.zeros(2)),
            aggregated_posterior(lsn()).log_prob(jnp.zeros((5, 3, 2))),
        ),
        "accepted",
    ),
    (
        "analytic_kl",
        "posterior batch (4,), prior batch (3,)",
        lambda: analytic_kl(lsn(), lsn((3,))),
        "`prior`",
    ),
    ("analytic_kl", "prior of another latent size", lambda: analytic_kl(lsn(), lsn((), 3)), "`prior`"),
    (
        "analytic_kl",
        "log-stds of -100 (distrax gives NaN)",
        lambda: analytic_kl(
            LogScaleNormal(jnp.zeros(2), jnp.full(2, -100.0)),
            LogScaleNormal(jnp.zeros(2), jnp.full(2, -99.0)),
        ),
        "accepted",
    ),
    ("elbo_surgery", "chunk_size 0", lambda: surgery(chunk_size=0), "`chunk_size`"),
    ("elbo_surgery", "num_samples 0", lambda: surgery(num_samples=0), "`num_samples`"),
    (
        "elbo_surgery",
        "reconstruction of the wrong length",
        lambda: surgery(reconstruction=jnp.zeros(5)),
        "`reconstruction`",
    ),
    ("elbo_surgery", "kl 'mc'", lambda: surgery(kl="mc"), "`kl`"),
    (
        "elbo_surgery",
        "one data point",
        lambda: elbo_surgery(KEY, jnp.zeros((1, 2)), lambda xc: LogScaleNormal(xc, 0.0 * xc), PRIOR),
        "`x`",
    ),
    (
        "elbo_surgery",
        "encoder not callable",
        lambda: elbo_surgery(KEY, jnp.zeros((3, 2)), None, PRIOR),
        "`encoder`",
    ),
    (
        "elbo_surgery",
        "prior of batch shape (6,) (one per point)",
        lambda: elbo_surgery(KEY, jnp.zeros((6, 2)), lambda xc: LogScaleNormal(xc, 0.0 * xc), lsn((6,))),
        "`prior`",
    ),
    (
        "elbo_surgery",
        "key an int",
        lambda: elbo_surgery(0, jnp.zeros((3, 2)), lambda xc: LogScaleNormal(xc, 0.0 * xc), PRIOR),
        "`key`",
    ),
    ("elbo_surgery", "under jax.vmap over data sets", lambda: surgery_under(jax.vmap), "`x` is traced"),
    ("elbo_surgery", "under jax.jit", lambda: surgery_under(jax.jit), "`x` is traced"),
    (
        "elbo_surgery",
        "an encoder closing over a traced parameter (jax.grad)",
        surgery_traced_encoder,
        "`encoder`",
    ),
    (
        "elbo_surgery",
        "np.int64 chunk_size, reconstruction as a list",
        lambda: surgery(chunk_size=np.int64(4), reconstruction=[0.0] * 6),
        "accepted",
    ),
    # --- batch iterators
    ("ArrayBatches", "key an int", lambda: ArrayBatches(ARRAYS, 2, key=0), "`key`"),
    (
        "ArrayBatches",
        "a batch of keys",
        lambda: ArrayBatches(ARRAYS, 2, key=jax.random.split(KEY, 2)),
        "`key`",
    ),
    ("ArrayBatches", "step -1", lambda: ArrayBatches(ARRAYS, 2, key=KEY)(-1), "`step`"),
    ("ArrayBatches", "step 1.5", lambda: ArrayBatches(ARRAYS, 2, key=KEY)(1.5), "`step`"),
    ("ArrayBatches", "no examples", lambda: ArrayBatches({"x": np.zeros((0, 2))}, 2, key=KEY), "`arrays`"),
    (
        "ArrayBatches",
        "a typed key, np.int64 step",
        lambda: ArrayBatches(ARRAYS, 2, key=jax.random.key(0))(np.int64(7))["x"],
        "accepted",
    ),
    ("SamplerBatches", "key an int", lambda: SamplerBatches(moons, 4, key=0), "`key`"),
    ("SamplerBatches", "step -1", lambda: SamplerBatches(moons, 4, key=KEY)(-1), "`step`"),
    ("SamplerBatches", "sampler not callable", lambda: SamplerBatches("moons", 4, key=KEY), "`sampler`"),
    (
        "SamplerBatches",
        "a typed key",
        lambda: SamplerBatches(moons, 4, key=jax.random.key(0))(3)["x"],
        "accepted",
    ),
    (
        "eval_batches",
        "arrays of different lengths",
        lambda: next(eval_batches({"x": np.zeros(4), "y": np.zeros(5)}, 2)),
        "`arrays`",
    ),
    ("eval_batches", "no arrays", lambda: next(eval_batches({}, 2)), "`arrays`"),
    ("sample_toy", "key an int", lambda: sample_toy(0, "moons", 3), "`key`"),
    # complex input
    (
        "DiscretizedLogisticMixture.log_prob",
        "complex levels",
        lambda: dlm().log_prob(LEVELS4.astype(jnp.complex64)),
        "`value` must be real",
    ),
    (
        "DiscretizedRGBLogisticMixture.log_prob",
        "complex levels",
        lambda: rgb().log_prob(jnp.zeros((4, 3), jnp.complex64)),
        "`value` must be real",
    ),
    (
        "IntegerLogisticMixture.log_prob",
        "complex levels",
        lambda: ilm().log_prob(LEVELS4.astype(jnp.complex64)),
        "`value` must be real",
    ),
    (
        "LogScaleNormal.log_prob",
        "complex value",
        lambda: PRIOR.log_prob(jnp.zeros(2, jnp.complex64)),
        "`value` must be real",
    ),
    (
        "BernoulliHead",
        "complex params",
        lambda: BernoulliHead()(jnp.zeros((4, 3, 1), jnp.complex64), 2),
        "`params` must be real",
    ),
    (
        "CategoricalHead",
        "complex levels",
        lambda: head(CategoricalHead(), jnp.zeros((4, 3, 4)), 4, jnp.zeros((4, 3), jnp.complex64)),
        "`value` must be real",
    ),
    (
        "LogisticMixtureHead",
        "complex levels",
        lambda: head(LogisticMixtureHead(2), jnp.zeros((4, 3, 6)), 4, jnp.zeros((4, 3), jnp.complex64)),
        "`value` must be real",
    ),
    (
        "GaussianHead",
        "complex data",
        lambda: head(GaussianHead(), jnp.zeros((4, 3, 2)), None, jnp.zeros((4, 3), jnp.complex64)),
        "`value` must be real",
    ),
]

# functions that run on the host (elbo_surgery's per-chunk loop, the batch iterators' numpy
# shuffles): their "accepted" rows run eagerly rather than under jax.jit
EAGER = {"elbo_surgery", "ArrayBatches", "SamplerBatches", "eval_batches"}


@pytest.mark.parametrize(
    "function, description, thunk, expected", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_bad_input(function, description, thunk, expected):
    if expected == "accepted":
        # one compiled program rather than an op-by-op run (each op compiles alone); a thunk that
        # reads values on the host runs eagerly
        if function in EAGER:
            out = thunk()
        else:
            try:
                out = jax.jit(thunk)()
            except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
                out = thunk()
        leaves = jax.tree_util.tree_leaves(out)
        assert leaves and all(np.all(np.isfinite(np.asarray(leaf, np.float64))) for leaf in leaves), out
    else:
        with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")) as info:
            thunk()
        assert "`" in str(info.value)
