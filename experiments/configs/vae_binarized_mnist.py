"""VAEs on statically binarized MNIST: one encoder, decoder and budget, different priors/posteriors.

    --config=experiments/configs/vae_binarized_mnist.py:VARIANT [--config.data.manual_dir=DIR]
VARIANT: standard (N(0, I) prior), gmm, vamp (VampPrior, 500 pseudo-inputs),
realnvp / maf (flow priors), iaf_posterior (IAF posterior, standard prior),
maf_iaf (MAF prior + IAF posterior), iaf_prior (IAF prior: sequential density).
Encoder and decoder are MLPs 784-300-300-40 and back (Tomczak & Welling's
"VAE" setting), Bernoulli decoder. Test NLL by IWAE with k = 5000 comes from
experiments/vae_analysis.py on the workdir.
"""

import ml_collections

from configs import default

VARIANTS = {
    "standard": dict(prior="standard", posterior="gaussian"),
    "gmm": dict(prior="gmm", posterior="gaussian"),
    "vamp": dict(prior="vamp", posterior="gaussian"),
    "realnvp": dict(prior="realnvp", posterior="gaussian"),
    "maf": dict(prior="maf", posterior="gaussian"),
    "iaf_prior": dict(prior="iaf", posterior="gaussian"),
    "iaf_posterior": dict(prior="standard", posterior="iaf"),
    "maf_iaf": dict(prior="maf", posterior="iaf"),
}


def vae_model(latent_size=40, hidden_sizes=(300, 300), decoder="bernoulli", prior="standard",
              posterior="gaussian", prior_components=50, prior_flow_hidden=(256,)):
    """The `model` section of a VAE config: every key the VAE wiring reads."""
    model = ml_collections.ConfigDict()
    model.name = "vae"
    model.latent_size = latent_size
    model.hidden_sizes = hidden_sizes
    model.activation = "relu"
    model.decoder = decoder  # "bernoulli", "categorical", "mixture" or "gaussian"
    model.num_mixtures = 5
    model.prior = prior
    model.prior_components = prior_components  # GMM components / VampPrior pseudo-inputs
    model.prior_flow_layers = 4
    model.prior_flow_hidden = prior_flow_hidden
    model.posterior = posterior
    model.posterior_flow_layers = 4
    model.posterior_flow_hidden = (256,)
    model.posterior_context = 64
    return model


def get_config(variant: str = "standard"):
    if variant not in VARIANTS:
        raise ValueError(f"unknown VAE variant {variant!r}; expected one of {sorted(VARIANTS)}.")
    config = default.get_config()
    config.data.name = "binarized_mnist"
    config.model = vae_model(prior_components=500 if variant == "vamp" else 50, **VARIANTS[variant])

    config.train.batch_size = 100
    config.train.eval_batch_size = 500
    config.train.num_steps = 30_000
    config.train.log_every = 500
    config.train.eval_every = 10_000
    config.train.checkpoint_every = 2500
    config.train.sample_every = 0
    config.train.ema_decay = 0.0

    config.optimizer.learning_rate = 5e-4
    config.optimizer.warmup_steps = 1000
    config.optimizer.weight_decay = 0.0
    config.optimizer.grad_clip_norm = 100.0
    return config
