"""Training basics: initialisers give the papers' variances, PReLU as He et al. define it, the
data, symmetry, the trainable through a real Tuner, resume, pictures and verdicts."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tune_step import fixed, run_step

from deepmorning.tuning import basics, registry, trial


def config(**overrides) -> dict:
    model = registry.get("basics")
    return {**fixed(dict(model.space)), **dict(model.quick), "seed": 0, **overrides}


def first_weights(cfg: dict, n_in: int = 64) -> list[torch.Tensor]:
    net = basics.Net(cfg, n_in, 10)
    basics.init_weights(net, cfg)
    return [w.detach() for w in basics.weights(net)]


@pytest.mark.parametrize("init, activation, expected", [
    ("he", "relu", lambda fi, fo: 2.0 / fi),  # He et al. Eq. 10
    ("he", "prelu", lambda fi, fo: 2.0 / ((1 + 0.25**2) * fi)),  # Eq. 15, a = 0.25
    ("xavier", "relu", lambda fi, fo: 2.0 / (fi + fo)),  # Glorot & Bengio Eq. 16
    ("normal", "relu", lambda fi, fo: 0.01**2),
])
def test_initialisers_give_the_variances_the_papers_derive(init, activation, expected):
    torch.manual_seed(0)
    cfg = config(init=init, activation=activation, widths="512,256")
    for w in first_weights(cfg, n_in=400):
        fan_out, fan_in = w.shape
        spread = 4 * (2 / w.numel()) ** 0.5  # 4 standard errors of a sample variance
        assert float(w.var()) == pytest.approx(expected(fan_in, fan_out), rel=spread)


def test_zero_and_constant_init_leave_one_distinct_unit():
    for init in ("zero", "constant"):
        cfg = config(init=init, init_value=0.05, widths="32,32")
        net = basics.Net(cfg, 64, 10)
        basics.init_weights(net, cfg)
        assert basics.distinct_units(net) == 1
    cfg = config(init="he", widths="32,32")
    net = basics.Net(cfg, 64, 10)
    basics.init_weights(net, cfg)
    assert basics.distinct_units(net) == 32


def test_prelu_starts_at_a_quarter_per_channel_and_has_no_weight_decay():
    cfg = config(activation="prelu", widths="16", l2=1e-3, batchnorm=True)
    net = basics.Net(cfg, 64, 10)
    prelu = [m for m in net.modules() if isinstance(m, torch.nn.PReLU)][0]
    assert prelu.weight.shape == (16,) and torch.all(prelu.weight == 0.25)
    x = torch.linspace(-2, 2, 16)[None]
    torch.testing.assert_close(prelu(x), torch.clamp(x, min=0) + 0.25 * torch.clamp(x, max=0))
    opt = basics.make_optimizer(net, cfg)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(prelu.weight) not in decayed
    assert all(id(w) in decayed for w in basics.weights(net))


def test_digits_split_and_subset_are_fixed_and_stratified():
    xt, yt, xv, yv = basics.digits()
    assert (len(xt), len(xv)) == (1197, 600) and xt.max() <= 1.0
    xs, ys, xv2, _ = basics.digits(100)
    assert len(xs) == 100 and set(ys) == set(range(10)) and np.array_equal(xv, xv2)
    x, y = basics.xor_points(200, seed=1)
    corner = (x > 0.5).astype(int)
    agree = np.mean((corner[:, 0] ^ corner[:, 1]) == y)
    assert agree > 0.9  # noise moves a few points across the middle


def test_cnn_and_batchnorm_variants_build_and_run():
    cfg = config(arch="cnn", widths="8,8", batchnorm=True, dropout=0.1, activation="elu")
    net = basics.Net(cfg, 64, 10)
    assert net(torch.rand(5, 64)).shape == (5, 10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_trainable_reports_through_tune_and_checkpoint_draws(ray_local, tmp_path):
    result = run_step("basics", tmp_path, epochs=2, steps_per_epoch=5, width=16, depth=3)
    m = result.metrics
    assert m["epoch"] == 2 and 0.0 <= m["val_acc"] <= 1.0
    assert m["gap"] == pytest.approx(m["train_acc"] - m["val_acc"])
    assert trial.load_state(result.checkpoint.path)["epoch"] == 2
    pngs = basics.activation_picture(result.config, Path(result.checkpoint.path), tmp_path, "t_")
    assert pngs[0].exists() and pngs[0].stat().st_size > 5_000


def test_xor_boundary_picture(monkeypatch, tmp_path):
    saved = {}
    monkeypatch.setattr(trial, "report", lambda m, s=None: saved.update(s))
    monkeypatch.setattr(trial, "restore", lambda: None)
    cfg = config(data="xor", widths="5,4", activation="sigmoid", epochs=1, steps_per_epoch=5)
    basics.train(cfg)
    torch.save(saved, tmp_path / trial.STATE_FILE)
    pngs = basics.activation_picture(cfg, tmp_path, tmp_path, "x")
    assert pngs[0].name == "xor-boundary-x.png" and pngs[0].exists()


def study_config(study: str, arm: str, **overrides) -> dict:
    from deepmorning.tuning import space

    model = registry.get("basics")
    shared, arms, _ = space.study_arms(model, model.studies[study], scale="quick", sets={},
                                       max_epochs=None)
    return {**shared, **arms[arm], "arm": arm, "seed": 0, **overrides}


@pytest.mark.parametrize("arm, params", [("deep", 44), ("wide", 45)])
def test_xor_depth_arms_have_the_true_sizes_and_one_output(monkeypatch, arm, params):
    """2-5-4-1 and 2-11-1 with a single sigmoid output: 44 and 45 parameters, as the docs say."""
    reports: list[dict] = []
    monkeypatch.setattr(trial, "report", lambda m, s=None: reports.append(dict(m)))
    monkeypatch.setattr(trial, "restore", lambda: None)
    cfg = study_config("xor-depth", arm, epochs=1, steps_per_epoch=20)
    basics.train(cfg)
    assert reports[-1]["params"] == params and reports[-1]["train_loss"] > 0
    net = basics.Net(cfg, 2, 2)
    assert net(torch.rand(3, 2)).shape == (3, 1)
    x, y = basics.XOR4
    assert basics.dataset(cfg)[0].tolist() == x.tolist() and y.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("arm", ["none", "dropout", "l2"])
def test_regularization_arms_overfit_setting_and_sgd_weight_decay(monkeypatch, arm):
    """The notes' rule w ← w − ε(∇E + λw): plain SGD weight decay on the weights only."""
    reports: list[dict] = []
    monkeypatch.setattr(trial, "report", lambda m, s=None: reports.append(dict(m)))
    monkeypatch.setattr(trial, "restore", lambda: None)
    cfg = study_config("regularization", arm, epochs=1, steps_per_epoch=3)
    assert (cfg["train_size"], cfg["width"], cfg["depth"]) == (300, 512, 2)
    net = basics.Net(cfg, 64, 10)
    opt = basics.make_optimizer(net, cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == (1e-3 if arm == "l2" else 0.0)
    assert opt.param_groups[1]["weight_decay"] == 0.0  # biases
    basics.train(cfg)
    assert reports[-1]["updates"] == 3


def test_trainable_resumes_and_keeps_steps_to_target(monkeypatch):
    reports: list[tuple[dict, dict]] = []
    monkeypatch.setattr(trial, "report",
                        lambda m, s=None: reports.append((dict(m), copy.deepcopy(s))))
    monkeypatch.setattr(trial, "restore", lambda: None)
    cfg = config(epochs=3, steps_per_epoch=20, width=32, depth=2, lr=0.1, target=0.5)
    basics.train(cfg)
    full = [m for m, _ in reports]
    state = reports[0][1]
    reports.clear()
    monkeypatch.setattr(trial, "restore", lambda: state)
    basics.train(cfg)
    resumed = [m for m, _ in reports]
    assert [m["epoch"] for m in resumed] == [2, 3]
    if full[0]["reached"]:  # a target hit before the checkpoint survives the resume
        assert resumed[-1]["steps_to_target"] == full[0]["steps_to_target"]


def frame(rows: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    out = []
    for arm, metrics in rows.items():
        n = len(next(iter(metrics.values())))
        out += [{"arm": arm, "seed": i, **{k: v[i] for k, v in metrics.items()}}
                for i in range(n)]
    return pd.DataFrame(out)


def test_verdicts_on_hand_made_frames():
    studies = registry.get("basics").studies
    he = frame({"he": {"val_acc": [0.9, 0.8]}, "xavier": {"val_acc": [0.1, 0.1]},
                "normal": {"val_acc": [0.1, 0.1]}})
    assert studies["he-init"].verdict(he)[0]
    assert not studies["he-init"].verdict(he.assign(val_acc=[0.2, 0.2, 0.1, 0.1, 0.1, 0.1]))[0]
    bn = frame({"bn": {"steps_to_target": [40, 50]}, "plain": {"steps_to_target": [400, 500]}})
    assert studies["batchnorm"].verdict(bn)[0]
    assert not studies["batchnorm"].verdict(bn.assign(steps_to_target=[500, 500, 40, 50]))[0]
    pr = frame({"prelu": {"val_acc": [0.95, 0.96]}, "relu": {"val_acc": [0.95, 0.96]}})
    assert not studies["prelu"].verdict(pr)[0]  # a tie is no improvement
    assert studies["prelu"].verdict(pr.assign(val_acc=[0.96, 0.97, 0.95, 0.96]))[0]
    assert not studies["prelu"].verdict(pr.assign(val_acc=[0.96, 0.95, 0.95, 0.96]))[0]
    zero = frame({"zero": {"val_acc": [0.1, 0.1], "distinct_units": [1, 1]},
                  "constant": {"val_acc": [0.2, 0.2], "distinct_units": [1, 1]},
                  "he": {"val_acc": [0.95, 0.96], "distinct_units": [64, 64]}})
    assert studies["zero-init"].verdict(zero)[0]
    # the constant arm broke its symmetry in one seed, or learned as well as He init
    assert not studies["zero-init"].verdict(zero.assign(distinct_units=[1, 1, 1, 3, 64, 64]))[0]
    assert not studies["zero-init"].verdict(zero.assign(val_acc=[.1, .1, .9, .9, .95, .96]))[0]
    reg = frame({"none": {"gap": [0.2, 0.2], "val_acc": [0.8, 0.8]},
                 "dropout": {"gap": [0.1, 0.12], "val_acc": [0.85, 0.85]},
                 "l2": {"gap": [0.15, 0.18], "val_acc": [0.83, 0.83]}})
    assert studies["regularization"].verdict(reg)[0]
    assert not studies["regularization"].verdict(reg.assign(gap=[.2, .2, .1, .1, .15, .21]))[0]
    xor = frame({"deep": {"train_loss": [0.01, 0.02]}, "wide": {"train_loss": [0.03, 0.04]}})
    assert studies["xor-depth"].verdict(xor)[0]
    assert not studies["xor-depth"].verdict(xor.assign(train_loss=[0.01, 0.05, 0.03, 0.04]))[0]


def test_registered_with_every_issue_claim():
    model = registry.get("basics")
    assert set(model.studies) == {"he-init", "batchnorm", "prelu", "zero-init",
                                  "regularization", "xor-depth"}
    assert model.metric == "val_acc" and all(s.seeds >= 3 for s in model.studies.values())
