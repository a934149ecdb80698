"""Relation Networks on Sort-of-CLEVR: generator, RN pair sum, trainable through Tune, verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tune_step import run_step

from deepmorning.tuning import relnet as R
from deepmorning.tuning import trial
from deepmorning.tuning import verdict as V

# A hand-built 75x75 scene (x, y): red far top-left, green next to it, blue bottom-right,
# orange centre-right, gray top-right, yellow bottom-left.
XY = np.array([[10, 10], [24, 12], [64, 66], [50, 40], [66, 8], [8, 60]])
SHAPES = np.array([0, 1, 1, 0, 0, 1])  # square, circle, circle, square, square, circle


def ask(color: str, subtype: str) -> str:
    a = R.answer(XY, SHAPES, R.COLORS.index(color), R.SUBTYPES.index(subtype), 75)
    return R.ANSWERS[a]


def test_hand_built_scene_answers():
    assert ask("red", "shape") == "square"
    assert ask("green", "shape") == "circle"
    assert ask("red", "horizontal") == "left" and ask("blue", "horizontal") == "right"
    assert ask("orange", "horizontal") == "right" and ask("yellow", "horizontal") == "left"
    assert ask("red", "vertical") == "top" and ask("blue", "vertical") == "bottom"
    assert ask("orange", "vertical") == "bottom"  # y = 40 > 37.5
    # closest to red is green (circle); furthest from red is blue (circle)
    assert ask("red", "closest") == "circle"
    assert ask("red", "furthest") == "circle"
    # closest to blue is orange (square); furthest from gray is yellow (circle)
    assert ask("blue", "closest") == "square"
    assert ask("gray", "furthest") == "circle"
    # closest to yellow: orange at 46.5 (red 50.04, green 50.6) -> a square
    assert ask("yellow", "closest") == "square"
    # three squares (red, orange, gray), three circles
    assert ask("red", "count") == "3" and ask("green", "count") == "3"
    shapes = np.array([0, 0, 0, 0, 0, 1])
    assert R.ANSWERS[R.answer(XY, shapes, 0, R.SUBTYPES.index("count"), 75)] == "5"
    assert R.ANSWERS[R.answer(XY, shapes, 5, R.SUBTYPES.index("count"), 75)] == "1"


def test_render_draws_each_object_in_its_colour():
    img = R.render(XY, SHAPES, 75)
    assert img.shape == (75, 75, 3)
    side = 2 * R.half_size(75) + 1
    for i, (x, y) in enumerate(XY):
        mask = (img == R.RGB[i]).all(-1)
        ys, xs = np.nonzero(mask)
        assert abs(xs.mean() - x) < 0.5 and abs(ys.mean() - y) < 0.5
        if SHAPES[i] == 0:
            assert mask.sum() == side * side  # a full square
        else:
            assert 0.6 * side * side < mask.sum() < side * side  # a disc inside that square
    assert (img == 255).all(-1).mean() > 0.8  # white background


@pytest.mark.parametrize("size", [75, 40, 32])
def test_random_scenes_have_six_separate_objects(size):
    rng = np.random.default_rng(0)
    h = R.half_size(size)
    for _ in range(50):
        xy, shapes = R.random_scene(rng, size)
        assert xy.shape == (6, 2) and set(shapes.tolist()) <= {0, 1}
        assert (xy >= h).all() and (xy < size - h).all()
        gaps = np.abs(xy[:, None] - xy[None]).max(-1) + np.eye(6, dtype=int) * size
        assert gaps.min() > 2 * h  # no overlap
        img = R.render(xy, shapes, size)
        for i in range(6):  # every object visible
            assert (img == R.RGB[i]).all(-1).any()


def test_question_encoding_is_the_papers_binary_vector():
    q = R.encode_question(R.COLORS.index("blue"), R.SUBTYPES.index("furthest"))
    assert q.shape == (11,) and q.sum() == 3 and set(np.unique(q)) == {0.0, 1.0}
    assert q[2] == 1  # colour one-hot: blue
    assert q[6] == 0 and q[7] == 1  # relational
    assert q[8 + 1] == 1  # second relational subtype
    assert "furthest from blue" in R.decode_question(q)
    q = R.encode_question(0, R.SUBTYPES.index("shape"))
    assert q[0] == 1 and q[6] == 1 and q[8] == 1


def test_dataset_questions_match_their_answers():
    d = R.make_dataset(20, 40, 3)
    assert d["images"].shape == (20, 3, 40, 40) and len(d["answer"]) == 20 * 20
    assert (d["subtype"] >= 3).sum() == 200  # 10 relational, 10 non-relational per image
    for m in range(0, 400, 7):
        q = d["question"][m].numpy()
        color = int(np.argmax(q[:6]))
        subtype = 3 * int(np.argmax(q[6:8])) + int(np.argmax(q[8:]))
        assert subtype == int(d["subtype"][m])
        img = d["images"][int(d["image"][m])].permute(1, 2, 0).numpy()
        ys, xs = np.nonzero((img == R.RGB[color]).all(-1))
        if R.SUBTYPES[subtype] == "horizontal":
            assert R.ANSWERS[int(d["answer"][m])] == ("left" if xs.mean() < 20 else "right")


def test_rn_sums_g_over_all_ordered_pairs():
    torch.manual_seed(0)
    rn = R.RelationModule(d_obj=5, d_q=R.Q_DIM, g_units=16, g_layers=3, f_units=[8],
                          n_answers=len(R.ANSWERS))
    objects, q = torch.randn(3, 4, 5), torch.randn(3, R.Q_DIM)
    fast, slow = rn.pair_sum(objects, q), rn.pair_sum_reference(objects, q)
    assert torch.allclose(fast, slow, atol=1e-5)
    # a sum over all pairs does not depend on the order of the objects
    perm = objects[:, torch.tensor([2, 0, 3, 1])]
    assert torch.allclose(rn.pair_sum(perm, q), fast, atol=1e-5)
    # and it is not a sum over single objects: dropping i != j pairs changes it
    diag = sum(rn.g_rest(torch.relu(rn.g_first(torch.cat([objects[:, i], objects[:, i], q], 1))))
               for i in range(4))
    assert not torch.allclose(diag, fast, atol=1e-3)


def test_objects_carry_coordinates():
    feats = torch.zeros(1, 3, 5, 5)
    obj = R.objects_with_coords(feats)
    assert obj.shape == (1, 25, 5)
    assert obj[0, 0, 3:].tolist() == [-1.0, -1.0] and obj[0, 24, 3:].tolist() == [1.0, 1.0]
    assert obj[0, 4, 3:].tolist() == [1.0, -1.0]  # row-major: x varies fastest


TINY = {"n_train": 8, "n_test": 4, "epochs": 1, "batch_size": 16}


def test_trainable_one_step_checkpoint_and_pictures(ray_local, tmp_path):
    result = run_step("relnet", tmp_path, model="rn", **TINY)
    assert result.metrics["epoch"] == 1
    for key in ("acc", "rel_acc", "nonrel_acc", "acc_count"):
        assert 0.0 <= result.metrics[key] <= 1.0
    state = trial.load_state(result.checkpoint.path)
    assert state["epoch"] == 1
    config = {**result.config}
    paths = R.pictures(config, result.checkpoint.path, tmp_path / "pics", "best")
    assert [p.name for p in paths] == ["examples-best.png", "by-question-best.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_example_png(tmp_path):
    path = R.write_examples(tmp_path / "ex.png", n=3)
    assert path.read_bytes()[:4] == b"\x89PNG"


def frame(rel: dict[str, list[float]], nonrel: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"arm": arm, "seed": s, "rel_acc": r, "nonrel_acc": nonrel[arm][s]}
            for arm, vals in rel.items() for s, r in enumerate(vals)]
    return pd.DataFrame(rows)


def test_verdict_held_and_not_held():
    held, text = R.verdict_rn_vs_mlp(frame({"cnn+rn": [0.9, 0.92, 0.88], "cnn+mlp": [0.6] * 3},
                                           {"cnn+rn": [0.97] * 3, "cnn+mlp": [0.95] * 3}))
    assert held and "cnn+rn − cnn+mlp (rel_acc) = +0.3 ±" in text
    # a relational gap but a baseline that fails the non-relational questions
    held, _ = R.verdict_rn_vs_mlp(frame({"cnn+rn": [0.9] * 3, "cnn+mlp": [0.6] * 3},
                                        {"cnn+rn": [0.97] * 3, "cnn+mlp": [0.55] * 3}))
    assert not held
    # both good on non-relational, no relational gap
    held, _ = R.verdict_rn_vs_mlp(frame({"cnn+rn": [0.65] * 3, "cnn+mlp": [0.6] * 3},
                                        {"cnn+rn": [0.97] * 3, "cnn+mlp": [0.96] * 3}))
    assert not held


def test_trainable_resumes_from_its_checkpoint(monkeypatch, tmp_path):
    """The CNN+MLP arm, run in-process: resume continues from the saved epoch and weights."""
    reports: list[tuple[dict, dict]] = []
    monkeypatch.setattr(trial, "report", lambda m, s=None: reports.append((m, s)))
    monkeypatch.setattr(trial, "restore", lambda: None)
    config = {**R.SPACE, **R.QUICK, **TINY, "model": "mlp", "seed": 0, "epochs": 1}
    R.train(config)
    assert [m["epoch"] for m, _ in reports] == [1]
    saved = reports[-1][1]
    monkeypatch.setattr(trial, "restore", lambda: saved)
    R.train({**config, "epochs": 3, "lr": 0.0})  # lr 0: weights stay as restored
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]  # continued, did not restart
    for key, value in saved["model"].items():
        if key.startswith("head."):
            assert torch.equal(reports[-1][1]["model"][key], value)
    torch.save(reports[-1][1], tmp_path / trial.STATE_FILE)
    paths = R.pictures(config, tmp_path, tmp_path / "pics", "mlp")
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_colour_blind_accuracy_is_between_chance_and_one():
    blind = R.colour_blind_accuracy(200, 32, 0)
    assert 0.5 < blind["shape"] < 0.8  # the scene's majority shape
    assert 0.5 < blind["horizontal"] < 0.8
    assert blind["count"] > blind["shape"]  # "k of one shape" is right for k of 6 colours
    assert blind["nonrel_acc"] < 0.7 and blind["rel_acc"] < 0.85


# -- state descriptions (Santoro §5.1) ---------------------------------------------------------
def test_state_encoding_has_one_hots_and_coordinates_in_raster_order():
    state = R.encode_state(XY, SHAPES, 75)
    assert state.shape == (6, R.D_STATE) == (6, 10)
    # raster order of the centres (row y first, then x): gray (66, 8), red (10, 10),
    # green (24, 12), orange (50, 40), yellow (8, 60), blue (64, 66)
    order = ["gray", "red", "green", "orange", "yellow", "blue"]
    assert [R.COLORS[int(np.argmax(row[:6]))] for row in state] == order
    red = state[1]
    assert red[:6].tolist() == [1, 0, 0, 0, 0, 0]  # colour one-hot: red
    assert red[6:8].tolist() == [1, 0]  # shape one-hot: square
    assert red[8:] == pytest.approx([2 * 10 / 74 - 1, 2 * 10 / 74 - 1])
    yellow = state[4]
    assert yellow[5] == 1 and yellow[6:8].tolist() == [0, 1]  # yellow, circle
    assert yellow[8:] == pytest.approx([2 * 8 / 74 - 1, 2 * 60 / 74 - 1])
    assert (state[:, :8].sum(1) == 2).all()  # exactly one colour and one shape per object
    corners = R.encode_state(np.array([[0, 0], [74, 74], [74, 0], [0, 74], [30, 30],
                                       [40, 40]]), SHAPES, 75)
    assert corners[0, 8:].tolist() == [-1, -1] and corners[-1, 8:].tolist() == [1, 1]


def test_state_dataset_describes_the_pixel_datasets_scenes():
    pixels, states = R.make_dataset(12, 75, 4), R.make_state_dataset(12, 75, 4)
    assert states["objects"].shape == (12, 6, R.D_STATE)
    for key in ("image", "question", "answer", "subtype"):
        assert torch.equal(pixels[key], states[key])  # same questions about the same scenes
    for n in range(12):
        img = pixels["images"][n].permute(1, 2, 0).numpy()
        for row in states["objects"][n].numpy():
            colour = int(np.argmax(row[:6]))
            ys, xs = np.nonzero((img == R.RGB[colour]).all(-1))
            x, y = (row[8:] + 1) * 74 / 2
            assert abs(xs.mean() - x) < 0.5 and abs(ys.mean() - y) < 0.5


def test_state_models_compare_at_equal_size_and_rn_ignores_object_order():
    config = {**R.SPACE, **R.QUICK, **R.STATE_QUICK}
    torch.manual_seed(0)
    rn, mlp = R.build({**config, "model": "rn"}), R.build({**config, "model": "mlp"})
    assert isinstance(rn, R.StateRN) and isinstance(mlp, R.StateMLP)
    assert abs(R.n_params(rn) / R.n_params(mlp) - 1) < 0.05  # "comparable size" (§5.3)
    objects = R.make_state_dataset(4, 75, 0)["objects"]
    q = torch.zeros(4, R.Q_DIM)
    shuffled = objects[:, torch.tensor([5, 3, 1, 0, 2, 4])]
    assert torch.allclose(rn(objects, q), rn(shuffled, q), atol=1e-5)
    assert not torch.allclose(mlp(objects, q), mlp(shuffled, q), atol=1e-5)


def test_state_study_runs_one_short_trial(ray_local, tmp_path):
    """One trial of the study's RN arm through Tune, with the study's own quick config."""
    from deepmorning.tuning import registry, space

    model = registry.get("relnet")
    study = model.study("rn-vs-mlp-state")
    shared, arms, _ = space.study_arms(model, study, scale="quick", sets={}, max_epochs=1)
    assert shared["input"] == "state" and shared["n_train"] == 10_000
    result = run_step("relnet", tmp_path, **{**shared, **arms["rn"], **TINY})
    assert result.metrics["epoch"] == 1 and result.metrics["params"] == 19468
    for key in ("rel_acc", "nonrel_acc", "acc_closest"):
        assert 0.0 <= result.metrics[key] <= 1.0
    paths = R.pictures(dict(result.config), result.checkpoint.path, tmp_path / "pics", "rn")
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_state_verdict_is_paired_and_needs_every_seed():
    nonrel = {"rn": [0.99] * 3, "mlp": [0.88] * 3}
    held, text = R.verdict_rn_vs_mlp_state(frame({"rn": [0.9, 0.89, 0.91],
                                                  "mlp": [0.78, 0.79, 0.785]}, nonrel))
    assert held and "3/3 seeds pass" in text and "+0.12, " in text
    # one bad seed fails, however large the mean gain
    held, text = R.verdict_rn_vs_mlp_state(frame({"rn": [0.95, 0.95, 0.7],
                                                  "mlp": [0.6, 0.6, 0.71]}, nonrel))
    assert not held and "2/3" in text
    # a tie is not a gain
    held, _ = R.verdict_rn_vs_mlp_state(frame({"rn": [0.8] * 3, "mlp": [0.8] * 3}, nonrel))
    assert not held
    # pairing is by seed, not by row order
    df = frame({"rn": [0.9, 0.5, 0.9], "mlp": [0.8, 0.45, 0.85]}, nonrel)
    held, _ = R.verdict_rn_vs_mlp_state(df.iloc[::-1])
    assert held and V.diffs(df.iloc[::-1], "rel_acc", "rn", "mlp") == pytest.approx(
        {0: 0.1, 1: 0.05, 2: 0.05})
