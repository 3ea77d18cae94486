"""The routes from a continuous model to integer pixels, side by side on the embedded digits.

    --config=experiments/configs/digits_routes.py:ROUTE

ROUTE:
  categorical  PixelCNN, a 17-way softmax per pixel (exact discrete likelihood)
  mixture      PixelCNN, a discretized logistic mixture per pixel (exact discrete likelihood)
  uniform      multi-scale RealNVP on x + u, u ~ U(0, 1) (a lower bound on log P(x))
  variational  the same RealNVP on x + u, u ~ q(u | x) a conditional flow (Flow++; a tighter bound)
  idf          integer discrete flow (exact discrete likelihood, no dequantization)

Every route trains for the same number of steps, batch size and optimizer
schedule on the same 8x8, 17-level digits; `experiments/README.md` collects the
test numbers.
"""

from configs import default, idf, pixelcnn_mnist

ROUTES = ("categorical", "mixture", "uniform", "variational", "idf")


def get_config(route: str = "uniform"):
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; expected one of {list(ROUTES)}.")
    config = default.get_config()
    # The models are those of the MNIST configs, so the routes compare like with like there too.
    if route in ("categorical", "mixture"):
        config.model = pixelcnn_mnist.get_config().model
        config.model.head = route
    elif route == "idf":
        config.model = idf.get_config().model
    else:  # the default multi-scale RealNVP, with either dequantizer
        config.objective.dequantization = route
        config.objective.eval_importance_samples = 16

    config.train.num_steps = 2000
    config.train.eval_every = 1000
    config.train.checkpoint_every = 500
    config.train.sample_every = 0
    config.train.num_samples = 36
    return config
