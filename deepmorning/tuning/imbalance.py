"""Class imbalance: under-sampling, over-sampling, SMOTE and class weights (Chawla et al. 2002,
"SMOTE: Synthetic Minority Over-sampling Technique", JAIR 16).

SMOTE (Chawla §4) over-samples a minority class with synthetic points: for a minority sample x
it takes one of its k = 5 nearest minority neighbours x_nn and adds x + u·(x_nn − x), u ~ U[0, 1],
a point on the segment between them, so the minority decision region grows rather than
shrinking around replicated points (the paper's argument against over-sampling by replication,
§4 and §7). The paper compares SMOTE with plain under-sampling of the majority, varying loss
ratios and class priors, with C4.5, Ripper and Naive Bayes on nine data sets, by AUC and ROC
convex hulls (§5, its AUC table): e.g. Phoneme 0.862 with under-sampling alone vs 0.866 with
200% SMOTE, Mammography 0.926 vs 0.933 with 300% SMOTE.

Reproduced here with a small neural classifier (an MLP trained with Adam): the training set is
made imbalanced on purpose and the classifier is trained with each treatment —
``none``, random under-sampling of the majority (``under``), random over-sampling by
replication (``over``), ``smote`` (all three from imbalanced-learn) and inverse-frequency
``weights`` in the loss. Two data sets: scikit-learn's digits with three classes (3, 8, 9)
cut to a few percent of their training samples, and a generated 2-D case (a broad majority
Gaussian and two small minority clusters inside its tail) that can be plotted with SMOTE's
synthetic points. Test sets keep their natural class balance (digits: all classes equal; 2-D:
the same 3% minority share at a larger size). Metrics (scikit-learn): balanced accuracy,
minority recall (mean recall over the minority classes) and macro F1.

The experiments are already as small as the paper's; the ``quick`` preset only trains for
fewer epochs (30 instead of 100).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ray import tune
from torch import nn

from deepmorning.tuning import trial
from deepmorning.tuning.registry import Study, TuneModel, arm_means, register

METHODS = ("none", "under", "over", "smote", "weights")
DIGIT_MINORITY = (3, 8, 9)
TWO_D_MINORITY = (1,)


# -- data -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def make_digits(seed: int, fraction: float, minority: tuple[int, ...] = DIGIT_MINORITY,
                test_share: float = 0.4) -> dict[str, np.ndarray]:
    """Digits split stratified into train/test; in train, each ``minority`` class keeps only
    ``fraction`` of its samples (at least 2). The test set keeps every class whole."""
    from sklearn.model_selection import train_test_split

    x, y = _digits()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_share, stratify=y,
                                              random_state=seed)
    rng = np.random.default_rng(seed)
    keep = np.ones(len(y_tr), dtype=bool)
    for c in minority:
        idx = np.flatnonzero(y_tr == c)
        n_keep = max(2, round(fraction * len(idx)))
        keep[rng.choice(idx, size=len(idx) - n_keep, replace=False)] = False
    return {"x_train": x_tr[keep], "y_train": y_tr[keep], "x_test": x_te, "y_test": y_te,
            "minority": np.array(minority), "n_classes": np.array(10)}


MINORITY_CENTRES = np.array([[1.7, 1.3], [-1.5, 1.7]], dtype=np.float32)


def _two_d(rng: np.random.Generator, n: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    n_min = max(4, round(share * n))
    major = rng.normal(0.0, 1.0, size=(n - n_min, 2))
    centres = MINORITY_CENTRES[rng.integers(0, len(MINORITY_CENTRES), size=n_min)]
    minor = centres + rng.normal(0.0, 0.35, size=(n_min, 2))
    x = np.concatenate([major, minor]).astype(np.float32)
    y = np.concatenate([np.zeros(n - n_min), np.ones(n_min)]).astype(np.int64)
    return x, y


def make_two_d(seed: int, fraction: float, n_train: int = 1000, n_test: int = 4000,
               ) -> dict[str, np.ndarray]:
    """The generated 2-D case: class 0 ~ N(0, I); class 1 (share ``fraction``) ~ two small
    Gaussians (σ 0.35) at :data:`MINORITY_CENTRES`, inside the majority's tail."""
    rng = np.random.default_rng(seed)
    x_tr, y_tr = _two_d(rng, n_train, fraction)
    x_te, y_te = _two_d(np.random.default_rng(10_000 + seed), n_test, fraction)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te,
            "minority": np.array(TWO_D_MINORITY), "n_classes": np.array(2)}


def make_data(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    maker = {"digits": make_digits, "2d": make_two_d}.get(config["dataset"])
    if maker is None:
        raise ValueError(f"dataset must be 'digits' or '2d', not {config['dataset']!r}")
    return maker(config["seed"], config["minority_fraction"])


def resample(method: str, x: np.ndarray, y: np.ndarray, seed: int, k_neighbors: int = 5,
             ) -> tuple[np.ndarray, np.ndarray]:
    """The training set as ``method`` changes it (imbalanced-learn's samplers).

    ``under``: every class cut to the smallest class's count; ``over`` (replication) and
    ``smote``: every class raised to the largest class's count. SMOTE's appended rows are the
    synthetic points; ``k_neighbors`` shrinks when a class has fewer samples than k + 1.
    """
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    if method in ("none", "weights"):
        return x, y
    if method == "under":
        sampler = RandomUnderSampler(random_state=seed)
    elif method == "over":
        sampler = RandomOverSampler(random_state=seed)
    elif method == "smote":
        k = min(k_neighbors, int(np.bincount(y).min()) - 1)
        sampler = SMOTE(k_neighbors=max(1, k), random_state=seed)
    else:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    xr, yr = sampler.fit_resample(x, y)
    return np.asarray(xr, dtype=np.float32), np.asarray(yr, dtype=np.int64)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (K · n_c) (scikit-learn's "balanced")."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return torch.tensor(len(y) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)


# -- classifier and metrics -------------------------------------------------------------------
def build(n_in: int, n_classes: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, n_classes))


def scores(y_true: np.ndarray, y_pred: np.ndarray, minority: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

    labels = np.unique(y_true)
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_class = dict(zip(labels.tolist(), recalls.tolist(), strict=True))
    majority = [c for c in labels.tolist() if c not in set(minority.tolist())]
    return {
        "balanced_acc": float(balanced_accuracy_score(y_true, y_pred)),
        "minority_recall": float(np.mean([per_class[int(c)] for c in minority])),
        "majority_recall": float(np.mean([per_class[c] for c in majority])),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


# -- search space -----------------------------------------------------------------------------
SPACE: dict[str, Any] = {
    "dataset": "digits",
    "method": "smote",
    "minority_fraction": 0.04,
    "k_neighbors": 5,  # Chawla §4: five nearest minority neighbours
    "hidden": 64,
    "lr": tune.loguniform(3e-4, 1e-2),
    "batch_size": 64,
    "epochs": 100,
}

QUICK: dict[str, Any] = {"lr": 3e-3, "epochs": 30}


def train(config: dict[str, Any]) -> None:
    """Tune trainable: resample once (seeded), then one epoch = one pass over the result."""
    dev = trial.device()
    trial.set_threads()
    trial.seed_everything(config["seed"])
    data = make_data(config)
    n_classes = int(data["n_classes"])
    x, y = resample(config["method"], data["x_train"], data["y_train"], config["seed"],
                    config["k_neighbors"])
    weight = class_weights(y, n_classes).to(dev) if config["method"] == "weights" else None
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    x_test = torch.from_numpy(data["x_test"]).to(dev)
    model = build(x.shape[1], n_classes, config["hidden"]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    start = 0
    state = trial.restore()
    if state:
        model.load_state_dict(state["model"])
        trial.load_optimizer(opt, state["opt"])  # the config's lr wins (PBT may change it)
        start = state["epoch"]
    gen = torch.Generator().manual_seed(config["seed"])
    bs = config["batch_size"]
    for epoch in range(start + 1, config["epochs"] + 1):
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for s in range(0, len(y), bs):
            idx = order[s:s + bs].to(dev)
            loss = F.cross_entropy(model(xt[idx]), yt[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            pred = model(x_test).argmax(1).cpu().numpy()
        metrics = {"epoch": epoch, "loss": total / len(y), "n_train": len(y),
                   **scores(data["y_test"], pred, data["minority"])}
        trial.report(metrics, {"model": model.state_dict(), "opt": opt.state_dict(),
                               "epoch": epoch})


# -- pictures ---------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_two_d(path: Path, seed: int = 0, fraction: float = 0.03, method: str = "smote",
                model: nn.Module | None = None, k_neighbors: int = 5) -> Path:
    """The 2-D training set after ``method``: majority, real minority, synthetic minority
    points (SMOTE's, or replicated ones shown as rings), and the model's decision region."""
    plt = _plt()
    data = make_two_d(seed, fraction)
    x0, y0 = data["x_train"], data["y_train"]
    x, y = resample(method, x0, y0, seed, k_neighbors)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    if model is not None:
        g = np.linspace(-3.5, 3.5, 200, dtype=np.float32)
        gx, gy = np.meshgrid(g, g)
        with torch.no_grad():
            grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1))
            p = torch.softmax(model(grid), 1)[:, 1].numpy().reshape(gx.shape)
        ax.contourf(gx, gy, p, levels=[0.5, 1.0], colors=["#f4c7c3"], alpha=0.6)
        ax.contour(gx, gy, p, levels=[0.5], colors=["#c0392b"], linewidths=1.2)
    major = x[y == 0]
    ax.scatter(major[:, 0], major[:, 1], s=6, c="#7f8c8d", alpha=0.5,
               label=f"majority ({len(major)})")
    real = x0[y0 == 1]
    ax.scatter(real[:, 0], real[:, 1], s=28, c="#c0392b", edgecolors="k", linewidths=0.4,
               label=f"minority ({len(real)})", zorder=3)
    synth = x[len(x0):] if method in ("smote", "over") else x[:0]
    if len(synth):
        label = "SMOTE synthetic" if method == "smote" else "replicated"
        ax.scatter(synth[:, 0], synth[:, 1], s=9, marker="x", c="#e67e22", alpha=0.8,
                   label=f"{label} ({len(synth)})", zorder=2)
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"2-D imbalanced case ({fraction:.0%} minority), method: {method}"
                 + (" — shaded: predicted minority" if model is not None else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_recalls(path: Path, config: Mapping[str, Any], model: nn.Module) -> Path:
    """Test recall per class, minority classes in red."""
    from sklearn.metrics import recall_score

    plt = _plt()
    data = make_data(config)
    with torch.no_grad():
        pred = model(torch.from_numpy(data["x_test"])).argmax(1).numpy()
    labels = np.arange(int(data["n_classes"]))
    rec = recall_score(data["y_test"], pred, labels=labels, average=None, zero_division=0)
    minority = set(data["minority"].tolist())
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=110)
    ax.bar(labels, rec, color=["#c0392b" if c in minority else "#7f8c8d" for c in labels])
    ax.set_xticks(labels)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class (red: cut to a few percent in training)")
    ax.set_ylabel("test recall")
    ax.set_title(f"{config['dataset']}: recall per class, method {config['method']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def pictures(config: Mapping[str, Any], checkpoint: Path, out: Path, tag: str) -> list[Path]:
    data = make_data(config)
    model = build(data["x_train"].shape[1], int(data["n_classes"]), config["hidden"])
    model.load_state_dict(trial.load_state(checkpoint)["model"])
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_recalls(out / f"recall-{tag}.png", config, model)]
    if config["dataset"] == "2d":
        paths.append(write_two_d(out / f"2d-{tag}.png", config["seed"],
                                 config["minority_fraction"], config["method"], model,
                                 config["k_neighbors"]))
    return paths


# -- claims -----------------------------------------------------------------------------------
RESAMPLERS = ("under", "over", "smote")


def verdict_resampling(results: Any, margin: float = 0.0) -> tuple[bool, str]:
    """Held when every resampling arm (under, over, SMOTE) has a higher mean minority recall
    than ``none``."""
    rec = arm_means(results, "minority_recall")
    held = all(rec[a] - rec["none"] > margin for a in RESAMPLERS)
    parts = ", ".join(f"{a} {rec[a]:.3f}" for a in (*RESAMPLERS, "weights") if a in rec)
    word = "all lift" if held else "not all lift"
    return held, f"minority recall: none {rec['none']:.3f}; {parts} ({word} it over none)"


def _study(name: str, dataset: str, fraction: float, what: str) -> Study:
    return Study(
        name=name,
        claim="Re-sampling the training set (under-sampling the majority, over-sampling the "
              "minority by replication or with SMOTE) lifts the recall of the minority class "
              f"over training on the imbalanced data as it is ({what}).",
        arms={m: {"method": m} for m in METHODS},
        metric="minority_recall",
        mode="max",
        paper="Chawla et al. 2002 §5 (AUC table, C4.5): SMOTE + under-sampling beats "
              "under-sampling alone on all nine data sets, e.g. Phoneme AUC 0.862 → 0.866 "
              "(200% SMOTE), Mammography 0.926 → 0.933 (300% SMOTE); §7: replication shrinks "
              "the minority decision region, SMOTE widens it",
        verdict=verdict_resampling,
        base={"dataset": dataset, "minority_fraction": fraction},
        paper_scale={"lr": 3e-3, "epochs": 100},
        columns=("balanced_acc", "macro_f1", "majority_recall"),
    )


STUDIES = {
    "resampling": _study("resampling", "digits", 0.04,
                         "digits with classes 3, 8, 9 cut to 4% in training"),
    "resampling-2d": _study("resampling-2d", "2d", 0.03, "generated 2-D case, 3% minority"),
}

MODEL = register(TuneModel(
    name="imbalance",
    description="none / under / over / SMOTE / class weights on imbalanced digits and 2-D data",
    paper="Chawla et al. 2002, SMOTE: Synthetic Minority Over-sampling Technique",
    trainable=train,
    space=SPACE,
    metric="balanced_acc",
    mode="max",
    quick=QUICK,
    studies=STUDIES,
    pictures=pictures,
))
