"""Bad input to the distributions, heads, dequantization, VAE parts and objectives: a ValueError that
names the argument (in backticks), raised at trace time; and unusual-but-valid input (Python
numbers and lists, numpy scalar types) that must work and give finite results.

`CASES` is a table of (function, description, thunk, expected): `expected` is a substring of the
ValueError's message, or "accepted" (the thunk's result must be finite).
"""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
    elbo,
    elbo_surgery,
    importance_weighted_bound,
    iwae_bound,
    log_mean_exp,
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
    # --- VAE and priors
    ("VAE", "x of the wrong data shape", lambda: vae_init(jnp.zeros((4, 5), jnp.int32)), "`x`"),
    ("VAE", "float x for discrete data", lambda: vae_init(jnp.zeros((4, 3))), "`x`"),
    ("VAE", "x level out of range", lambda: vae_init(jnp.full((4, 3), 2)), "`x`"),
    ("VAE", "num_levels 1", lambda: vae_init(X_BIN, num_levels=1), "`num_levels`"),
    ("VAE", "num_samples 0", lambda: vae_elbo(X_BIN, 0), "`num_samples`"),
    ("VAE.sample", "num_samples 0", lambda: vae_sample(0), "`num_samples`"),
    ("VAE.sample", "num_samples -2", lambda: vae_sample(-2), "`num_samples`"),
    ("VAE", "np.int64 num_samples", lambda: vae_elbo(X_BIN, np.int64(2), eager=True), "accepted"),
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
        "np.int64 num_samples and chunk_size",
        lambda: iwae_bound(KEY, X_BIN, posterior(), likelihood, PRIOR, np.int64(4), chunk_size=np.int64(3)),
        "accepted",
    ),
    ("importance_weighted_bound", "num_samples 0", lambda: iw(0), "`num_samples`"),
    ("importance_weighted_bound", "num_samples 2.0", lambda: iw(2.0), "`num_samples`"),
    ("importance_weighted_bound", "chunk_size -1", lambda: iw(3, chunk_size=-1), "`chunk_size`"),
    ("importance_weighted_bound", "log_weight_fn not callable", lambda: iw(3, fn=1.0), "`log_weight_fn`"),
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
        "np.int64 chunk_size, reconstruction as a list",
        lambda: surgery(chunk_size=np.int64(4), reconstruction=[0.0] * 6),
        "accepted",
    ),
]


@pytest.mark.parametrize(
    "function, description, thunk, expected", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_bad_input(function, description, thunk, expected):
    if expected == "accepted":
        # one compiled program rather than an op-by-op run (each op compiles alone); a thunk that
        # reads values on the host (elbo_surgery's per-chunk loop) runs eagerly
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
