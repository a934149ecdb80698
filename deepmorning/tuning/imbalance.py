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
made imbalanced on purpose and the classifier is trained with each treatment — ``none``, random
under-sampling of the majority (``under``), random over-sampling by replication (``over``),
``smote``, ``smote+under`` (Chawla §5's combination: SMOTE each minority class by
``smote_percent`` %, then under-sample every majority class to the SMOTEd minority's count; all
from imbalanced-learn) and inverse-frequency ``weights`` in the loss. Every arm gets the same
number of Adam updates (``epochs × steps_per_epoch`` mini-batches drawn from its own training
set), whatever the size of that set. Two data sets: scikit-learn's digits with three classes (3,
8, 9) cut to a few percent of their training samples, and a generated 2-D case (a broad majority
Gaussian and two small minority clusters inside its tail) that can be plotted with SMOTE's
synthetic points. Test sets keep their natural class balance (digits: all classes equal; 2-D:
the same 3% minority share at a larger size). Metrics (scikit-learn): ``minority_auc`` (Chawla's
measure: the ROC AUC of each minority class against the rest from the softmax probability,
averaged over the minority classes), balanced accuracy, minority recall at the argmax (mean
recall over the minority classes) and macro F1.

The experiments are already as small as the paper's; the ``quick`` preset only trains for
fewer updates (30 × 20 = 600 instead of 100 × 20).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ray import tune
from torch import nn

from deepmorning.tuning import trial
from deepmorning.tuning import verdict as V
from deepmorning.tuning.registry import Study, TuneModel, register

METHODS = ("none", "under", "over", "smote", "smote+under", "weights")
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


def _smote(x: np.ndarray, y: np.ndarray, seed: int, k_neighbors: int,
           strategy: Any = "auto") -> tuple[np.ndarray, np.ndarray]:
    """imbalanced-learn's SMOTE; ``k_neighbors`` shrinks when a class has fewer than k + 1."""
    from imblearn.over_sampling import SMOTE

    k = min(k_neighbors, int(np.bincount(y)[np.bincount(y) > 0].min()) - 1)
    return SMOTE(sampling_strategy=strategy, k_neighbors=max(1, k),
                 random_state=seed).fit_resample(x, y)


def smote_under(x: np.ndarray, y: np.ndarray, seed: int, minority: np.ndarray,
                percent: int = 200, k_neighbors: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Chawla §5: SMOTE each ``minority`` class by ``percent`` % (n → n·(1 + percent/100)),
    then under-sample every other class at random to the largest SMOTEd minority count."""
    from imblearn.under_sampling import RandomUnderSampler

    counts = np.bincount(y)
    grown = {int(c): int(round(counts[c] * (1 + percent / 100))) for c in minority}
    xs, ys = _smote(x, y, seed, k_neighbors, grown)
    target = max(grown.values())
    cut = {int(c): min(target, int(counts[c])) for c in np.unique(y) if int(c) not in grown}
    xr, yr = RandomUnderSampler(sampling_strategy=cut, random_state=seed).fit_resample(xs, ys)
    return xr, yr


def resample(method: str, x: np.ndarray, y: np.ndarray, seed: int, k_neighbors: int = 5,
             minority: np.ndarray | None = None, smote_percent: int = 200,
             ) -> tuple[np.ndarray, np.ndarray]:
    """The training set as ``method`` changes it (imbalanced-learn's samplers).

    ``under``: every class cut to the smallest class's count; ``over`` (replication) and
    ``smote``: every class raised to the largest class's count; ``smote+under``: see
    :func:`smote_under` (needs ``minority``). SMOTE's appended rows are the synthetic points.
    """
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    if method in ("none", "weights"):
        return x, y
    if method == "smote+under":
        if minority is None:
            raise ValueError("smote+under needs the minority classes")
        xr, yr = smote_under(x, y, seed, minority, smote_percent, k_neighbors)
        return np.asarray(xr, dtype=np.float32), np.asarray(yr, dtype=np.int64)
    if method == "under":
        sampler = RandomUnderSampler(random_state=seed)
    elif method == "over":
        sampler = RandomOverSampler(random_state=seed)
    elif method == "smote":
        xr, yr = _smote(x, y, seed, k_neighbors)
        return np.asarray(xr, dtype=np.float32), np.asarray(yr, dtype=np.int64)
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


def minority_auc(y_true: np.ndarray, proba: np.ndarray, minority: np.ndarray) -> float:
    """Mean over the minority classes of the ROC AUC of class c against the rest, scored by
    the predicted probability of c (Chawla et al.'s measure, one-vs-rest for many classes)."""
    from sklearn.metrics import roc_auc_score

    return float(np.mean([roc_auc_score(y_true == c, proba[:, c]) for c in minority]))


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
    "smote_percent": 200,  # Chawla §5: e.g. Phoneme with 200% SMOTE
    "hidden": 64,
    "lr": tune.loguniform(3e-4, 1e-2),
    "batch_size": 64,
    "steps_per_epoch": 20,  # Adam updates per report, the same for every method
    "epochs": 100,
}

QUICK: dict[str, Any] = {"lr": 3e-3, "epochs": 30}


def train(config: dict[str, Any]) -> None:
    """Tune trainable: resample once (seeded), then ``steps_per_epoch`` Adam updates per
    report on mini-batches from the result (each a fresh permutation's next slice), so every
    method gets the same number of updates whatever its training-set size."""
    dev = trial.device()
    trial.set_threads()
    trial.seed_everything(config["seed"])
    data = make_data(config)
    n_classes = int(data["n_classes"])
    x, y = resample(config["method"], data["x_train"], data["y_train"], config["seed"],
                    config["k_neighbors"], data["minority"], config["smote_percent"])
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
    gen = torch.Generator().manual_seed(config["seed"] * 1000 + start)
    bs, steps = config["batch_size"], config["steps_per_epoch"]
    batches = minibatches(len(y), bs, gen)
    for epoch in range(start + 1, config["epochs"] + 1):
        total = 0.0
        for _ in range(steps):
            idx = next(batches).to(dev)
            loss = F.cross_entropy(model(xt[idx]), yt[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        with torch.no_grad():
            proba = torch.softmax(model(x_test), 1).cpu().numpy()
        metrics = {"epoch": epoch, "loss": total / steps, "n_train": len(y),
                   "updates": epoch * steps,
                   "minority_auc": minority_auc(data["y_test"], proba, data["minority"]),
                   **scores(data["y_test"], proba.argmax(1), data["minority"])}
        trial.report(metrics, {"model": model.state_dict(), "opt": opt.state_dict(),
                               "epoch": epoch})


def minibatches(n: int, batch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless mini-batches: consecutive slices of fresh random permutations of ``range(n)``
    (the last slice of a permutation may be shorter)."""
    while True:
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            yield order[s:s + batch]


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
    x, y = resample(method, x0, y0, seed, k_neighbors, data["minority"])
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
    if method == "smote+under":  # the synthetic rows are the minority rows not in x0
        real_rows = {tuple(r) for r in x0[y0 == 1]}
        synth = np.array([r for r in x[y == 1] if tuple(r) not in real_rows]).reshape(-1, 2)
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
#: SMOTE percentages of the combined arms (Chawla §5 uses 100-500%, e.g. 200% for Phoneme).
SMOTE_PERCENTS = (200, 500)
COMBINED = tuple(f"smote{n}+under" for n in SMOTE_PERCENTS)
ARMS: dict[str, dict[str, Any]] = {
    "under": {"method": "under"},
    **{arm: {"method": "smote+under", "smote_percent": n}
       for arm, n in zip(COMBINED, SMOTE_PERCENTS, strict=True)},
    "over": {"method": "over"},
    "smote": {"method": "smote"},
    "none": {"method": "none"},
    "weights": {"method": "weights"},
}


def verdict_smote_under(results: Any) -> V.Outcome:
    """Held when every SMOTE+under arm has a larger minority ROC AUC than under-sampling
    alone in every seed (paired: same data, cut and initialisation). SMOTE − replication
    (Chawla §7) is reported beside it, not part of the verdict."""
    main = V.all_of(*(V.paired(results, "minority_auc", arm, "under") for arm in COMBINED))
    side = V.paired(results, "minority_auc", "smote", "over",
                    label="smote − over (minority_auc; §7, reported, not in the verdict)")
    means = V.means_text(results, "minority_auc", ARMS)
    return V.Outcome(main.held, f"mean minority AUC {means}: {main.sentence}; "
                     f"{side.sentence}", main.comparisons + side.comparisons)


def _study(name: str, dataset: str, fraction: float, what: str) -> Study:
    return Study(
        name=name,
        claim="SMOTE of the minority combined with under-sampling of the majority gives a "
              "larger minority ROC AUC than under-sampling alone (Chawla et al. §5); SMOTE "
              f"beats over-sampling by replication (§7; reported) ({what}).",
        arms=ARMS,
        metric="minority_auc",
        mode="max",
        paper="Chawla et al. 2002 §5 (AUC table, C4.5): SMOTE + under-sampling beats "
              "under-sampling alone on all nine data sets, e.g. Phoneme AUC 0.862 → 0.866 "
              "(200% SMOTE), Mammography 0.926 → 0.933 (300% SMOTE); §7: replication shrinks "
              "the minority decision region, SMOTE widens it",
        verdict=verdict_smote_under,
        base={"dataset": dataset, "minority_fraction": fraction},
        paper_scale={"lr": 3e-3, "epochs": 100},
        columns=("minority_recall", "balanced_acc", "n_train"),
    )


STUDIES = {
    "resampling": _study("resampling", "digits", 0.04,
                         "digits with classes 3, 8, 9 cut to 4% in training"),
    "resampling-2d": _study("resampling-2d", "2d", 0.03, "generated 2-D case, 3% minority"),
}

MODEL = register(TuneModel(
    name="imbalance",
    description="none / under / over / SMOTE / SMOTE+under / class weights on imbalanced "
                "digits and 2-D data",
    paper="Chawla et al. 2002, SMOTE: Synthetic Minority Over-sampling Technique",
    trainable=train,
    space=SPACE,
    metric="balanced_acc",
    mode="max",
    quick=QUICK,
    studies=STUDIES,
    pictures=pictures,
))
