"""A VAE with a 2-D latent space, plotting the aggregated posterior against the prior.

    --config=experiments/configs/vae_2d.py:digits      embedded digits, categorical decoder
    --config=experiments/configs/vae_2d.py:moons       the moons toy, Gaussian decoder
    --config.model.prior=vamp|gmm|maf ...              another prior
The run writes samples_*_latent.png: p(z), q_agg(z) over the test set, and the
posterior means; the gap between the first two is the marginal KL of ELBO surgery.
"""

from pathlib import Path

import ml_collections

from dgmjax.training.config import load_config


def get_config(dataset: str = "digits"):
    config = load_config(Path(__file__).with_name("default.py"))
    config.data.name = dataset
    config.data.num_test = 2000

    config.model = ml_collections.ConfigDict()
    config.model.name = "vae"
    config.model.latent_size = 2
    config.model.hidden_sizes = (256, 256)
    config.model.activation = "relu"
    config.model.decoder = "categorical" if dataset == "digits" else "gaussian"
    config.model.prior = "standard"
    config.model.posterior = "gaussian"
    config.model.prior_components = 50
    config.model.prior_flow_layers = 4
    config.model.prior_flow_hidden = (64,)

    config.train.batch_size = 128
    config.train.eval_batch_size = 360 if dataset == "digits" else 500
    config.train.num_steps = 5000
    config.train.log_every = 250
    config.train.eval_every = 0
    config.train.checkpoint_every = 1000
    config.train.sample_every = 2500
    config.train.num_samples = 64
    config.train.ema_decay = 0.0
    config.optimizer.learning_rate = 1e-3
    config.optimizer.weight_decay = 0.0
    return config
