"""PixelCNN with a Bernoulli head on statically binarized MNIST (Larochelle & Murray).

    python experiments/main.py --config=experiments/configs/pixelcnn_binarized_mnist.py \
        --workdir=runs/pixelcnn_bmnist --config.data.manual_dir=../shared/data/binarized_mnist
Exact nats per image (the unit of the binarized-MNIST literature) and bits/dim.
"""

from pathlib import Path

from dgmjax.training.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("pixelcnn_mnist.py"))
    config.data.name = "binarized_mnist"
    config.model.head = "bernoulli"
    return config
