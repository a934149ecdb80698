"""MATLAB-compatible bicubic ``imresize``: weights and values derived by hand from Keys' kernel
(a = -0.5), MATLAB's index mapping and its symmetric border, independently of the module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmorning.tuning import imresize


def keys(x: float) -> float:
    """Keys (1981) cubic convolution, a = -0.5, written out again for the test."""
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def mirror(i: int, n: int) -> int:
    """MATLAB's symmetric border for a 1-based index: 0 -> 1, -1 -> 2, n + 1 -> n."""
    while i < 1 or i > n:
        i = 1 - i if i < 1 else 2 * n + 1 - i
    return i


def by_hand(values: np.ndarray, scale: float, out_len: int) -> np.ndarray:
    """One axis of MATLAB's bicubic imresize, evaluated tap by tap."""
    n, out = values.size, []
    widen = scale if scale < 1 else 1.0  # anti-aliasing: k(x) -> scale · k(scale · x)
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        taps = range(int(np.floor(u - 2 / widen)) - 1, int(np.ceil(u + 2 / widen)) + 2)
        w = np.array([widen * keys(widen * (u - i)) for i in taps])
        v = np.array([values[mirror(i, n) - 1] for i in taps])
        out.append(float((w * v).sum() / w.sum()))
    return np.array(out)


def test_keys_kernel_and_the_x2_downscale_weights():
    assert imresize.cubic(np.array([0.0, 0.25, 0.75, 1.25, 1.75, 2.0, 2.5])) == \
        pytest.approx([1.0, 0.8671875, 0.2265625, -0.0703125, -0.0234375, 0.0, 0.0])
    # ×2 down, first output pixel: u = 1.5, eight taps at distances ±0.5 … ±3.5 (halved in
    # the widened kernel), inputs -2..5 (1-based) mirrored to 3, 2, 1, 1, 2, 3, 4, 5
    weights, indices = imresize.contributions(8, 4, 0.5)
    half = [0.5 * keys(d / 2) for d in (3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5)]
    np.testing.assert_allclose(weights[0], half)
    np.testing.assert_allclose(half, [-0.01171875, -0.03515625, 0.11328125, 0.43359375,
                                      0.43359375, 0.11328125, -0.03515625, -0.01171875])
    assert list(indices[0] + 1) == [3, 2, 1, 1, 2, 3, 4, 5]


def test_x2_down_and_up_of_a_length_8_ramp_match_the_hand_computation():
    ramp = np.arange(1.0, 9.0)
    down = imresize.imresize(np.tile(ramp[:, None], (1, 4)), 0.5)
    assert down.shape == (4, 2)
    np.testing.assert_allclose(down[:, 0], by_hand(ramp, 0.5, 4), atol=1e-12)
    # first output: 0.5 · Σ k(d/2) · v over v = 3, 2, 1, 1, 2, 3, 4, 5
    assert down[0, 0] == pytest.approx(1.44921875)
    up = imresize.imresize(np.tile(ramp[:, None], (1, 3)), 2.0)
    assert up.shape == (16, 6)
    np.testing.assert_allclose(up[:, 0], by_hand(ramp, 2.0, 16), atol=1e-12)
    # first output: u = 0.75, taps -1, 0, 1, 2 -> inputs 2, 1, 1, 2
    expect = keys(1.75) * 2 + keys(0.75) * 1 + keys(0.25) * 1 + keys(1.25) * 2
    assert up[0, 0] == pytest.approx(expect) == pytest.approx(0.90625)
    assert imresize.imresize(np.tile(np.arange(1.0, 10.0), (9, 1)), 1 / 3).shape == (3, 3)


def test_known_properties():
    np.testing.assert_allclose(imresize.imresize(np.full((7, 5), 0.3), 3.0), 0.3)
    np.testing.assert_allclose(imresize.imresize(np.full((12, 9), 0.3), 1 / 3), 0.3)
    # the kernel reproduces linear functions: a ramp halves to the ramp sampled at
    # u = 2x - 0.5 wherever no tap reaches the border
    ramp = np.arange(1.0, 33.0)
    down = imresize.imresize(np.tile(ramp[:, None], (1, 2)), 0.5)[:, 0]
    x = np.arange(1, 17)
    np.testing.assert_allclose(down[2:-2], (2 * x - 0.5)[2:-2], atol=1e-12)
    # a smooth image survives ×2 down and up closely; both axes resize alike
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    smooth = 0.5 + 0.25 * np.sin(2 * np.pi * xx) * np.cos(2 * np.pi * yy)
    lr, up = imresize.degrade(smooth, 2)
    assert lr.shape == (32, 32) and up.shape == smooth.shape
    assert np.abs(up - smooth).max() < 0.01
    np.testing.assert_allclose(imresize.imresize(smooth.T, 0.5), lr.T, atol=1e-12)


def test_interior_matches_torch_antialiased_bicubic_and_the_border_mirrors():
    """PyTorch's antialiased bicubic uses the same kernel and mapping but renormalises at the
    border: equal inside, different where MATLAB mirrors."""
    img = np.random.default_rng(0).random((40, 40))
    for scale in (0.5, 2.0):
        ours = imresize.imresize(img, scale)
        theirs = torch.nn.functional.interpolate(
            torch.from_numpy(img)[None, None], scale_factor=scale, mode="bicubic",
            antialias=True, align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(ours[4:-4, 4:-4], theirs[4:-4, 4:-4], atol=1e-12)
        assert np.abs(ours - theirs).max() > 1e-3
