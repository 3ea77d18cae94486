"""VAEs on statically binarized MNIST: one encoder, decoder and budget, different priors/posteriors.

    --config=experiments/configs/vae_binarized_mnist.py:VARIANT
VARIANT: standard (N(0, I) prior), gmm, vamp (VampPrior, 500 pseudo-inputs),
realnvp / maf (flow priors), iaf_posterior (IAF posterior, standard prior),
maf_iaf (MAF prior + IAF posterior), iaf_prior (IAF prior: sequential density).
Encoder and decoder are MLPs 784-300-300-40 and back (Tomczak & Welling's
"VAE" setting), Bernoulli decoder. Add
--config.data.manual_dir=../shared/data/binarized_mnist offline. Test NLL by
IWAE with k = 5000 comes from experiments/vae_analysis.py on the workdir.
"""

from pathlib import Path

import ml_collections

from dgmjax.training.config import load_config

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


def get_config(variant: str = "standard"):
    if variant not in VARIANTS:
        raise ValueError(f"unknown VAE variant {variant!r}; expected one of {sorted(VARIANTS)}.")
    config = load_config(Path(__file__).with_name("default.py"))
    config.data.name = "binarized_mnist"
    config.data.train_split = "train"
    config.data.test_split = "test"

    config.model = ml_collections.ConfigDict()
    config.model.name = "vae"
    config.model.latent_size = 40
    config.model.hidden_sizes = (300, 300)
    config.model.activation = "relu"
    config.model.decoder = "bernoulli"
    config.model.prior = VARIANTS[variant]["prior"]
    config.model.posterior = VARIANTS[variant]["posterior"]
    config.model.prior_components = 500 if variant == "vamp" else 50
    config.model.prior_flow_layers = 4
    config.model.prior_flow_hidden = (256,)
    config.model.posterior_flow_layers = 4
    config.model.posterior_flow_hidden = (256,)
    config.model.posterior_context = 64

    config.objective.eval_iwae_samples = 0

    config.train.batch_size = 100
    config.train.eval_batch_size = 500
    config.train.num_steps = 30_000
    config.train.log_every = 500
    config.train.eval_every = 10_000
    config.train.checkpoint_every = 2500
    config.train.sample_every = 0
    config.train.num_samples = 64
    config.train.ema_decay = 0.0

    config.optimizer.learning_rate = 5e-4
    config.optimizer.warmup_steps = 1000
    config.optimizer.weight_decay = 0.0
    config.optimizer.grad_clip_norm = 100.0
    return config
