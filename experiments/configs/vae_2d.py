"""A VAE with a 2-D latent space, plotting the aggregated posterior against the prior.

    --config=experiments/configs/vae_2d.py:digits      embedded digits, categorical decoder
    --config=experiments/configs/vae_2d.py:moons       the moons toy, Gaussian decoder
    --config.model.prior=vamp|gmm|maf ...              another prior
The run writes samples_*_latent.png: p(z), q_agg(z) over the test set, and the
posterior means; the gap between the first two is the marginal KL of ELBO surgery.
"""

from configs import default, vae_binarized_mnist


def get_config(dataset: str = "digits"):
    config = default.get_config()
    config.data.name = dataset
    config.data.num_test = 2000
    config.model = vae_binarized_mnist.vae_model(
        latent_size=2, hidden_sizes=(256, 256), decoder="categorical" if dataset == "digits" else "gaussian",
        prior_flow_hidden=(64,))

    config.train.batch_size = 128
    config.train.eval_batch_size = 360 if dataset == "digits" else 500
    config.train.num_steps = 5000
    config.train.log_every = 250
    config.train.eval_every = 0
    config.train.checkpoint_every = 1000
    config.train.sample_every = 2500
    config.train.ema_decay = 0.0
    config.optimizer.weight_decay = 0.0
    return config
