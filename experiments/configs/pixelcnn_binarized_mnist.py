"""A PixelCNN with a Bernoulli head on statically binarized MNIST (exact nats per image)."""

from configs import pixelcnn_mnist


def get_config():
    config = pixelcnn_mnist.get_config()
    config.data.name = "binarized_mnist"
    config.model.head = "bernoulli"
    return config
