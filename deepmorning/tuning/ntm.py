"""Neural Turing Machine — Graves, Wayne & Danihelka 2014, "Neural Turing Machines".

arXiv:1410.5401.

What it reproduces, at small scale: the copy task of Section 4.1. An NTM with an LSTM controller
(Section 3.4), one read and one write head, reads a sequence of random 8-bit vectors followed by a
delimiter and must then write the sequence back. It is compared with a plain LSTM of comparable
parameter count on sequences 2-4x longer than any seen in training (the paper's Figs. 4 and 5:
the NTM keeps copying well past the training lengths, the LSTM loses the sequence quickly).

The addressing follows Section 3.3 equation by equation (one small function each, unit-tested by
hand): content addressing with key k and key strength beta over cosine similarity (eqs. 5-6),
interpolation gate g (eq. 7), circular convolutional shift over {-1, 0, +1} (eq. 8), sharpening
gamma >= 1 (eq. 9); reading (eq. 2) and erase-then-add writing (eqs. 3-4).

Paper defaults (Section 4 and Table 3 of the paper, approx.): controller LSTM with 100 units, one
read and one write head, memory 128 x 20, RMSProp with learning rate 1e-4 and momentum 0.9,
gradients clipped; training lengths 1-20. Details the paper leaves open follow Collier & Beel 2018
("Implementing Neural Turing Machines"): memory starts at a small constant, the gradient norm is
clipped to 10; the heads start focused on the first memory location.

``quick`` (a CPU laptop, a few minutes per trial) shrinks: training lengths 1-10 instead of 1-20
(so the test lengths 2-4x are 20, 30, 40), memory 64 x 20, minibatches of 16 sequences, Adam with
learning rate 3e-3 (in the study; searched otherwise) instead of RMSProp 1e-4 (the paper's
setting needs far more sequences), and 3,000 updates (48,000 sequences) instead of the paper's
hundreds of thousands of sequences. The baseline LSTM keeps the paper's 3 layers but has 56 units
(about the NTM's parameter count) instead of 256.
"""

from __future__ import annotations

from collections.abc import Mapping
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

WIDTH = 8  # bits per vector (Section 4.1)
SHIFTS = (-1, 0, 1)  # allowed integer shifts (Section 3.3.2)
FACTORS = (1, 2, 3, 4)  # test lengths, as multiples of the longest training sequence


# -- data: the copy task (Section 4.1) ---------------------------------------------------------
def copy_batch(gen: torch.Generator, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 8-bit vectors, a delimiter, then blanks while the model answers.

    Returns inputs of shape (2 * length + 1, batch, WIDTH + 1) — channel WIDTH is the delimiter
    flag, on only at step ``length`` — and targets of shape (length, batch, WIDTH): the bits,
    expected during the last ``length`` steps.
    """
    bits = torch.randint(0, 2, (length, batch, WIDTH), generator=gen).float()
    inputs = torch.zeros(2 * length + 1, batch, WIDTH + 1)
    inputs[:length, :, :WIDTH] = bits
    inputs[length, :, WIDTH] = 1.0
    return inputs, bits


_TEST_SETS: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}


def test_set(length: int, count: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of ``count`` copy sequences of one length (the same for every trial)."""
    if (length, count) not in _TEST_SETS:
        gen = torch.Generator().manual_seed(10_000 + length)
        _TEST_SETS[(length, count)] = copy_batch(gen, count, length)
    return _TEST_SETS[(length, count)]


# -- addressing (Section 3.3), one equation per function ---------------------------------------
def content_weights(memory: torch.Tensor, key: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Eqs. 5-6: softmax over locations of beta * cosine(key, M(i)). memory (B, N, M), key (B, M),
    beta (B, 1) -> (B, N)."""
    sim = F.cosine_similarity(memory, key.unsqueeze(1), dim=-1, eps=1e-8)
    return torch.softmax(beta * sim, dim=1)


def interpolate(w_content: torch.Tensor, w_prev: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Eq. 7: w^g = g w^c + (1 - g) w_{t-1}."""
    return gate * w_content + (1 - gate) * w_prev


def shift(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Eq. 8, circular convolution: w~(i) = sum_j w(j) s(i - j); s (B, len(SHIFTS)) over SHIFTS."""
    return sum(s[:, k : k + 1] * torch.roll(w, shifts=d, dims=1) for k, d in enumerate(SHIFTS))


def sharpen(w: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 9: w(i) = w~(i)^gamma / sum_j w~(j)^gamma (a tiny floor keeps d/dgamma finite)."""
    w = (w + 1e-12) ** gamma
    return w / w.sum(dim=1, keepdim=True)


def address(memory: torch.Tensor, w_prev: torch.Tensor, key: torch.Tensor, beta: torch.Tensor,
            gate: torch.Tensor, s: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """The whole addressing pipeline of Fig. 2: content -> interpolation -> shift -> sharpen."""
    return sharpen(shift(interpolate(content_weights(memory, key, beta), w_prev, gate), s), gamma)


def read(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eq. 2: r = sum_i w(i) M(i)."""
    return torch.bmm(w.unsqueeze(1), memory).squeeze(1)


def write(memory: torch.Tensor, w: torch.Tensor, erase: torch.Tensor, add: torch.Tensor,
          ) -> torch.Tensor:
    """Eqs. 3-4: M~(i) = M(i) [1 - w(i) e], then M(i) = M~(i) + w(i) a."""
    w = w.unsqueeze(2)
    return memory * (1 - w * erase.unsqueeze(1)) + w * add.unsqueeze(1)


# -- networks ----------------------------------------------------------------------------------
class NTM(nn.Module):
    """An LSTM controller with one read and one write head over an N x M memory (Fig. 1).

    At each step the controller sees the input and the previous read vector; the read head
    reads, the write head erases and adds, and the output is sigmoid(W [h; r]).
    """

    def __init__(self, controller: int = 100, memory_n: int = 128, memory_m: int = 20):
        super().__init__()
        self.n, self.m = memory_n, memory_m
        self.controller = nn.LSTMCell(WIDTH + 1 + memory_m, controller)
        self.head_sizes = [memory_m, 1, 1, len(SHIFTS), 1]  # k, beta, g, s, gamma
        self.read_head = nn.Linear(controller, sum(self.head_sizes))
        self.write_head = nn.Linear(controller, sum(self.head_sizes) + 2 * memory_m)  # + e, a
        self.out = nn.Linear(controller + memory_m, WIDTH)

    def _params(self, x: torch.Tensor) -> list[torch.Tensor]:
        k, beta, g, s, gamma, *rest = torch.split(x, self.head_sizes + [self.m] * (
            (x.shape[1] - sum(self.head_sizes)) // self.m), dim=1)
        out = [k, F.softplus(beta), torch.sigmoid(g), torch.softmax(s, dim=1),
               1 + F.softplus(gamma)]
        if rest:
            out += [torch.sigmoid(rest[0]), torch.tanh(rest[1])]  # erase in [0, 1], add
        return out

    def forward(self, inputs: torch.Tensor, trace: bool = False):
        steps, batch, _ = inputs.shape
        dev = inputs.device
        memory = torch.full((batch, self.n, self.m), 1e-6, device=dev)
        w_read = torch.zeros(batch, self.n, device=dev)
        w_read[:, 0] = 1.0
        w_write = w_read.clone()
        r = torch.zeros(batch, self.m, device=dev)
        h = c = torch.zeros(batch, self.controller.hidden_size, device=dev)
        outputs, reads, writes = [], [], []
        for t in range(steps):
            h, c = self.controller(torch.cat([inputs[t], r], dim=1), (h, c))
            k, beta, g, s, gamma = self._params(self.read_head(h))
            w_read = address(memory, w_read, k, beta, g, s, gamma)
            r = read(memory, w_read)
            k, beta, g, s, gamma, e, a = self._params(self.write_head(h))
            w_write = address(memory, w_write, k, beta, g, s, gamma)
            memory = write(memory, w_write, e, a)
            outputs.append(self.out(torch.cat([h, r], dim=1)))
            if trace:
                reads.append(w_read.detach())
                writes.append(w_write.detach())
        logits = torch.stack(outputs)
        if trace:
            return logits, torch.stack(reads), torch.stack(writes), memory
        return logits


class LSTMBaseline(nn.Module):
    """The paper's baseline: a stacked LSTM reading the same inputs (Section 4, Table 3)."""

    def __init__(self, hidden: int = 256, layers: int = 3):
        super().__init__()
        self.lstm = nn.LSTM(WIDTH + 1, hidden, num_layers=layers)
        self.out = nn.Linear(hidden, WIDTH)

    def forward(self, inputs: torch.Tensor, trace: bool = False):
        return self.out(self.lstm(inputs)[0])


def build(config: Mapping[str, Any]) -> nn.Module:
    if config["arch"] == "ntm":
        return NTM(config["controller"], config["memory_n"], config["memory_m"])
    if config["arch"] == "lstm":
        return LSTMBaseline(config["lstm_hidden"], config["lstm_layers"])
    raise ValueError(f"arch must be 'ntm' or 'lstm', not {config['arch']!r}")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bit_errors(model: nn.Module, length: int, dev: torch.device) -> float:
    """Mean number of wrong bits per sequence (outputs thresholded at 0.5) at one length."""
    inputs, targets = test_set(length)
    with torch.no_grad():
        logits = model(inputs.to(dev))[length + 1 :]
    return float(((logits > 0).float().cpu() != targets).sum(dim=(0, 2)).float().mean())


# -- search space and trainable ----------------------------------------------------------------
SPACE: dict[str, Any] = {
    "arch": "ntm",
    "controller": 100,  # Table 3: LSTM controller, 100 units
    "memory_n": 128,  # Table 3: 128 locations ...
    "memory_m": 20,  # ... of width 20
    "lstm_hidden": 256,  # Table 3: the baseline LSTM has 3 layers of 256 units (quick: 56,
    # which gives it about the NTM's parameter count)
    "lstm_layers": 3,
    "optimizer": "rmsprop",  # Section 4: RMSProp with momentum 0.9
    "lr": tune.loguniform(1e-4, 1e-2),  # paper: 1e-4; searched by default
    "momentum": 0.9,
    "clip": 10.0,  # gradient-norm clip (Collier & Beel 2018)
    "min_len": 1,  # Section 4.1: training lengths 1-20
    "max_len": 20,
    "batch_size": 1,  # the paper trains on single sequences
    "updates": 1000,  # parameter updates per epoch (one report each)
    "epochs": 100,
}

#: CPU-laptop scale (see the module docstring). ``lr`` stays searched; the study fixes 3e-3.
QUICK: dict[str, Any] = {
    "max_len": 10, "memory_n": 64, "batch_size": 16, "optimizer": "adam",
    "updates": 250, "epochs": 12, "lstm_hidden": 56,
}


def make_optimizer(config: Mapping[str, Any], params) -> torch.optim.Optimizer:
    if config["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=config["lr"], momentum=config["momentum"],
                                   alpha=0.95)
    if config["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=config["lr"])
    raise ValueError(f"optimizer must be 'rmsprop' or 'adam', not {config['optimizer']!r}")


def evaluate(model: nn.Module, config: Mapping[str, Any], dev: torch.device) -> dict[str, float]:
    model.eval()
    errs = {f"bit_err_{f}x": bit_errors(model, f * config["max_len"], dev) for f in FACTORS}
    model.train()
    errs["gen_bit_err"] = float(np.mean([errs[f"bit_err_{f}x"] for f in FACTORS[1:]]))
    return errs


def train(config: dict[str, Any]) -> None:
    """Ray Tune trainable: one report per ``updates`` parameter updates."""
    dev = trial.device()
    trial.set_threads()
    trial.seed_everything(config["seed"])
    model = build(config).to(dev)
    opt = make_optimizer(config, model.parameters())
    gen = torch.Generator().manual_seed(int(config["seed"]))
    start = 0
    state = trial.restore()
    if state:
        model.load_state_dict(state["model"])
        trial.load_optimizer(opt, state["opt"])  # the config's lr wins (PBT may change it)
        gen.set_state(state["gen"])
        start = state["epoch"]
    for epoch in range(start + 1, config["epochs"] + 1):
        losses = []
        for _ in range(config["updates"]):
            length = int(torch.randint(config["min_len"], config["max_len"] + 1, (1,),
                                       generator=gen))
            inputs, targets = copy_batch(gen, config["batch_size"], length)
            logits = model(inputs.to(dev))[length + 1 :]
            loss = F.binary_cross_entropy_with_logits(logits, targets.to(dev))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
            opt.step()
            losses.append(loss.item())
        metrics = {"epoch": epoch, "loss": float(np.mean(losses)),
                   "sequences": epoch * config["updates"] * config["batch_size"],
                   "params": n_params(model), **evaluate(model, config, dev)}
        trial.report(metrics, {"model": model.state_dict(), "opt": opt.state_dict(),
                               "gen": gen.get_state(), "epoch": epoch})


# -- pictures ----------------------------------------------------------------------------------
def pictures(config: Mapping[str, Any], checkpoint: Path, out: Path, tag: str) -> list[Path]:
    """Fig. 6 analogue (NTM: read and write weightings over one long sequence) and a Figs. 4/5
    analogue (targets and outputs at 1-4x the longest training length)."""
    from deepmorning.platform.plots import plt, save

    model = build(config)
    model.load_state_dict(trial.load_state(checkpoint)["model"])
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    lengths = [f * config["max_len"] for f in FACTORS]
    fig, axes = plt.subplots(2, len(lengths), figsize=(3.2 * len(lengths), 4.2), dpi=110,
                             squeeze=False)
    for col, length in enumerate(lengths):
        inputs, targets = test_set(length)
        with torch.no_grad():
            probs = torch.sigmoid(model(inputs)[length + 1 :])[:, 0]
        errs = int(((probs > 0.5).float() != targets[:, 0]).sum())
        axes[0, col].imshow(targets[:, 0].T, cmap="gray_r", aspect="auto", vmin=0, vmax=1)
        axes[0, col].set_title(f"length {length}: target")
        axes[1, col].imshow(probs.T, cmap="gray_r", aspect="auto", vmin=0, vmax=1)
        axes[1, col].set_title(f"output ({errs} bits wrong)")
        for ax in axes[:, col]:
            ax.set_xlabel("time")
            ax.set_yticks([])
    fig.suptitle(f"{config['arch'].upper()} copy: trained on lengths "
                 f"{config['min_len']}-{config['max_len']} (cf. Graves et al. Figs. 4-5)")
    paths.append(save(fig, out / f"copy-{tag}.png"))
    if config["arch"] == "ntm":
        paths.append(_weightings_picture(model, lengths[-1], out / f"weightings-{tag}.png"))
    return paths


def _weightings_picture(model: NTM, length: int, path: Path) -> Path:
    from deepmorning.platform.plots import plt, save

    inputs, targets = test_set(length)
    with torch.no_grad():
        logits, reads, writes, _ = model(inputs[:, :1], trace=True)
    rows = min(model.n, int(max(writes[:, 0].argmax(1).max(), reads[:, 0].argmax(1).max())) + 4)
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), dpi=110, sharex="col",
                             gridspec_kw={"height_ratios": [1, 3]})
    axes[0, 0].imshow(inputs[:, 0].T, cmap="gray_r", aspect="auto")
    axes[0, 0].set_title("inputs")
    axes[0, 1].imshow(torch.sigmoid(logits[:, 0]).T, cmap="gray_r", aspect="auto")
    axes[0, 1].set_title("outputs")
    for ax, w, name in ((axes[1, 0], writes, "write"), (axes[1, 1], reads, "read")):
        ax.imshow(w[:, 0, :rows].T, cmap="magma", aspect="auto", origin="lower",
                  interpolation="nearest")
        ax.set_title(f"{name} weightings")
        ax.set_xlabel("time")
        ax.set_ylabel("memory location")
    fig.suptitle(f"NTM memory use while copying a length-{length} sequence "
                 "(cf. Graves et al. Fig. 6)")
    return save(fig, path)


# -- claim studies -----------------------------------------------------------------------------
def generalises(results: Any, factor_ratio: float = 0.5) -> V.Outcome:
    """Held when, in every seed, the NTM's bit errors per sequence at each of 2x, 3x and 4x
    the training length are below ``factor_ratio`` times the same seed's LSTM's ("far
    below"; paired by seed)."""
    parts, means = [], []
    for f in FACTORS[1:]:
        col = f"bit_err_{f}x"
        parts.append(V.paired(results, col, "ntm", "lstm", mode="min", ratio=factor_ratio))
        m = V.arm_means(results, col)
        means.append(f"{f}x: NTM {m['ntm']:.1f} vs LSTM {m['lstm']:.1f}")
    out = V.all_of(*parts)
    word = "far below" if out.held else f"not far below (< {factor_ratio:g}×)"
    return V.Outcome(out.held, f"NTM bit errors per sequence {word} the LSTM's (means "
                     + "; ".join(means) + f"): {out.sentence}", out.comparisons)


STUDIES = {
    "copy": Study(
        name="copy",
        claim="On copy sequences 2-4x longer than any seen in training, the NTM's bit errors "
              "per sequence stay far below those of an LSTM of comparable size.",
        arms={"ntm": {"arch": "ntm"}, "lstm": {"arch": "lstm"}},
        metric="gen_bit_err",
        mode="min",
        paper="Graves et al. 2014 Figs. 4-5: trained on lengths 1-20, the NTM copies lengths "
              "30, 50 and 120 almost perfectly while the LSTM's output degrades after ~20; "
              "Fig. 3: NTM copy cost falls to ~0 bits per sequence, LSTM's does not",
        verdict=generalises,
        base={"lr": 3e-3},
        paper_scale={"lr": 1e-4, "max_len": 20, "memory_n": 128, "batch_size": 1,
                     "optimizer": "rmsprop", "lstm_hidden": 256, "epochs": 100,
                     "updates": 1000},
        columns=("bit_err_1x", "bit_err_2x", "bit_err_3x", "bit_err_4x", "params"),
    ),
}

MODEL = register(TuneModel(
    name="ntm",
    description="Neural Turing Machine vs LSTM on the copy task (generalisation to longer "
                "sequences)",
    paper="Graves, Wayne & Danihelka 2014, Neural Turing Machines",
    trainable=train,
    space=SPACE,
    metric="gen_bit_err",
    mode="min",
    quick=QUICK,
    studies=STUDIES,
    pictures=pictures,
))

