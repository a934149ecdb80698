"""Class imbalance / SMOTE: data cuts, samplers' class counts, metrics, trainable, verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tune_step import run_step

from deepmorning.tuning import imbalance as I
from deepmorning.tuning import trial


def test_digits_cut_only_the_minority_classes_in_training():
    d = I.make_digits(seed=0, fraction=0.04)
    counts = np.bincount(d["y_train"], minlength=10)
    test_counts = np.bincount(d["y_test"], minlength=10)
    for c in range(10):
        if c in I.DIGIT_MINORITY:
            assert 2 <= counts[c] <= 6  # 4% of ~108 training samples
        else:
            assert counts[c] > 90
        assert test_counts[c] > 60  # the test set keeps every class whole
    assert not np.array_equal(I.make_digits(1, 0.04)["y_train"], d["y_train"])


def test_two_d_case_has_the_requested_share():
    d = I.make_two_d(seed=0, fraction=0.03)
    assert d["x_train"].shape == (1000, 2)
    assert np.bincount(d["y_train"]).tolist() == [970, 30]
    assert np.bincount(d["y_test"]).tolist() == [3880, 120]


@pytest.fixture(scope="module")
def skewed() -> tuple[np.ndarray, np.ndarray]:
    d = I.make_two_d(seed=1, fraction=0.03)
    return d["x_train"], d["y_train"]


def test_none_and_weights_leave_the_data_alone(skewed):
    x, y = skewed
    for method in ("none", "weights"):
        xr, yr = I.resample(method, x, y, seed=0)
        assert xr is x and yr is y


def test_under_sampling_cuts_every_class_to_the_smallest(skewed):
    x, y = skewed
    xr, yr = I.resample("under", x, y, seed=0)
    assert np.bincount(yr).tolist() == [30, 30]
    # the kept minority is the original minority; kept majority rows are original rows
    assert {tuple(r) for r in xr[yr == 1]} == {tuple(r) for r in x[y == 1]}
    originals = {tuple(r) for r in x[y == 0]}
    assert all(tuple(r) in originals for r in xr[yr == 0])


def test_over_sampling_replicates_the_minority(skewed):
    x, y = skewed
    xr, yr = I.resample("over", x, y, seed=0)
    assert np.bincount(yr).tolist() == [970, 970]
    originals = {tuple(r) for r in x[y == 1]}
    assert all(tuple(r) in originals for r in xr[yr == 1])  # copies only


def _distance_to_segments(p: np.ndarray, pts: np.ndarray) -> float:
    a, b = pts[:, None], pts[None]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    return float(np.linalg.norm(a + t[..., None] * ab - p, axis=-1).min())


def test_smote_points_lie_between_minority_neighbours(skewed):
    x, y = skewed
    xr, yr = I.resample("smote", x, y, seed=0, k_neighbors=5)
    assert np.bincount(yr).tolist() == [970, 970]
    assert np.array_equal(xr[: len(x)], x)  # originals first, synthetic points appended
    synth = xr[len(x):]
    assert (yr[len(x):] == 1).all() and len(synth) == 940
    minority = x[y == 1]
    originals = {tuple(r) for r in minority}
    assert sum(tuple(r) in originals for r in synth) < 5  # new points, not copies
    for p in synth[:200]:
        assert _distance_to_segments(p, minority) < 1e-4


def test_smote_with_fewer_samples_than_k(skewed):
    x, y = skewed
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:3]])
    xr, yr = I.resample("smote", x[keep], y[keep], seed=0, k_neighbors=5)
    assert np.bincount(yr).tolist() == [970, 970]


def test_class_weights_are_inverse_frequency():
    w = I.class_weights(np.array([0] * 90 + [1] * 10), 2)
    assert torch.allclose(w, torch.tensor([100 / (2 * 90), 100 / (2 * 10)]))


def test_scores_on_a_hand_made_prediction():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    s = I.scores(y, p, minority=np.array([1, 2]))
    assert s["minority_recall"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["majority_recall"] == pytest.approx(0.75)
    assert s["balanced_acc"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    f1 = [0.75, 0.5, 1.0]  # class 0: precision 3/4, recall 3/4; class 1: 1/2, 1/2
    assert s["macro_f1"] == pytest.approx(np.mean(f1))


def test_trainable_one_step_checkpoint_and_pictures(ray_local, tmp_path):
    result = run_step("imbalance", tmp_path, dataset="2d", method="smote", epochs=2,
                      minority_fraction=0.03)
    assert result.metrics["epoch"] == 2
    assert result.metrics["n_train"] == 1940  # SMOTE raised the minority to 970
    for key in ("balanced_acc", "minority_recall", "macro_f1"):
        assert 0.0 <= result.metrics[key] <= 1.0
    assert trial.load_state(result.checkpoint.path)["epoch"] == 2
    paths = I.pictures(dict(result.config), result.checkpoint.path, tmp_path / "pics", "best")
    assert [p.name for p in paths] == ["recall-best.png", "2d-best.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def frame(recalls: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arm": a, "seed": s, "minority_recall": r}
                         for a, rs in recalls.items() for s, r in enumerate(rs)])


def test_verdict_held_and_not_held():
    held, text = I.verdict_resampling(frame({
        "none": [0.2, 0.3, 0.25], "under": [0.8] * 3, "over": [0.6] * 3, "smote": [0.7] * 3,
        "weights": [0.7] * 3}))
    assert held and "none 0.250" in text
    held, _ = I.verdict_resampling(frame({
        "none": [0.6] * 3, "under": [0.8] * 3, "over": [0.55] * 3, "smote": [0.7] * 3,
        "weights": [0.7] * 3}))
    assert not held  # replication did not lift it


def test_unknown_method_and_dataset_are_clear_errors(skewed):
    x, y = skewed
    with pytest.raises(ValueError, match="method must be one of"):
        I.resample("smtoe", x, y, seed=0)
    with pytest.raises(ValueError, match="dataset must be"):
        I.make_data({"dataset": "mnist", "seed": 0, "minority_fraction": 0.1})


def test_trainable_resumes_from_its_checkpoint(monkeypatch):
    reports: list[tuple[dict, dict]] = []
    monkeypatch.setattr(trial, "report", lambda m, s=None: reports.append((m, s)))
    monkeypatch.setattr(trial, "restore", lambda: None)
    config = {**I.SPACE, **I.QUICK, "dataset": "2d", "method": "weights", "seed": 0,
              "epochs": 2}
    I.train(config)
    saved = reports[-1][1]
    monkeypatch.setattr(trial, "restore", lambda: saved)
    I.train({**config, "epochs": 4, "lr": 0.0})  # lr 0: the resumed weights stay as saved
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3, 4]
    for key, value in saved["model"].items():
        assert torch.equal(reports[-1][1]["model"][key], value)
