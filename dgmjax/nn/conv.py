"""A 'SAME' 2-D convolution that stays fast inside `lax.scan` on every backend.

XLA:CPU runs the kernel gradient of a convolution placed inside a loop body
(`lax.scan`, which dgmjax uses to stack flow layers) through a slow generic
path, far slower than the same convolution outside the loop (jax issue
#12868). Written as a sum of kh*kw shifted matmuls the same
convolution differentiates into plain dots, which are fast in loops. `Conv`
uses that form on CPU and XLA's native convolution elsewhere (cuDNN on GPU,
the MXU on TPU); both compute the same cross-correlation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

IMPLS = ("auto", "xla", "shifted_matmul")


def _same_padding(k: int) -> tuple[int, int]:
    lo = (k - 1) // 2
    return lo, k - 1 - lo


def conv2d_same(x: jax.Array, kernel: jax.Array, impl: str = "auto", padding=None) -> jax.Array:
    """Stride-1 cross-correlation of NHWC `x` with an HWIO `kernel`, output H x W.

    `padding`: None for 'SAME', or ((top, bottom), (left, right)) with
    top + bottom = kh - 1 and left + right = kw - 1 (causal, shifted
    convolutions pad only above and to the left). `impl`: "xla"
    (lax.conv_general_dilated), "shifted_matmul", or "auto" (shifted matmuls
    on CPU, XLA elsewhere).
    """
    if impl not in IMPLS:
        raise ValueError(f"`impl` must be one of {IMPLS}; got {impl!r}.")
    if not hasattr(x, "ndim") or not hasattr(kernel, "ndim") or x.ndim != 4 or kernel.ndim != 4 \
            or x.shape[-1] != kernel.shape[2]:
        raise ValueError(
            f"`x` must be NHWC and `kernel` HWIO with matching input channels; got x {x.shape}, "
            f"kernel {kernel.shape}."
        )
    kh, kw = kernel.shape[:2]
    if padding is None:
        padding = (_same_padding(kh), _same_padding(kw))
    try:
        padding = tuple(tuple(int(p) for p in pair) for pair in padding)
    except (TypeError, ValueError):
        raise ValueError(f"`padding` must be ((top, bottom), (left, right)) of ints; got "
                         f"{padding!r}.") from None
    if len(padding) != 2 or any(len(pair) != 2 or min(pair) < 0 for pair in padding):
        raise ValueError(f"`padding` must be ((top, bottom), (left, right)) of ints >= 0; got {padding!r}.")
    if sum(padding[0]) != kh - 1 or sum(padding[1]) != kw - 1:
        raise ValueError(f"`padding` {padding} must add kh - 1 = {kh - 1} rows and kw - 1 = {kw - 1} "
                         "columns, so the output keeps H x W.")
    if impl == "auto":
        impl = "shifted_matmul" if jax.default_backend() == "cpu" else "xla"
    if impl == "xla":
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h, w = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    out = None
    for i in range(kh):
        for j in range(kw):
            term = xp[:, i:i + h, j:j + w, :] @ kernel[i, j]
            out = term if out is None else out + term
    return out


class Conv(nn.Module):
    """Stride-1 convolution on NHWC inputs keeping H x W (parameters `kernel` HWIO and `bias`).

    A drop-in for `flax.linen.Conv(features, kernel_size)` with padding 'SAME'
    (or explicit `padding`), fast inside `lax.scan` on CPU (see the module docstring). `kernel_mask`,
    if given (shape HWIO or broadcastable to it), multiplies the kernel: masked
    (PixelCNN-style) convolutions use it.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros
    impl: str = "auto"
    padding: tuple | None = None  # None: 'SAME'; else ((top, bottom), (left, right))

    @nn.compact
    def __call__(self, x, kernel_mask=None):
        if isinstance(self.features, bool) or not isinstance(self.features, int | np.integer) \
                or self.features < 1:
            raise ValueError(f"`features` must be a positive int; got {self.features!r}.")
        ks = tuple(self.kernel_size) if isinstance(self.kernel_size, Sequence) else None
        if ks is None or len(ks) != 2 or any(isinstance(k, bool) or not isinstance(k, int | np.integer)
                                             or k < 1 for k in ks):
            raise ValueError(f"`kernel_size` must be (kh, kw) of positive ints; got {self.kernel_size!r}.")
        if not hasattr(x, "shape") or x.ndim < 3:
            raise ValueError(f"`x` must have shape (..., H, W, C); got "
                             f"{getattr(x, 'shape', type(x).__name__)}.")
        kh, kw = ks
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        if kernel_mask is not None:
            kernel = kernel * kernel_mask
        batch_shape = x.shape[:-3]
        y = conv2d_same(x.reshape((-1,) + x.shape[-3:]), kernel.astype(x.dtype), self.impl,
                        self.padding)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,)).astype(x.dtype)
        return y.reshape(batch_shape + y.shape[-3:])
