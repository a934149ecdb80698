"""Deformable convolution (Dai et al. 2017): the operator against references, the data, the
trainable through a real Tuner, the sampling-location picture and the study's verdict."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tune_resume import run_resumed
from tune_step import run_step

from deepmorning.tuning import deformable as dm
from deepmorning.tuning import registry, trial


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2), (2, 1, 1)])
def test_zero_offsets_equal_the_plain_convolution(stride, padding, dilation):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    ref = F.conv2d(x, w, b, stride, padding, dilation)
    off = torch.zeros(2, 18, *ref.shape[2:], dtype=torch.float64)
    out = dm.deform_conv2d(x, off, w, b, stride, padding, dilation)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)


def test_fractional_offset_matches_a_hand_bilinear_computation():
    # 1x1 kernel of weight 2, every location reads at (+0.5, +0.25): Dai et al. Eq. 3-4 by hand.
    x = torch.arange(12, dtype=torch.float64).view(1, 1, 3, 4)
    w = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    off = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    off[:, 0], off[:, 1] = 0.5, 0.25
    out = dm.deform_conv2d(x, off, w)[0, 0]
    # (0, 0) reads y=0.5, x=0.25: .375·x00 + .125·x01 + .375·x10 + .125·x11 = 0.125 + 1.5 + 0.625
    assert out[0, 0].item() == pytest.approx(2 * 2.25)
    # (2, 3) reads y=2.5, x=3.25: only x23 = 11 is inside, with weight .5·.75 (zero outside)
    assert out[2, 3].item() == pytest.approx(2 * 0.375 * 11)
    # (1, 1) reads y=1.5, x=1.25: .375·5 + .125·6 + .375·9 + .125·10
    assert out[1, 1].item() == pytest.approx(2 * (0.375 * 5 + 0.125 * 6 + 0.375 * 9 + 0.125 * 10))


def test_integer_offset_of_one_kernel_point_moves_only_that_tap():
    # 3x3 kernel whose centre tap is 1 and the rest 0; moving the centre tap by (+1, -1)
    # reads x[i+1, j-1]: the image shifted, zero where it falls outside.
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    w[0, 0, 1, 1] = 1.0
    off = torch.zeros(1, 18, 5, 5, dtype=torch.float64)
    off[:, 2 * 4], off[:, 2 * 4 + 1] = 1.0, -1.0  # kernel point 4 is the centre
    out = dm.deform_conv2d(x, off, w, padding=1)[0, 0]
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[:4, 1:] = x[0, 0, 1:, :4]
    torch.testing.assert_close(out, expected)


def test_gradients_reach_input_offsets_and_weights():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    off = (0.3 * torch.randn(1, 18, 4, 4, dtype=torch.float64, generator=gen) + 0.1)
    off.requires_grad_(True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, o, k: dm.deform_conv2d(a, o, k, padding=1),
                                    (x, off, w))


def test_fresh_layer_is_the_plain_conv_and_learns_offsets():
    torch.manual_seed(0)
    layer = dm.DeformConv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(layer(x), layer.conv(x), atol=1e-5, rtol=1e-5)
    layer(x).square().sum().backward()
    assert layer.offset.weight.grad.abs().sum() > 0  # the offsets receive a gradient at zero


def test_warped_digits_are_placed_where_the_meta_says():
    src = dm._sources()[0]
    x, idx, meta = dm.warp_digits(src, 64, seed=3, canvas=32, elastic=0.0)
    assert x.shape == (64, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    again, _, _ = dm.warp_digits(src, 64, seed=3, canvas=32, elastic=0.0)
    torch.testing.assert_close(x, again)  # the same for every trial
    ink = x[:, 0]
    cols = torch.arange(32.0)
    cx = (ink.sum(1) * cols).sum(1) / ink.sum((1, 2))
    cy = (ink.sum(2) * cols).sum(1) / ink.sum((1, 2))
    # the ink's centroid sits near the placed centre (digits are not centred in their 8x8 box)
    assert (cx - torch.tensor(meta[:, 2])).abs().median() < 3
    assert (cy - torch.tensor(meta[:, 3])).abs().median() < 3
    small, large = meta[:, 0].argmin(), meta[:, 0].argmax()
    assert ink[large].sum() > ink[small].sum()  # a bigger digit covers more pixels


def test_sampling_points_are_the_regular_grid_until_offsets_move_them():
    torch.manual_seed(0)
    net = dm.Net("deformable", width=4)
    img = torch.rand(1, 32, 32)
    first, second = dm.sampling_points(net, img, (3, 4))
    # zero offsets: 3x3 taps one cell (4 px) apart around the unit at cell (3, 4)
    xs, ys = sorted(set(first[:, 0].round(3))), sorted(set(first[:, 1].round(3)))
    assert xs == [13.5, 17.5, 21.5] and ys == [9.5, 13.5, 17.5]
    assert second.shape == (81, 2) and len({tuple(p) for p in second.round(3)}) == 25
    with torch.no_grad():
        net.convs[3].offset.bias[0::2] = 1.0  # every tap of the top layer one cell lower
    moved, _ = dm.sampling_points(net, img, (3, 4))
    assert (moved[:, 1] - first[:, 1]).tolist() == pytest.approx([4.0] * 9)
    assert moved[:, 0].tolist() == pytest.approx(first[:, 0].tolist())


def test_plain_and_deformable_nets_have_the_same_depth_and_width():
    plain, deform = dm.Net("plain", 8), dm.Net("deformable", 8)
    assert [type(c).__name__ for c in deform.convs] == ["Conv2d", "Conv2d", "DeformConv2d",
                                                        "DeformConv2d"]
    base = sum(p.numel() for n, p in deform.named_parameters() if ".offset." not in n)
    assert base == dm.count_params(plain)  # only the offset branch is extra
    with pytest.raises(ValueError):
        dm.Net("dilated")
    wide = dm.build({"conv": "plain", "width": 8, "deform_layers": 2, "match_params": True})
    assert dm.count_params(wide) >= dm.count_params(deform)
    narrower = dm.Net("plain", dm.matched_width(8, 2) - 1)
    assert dm.count_params(narrower) < dm.count_params(deform)  # the smallest such width


def test_trainable_one_step_through_tune_checkpoint_and_picture(ray_local, tmp_path):
    result = run_step("deformable", tmp_path, epochs=1, n_train=256, n_test=128, width=4,
                      batch_size=64)
    assert result.metrics["epoch"] == 1
    assert 0.0 <= result.metrics["acc"] <= 1.0
    state = trial.load_state(result.checkpoint.path)
    assert state["epoch"] == 1 and "convs.3.offset.weight" in state["model"]
    paths = dm.pictures(result.config, result.checkpoint.path, tmp_path / "pics", "best")
    assert [p.name for p in paths] == ["sampling-best.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_trial_resumes_from_its_checkpoint_and_ends_as_if_uninterrupted(ray_local,
                                                                                  tmp_path):
    results = run_resumed("deformable", tmp_path, n_train=256, n_test=128, width=4)
    plain, resumed = results[False].metrics, results[True].metrics
    assert resumed["epoch"] == plain["epoch"] == 2
    # the retry reported once more (epoch 2) after Tune restored iteration 1 from the
    # checkpoint; a trainable that restarted from scratch would report twice (iteration 3)
    assert results[True].metrics["training_iteration"] == 2
    assert resumed["test_loss"] == pytest.approx(plain["test_loss"], rel=1e-6)
    assert resumed["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-6)


def test_registered_with_its_study():
    model = registry.get("deformable")
    assert model.metric == "acc" and model.mode == "max" and "epochs" in model.space
    study = model.study("deform-vs-plain")
    assert set(study.arms) == {"deformable", "plain", "plain-matched"} and study.seeds >= 3
    assert "69.7" in study.paper and "75.2" in study.paper


def frame(deform, plain, matched=None):
    rows = [{"arm": "deformable", "seed": s, "acc": a} for s, a in enumerate(deform)]
    rows += [{"arm": "plain", "seed": s, "acc": a} for s, a in enumerate(plain)]
    rows += [{"arm": "plain-matched", "seed": s, "acc": a} for s, a in enumerate(matched or [])]
    return pd.DataFrame(rows)


def test_verdict_on_hand_made_frames():
    held, line = dm.verdict_deform(frame([0.95, 0.94, 0.96], [0.85, 0.86, 0.84]))
    assert held and "deformable − plain (acc) = +0.1 ± 0" in line and "3/3 seeds pass" in line
    held, line = dm.verdict_deform(frame([0.80, 0.81, 0.79], [0.85, 0.86, 0.84]))
    assert not held and "— fails" in line
    held, line = dm.verdict_deform(frame([0.95, 0.94, 0.96], [0.85, 0.86, 0.84],
                                         [0.96, 0.97, 0.95]))
    assert not held and "deformable − plain-matched (acc) = -0.01" in line  # parameters win
    held, _ = dm.verdict_deform(frame([0.95, 0.94, 0.80], [0.85, 0.86, 0.84]))
    assert not held  # a higher mean, but one seed worse: the every-seed rule fails
    held, _ = dm.verdict_deform(frame([0.95, 0.94, 0.96], [0.85, 0.86, 0.84], [0.9, 0.9, 0.9]))
    assert held
