"""Deformable convolution v1 (Dai et al. 2017, "Deformable Convolutional Networks", ICCV).

What the paper contributes and what this module reproduces at small scale:

- **Deformable convolution** (Sec. 2.1, Eq. 1-2): a regular grid R of kernel positions p_n is
  augmented with learned offsets Δp_n, y(p0) = Σ_n w(p_n) · x(p0 + p_n + Δp_n), where x at a
  fractional position is read by bilinear interpolation (Eq. 3-4, zero outside the map). The
  offsets come from a parallel convolution over the same input with the same kernel, stride,
  padding and dilation, 2N output channels (N = kernel size²), **initialised to zero** (Sec.
  2.1, 3), so training starts from the plain convolution. :func:`deform_conv2d` implements it
  with ``torch.nn.functional.grid_sample``; torchvision's ``deform_conv2d`` is not used because
  no torchvision wheel is installed next to this torch (installing one would pull another torch
  build). The offset layout is torchvision's: channel 2n holds Δy and 2n+1 holds Δx of kernel
  position n (row-major). Deformable RoI pooling (Sec. 2.2) is out of scope.
- **Where it goes** (Sec. 3, Table 1): the last few 3×3 convolutions of the feature extractor
  are made deformable (the paper's default is the three of res5); here the last
  ``deform_layers`` (default 2) 3×3 layers of a four-layer CNN.
- **The claim** (Table 1): replacing plain by deformable convolutions of the same depth and width
  improves accuracy on tasks with geometric variation (DeepLab mIoU on VOC 69.7 → 75.2 with
  three deformable layers; R-FCN mAP@0.5 80.0 → 81.4). Here the task is sklearn's 8×8 digits
  placed at random scale, rotation, position (and a small elastic warp) on a 32×32 canvas, test
  digits drawn from held-out source images; the study ``deform-vs-plain`` compares test accuracy.
  The offset branch adds parameters (2N·C·9 per layer), so the study also runs a plain arm
  widened to at least as many parameters ("plain-matched"); the claim table reports the counts.
- **Sampling locations** (Fig. 5): the PNG shows, for units at the centre of a few test digits,
  the 9 × 9 = 81 points the two stacked deformable layers sample, mapped back to the image.

``quick`` (the default scale) trains 6 epochs on 6,000 warped digits with width 16; ``paper``
scale (``--scale paper``) keeps the same task with width 32, 30,000 training images and 30
epochs (the paper's own sizes — ResNet-101 on VOC/COCO — are far out of reach of this task).
"""

from __future__ import annotations

import functools
import math
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

SOURCE_SPLIT_SEED = 0  # fixed split of the 1,797 source digits into train / test sources
DATA_SEED = 1234  # the warped images are the same for every trial and arm


# -- the operator ------------------------------------------------------------------------------
def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def sampling_grid(offset: torch.Tensor, kernel: tuple[int, int], in_hw: tuple[int, int],
                  stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                  dilation: int | tuple[int, int] = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute sampling positions (y, x), each (B, K, Ho, Wo), in input pixel coordinates.

    Position of kernel point n at output (i, j): p0 + p_n + Δp_n with p0 = (i·s − pad, j·s − pad)
    and p_n = (ky·d, kx·d) (Dai et al. Eq. 2).
    """
    kh, kw = kernel
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    b, _, ho, wo = offset.shape
    k = kh * kw
    off = offset.view(b, k, 2, ho, wo)
    dev, dt = offset.device, offset.dtype
    ky, kx = torch.meshgrid(torch.arange(kh, device=dev, dtype=dt) * dh,
                            torch.arange(kw, device=dev, dtype=dt) * dw, indexing="ij")
    oy = torch.arange(ho, device=dev, dtype=dt) * sh - ph
    ox = torch.arange(wo, device=dev, dtype=dt) * sw - pw
    py = ky.reshape(1, k, 1, 1) + oy.view(1, 1, ho, 1) + off[:, :, 0]
    px = kx.reshape(1, k, 1, 1) + ox.view(1, 1, 1, wo) + off[:, :, 1]
    return py, px


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None, stride: int | tuple[int, int] = 1,
                  padding: int | tuple[int, int] = 0,
                  dilation: int | tuple[int, int] = 1) -> torch.Tensor:
    """Deformable convolution v1 (Dai et al. 2017, Eq. 2): bilinear samples, then a matmul.

    Shapes as ``torchvision.ops.deform_conv2d``: x (B, C, H, W), offset (B, 2·kh·kw, Ho, Wo),
    weight (O, C, kh, kw). With zero offsets it equals ``F.conv2d`` (tested).
    """
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    py, px = sampling_grid(offset, (kh, kw), (h, w), stride, padding, dilation)
    k, ho, wo = py.shape[1:]
    # grid_sample with align_corners=False puts pixel i's centre at (2i + 1) / size - 1, and with
    # zero padding its bilinear read is exactly Eq. 3-4 of the paper (zero outside the map).
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)
    cols = F.grid_sample(x, grid.view(b, k * ho, wo, 2), mode="bilinear",
                         padding_mode="zeros", align_corners=False)
    cols = cols.view(b, c, k, ho, wo)
    out = torch.einsum("bckhw,ock->bohw", cols, weight.reshape(o, c, k))
    if bias is not None:
        out = out + bias.view(1, o, 1, 1)
    return out


class DeformConv2d(nn.Module):
    """A drop-in replacement of ``nn.Conv2d`` whose offsets come from a parallel conv (Sec. 2.1).

    The offset convolution has the same kernel, stride, padding and dilation and starts at
    zero, so a fresh layer computes exactly the plain convolution.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation, bias=bias)
        self.offset = nn.Conv2d(cin, 2 * kernel_size * kernel_size, kernel_size, stride,
                                padding, dilation)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return deform_conv2d(x, self.offset(x), c.weight, c.bias, c.stride, c.padding,
                             c.dilation)


# -- data: digits at random scale, rotation, position and a small elastic warp -----------------
@functools.lru_cache(maxsize=2)
def _sources() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's 1,797 digits in [0, 1], split 75/25 by source image with a fixed seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    order = np.random.default_rng(SOURCE_SPLIT_SEED).permutation(len(images))
    cut = int(0.75 * len(images))
    tr, te = order[:cut], order[cut:]
    return images[tr], d.target[tr], images[te], d.target[te]


def warp_digits(images: np.ndarray, n: int, seed: int, canvas: int = 32,
                scale: tuple[float, float] = (0.35, 0.95), rotation: float = 45.0,
                elastic: float = 0.08) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``n`` warped copies of randomly chosen ``images`` on a ``canvas``² black canvas.

    A digit's side spans ``scale`` (fraction of the canvas), it is rotated by up to ±``rotation``
    degrees, placed anywhere it fits and bent by a smooth random displacement of amplitude
    ``elastic`` (fraction of the canvas). Returns images (n, 1, canvas, canvas), the index of
    each source image and meta (n, 4): scale, angle (degrees), centre x, centre y in pixels.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(images), n)
    k = rng.uniform(*scale, n)
    angle = rng.uniform(-rotation, rotation, n)
    reach = np.clip(1 - k * 1.1, 0, None)
    tx, ty = rng.uniform(-1, 1, n) * reach, rng.uniform(-1, 1, n) * reach
    a = np.deg2rad(angle)
    cos, sin = np.cos(a) / k, np.sin(a) / k
    # canvas coords u -> source coords v = R(-angle) (u - t) / k
    theta = np.stack([np.stack([cos, sin, -(cos * tx + sin * ty)], 1),
                      np.stack([-sin, cos, -(-sin * tx + cos * ty)], 1)], 1)
    theta_t = torch.tensor(theta, dtype=torch.float32)
    grid = F.affine_grid(theta_t, [n, 1, canvas, canvas], align_corners=False)
    if elastic > 0:
        coarse = torch.tensor(rng.normal(0, elastic, (n, 2, 4, 4)), dtype=torch.float32)
        field = F.interpolate(coarse, size=(canvas, canvas), mode="bicubic", align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1) / torch.tensor(k, dtype=torch.float32).view(
            n, 1, 1, 1)
    src = torch.tensor(images[idx]).unsqueeze(1)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    centre_x, centre_y = (tx + 1) * canvas / 2 - 0.5, (ty + 1) * canvas / 2 - 0.5
    meta = np.stack([k, angle, centre_x, centre_y], 1).astype(np.float32)
    return out.clamp(0, 1), idx, meta


@functools.lru_cache(maxsize=4)
def dataset(n_train: int, n_test: int, canvas: int, rotation: float, elastic: float,
            ) -> dict[str, Any]:
    """The warped train and test sets (cached per process; the same for every trial)."""
    xtr_src, ytr_src, xte_src, yte_src = _sources()
    xtr, itr, _ = warp_digits(xtr_src, n_train, DATA_SEED, canvas, rotation=rotation,
                              elastic=elastic)
    xte, ite, mte = warp_digits(xte_src, n_test, DATA_SEED + 1, canvas, rotation=rotation,
                                elastic=elastic)
    return {"xtr": xtr, "ytr": torch.tensor(ytr_src[itr]), "xte": xte,
            "yte": torch.tensor(yte_src[ite]), "meta_te": mte}


# -- the network --------------------------------------------------------------------------------
class Net(nn.Module):
    """conv3×3 → pool → conv3×3 → pool → 2 × conv3×3 → global average pool → linear.

    The last ``deform_layers`` 3×3 layers are :class:`DeformConv2d` when ``conv`` is
    "deformable" (Dai et al. Sec. 3 put them at the end of the feature extractor); "plain"
    keeps every layer an ``nn.Conv2d`` of the same depth and width.
    """

    def __init__(self, conv: str = "deformable", width: int = 16, deform_layers: int = 2,
                 ) -> None:
        super().__init__()
        if conv not in ("deformable", "plain"):
            raise ValueError(f"conv must be 'deformable' or 'plain', not {conv!r}")
        chans = [(1, width), (width, 2 * width), (2 * width, 2 * width), (2 * width, 2 * width)]
        layers = []
        for i, (cin, cout) in enumerate(chans):
            deform = conv == "deformable" and i >= len(chans) - deform_layers
            layers.append(DeformConv2d(cin, cout, 3, padding=1, bias=False) if deform
                          else nn.Conv2d(cin, cout, 3, padding=1, bias=False))
        self.convs = nn.ModuleList(layers)
        self.norms = nn.ModuleList(nn.BatchNorm2d(cout) for _, cout in chans)
        self.fc = nn.Linear(2 * width, 10)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every conv layer, then the last feature map."""
        seen = []
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            seen.append(x)
            x = F.relu(norm(conv(x)))
            if i < 2:
                x = F.max_pool2d(x, 2)
        seen.append(x)
        return seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)[-1].mean(dim=(2, 3)))


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -- search space and trainable -----------------------------------------------------------------
SPACE: dict[str, Any] = {
    "conv": "deformable",  # "plain" is the baseline of the same depth and width
    "match_params": False,  # plain only: widen until it has the deformable net's parameters
    "deform_layers": 2,  # the last N 3×3 layers (Dai et al. Table 1: 3 of res5 by default)
    "offset_lr_mult": 1.0,  # β: offset layers' learning rate multiplier (Sec. 3, β = 1)
    "width": 32,
    "lr": tune.loguniform(3e-4, 3e-3),
    "batch_size": 64,
    "weight_decay": 1e-4,
    "canvas": 32,
    "rotation": 45.0,
    "elastic": 0.08,
    "n_train": 30000,
    "n_test": 2000,
    "epochs": 30,
}

QUICK: dict[str, Any] = {"width": 16, "n_train": 6000, "epochs": 6, "lr": 2e-3}


def matched_width(width: int, deform_layers: int) -> int:
    """The smallest width of the plain net with at least the deformable net's parameters."""
    target = count_params(Net("deformable", width, deform_layers))
    w = width
    while count_params(Net("plain", w, deform_layers)) < target:
        w += 1
    return w


def build(config: Mapping[str, Any]) -> Net:
    width, layers = int(config["width"]), int(config["deform_layers"])
    if config["conv"] == "plain" and config.get("match_params", False):
        width = matched_width(width, layers)
    return Net(config["conv"], width, layers)


def _optimizer(net: Net, config: Mapping[str, Any]) -> torch.optim.Optimizer:
    offsets = [p for n, p in net.named_parameters() if ".offset." in n]
    rest = [p for n, p in net.named_parameters() if ".offset." not in n]
    groups = [{"params": rest}]
    if offsets:
        groups.append({"params": offsets, "lr": config["lr"] * config["offset_lr_mult"]})
    return torch.optim.Adam(groups, lr=config["lr"], weight_decay=config["weight_decay"])


def set_lr(opt: torch.optim.Optimizer, config: Mapping[str, Any], epoch: int) -> None:
    """Cosine decay from ``lr`` to 0 over the epochs (a function of the epoch: resumes exactly)."""
    scale = 0.5 * (1 + math.cos(math.pi * (epoch - 1) / int(config["epochs"])))
    for group, mult in zip(opt.param_groups, (1.0, config["offset_lr_mult"]), strict=False):
        group["lr"] = config["lr"] * mult * scale


@torch.no_grad()
def evaluate(net: Net, x: torch.Tensor, y: torch.Tensor, dev: torch.device,
             batch: int = 500) -> tuple[float, float]:
    net.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch):
        logits = net(x[i:i + batch].to(dev))
        target = y[i:i + batch].to(dev)
        loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    return correct / len(x), loss / len(x)


def train(config: dict[str, Any]) -> None:
    """Ray Tune trainable: one report per epoch with test accuracy ``acc``."""
    dev = trial.device()
    trial.set_threads()
    trial.seed_everything(config["seed"])
    data = dataset(int(config["n_train"]), int(config["n_test"]), int(config["canvas"]),
                   float(config["rotation"]), float(config["elastic"]))
    net = build(config).to(dev)
    opt = _optimizer(net, config)
    start = 0
    state = trial.restore()
    if state:
        net.load_state_dict(state["model"])
        trial.load_optimizer(opt, state["opt"])  # the config's lr wins (PBT may change it)
        start = int(state["epoch"])
    gen = torch.Generator().manual_seed(int(config["seed"]))
    for _ in range(start):  # the shuffles of the epochs already done, so a resume continues
        torch.randperm(len(data["xtr"]), generator=gen)
    bs = int(config["batch_size"])
    for epoch in range(start + 1, int(config["epochs"]) + 1):
        set_lr(opt, config, epoch)
        net.train()
        order = torch.randperm(len(data["xtr"]), generator=gen)
        total = 0.0
        for i in range(0, len(order), bs):
            batch = order[i:i + bs]
            loss = F.cross_entropy(net(data["xtr"][batch].to(dev)), data["ytr"][batch].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        acc, test_loss = evaluate(net, data["xte"], data["yte"], dev)
        trial.report({"epoch": epoch, "acc": acc, "test_loss": test_loss,
                      "train_loss": total / len(order), "params": count_params(net)},
                     {"model": net.state_dict(), "opt": opt.state_dict(), "epoch": epoch})


# -- pictures: sampling locations (Dai et al. Fig. 5) ---------------------------------------------
@torch.no_grad()
def sampling_points(net: Net, image: torch.Tensor, unit: tuple[int, int],
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Image-space points sampled for one unit of the last layer, through the last two layers.

    ``unit`` is (row, col) on the last feature map. Returns (the 9 points of the last layer,
    the 81 points of the layer below), each (n, 2) as (x, y) pixel coordinates of ``image``:
    both layers work on the map pooled twice, whose cell u covers image pixels 4u … 4u + 3.
    """
    net.eval()
    feats = net.features(image.unsqueeze(0))
    top, below = net.convs[3], net.convs[2]
    h, w = feats[3].shape[2:]

    def points(layer: nn.Module, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(layer, DeformConv2d):
            off = layer.offset(inp)
        else:
            off = torch.zeros(1, 18, *inp.shape[2:])
        return sampling_grid(off, (3, 3), tuple(inp.shape[2:]), 1, 1, 1)

    ty, tx = points(top, feats[3])
    by, bx = points(below, feats[2])
    y1, x1 = ty[0, :, unit[0], unit[1]], tx[0, :, unit[0], unit[1]]
    second = []
    for yy, xx in zip(y1.tolist(), x1.tolist(), strict=True):
        r = min(max(round(yy), 0), h - 1)
        c = min(max(round(xx), 0), w - 1)
        second.append(torch.stack([bx[0, :, r, c], by[0, :, r, c]], 1))
    to_img = lambda p: p * 4 + 1.5  # noqa: E731 - cell centre of the twice-pooled map
    first = torch.stack([x1, y1], 1)
    return to_img(first).numpy(), to_img(torch.cat(second)).numpy()


def pictures(config: Mapping[str, Any], checkpoint: Path, out: Path, tag: str) -> list[Path]:
    """PNG of the sampling locations of units on a few test digits (Dai et al. Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    state = trial.load_state(checkpoint)
    net = build(config)
    net.load_state_dict(state["model"])
    data = dataset(int(config["n_train"]), int(config["n_test"]), int(config["canvas"]),
                   float(config["rotation"]), float(config["elastic"]))
    meta = data["meta_te"]
    # small, medium and large digits, like the paper's background / small / large objects
    picks = [int(np.argmin(np.abs(meta[:, 0] - s))) for s in (0.4, 0.55, 0.7, 0.9)]
    side = int(config["canvas"])
    cells = side // 4
    fig, axes = plt.subplots(1, len(picks), figsize=(3.2 * len(picks), 3.6), dpi=110)
    for ax, i in zip(axes, picks, strict=True):
        cx, cy = meta[i, 2], meta[i, 3]
        unit = (min(max(int(cy // 4), 0), cells - 1), min(max(int(cx // 4), 0), cells - 1))
        first, second = sampling_points(net, data["xte"][i], unit)
        ax.imshow(data["xte"][i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.scatter(second[:, 0], second[:, 1], s=8, c="red", alpha=0.7, label="81 points, layer 3")
        ax.scatter(first[:, 0], first[:, 1], s=22, c="yellow", edgecolors="black",
                   linewidths=0.5, label="9 points, layer 4")
        ax.scatter([unit[1] * 4 + 1.5], [unit[0] * 4 + 1.5], s=60, c="lime", marker="x",
                   label="unit")
        ax.set_xlim(-0.5, side - 0.5)
        ax.set_ylim(side - 0.5, -0.5)
        ax.set_title(f"digit {int(data['yte'][i])}, scale {meta[i, 0]:.2f}", fontsize=9)
        ax.axis("off")
    axes[0].legend(loc="lower left", fontsize=6, framealpha=0.8)
    fig.suptitle(f"Sampling locations of the last two layers ({config['conv']} conv; "
                 "cf. Dai et al. Fig. 5)", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("-".join(part for part in ("sampling", tag) if part) + ".png")
    fig.savefig(path)
    plt.close(fig)
    return [path]


# -- the claim study -------------------------------------------------------------------------------
def verdict_deform(results: Any) -> V.Outcome:
    """Held when the deformable arm's test accuracy beats the plain arm of the same depth and
    width in every seed (paired by seed), and also the plain arm widened to as many parameters
    (when it was run)."""
    parts = [V.paired(results, "acc", "deformable", "plain")]
    if "plain-matched" in set(results["arm"]):
        parts.append(V.paired(results, "acc", "deformable", "plain-matched"))
    return V.all_of(*parts)


STUDIES = {
    "deform-vs-plain": Study(
        name="deform-vs-plain",
        claim="Deformable convolutions beat plain convolutions of the same depth and width "
              "on a task with geometric variation.",
        arms={"deformable": {"conv": "deformable"}, "plain": {"conv": "plain"},
              "plain-matched": {"conv": "plain", "match_params": True}},
        metric="acc",
        mode="max",
        paper="Dai et al. 2017 Table 1: 3 deformable layers in ResNet-101 raise DeepLab mIoU "
              "on VOC 2012 val from 69.7 to 75.2 and R-FCN mAP@0.5 on VOC 2007 from 80.0 to 81.4",
        verdict=verdict_deform,
        base={"lr": 2e-3},
        paper_scale={"width": 32, "n_train": 30000, "epochs": 30, "lr": 1e-3},
        columns=("test_loss", "params"),
    ),
}

MODEL = register(TuneModel(
    name="deformable",
    description="Deformable convolution v1 vs plain conv on warped digits (Dai et al. 2017)",
    paper="Dai et al. 2017, Deformable Convolutional Networks",
    trainable=train,
    space=SPACE,
    metric="acc",
    mode="max",
    quick=QUICK,
    studies=STUDIES,
    pictures=pictures,
))
