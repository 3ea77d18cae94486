"""Datasets: image datasets read from their original files, the embedded 8x8 digits, 2-D toys, a user's
own arrays (.npy/.npz), batches."""

from dgmjax.data.arrays import VectorData, load_arrays
from dgmjax.data.images import IMAGE_DATASETS, ImageData, load_digits, load_images
from dgmjax.data.iterator import ArrayBatches, SamplerBatches, eval_batches, place
from dgmjax.data.toys import TOY_DENSITIES, sample_toy, toy_log_prob

__all__ = [
    "IMAGE_DATASETS",
    "TOY_DENSITIES",
    "ArrayBatches",
    "ImageData",
    "SamplerBatches",
    "VectorData",
    "eval_batches",
    "load_arrays",
    "load_digits",
    "load_images",
    "place",
    "sample_toy",
    "toy_log_prob",
]
