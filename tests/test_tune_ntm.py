"""Neural Turing Machine (Graves et al. 2014): addressing by hand, the copy task, the trainable."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from tune_step import run_step

from deepmorning.tuning import ntm, trial


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_content_weights_by_hand():
    memory = t([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]).unsqueeze(0)
    w = ntm.content_weights(memory, t([2.0, 0.0]), t([2.0]))
    logits = [2 * 1.0, 2 * 0.0, 2 / math.sqrt(2)]  # beta * cosine
    expected = [math.exp(v) / sum(math.exp(u) for u in logits) for v in logits]
    assert torch.allclose(w, torch.tensor([expected]), atol=1e-6)
    sharp = ntm.content_weights(memory, t([2.0, 0.0]), t([50.0]))
    assert sharp[0, 0] > 0.99  # a strong key strength focuses on the best match


def test_interpolation_by_hand():
    w = ntm.interpolate(t([1.0, 0.0, 0.0]), t([0.0, 1.0, 0.0]), t([0.25]))
    assert torch.allclose(w, t([0.25, 0.75, 0.0]))


def test_shift_by_hand():
    one_hot = t([1.0, 0.0, 0.0, 0.0])
    assert torch.equal(ntm.shift(one_hot, t([0.0, 0.0, 1.0])), t([0.0, 1.0, 0.0, 0.0]))
    assert torch.equal(ntm.shift(one_hot, t([1.0, 0.0, 0.0])), t([0.0, 0.0, 0.0, 1.0]))  # wraps
    # w~(i) = sum_j w(j) s(i - j) with s over shifts (-1, 0, +1)
    mixed = ntm.shift(t([0.5, 0.5, 0.0, 0.0]), t([0.1, 0.2, 0.7]))
    assert torch.allclose(mixed, t([0.15, 0.45, 0.35, 0.05]), atol=1e-6)


def test_sharpen_by_hand():
    w = ntm.sharpen(t([0.5, 0.25, 0.25]), t([2.0]))
    assert torch.allclose(w, t([2 / 3, 1 / 6, 1 / 6]), atol=1e-6)
    assert torch.allclose(ntm.sharpen(t([0.5, 0.25, 0.25]), t([1.0])), t([0.5, 0.25, 0.25]))


def test_read_and_erase_add_write_by_hand():
    memory = t([1.0, 2.0], [3.0, 4.0]).unsqueeze(0)
    assert torch.allclose(ntm.read(memory, t([0.25, 0.75])), t([2.5, 3.5]))
    written = ntm.write(torch.ones(1, 2, 2), t([1.0, 0.0]), t([1.0, 0.0]), t([0.5, 0.5]))
    assert torch.allclose(written, t([0.5, 1.5], [1.0, 1.0]).unsqueeze(0))
    half = ntm.write(torch.ones(1, 2, 2), t([0.5, 0.5]), t([1.0, 1.0]), t([0.0, 0.0]))
    assert torch.allclose(half, torch.full((1, 2, 2), 0.5))


def test_ntm_memory_stays_finite_over_100_steps():
    torch.manual_seed(0)
    model = ntm.NTM(controller=32, memory_n=16, memory_m=8)
    inputs = torch.rand(100, 3, ntm.WIDTH + 1) * 10
    logits, reads, writes, memory = model(inputs, trace=True)
    assert logits.shape == (100, 3, ntm.WIDTH)
    assert torch.isfinite(memory).all() and torch.isfinite(logits).all()
    assert torch.allclose(writes.sum(-1), torch.ones(100, 3), atol=1e-5)  # weightings sum to 1
    assert torch.allclose(reads.sum(-1), torch.ones(100, 3), atol=1e-5)


def test_copy_task_layout():
    inputs, targets = ntm.copy_batch(torch.Generator().manual_seed(0), 4, 5)
    assert inputs.shape == (11, 4, ntm.WIDTH + 1) and targets.shape == (5, 4, ntm.WIDTH)
    assert torch.equal(inputs[:5, :, : ntm.WIDTH], targets)
    assert torch.equal(inputs[:, 0, ntm.WIDTH], torch.tensor([0.0] * 5 + [1.0] + [0.0] * 5))
    assert inputs[6:].abs().sum() == 0  # nothing to read while answering
    again = ntm.test_set(7)
    assert torch.equal(again[0], ntm.test_set(7)[0])  # the test set is fixed


def test_lstm_baseline_parameter_count_is_comparable():
    config = {**ntm.SPACE, **ntm.QUICK}
    sizes = {arch: ntm.n_params(ntm.build({**config, "arch": arch})) for arch in ("ntm", "lstm")}
    assert 0.5 < sizes["lstm"] / sizes["ntm"] < 2.0


def frame(ntm_errs, lstm_errs):
    rows = []
    for arm, errs in (("ntm", ntm_errs), ("lstm", lstm_errs)):
        for seed, e in enumerate(errs):
            rows.append({"arm": arm, "seed": seed, "bit_err_2x": e, "bit_err_3x": 2 * e,
                         "bit_err_4x": 3 * e})
    return pd.DataFrame(rows)


def test_verdict_held_and_not_held():
    held, text = ntm.generalises(frame([1.0, 2.0, 3.0], [20.0, 25.0, 30.0]))
    assert held and "far below" in text
    held, text = ntm.generalises(frame([13.0, 14.0, 12.0], [25.0, 26.0, 24.0]))
    assert not held and "13.0 vs LSTM 25.0" in text and "0.5·lstm − ntm" in text


@pytest.mark.parametrize("arch", ["ntm", "lstm"])
def test_trainable_one_step_checkpoint_and_pictures(ray_local, tmp_path, arch):
    result = run_step("ntm", tmp_path / "tune", arch=arch, epochs=1, updates=2, max_len=3,
                      memory_n=16, batch_size=2)
    assert result.metrics["epoch"] == 1
    assert {"gen_bit_err", "bit_err_2x", "bit_err_4x", "params"} <= set(result.metrics)
    assert 0 <= result.metrics["bit_err_2x"] <= 6 * ntm.WIDTH
    with result.checkpoint.as_directory() as path:
        state = trial.load_state(path)
        assert state["epoch"] == 1
        pngs = ntm.MODEL.pictures(result.config, path, tmp_path / "pics", "best")
    names = sorted(p.name for p in pngs)
    expected = ["copy-best.png"] + (["weightings-best.png"] if arch == "ntm" else [])
    assert names == expected
    assert all(p.stat().st_size > 5_000 for p in pngs)
