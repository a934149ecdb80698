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
    for key in ("balanced_acc", "minority_recall", "macro_f1", "minority_auc"):
        assert 0.0 <= result.metrics[key] <= 1.0
    assert trial.load_state(result.checkpoint.path)["epoch"] == 2
    paths = I.pictures(dict(result.config), result.checkpoint.path, tmp_path / "pics", "best")
    assert [p.name for p in paths] == ["recall-best.png", "2d-best.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_smote_then_under_sampling_as_chawla_section_5(skewed):
    """SMOTE the minority by N %, then cut the majority to the same count; originals kept."""
    x, y = skewed
    for percent, count in ((200, 90), (500, 180)):
        xr, yr = I.resample("smote+under", x, y, seed=0, minority=np.array([1]),
                            smote_percent=percent)
        assert np.bincount(yr).tolist() == [count, count]
        kept = {tuple(r) for r in xr[yr == 1]}
        assert {tuple(r) for r in x[y == 1]} <= kept  # the 30 real minority points stay
        originals = {tuple(r) for r in x[y == 0]}
        assert all(tuple(r) in originals for r in xr[yr == 0])  # majority: a subset
    with pytest.raises(ValueError, match="needs the minority"):
        I.resample("smote+under", x, y, seed=0)


def test_smote_under_on_digits_grows_each_minority_class():
    d = I.make_digits(seed=0, fraction=0.04)
    counts = np.bincount(d["y_train"])
    xr, yr = I.resample("smote+under", d["x_train"], d["y_train"], seed=0,
                        minority=d["minority"], smote_percent=200)
    new = np.bincount(yr)
    target = max(3 * counts[c] for c in I.DIGIT_MINORITY)
    for c in range(10):
        assert new[c] == (3 * counts[c] if c in I.DIGIT_MINORITY else target)


def test_minority_auc_is_one_vs_rest_per_minority_class():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[.8, .1, .1], [.1, .8, .1], [.2, .7, .1], [.6, .3, .1],
                      [.1, .1, .8], [.3, .3, .4]])
    # class 1: positives score .7, .3; negatives .1, .8, .1, .3 -> AUC (4 + 1.5) / 8
    # class 2: positives .8, .4 above every negative (.1) -> 1
    assert I.minority_auc(y, proba, np.array([1, 2])) == pytest.approx((5.5 / 8 + 1) / 2)


@pytest.mark.parametrize("arm", list(I.ARMS))
def test_every_arm_gets_the_same_number_of_updates(monkeypatch, arm):
    from deepmorning.tuning import space

    study = I.STUDIES["resampling-2d"]
    shared, arms, _ = space.study_arms(I.MODEL, study, scale="quick", sets={}, max_epochs=1)
    reports: list[dict] = []
    monkeypatch.setattr(trial, "report", lambda m, s=None: reports.append(dict(m)))
    monkeypatch.setattr(trial, "restore", lambda: None)
    I.train({**shared, **arms[arm], "arm": arm, "seed": 0, "steps_per_epoch": 7})
    assert reports[-1]["updates"] == 7 and 0.0 <= reports[-1]["minority_auc"] <= 1.0
    sizes = {"under": 60, "smote200+under": 180, "smote500+under": 360, "over": 1940,
             "smote": 1940, "none": 1000, "weights": 1000}
    assert reports[-1]["n_train"] == sizes[arm]


def frame(auc: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arm": a, "seed": s, "minority_auc": r}
                         for a, rs in auc.items() for s, r in enumerate(rs)])


def test_verdict_is_smote_under_minus_under_paired_by_seed():
    base = {"over": [0.9] * 3, "smote": [0.91] * 3, "none": [0.5] * 3, "weights": [0.8] * 3}
    held, text = I.verdict_smote_under(frame({
        "under": [0.90, 0.80, 0.85], "smote200+under": [0.91, 0.81, 0.86],
        "smote500+under": [0.905, 0.82, 0.855], **base}))
    assert held and "smote200+under − under (minority_auc) = +0.01" in text
    assert "smote − over" in text and "not in the verdict" in text
    # a larger mean gain but one seed below under-sampling alone: not held
    held, text = I.verdict_smote_under(frame({
        "under": [0.90, 0.80, 0.85], "smote200+under": [0.95, 0.90, 0.84],
        "smote500+under": [0.95, 0.90, 0.86], **base}))
    assert not held and "2/3 seeds pass" in text
    tie = {"under": [0.9] * 3, "smote200+under": [0.9] * 3, "smote500+under": [0.9] * 3}
    assert not I.verdict_smote_under(frame({**tie, **base}))[0]


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
