"""Training basics: initialisation, activation, batch norm, regularisation, depth (``basics``).

Papers and notes:
    He, Zhang, Ren, Sun 2015, "Delving Deep into Rectifiers" (He init, PReLU); Glorot & Bengio
    2010, "Understanding the difficulty of training deep feedforward neural networks" (Xavier
    init); Ioffe & Szegedy 2015, "Batch Normalization"; the reading group's notes (seeds
    ``003``: zero init cannot learn, dropout and L2 against overfitting, "deep beats wide" on
    XOR; ``000``: PR-020/PR-021).

What is followed:
    - He init: W ~ N(0, 2/n_l) with n_l the fan-in (He et al. Eq. 10); with PReLU
      N(0, 2/((1+a²) n_l)) (Eq. 15). Xavier: N(0, 2/(fan_in + fan_out)) (Glorot & Bengio Eq. 16,
      the normal form). "normal": N(0, 0.01²), the fixed-std init He et al. compare to (§2.2).
    - PReLU: f(y) = max(0, y) + a·min(0, y), one a per channel initialised to 0.25 and excluded
      from weight decay (He et al. §2.1).
    - Batch norm: normalise each unit over the mini-batch, learned γ/β, running statistics at
      test time (Ioffe & Szegedy Alg. 1-2), placed between the linear map and the non-linearity.
    - The He et al. Fig. 3 setting (30 ReLU layers, no batch norm, SGD with momentum 0.9) and the
      Ioffe & Szegedy Fig. 1 setting (3 fully connected hidden layers of 100 sigmoid units,
      mini-batches of 60) on the data we have: scikit-learn's 8×8 digits instead of ImageNet
      and MNIST.
    - XOR: the notes' sigmoid net 2-5-4-1 with weights uniform in [-1, 1], one sigmoid output
      (``sigmoid_head``: binary cross-entropy, as the notes' ``tf.sigmoid`` + cost) and plain
      gradient descent on the 4 XOR points (``data="xor4"``) or on generated noisy XOR points.
    - Weight decay as in the notes, w ← w − ε(∇E + λw): SGD's ``weight_decay`` (added to the
      gradient), not Adam's (which rescales it by the adaptive step).

Data (no downloads): scikit-learn's digits (1,797 8×8 images; a fixed stratified split of
1,197 train / 600 validation, ``random_state=0``; ``train_size`` takes a stratified subset of the
training part) and generated XOR (4 Gaussian blobs at the corners of the unit square, σ = 0.2,
label = x₁ XOR x₂; 400 train / 400 validation points from fixed seeds) or the 4 XOR points
themselves (``xor4``: training and validation set alike, as in the notes).

What ``quick`` shrinks: the number of updates (``epochs × steps_per_epoch``, a few hundred to a
thousand instead of the papers' 50k-600k) and the width of the deep nets (64 instead of the
papers' hundreds of channels); the data sets are small anyway.

Metrics, reported every epoch: ``val_acc`` (the model's metric), ``train_acc``, ``gap``
(train − val accuracy), ``loss`` (mean over the epoch's mini-batches), ``train_loss`` (the
training cost on the whole training set at the end of the epoch, weights as they are then),
``updates``, ``steps_to_target`` (the first update, checked
every ``eval_every`` updates, at which validation accuracy reached ``target``; until then the
updates so far + ``eval_every``, i.e. censored), ``reached`` (0/1) and ``distinct_units`` (how
many of the first hidden layer's units differ: 1 means the symmetry was never broken).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from deepmorning.tuning import trial
from deepmorning.tuning import verdict as V
from deepmorning.tuning.registry import Study, TuneModel, register

ACTIVATIONS = ("sigmoid", "tanh", "relu", "prelu", "elu", "selu")
INITS = ("zero", "constant", "normal", "uniform", "xavier", "he")


# -- data ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def digits(train_size: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): digits scaled to [0, 1], a fixed stratified split."""
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    xt, xv, yt, yv = train_test_split(x, y, test_size=600, stratify=y, random_state=0)
    if 0 < train_size < len(xt):
        xt, _, yt, _ = train_test_split(xt, yt, train_size=train_size, stratify=yt,
                                        random_state=0)
    return xt, yt, xv, yv


def xor_points(n: int, seed: int, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Noisy XOR: points around (0,0), (0,1), (1,0), (1,1); label = x₁ XOR x₂."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    x = corners + rng.normal(0.0, noise, size=(n, 2))
    return x.astype(np.float32), (corners[:, 0] ^ corners[:, 1]).astype(np.int64)


@functools.lru_cache(maxsize=2)
def xor_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xt, yt = xor_points(400, seed=1)
    xv, yv = xor_points(400, seed=2)
    return xt, yt, xv, yv


#: The notes' XOR training data: the four corners and their labels.
XOR4 = (np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32),
        np.array([0, 1, 1, 0], dtype=np.int64))


def dataset(config: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    if config["data"] == "xor":
        return xor_data()
    if config["data"] == "xor4":
        return (*XOR4, *XOR4)
    return digits(int(config["train_size"]))


# -- network ------------------------------------------------------------------------------------
def activation(name: str, channels: int) -> nn.Module:
    if name == "prelu":
        return nn.PReLU(channels, init=0.25)  # He et al. §2.1: a_i = 0.25, one per channel
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU,
            "selu": nn.SELU}[name]()


def hidden_sizes(config: Mapping[str, Any]) -> list[int]:
    """``widths`` ("5,4") if given, else ``depth`` hidden layers of ``width`` units."""
    text = str(config.get("widths") or "").strip()
    if text:
        return [int(w) for w in text.split(",") if w.strip()]
    return [int(config["width"])] * int(config["depth"])


class Net(nn.Module):
    """MLP (on flat inputs) or CNN (3×3 convs on the 8×8 digits, then a linear classifier).

    Each hidden layer: linear/conv -> [batch norm] -> activation -> [dropout].
    """

    def __init__(self, config: Mapping[str, Any], n_in: int, n_out: int):
        super().__init__()
        self.conv = config["arch"] == "cnn"
        layers: list[nn.Module] = []
        prev = 1 if self.conv else n_in
        for size in hidden_sizes(config):
            layers.append(nn.Conv2d(prev, size, 3, padding=1) if self.conv
                          else nn.Linear(prev, size))
            if config["batchnorm"]:
                layers.append(nn.BatchNorm2d(size) if self.conv else nn.BatchNorm1d(size))
            layers.append(activation(config["activation"], size))
            if config["dropout"] > 0:
                layers.append(nn.Dropout(config["dropout"]))
            prev = size
        self.body = nn.Sequential(*layers)
        self.sigmoid_head = bool(config.get("sigmoid_head")) and n_out == 2
        self.head = nn.Linear(prev * (n_in if self.conv else 1),
                              1 if self.sigmoid_head else n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv:
            side = int(round(x.shape[1] ** 0.5))
            x = x.view(-1, 1, side, side)
        return self.head(self.body(x).flatten(1))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class labels: the argmax, or logit > 0 for a sigmoid head."""
        out = self(x)
        return (out[:, 0] > 0).long() if self.sigmoid_head else out.argmax(1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, or binary cross-entropy on the one logit of a sigmoid head."""
        out = self(x)
        if self.sigmoid_head:
            return nn.functional.binary_cross_entropy_with_logits(out[:, 0], y.float())
        return nn.functional.cross_entropy(out, y)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def weights(net: nn.Module) -> list[nn.Parameter]:
    """The weight matrices/kernels (what init, L1 and L2 act on): not biases, BN or PReLU."""
    return [m.weight for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def init_weights(net: nn.Module, config: Mapping[str, Any]) -> None:
    """Initialise every linear/conv weight by ``config["init"]``; biases start at zero."""
    scheme, act = config["init"], config["activation"]
    for w in weights(net):
        fan_in = w[0].numel()
        fan_out = w.shape[0] * (w[0].numel() // w.shape[1])
        if scheme == "zero":
            nn.init.zeros_(w)
        elif scheme == "constant":
            nn.init.constant_(w, config["init_value"])
        elif scheme == "normal":
            nn.init.normal_(w, 0.0, config["init_value"])
        elif scheme == "uniform":  # the notes' tf.random_uniform([...], -1.0, 1.0)
            nn.init.uniform_(w, -1.0, 1.0)
        elif scheme == "xavier":  # Glorot & Bengio Eq. 16 (normal form): 2/(fan_in+fan_out)
            nn.init.normal_(w, 0.0, (2.0 / (fan_in + fan_out)) ** 0.5)
        elif scheme == "he":  # He et al. Eq. 10 / Eq. 15 with PReLU's a = 0.25
            a = 0.25 if act == "prelu" else 0.0
            nn.init.normal_(w, 0.0, (2.0 / ((1 + a * a) * fan_in)) ** 0.5)
        else:
            raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(INITS)}")
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
            nn.init.zeros_(m.bias)


def make_optimizer(net: nn.Module, config: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD, SGD with momentum or Adam; L2 (``l2``) as weight decay on the weights only."""
    decay = {id(w) for w in weights(net)}
    groups = [
        {"params": [p for p in net.parameters() if id(p) in decay],
         "weight_decay": config["l2"]},
        {"params": [p for p in net.parameters() if id(p) not in decay], "weight_decay": 0.0},
    ]
    if config["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=config["lr"])
    momentum = config["momentum"] if config["optimizer"] == "momentum" else 0.0
    return torch.optim.SGD(groups, lr=config["lr"], momentum=momentum)


@torch.no_grad()
def accuracy(net: Net, x: torch.Tensor, y: torch.Tensor) -> float:
    was = net.training
    net.eval()
    acc = float((net.predict(x) == y).float().mean())
    net.train(was)
    return acc


@torch.no_grad()
def full_loss(net: Net, x: torch.Tensor, y: torch.Tensor) -> float:
    """The training cost on the whole set (eval mode: no dropout)."""
    was = net.training
    net.eval()
    value = float(net.loss(x, y))
    net.train(was)
    return value if np.isfinite(value) else 1e9


def distinct_units(net: nn.Module, tol: float = 1e-6) -> int:
    """How many first-layer units (rows/filters, with their bias) differ from each other."""
    first = next(m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    rows = torch.cat([first.weight.flatten(1), first.bias[:, None]], 1).detach().cpu().numpy()
    return int(len(np.unique(np.round(rows / tol).astype(np.int64), axis=0)))


# -- search space -------------------------------------------------------------------------------
#: Defaults: the He et al. setting (ReLU, He init, SGD momentum 0.9); searched: lr, width.
SPACE: dict[str, Any] = {
    "data": "digits", "arch": "mlp", "train_size": 0,
    "depth": 4, "width": tune.choice([64, 128, 256]), "widths": "",
    "activation": "relu", "init": "he", "init_value": 0.01,
    "batchnorm": False, "dropout": 0.0, "l1": 0.0, "l2": 0.0, "sigmoid_head": False,
    "optimizer": "momentum", "lr": tune.loguniform(1e-3, 1e-1), "momentum": 0.9, "batch": 64,
    "epochs": 30, "steps_per_epoch": 100, "eval_every": 10, "target": 0.9,
}

QUICK: dict[str, Any] = {"epochs": 10, "steps_per_epoch": 50, "width": 64, "lr": 0.01}


# -- trainable ----------------------------------------------------------------------------------
def train(config: dict[str, Any]) -> None:
    """Tune function trainable: one network, ``epochs × steps_per_epoch`` updates."""
    dev = trial.device()
    trial.set_threads()
    trial.seed_everything(int(config["seed"]))
    xt, yt, xv, yv = (torch.from_numpy(a).to(dev) for a in dataset(config))
    net = Net(config, xt.shape[1], int(yt.max()) + 1).to(dev)
    init_weights(net, config)
    opt = make_optimizer(net, config)
    gen = torch.Generator().manual_seed(int(config["seed"]))
    start, first_hit = 0, -1
    state = trial.restore()
    if state:
        net.load_state_dict(state["model"])
        trial.load_optimizer(opt, state["opt"])  # the config's lr wins (PBT may change it)
        start, first_hit = int(state["epoch"]), int(state["first_hit"])
        gen.manual_seed(int(config["seed"]) * 1000 + start)
    steps, every = int(config["steps_per_epoch"]), int(config["eval_every"])
    for epoch in range(start + 1, int(config["epochs"]) + 1):
        total = 0.0
        for step in range(1, steps + 1):
            idx = batch_indices(len(xt), int(config["batch"]), gen).to(dev)
            loss = net.loss(xt[idx], yt[idx])
            if config["l1"] > 0:
                loss = loss + config["l1"] * sum(w.abs().sum() for w in weights(net))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
            update = (epoch - 1) * steps + step
            if first_hit < 0 and update % every == 0 and accuracy(net, xv, yv) >= config["target"]:
                first_hit = update
        updates = epoch * steps
        train_acc, val_acc = accuracy(net, xt, yt), accuracy(net, xv, yv)
        loss_value = total / steps
        metrics = {
            "epoch": epoch, "updates": updates,
            "loss": loss_value if np.isfinite(loss_value) else 1e9,
            "train_loss": full_loss(net, xt, yt), "params": n_params(net),
            "train_acc": train_acc, "val_acc": val_acc, "gap": train_acc - val_acc,
            "steps_to_target": first_hit if first_hit > 0 else updates + every,
            "reached": int(first_hit > 0), "distinct_units": distinct_units(net),
        }
        trial.report(metrics, {"model": net.state_dict(), "opt": opt.state_dict(),
                               "epoch": epoch, "first_hit": first_hit})


def batch_indices(n: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """A random mini-batch; the whole set (gradient descent, as the notes' XOR) if it fits."""
    if batch >= n:
        return torch.arange(n)
    return torch.randint(n, (batch,), generator=gen)


# -- pictures -----------------------------------------------------------------------------------
def activation_picture(config: Mapping[str, Any], checkpoint: Path, folder: Path, tag: str
                       ) -> list[Path]:
    """Per hidden layer, the std of its activations on the validation set (He et al. Fig. 3's
    reason: with Xavier the signal of a deep ReLU net dies out layer by layer); for XOR, the
    learned decision boundary."""
    from deepmorning.platform import plots

    xt, yt, xv, yv = dataset(config)
    net = Net(config, xt.shape[1], int(yt.max()) + 1)
    net.load_state_dict(trial.load_state(checkpoint)["model"])
    net.eval()
    if config["data"] in ("xor", "xor4"):
        return [_xor_boundary(net, xv, yv, Path(folder) / f"xor-boundary-{tag}.png", plots)]
    stds, h = [], torch.from_numpy(xv)
    if net.conv:
        h = h.view(-1, 1, 8, 8)
    with torch.no_grad():
        for layer in net.body:
            h = layer(h)
            if isinstance(layer, (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.PReLU, nn.ELU, nn.SELU)):
                stds.append(float(h.std()))
    acc = accuracy(net, torch.from_numpy(xv), torch.from_numpy(yv))
    fig, ax = plots.figure(f"activations per layer ({config['init']} init, "
                           f"{config['activation']}, val acc {acc:.2f})",
                           "hidden layer", "std of activations (log)")
    ax.semilogy(range(1, len(stds) + 1), np.maximum(stds, 1e-30), marker="o")
    return [plots.save(fig, Path(folder) / f"activations-{tag}.png")]


def _xor_boundary(net: nn.Module, xv: np.ndarray, yv: np.ndarray, path: Path, plots) -> Path:
    g = np.linspace(-0.7, 1.7, 200, dtype=np.float32)
    gx, gy = np.meshgrid(g, g)
    with torch.no_grad():
        grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1))
        out = net(grid)
        p = torch.sigmoid(out[:, 0]) if net.sigmoid_head else torch.softmax(out, 1)[:, 1]
        p = p.numpy().reshape(gx.shape)
    fig, ax = plots.figure("XOR: P(class 1) and validation points", "x₁", "x₂", size=(5.5, 5))
    ax.contourf(gx, gy, p, levels=20, cmap="coolwarm", alpha=0.6)
    ax.scatter(xv[:, 0], xv[:, 1], c=yv, cmap="coolwarm", s=8, edgecolors="k", linewidths=0.3)
    return plots.save(fig, path)


# -- claim studies ------------------------------------------------------------------------------
def zero_init_verdict(results: Any) -> V.Outcome:
    """Held when, in every seed, zero and constant init each leave one distinct first-layer
    unit and reach a validation accuracy more than 0.3 below He init's (paired by seed)."""
    checks = []
    for arm in ("zero", "constant"):
        checks.append(V.level(results, "distinct_units", arm, 1.5, mode="min",
                              label=f"{arm}: 1.5 − distinct first-layer units"))
        checks.append(V.paired(results, "val_acc", "he", arm, margin=0.3))
    return V.all_of(*checks)


def regularization_verdict(results: Any) -> V.Outcome:
    """Held when dropout and L2 each narrow the train−validation gap of the plain net, paired
    by seed (same training subset, same initial weights)."""
    out = V.all_of(V.paired(results, "gap", "dropout", "none", mode="min"),
                   V.paired(results, "gap", "l2", "none", mode="min"))
    context = "mean gap " + V.means_text(results, "gap", ("none", "dropout", "l2")) \
        + "; mean val acc " + V.means_text(results, "val_acc", ("none", "dropout", "l2"))
    return V.Outcome(out.held, f"{context}: {out.sentence}", out.comparisons)


STUDIES = {
    "he-init": Study(
        name="he-init",
        claim="A 30-layer ReLU net trains with He init where Xavier init stalls.",
        arms={"he": {"init": "he"}, "xavier": {"init": "xavier"},
              "normal": {"init": "normal", "init_value": 0.01}},
        metric="val_acc", mode="max",
        paper="He et al. 2015 Fig. 3 (right): 30-layer ReLU net on ImageNet, He init converges "
              "while Xavier 'completely stalls' (no error decrease); Fig. 3 (left), 22 layers: "
              "both converge, He init earlier",
        verdict=lambda r: V.paired(r, "val_acc", "he", "xavier", margin=0.2),
        base={"depth": 30, "width": 64, "activation": "relu", "optimizer": "momentum",
              "lr": 0.01, "epochs": 20, "steps_per_epoch": 50},
        paper_scale={"arch": "cnn", "width": 64, "epochs": 100, "steps_per_epoch": 100},
        columns=("train_acc", "loss"),
    ),
    "batchnorm": Study(
        name="batchnorm",
        claim="Batch norm reaches a target accuracy in fewer training steps.",
        arms={"bn": {"batchnorm": True}, "plain": {"batchnorm": False}},
        metric="steps_to_target", mode="min",
        paper="Ioffe & Szegedy 2015 Fig. 1(a): MNIST, 3×100 sigmoid, batch 60: the BN net's "
              "test accuracy rises faster and higher over 50k steps; §4.2.2: BN-x5 reaches "
              "Inception's 72.2% in 14× fewer steps",
        verdict=lambda r: V.paired(r, "steps_to_target", "bn", "plain", mode="min"),
        base={"depth": 3, "width": 100, "activation": "sigmoid", "init": "normal",
              "init_value": 0.1, "optimizer": "sgd", "lr": 0.5, "batch": 60, "target": 0.8,
              "epochs": 20, "steps_per_epoch": 50},
        paper_scale={"epochs": 100, "steps_per_epoch": 500},
        columns=("val_acc", "reached"),
    ),
    "prelu": Study(
        name="prelu",
        claim="PReLU improves accuracy over ReLU at the same depth and width (He et al. "
              "§2.1/Table 2: 'improves model fitting with nearly zero extra computational "
              "cost').",
        arms={"prelu": {"activation": "prelu"}, "relu": {"activation": "relu"}},
        metric="val_acc", mode="max",
        paper="He et al. 2015 Table 2 (14-layer model A, ImageNet, 10-view): top-1 error 33.82% "
              "ReLU vs 32.64% channel-wise PReLU, top-5 13.34% vs 12.75% (approx.)",
        verdict=lambda r: V.paired(r, "val_acc", "prelu", "relu"),
        base={"depth": 8, "width": 64, "optimizer": "momentum", "lr": 0.01, "epochs": 10,
              "steps_per_epoch": 50},
        paper_scale={"arch": "cnn", "depth": 14, "epochs": 100, "steps_per_epoch": 100},
        columns=("train_acc", "loss"),
    ),
    "zero-init": Study(
        name="zero-init",
        claim="Zero (and constant) initialisation cannot break the symmetry between units.",
        arms={"zero": {"init": "zero"}, "constant": {"init": "constant", "init_value": 0.05},
              "he": {"init": "he"}},
        metric="val_acc", mode="max",
        paper="the notes (seed 000 PR-020: 'Zero는 매우 나쁨, Constant도 매우 나쁨'; seed 003: "
              "with zero weights learning does not happen); He et al. §2.2 motivate random "
              "init by scale",
        verdict=zero_init_verdict,
        base={"depth": 3, "width": 64, "lr": 0.01, "epochs": 10, "steps_per_epoch": 50},
        paper_scale={"epochs": 100},
        columns=("distinct_units", "train_acc"),
    ),
    "regularization": Study(
        name="regularization",
        claim="Dropout and L2 weight decay (w ← w − ε(∇E + λw)) narrow the train-validation "
              "gap of a net that overfits a small training set.",
        arms={"none": {}, "dropout": {"dropout": 0.5}, "l2": {"l2": 1e-3}},
        metric="gap", mode="min",
        paper="the notes (seed 003: 'train 0.99 vs test 0.85' is overfitting; L2 with λ in "
              "0.01..0.00001 as w ← w − ε(∇E + λw); dropout [Srivastava et al.]); Srivastava "
              "et al. 2014 Table 2: MNIST error 1.60% → 1.25% with dropout (approx.)",
        verdict=regularization_verdict,
        base={"train_size": 300, "depth": 2, "width": 512, "optimizer": "momentum",
              "lr": 0.01, "batch": 64, "epochs": 20, "steps_per_epoch": 100},
        paper_scale={"epochs": 100},
        columns=("train_acc", "val_acc"),
    ),
    "xor-depth": Study(
        name="xor-depth",
        claim="On XOR a deep net (the notes' 2-5-4-1) reaches a lower training cost than a "
              "wide one (2-11-1) of the same size (44 vs 45 parameters) after the same number "
              "of gradient-descent steps.",
        arms={"deep": {"widths": "5,4"}, "wide": {"widths": "11"}},
        metric="train_loss", mode="min",
        paper="the notes (seed 003, 'NN for XOR': 'Wide 보다는 deep 훨씬 효과적' — deep beats "
              "wide; the 4 XOR points, 2-5-4-1 sigmoid net, uniform(-1, 1) init, gradient "
              "descent for a fixed number of steps, final cost printed; no figure, no size "
              "condition)",
        verdict=lambda r: V.paired(r, "train_loss", "deep", "wide", mode="min"),
        base={"data": "xor4", "activation": "sigmoid", "init": "uniform", "optimizer": "sgd",
              "sigmoid_head": True, "lr": 0.1, "width": 64, "batch": 4, "target": 1.0,
              "epochs": 10, "steps_per_epoch": 1000, "eval_every": 100},
        paper_scale={"epochs": 10},
        columns=("params", "train_acc", "loss"),
    ),
}

MODEL = register(TuneModel(
    name="basics",
    description="training basics on digits/XOR: He vs Xavier init, PReLU, batch norm, "
                "zero init, dropout/L2, depth",
    paper="He et al. 2015 (Delving Deep into Rectifiers); Ioffe & Szegedy 2015 (Batch "
          "Normalization); Glorot & Bengio 2010",
    trainable=train, space=SPACE, metric="val_acc", mode="max", quick=QUICK,
    studies=STUDIES, pictures=activation_picture,
))
