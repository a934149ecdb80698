"""MATLAB-compatible bicubic ``imresize`` (the resize the SR papers degrade and baseline with).

Dong et al. 2014 (SRCNN) and Kim et al. 2016 (VDSR) make the low-resolution input with
MATLAB's ``imresize(hr, 1/scale, 'bicubic')`` and the "bicubic" baseline with
``imresize(lr, scale, 'bicubic')``. This module does what MATLAB's ``imresize`` does for the
``'bicubic'`` method with its default anti-aliasing, one axis at a time:

- Keys' cubic convolution kernel with a = -0.5 (Keys 1981), support [-2, 2];
- when shrinking (scale < 1) the kernel is widened by 1/scale, ``h(x) = scale · k(scale · x)``,
  so it also low-pass filters (anti-aliasing);
- output pixel ``x`` (1-based) samples the input at ``u = x / scale + 0.5 · (1 - 1/scale)``
  (pixel centres aligned), the weights of each output pixel are normalised to sum to 1;
- input indices outside ``1..n`` are mirrored half-sample ("symmetric": 0 -> 1, -1 -> 2,
  n + 1 -> n), as MATLAB's ``contributions`` does with ``aux = [1:n, n:-1:1]``.

No installed library does exactly this: OpenCV's ``INTER_CUBIC`` uses a = -0.75 and no
anti-aliasing, Pillow and ``torch.nn.functional.interpolate(antialias=True)`` use the same kernel
but truncate and renormalise it at the borders instead of mirroring, and scikit-image's
``resize(order=3)`` is a cubic spline after a Gaussian blur.

Values are float64 throughout (MATLAB's ``imresize`` of a double image; the papers convert Y
to double before resizing).
"""

from __future__ import annotations

import math

import numpy as np

KERNEL_WIDTH = 4.0  # Keys' cubic: support [-2, 2]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB ``imresize``'s ``cubic``)."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax**2, ax**3
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def output_length(length: int, scale: float) -> int:
    """MATLAB's ``ceil(scale · length)``, robust to float error (1/3 · 96 is 32, not 33)."""
    return int(math.ceil(round(scale * length, 9)))


def contributions(in_length: int, out_length: int, scale: float, antialias: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: (weights, 0-based input indices), each ``(out_length, P)``."""
    kernel_width = KERNEL_WIDTH
    if scale < 1 and antialias:
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)
        kernel_width /= scale
    else:
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left + np.arange(taps)[None, :]
    weights = kernel(u - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, mirror.size)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep] - 1


def resize_matrix(in_length: int, out_length: int, scale: float, antialias: bool = True
                  ) -> np.ndarray:
    """The dense ``(out_length, in_length)`` matrix of one axis' resize."""
    weights, indices = contributions(in_length, out_length, scale, antialias)
    matrix = np.zeros((out_length, in_length))
    rows = np.repeat(np.arange(out_length), weights.shape[1])
    np.add.at(matrix, (rows, indices.ravel()), weights.ravel())
    return matrix


def imresize(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """``imresize(img, scale, 'bicubic')`` of a float image (H×W or H×W×C), rows first.

    MATLAB resizes the most-shrunk axis first; with one scale for both axes that is rows, then
    columns (the order only changes float rounding).
    """
    out = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        matrix = resize_matrix(n, output_length(n, scale), scale, antialias)
        out = np.moveaxis(np.tensordot(matrix, np.moveaxis(out, axis, 0), axes=1), 0, axis)
    return out


def degrade(hr: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(low-resolution, bicubic-upscaled) of ``hr`` as the papers make them:
    ``lr = imresize(hr, 1/factor)``, ``up = imresize(lr, factor)``."""
    lr = imresize(hr, 1.0 / factor)
    return lr, imresize(lr, float(factor))
