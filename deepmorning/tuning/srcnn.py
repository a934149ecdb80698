"""SRCNN and VDSR: single-image super-resolution on the Y channel (``srcnn``, ``vdsr``).

Papers:
    Dong, Loy, He, Tang 2014, "Learning a Deep Convolutional Network for Image
    Super-Resolution" (ECCV; SRCNN) and Kim, Lee, Lee 2016, "Accurate Image Super-Resolution
    Using Very Deep Convolutional Networks" (CVPR; VDSR).

What is followed:
    - Both work on the luminance (Y of YCbCr) only; the input is the low-resolution image
      upscaled back to full size by bicubic interpolation (Dong et al. §3.1, §4; Kim et al. §3).
      The colour channels are bicubic-upscaled for the side-by-side pictures only.
    - SRCNN 9-1-5 with n1 = 64, n2 = 32 filters and ReLU after the first two layers (Dong et al.
      §3.1-3.2, Fig. 2), MSE loss, SGD with a 10× smaller learning rate in the last layer
      (1e-4 / 1e-5, §3.3), Gaussian initialisation with std 0.001 (§3.3), 33×33 patches,
      mini-batch 128 (ECCV version). One model per scale, as in the paper.
    - VDSR: 20 3×3 conv layers of 64 filters with ReLU (Kim et al. §3.1, Fig. 2), residual
      learning: the net predicts HR - bicubic and adds the input back (§3.2), SGD momentum 0.9,
      weight decay 1e-4, lr 0.1 divided by 10 every 20 of 80 epochs, adjustable gradient
      clipping of each gradient to [-θ/γ, θ/γ] with γ the current learning rate (§3.2), 41×41
      patches, mini-batch 64, He initialisation, and one model trained on ×2, ×3 and ×4 at
      once (§4.3, "single model for multiple scales").
    - Evaluation: PSNR and SSIM from ``skimage.metrics`` on the Y channel of held-out images,
      ``scale`` border pixels shaved (as the papers' evaluation code does), SSIM with Wang et
      al.'s 11×11 Gaussian window (σ = 1.5), always reported next to the bicubic baseline of the
      same images.

Data (scikit-image's bundled images; no downloads; the split is fixed):
    train: astronaut, coffee, rocket, immunohistochemistry, hubble_deep_field, brick, grass,
    gravel, page, text, moon, clock; held-out test: camera, chelsea, coins (natural photos,
    like Set5). Low resolution = MATLAB's bicubic ``imresize`` by 1/scale, bicubic = back up
    by ``scale``, as both papers do (:mod:`deepmorning.tuning.imresize`). The images are not
    Set5, so the absolute dB values are not the papers'; the comparisons are the point.

What ``quick`` shrinks (the default scale; ``--scale paper`` drops it):
    VDSR's width 64 -> 32 and depth 20 -> 10, patches 41 -> 32 (SRCNN 33 -> 32), batches
    64/128 -> 16, 400 updates for VDSR (8 epochs × 50) and 1,600 for SRCNN (8 × 200; its
    updates are ~10× cheaper) in a plain search, instead of 80 epochs over 291 augmented images
    (the studies set their own budgets: SRCNN 6,400, ``vs-srcnn`` 1,600 each, VDSR 800 with
    the paper's 20 layers in ``beats-bicubic``), the test images
    are 96×96 centre crops, and the optimiser is Adam (lr 1e-3, SRCNN 2e-3 with its 10× smaller
    last-layer rate) with He initialisation: the papers' plain SGD needs ~10^8 (SRCNN) or ~10^6
    (VDSR) patch updates, far beyond a CPU laptop. VDSR's adjustable gradient clipping stays on
    (θ/γ with Adam's γ). The ``residual`` study trains ×2 only for 200 updates.

Claim studies (Kim et al. Table 1/Fig. 3, Table 2 and Table 3; Dong et al. Table 2/Fig. 1): the
model beats bicubic PSNR at ×2 and ×3; one {2,3,4} model is within ~0.1 dB of a ×2-only model
at ×2; VDSR beats SRCNN; residual learning converges faster than a non-residual net of the same
depth. Every verdict is paired by seed, through the shared
:mod:`deepmorning.tuning.verdict` (every seed, at least two seeds).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune
from skimage import color, data, metrics
from torch import nn

from deepmorning.tuning import imresize, trial
from deepmorning.tuning import verdict as V
from deepmorning.tuning.registry import Study, TuneModel, register

TRAIN_IMAGES = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                "brick", "grass", "gravel", "page", "text", "moon", "clock")
TEST_IMAGES = ("camera", "chelsea", "coins")
SCALES = (2, 3, 4)


# -- data ---------------------------------------------------------------------------------------
def load_rgb(name: str) -> np.ndarray:
    """A bundled scikit-image picture as float RGB in [0, 1] (grey pictures repeated x3)."""
    img = getattr(data, name)()
    if img.ndim == 2:
        img = color.gray2rgb(img)
    return img[..., :3].astype(np.float64) / 255.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Luminance Y of ITU-R BT.601 YCbCr (``skimage.color.rgb2ycbcr``), scaled to [0, 1]."""
    return color.rgb2ycbcr(rgb)[..., 0] / 255.0


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop so both sides divide by ``scale`` (the papers' ``modcrop``)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    if size <= 0:
        return img
    h, w = img.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[top: top + size, left: left + size]


def bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """Down by ``scale`` then back up with MATLAB's bicubic ``imresize``, as both papers make
    their inputs and their bicubic baseline (:mod:`deepmorning.tuning.imresize`)."""
    return imresize.degrade(hr, scale)[1]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def psnr_ssim(hr: np.ndarray, pred: np.ndarray, scale: int) -> tuple[float, float]:
    """PSNR (dB) and SSIM of a Y image in [0, 1] with ``scale`` border pixels shaved.

    SSIM with Wang et al.'s (2004) window, which the SR papers' evaluation code uses: an 11×11
    Gaussian of σ = 1.5 and population covariances (scikit-image's default is a 7×7 uniform
    window with sample covariances).
    """
    a, b = shave(hr, scale), shave(np.clip(pred, 0.0, 1.0), scale)
    return (float(metrics.peak_signal_noise_ratio(a, b, data_range=1.0)),
            float(metrics.structural_similarity(a, b, data_range=1.0, gaussian_weights=True,
                                                sigma=1.5, use_sample_covariance=False)))


@functools.lru_cache(maxsize=8)
def train_pairs(scale: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(bicubic Y, HR Y) of every training image at ``scale`` (cached per process)."""
    pairs = []
    for name in TRAIN_IMAGES:
        hr = modcrop(rgb_to_y(load_rgb(name)), scale)
        pairs.append((bicubic(hr, scale).astype(np.float32), hr.astype(np.float32)))
    return tuple(pairs)


@functools.lru_cache(maxsize=16)
def test_pairs(scale: int, crop: int) -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """(name, bicubic Y, HR Y) of every held-out image (``crop`` > 0: a centre crop)."""
    out = []
    for name in TEST_IMAGES:
        hr = modcrop(center_crop(rgb_to_y(load_rgb(name)), crop), scale)
        out.append((name, bicubic(hr, scale), hr))
    return tuple(out)


def sample_batch(rng: np.random.Generator, scales: list[int], batch: int, patch: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random aligned (bicubic, HR) patches, flipped/rotated as Kim et al. augment them."""
    xs, ys = [], []
    for _ in range(batch):
        pairs = train_pairs(int(rng.choice(scales)))
        low, high = pairs[rng.integers(len(pairs))]
        top = rng.integers(high.shape[0] - patch + 1)
        left = rng.integers(high.shape[1] - patch + 1)
        x = low[top: top + patch, left: left + patch]
        y = high[top: top + patch, left: left + patch]
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        x, y = np.rot90(x, k), np.rot90(y, k)
        if flip:
            x, y = x[:, ::-1], y[:, ::-1]
        xs.append(x.copy())
        ys.append(y.copy())
    return (torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))[:, None])


# -- networks -----------------------------------------------------------------------------------
class SRCNN(nn.Module):
    """Patch extraction f1×f1×n1, non-linear mapping f2×f2×n2, reconstruction f3×f3 (Fig. 2).

    Replicate padding keeps the output the input's size (the paper trains on valid
    convolutions and pads at test time).
    """

    def __init__(self, n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 1, f3: int = 5):
        super().__init__()
        pad = {"padding_mode": "replicate"}
        self.extract = nn.Conv2d(1, n1, f1, padding=f1 // 2, **pad)
        self.mapping = nn.Conv2d(n1, n2, f2, padding=f2 // 2, **pad)
        self.reconstruct = nn.Conv2d(n2, 1, f3, padding=f3 // 2, **pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.extract(x))
        x = torch.relu(self.mapping(x))
        return self.reconstruct(x)


class VDSR(nn.Module):
    """``depth`` 3×3 conv layers of ``width`` filters; with ``residual`` it adds the input back."""

    def __init__(self, depth: int = 20, width: int = 64, residual: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def build(config: Mapping[str, Any]) -> nn.Module:
    if config["arch"] == "srcnn":
        net: nn.Module = SRCNN(config["n1"], config["n2"], config["f1"], config["f2"],
                               config["f3"])
    else:
        net = VDSR(config["depth"], config["width"], config["residual"])
    init_weights(net, config["init"])
    return net


def init_weights(net: nn.Module, init: str) -> None:
    """"gaussian": N(0, 0.001²) weights (Dong et al. §3.3); "he": N(0, 2/fan_in) (Kim et al.)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            if init == "gaussian":
                nn.init.normal_(m.weight, 0.0, 1e-3)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def make_optimizer(net: nn.Module, config: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or Adam; SRCNN's last layer gets ``lr × last_lr_factor``."""
    last = list(net.reconstruct.parameters()) if isinstance(net, SRCNN) else []
    last_ids = {id(p) for p in last}
    rest = [p for p in net.parameters() if id(p) not in last_ids]
    groups = [{"params": rest, "lr": config["lr"]}]
    if last:
        groups.append({"params": last, "lr": config["lr"] * config["last_lr_factor"]})
    if config["optimizer"] == "adam":
        return torch.optim.Adam(groups, weight_decay=config["weight_decay"])
    return torch.optim.SGD(groups, momentum=config["momentum"],
                           weight_decay=config["weight_decay"])


def adjustable_clip(net: nn.Module, theta: float, lr: float) -> None:
    """Kim et al. §3.2: clip each gradient to [-θ/γ, θ/γ], γ the current learning rate
    (so the effective step is at most θ however high γ is); θ <= 0 turns it off."""
    if theta > 0:
        nn.utils.clip_grad_value_(net.parameters(), theta / lr)


def scales_of(config: Mapping[str, Any]) -> list[int]:
    """Training scales: ``train_scales`` ("2,3,4") or, if empty, just ``scale``."""
    text = str(config.get("train_scales") or "").strip()
    return sorted({int(s) for s in text.split(",") if s.strip()} or {int(config["scale"])})


@torch.no_grad()
def super_resolve(net: nn.Module, y_bicubic: np.ndarray, dev: torch.device) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(y_bicubic, dtype=np.float32))[None, None]
    return net(x.to(dev))[0, 0].double().cpu().numpy()


def evaluate(net: nn.Module, scales: list[int], crop: int, dev: torch.device
             ) -> dict[str, float]:
    """Mean PSNR/SSIM over the held-out images at every scale, model and bicubic."""
    net.eval()
    out: dict[str, float] = {}
    for s in scales:
        rows = []
        for _, low, high in test_pairs(s, crop):
            rows.append(psnr_ssim(high, super_resolve(net, low, dev), s)
                        + psnr_ssim(high, low, s))
        p, q, bp, bq = np.mean(rows, axis=0)
        out |= {f"psnr_x{s}": p, f"ssim_x{s}": q, f"bicubic_x{s}": bp, f"bicubic_ssim_x{s}": bq}
    net.train()
    return out


def lr_at(config: Mapping[str, Any], epoch: int) -> float:
    """Step decay: divide by ``lr_decay`` every ``lr_step`` epochs (Kim et al.: 10 every 20)."""
    step = int(config["lr_step"])
    return config["lr"] / (config["lr_decay"] ** ((epoch - 1) // step)) if step else config["lr"]


# -- search space -------------------------------------------------------------------------------
COMMON = {
    "scale": 3,  # the scale the metric ``psnr`` is measured at
    "patch": 33, "batch": 128, "steps_per_epoch": 1000, "test_crop": 0,
    "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "lr_step": 0, "lr_decay": 10.0,
    "last_lr_factor": 1.0, "clip": 0.0,
    "n1": 64, "n2": 32, "f1": 9, "f2": 1, "f3": 5, "depth": 20, "width": 64, "residual": True,
}

#: SRCNN 9-1-5 (Dong et al. §3.3): SGD lr 1e-4 (1e-5 last layer), Gaussian init, batch 128.
SRCNN_SPACE: dict[str, Any] = {
    **COMMON, "arch": "srcnn", "train_scales": "", "init": "gaussian", "momentum": 0.0,
    "lr": tune.loguniform(1e-5, 1e-3), "last_lr_factor": 0.1, "epochs": 100,
}

#: VDSR (Kim et al. §3.2, §4.1): SGD 0.9, lr 0.1 ÷10 every 20 of 80 epochs, wd 1e-4, θ clip.
VDSR_SPACE: dict[str, Any] = {
    **COMMON, "arch": "vdsr", "train_scales": "2,3,4", "init": "he", "patch": 41, "batch": 64,
    "lr": tune.loguniform(1e-2, 2e-1), "weight_decay": 1e-4, "lr_step": 20, "clip": 0.01,
    "epochs": 80,
}

#: The CPU-laptop scale (see the module docstring for what it shrinks and why).
QUICK_COMMON = {"patch": 32, "batch": 16, "steps_per_epoch": 50, "epochs": 8, "test_crop": 96,
                "optimizer": "adam", "lr": 1e-3, "init": "he", "weight_decay": 0.0}
SRCNN_QUICK = {**QUICK_COMMON, "steps_per_epoch": 200, "lr": 2e-3}
VDSR_QUICK = {**QUICK_COMMON, "depth": 10, "width": 32, "lr_step": 0}


# -- trainable ----------------------------------------------------------------------------------
def train(config: dict[str, Any]) -> None:
    """Tune function trainable shared by ``srcnn`` and ``vdsr`` (``config["arch"]``)."""
    dev = trial.device()
    trial.set_threads()
    trial.seed_everything(int(config["seed"]))
    rng = np.random.default_rng(int(config["seed"]))
    net = build(config).to(dev)
    opt = make_optimizer(net, config)
    start = 0
    state = trial.restore()
    if state:
        net.load_state_dict(state["model"])
        trial.load_optimizer(opt, state["opt"])  # the config's lr wins (PBT may change it)
        start = int(state["epoch"])
        rng = np.random.default_rng([int(config["seed"]), start])
    scales = scales_of(config)
    eval_scales = sorted(set(scales) | {int(config["scale"])})
    loss_fn = nn.MSELoss()
    for epoch in range(start + 1, int(config["epochs"]) + 1):
        lr = lr_at(config, epoch)
        for group, base in zip(opt.param_groups, _base_lrs(config, len(opt.param_groups)),
                               strict=True):
            group["lr"] = lr * base
        total = 0.0
        for _ in range(int(config["steps_per_epoch"])):
            x, y = sample_batch(rng, scales, int(config["batch"]), int(config["patch"]))
            x, y = x.to(dev), y.to(dev)
            loss = loss_fn(net(x), y)
            opt.zero_grad()
            loss.backward()
            adjustable_clip(net, float(config["clip"]), lr)
            opt.step()
            total += float(loss.detach())
        scores = evaluate(net, eval_scales, int(config["test_crop"]), dev)
        s = int(config["scale"])
        metrics_ = {
            "epoch": epoch, "loss": total / int(config["steps_per_epoch"]),
            "updates": epoch * int(config["steps_per_epoch"]),
            "psnr": scores[f"psnr_x{s}"], "ssim": scores[f"ssim_x{s}"],
            "bicubic_psnr": scores[f"bicubic_x{s}"], "bicubic_ssim": scores[f"bicubic_ssim_x{s}"],
            "psnr_gain": scores[f"psnr_x{s}"] - scores[f"bicubic_x{s}"], **scores,
        }
        trial.report(metrics_, {"model": net.state_dict(), "opt": opt.state_dict(),
                                "epoch": epoch})


def _base_lrs(config: Mapping[str, Any], groups: int) -> list[float]:
    return [1.0, float(config["last_lr_factor"])][:groups]


# -- pictures -----------------------------------------------------------------------------------
def side_by_side(config: Mapping[str, Any], checkpoint: Path, folder: Path, tag: str
                 ) -> list[Path]:
    """A PNG per held-out image: bicubic | model | ground truth (colour; Y from the model)."""
    from deepmorning.platform import plots

    net = build(config)
    net.load_state_dict(trial.load_state(checkpoint)["model"])
    net.eval()
    s = int(config["scale"])
    crop = int(config["test_crop"]) or 160
    fig, axes = plots.plt.subplots(len(TEST_IMAGES), 3, figsize=(9, 3.1 * len(TEST_IMAGES)),
                                   dpi=110, squeeze=False)
    for row, name in enumerate(TEST_IMAGES):
        hr_rgb = modcrop(center_crop(load_rgb(name), crop), s)
        up_rgb = np.clip(bicubic(hr_rgb, s), 0, 1)
        ycc = color.rgb2ycbcr(up_rgb)
        y_hr, y_up = rgb_to_y(hr_rgb), ycc[..., 0] / 255.0
        y_sr = np.clip(super_resolve(net, y_up, torch.device("cpu")), 0, 1)
        sr_rgb = np.clip(color.ycbcr2rgb(np.dstack([y_sr * 255.0, ycc[..., 1:]])), 0, 1)
        p_b, _ = psnr_ssim(y_hr, y_up, s)
        p_m, _ = psnr_ssim(y_hr, y_sr, s)
        for col, (img, title) in enumerate([(up_rgb, f"bicubic {p_b:.2f} dB"),
                                            (sr_rgb, f"{config['arch']} {p_m:.2f} dB"),
                                            (hr_rgb, "ground truth")]):
            axes[row, col].imshow(img, interpolation="nearest")
            axes[row, col].set_title(f"{name}: {title}" if col == 0 else title, fontsize=9)
            axes[row, col].axis("off")
    fig.suptitle(f"{config['arch']} ×{s} (Y channel super-resolved; PSNR on Y)")
    path = Path(folder) / f"sr-x{s}-{tag}.png"
    return [plots.save(fig, path)]


# -- claim studies ------------------------------------------------------------------------------
def beats_bicubic_verdict(scales: tuple[int, ...], arm: str = "vdsr"):
    """Arm ``arm``'s PSNR beats the bicubic PSNR of the same images at every scale in
    ``scales``, paired by seed (:func:`deepmorning.tuning.verdict.within`, every seed)."""

    def verdict(results: Any) -> V.Outcome:
        return V.all_of(*(V.within(results, arm, f"psnr_x{s}", f"bicubic_x{s}",
                                   label=f"×{s} model − bicubic (PSNR)", unit=" dB")
                          for s in scales))

    return verdict


def gain_per_arm_verdict(results: Any) -> V.Outcome:
    """Each arm (one scale) beats bicubic (``psnr_gain`` > 0) in every seed."""
    return V.all_of(*(V.level(results, "psnr_gain", arm, 0.0,
                              label=f"{arm}: PSNR − bicubic PSNR (dB)")
                      for arm in sorted(set(results["arm"]))))


def better_verdict(winner: str, loser: str, metric: str = "psnr", margin: float = 0.0):
    """Arm ``winner``'s ``metric`` minus arm ``loser``'s exceeds ``margin`` in every seed
    (:func:`deepmorning.tuning.verdict.paired`)."""

    def verdict(results: Any) -> V.Outcome:
        return V.paired(results, metric, winner, loser, margin=margin)

    return verdict


def vs_srcnn_verdict(results: Any) -> V.Outcome:
    """VDSR beats SRCNN in every seed; the text also says where SRCNN stands to bicubic, since
    the comparison only means something once SRCNN is above it."""
    gain = V.arm_means(results, "psnr_gain").get("srcnn", float("nan"))
    return V.all_of(better_verdict("vdsr", "srcnn")(results),
                    note=f"SRCNN vs bicubic {gain:+.2f} dB (mean, context)")


#: Updates per study at ``quick`` (epochs × steps_per_epoch), see the docs for why.
SRCNN_BUDGET = {"epochs": 8, "steps_per_epoch": 800}  # 6,400 updates
VS_SRCNN_BUDGET = {"epochs": 32, "steps_per_epoch": 50}  # 1,600 updates, both arms
MULTISCALE_MARGIN = -0.1  # dB: Kim et al. Table 2, the {2,3,4} model within ~0.1 dB at ×2

SRCNN_STUDIES = {
    "beats-bicubic": Study(
        name="beats-bicubic",
        claim="SRCNN beats bicubic interpolation in PSNR on held-out images at ×2 and ×3.",
        arms={"x2": {"scale": 2}, "x3": {"scale": 3}},
        metric="psnr_gain", mode="max",
        paper="Dong et al. 2014 Table 2 (Set5): ×2 36.34 vs 33.66 dB bicubic, ×3 32.39 vs "
              "30.39 dB (approx.); Fig. 1: above bicubic after ~10^7 backprops",
        verdict=gain_per_arm_verdict,
        base=SRCNN_BUDGET,
        paper_scale={"epochs": 100, "steps_per_epoch": 10000, "lr": 1e-4},
        columns=("psnr", "bicubic_psnr", "ssim", "bicubic_ssim"),
    ),
}

VDSR_STUDIES = {
    "beats-bicubic": Study(
        name="beats-bicubic",
        claim="One VDSR model trained on ×2/×3/×4 beats bicubic PSNR at ×2 and ×3.",
        arms={"vdsr": {}},
        metric="psnr_gain", mode="max",
        paper="Kim et al. 2016 Table 3 (Set5, one model for ×2,3,4): ×2 37.53 vs 33.66 dB "
              "bicubic, ×3 33.66 vs 30.39 dB (approx.)",
        verdict=beats_bicubic_verdict((2, 3)),
        base={"depth": 20, "epochs": 16},  # the paper's depth (width 32): 800 updates
        paper_scale={"epochs": 80, "steps_per_epoch": 2000, "lr": 0.1},
        columns=("psnr_x2", "bicubic_x2", "psnr_x3", "bicubic_x3", "psnr_x4", "bicubic_x4",
                 "ssim_x2", "bicubic_ssim_x2"),
    ),
    "multiscale": Study(
        name="multiscale",
        claim="One model trained on ×2, ×3 and ×4 is about as good at ×2 as a model trained on "
              "×2 only (within ~0.1 dB).",
        arms={"multi": {"train_scales": "2,3,4"}, "x2-only": {"train_scales": "2"}},
        metric="psnr", mode="max",
        paper="Kim et al. 2016 §4.3 / Table 2 (Set5 ×2): trained on {2,3,4} 37.06 dB vs trained "
              "on ×2 only 37.10 dB (approx.)",
        verdict=better_verdict("multi", "x2-only", margin=MULTISCALE_MARGIN),
        base={"scale": 2, "epochs": 16},  # 800 updates each (equal updates)
        paper_scale={"epochs": 80, "steps_per_epoch": 2000, "scale": 2, "lr": 0.1},
        columns=("bicubic_psnr", "psnr_gain", "ssim"),
    ),
    "vs-srcnn": Study(
        name="vs-srcnn",
        claim="VDSR beats SRCNN (PSNR at ×3, same data and equal updates).",
        arms={"vdsr": {}, "srcnn": {"arch": "srcnn", "last_lr_factor": 0.1, "clip": 0.0,
                                    "lr": SRCNN_QUICK["lr"]}},
        metric="psnr", mode="max",
        paper="Kim et al. 2016 Table 3 (Set5 ×3): VDSR 33.66 dB vs SRCNN 32.75 dB vs bicubic "
              "30.39 dB (approx.)",
        verdict=vs_srcnn_verdict,
        base={"train_scales": "3", **VS_SRCNN_BUDGET},
        paper_scale={"epochs": 80, "steps_per_epoch": 2000, "lr": 0.1},
        columns=("bicubic_psnr", "psnr_gain", "ssim"),
    ),
    "residual": Study(
        name="residual",
        claim="Residual learning converges faster than a non-residual net of the same depth.",
        arms={"residual": {"residual": True}, "plain": {"residual": False}},
        metric="psnr", mode="max",
        paper="Kim et al. 2016 Table 1/Fig. 3 (Set5 ×2, 20 layers): after 10 epochs residual "
              "36.90 dB vs non-residual 32.97 dB (best lr each), gap 3.93 dB shrinking to 0.38 "
              "dB by epoch 80 (approx.)",
        verdict=better_verdict("residual", "plain"),
        base={"scale": 2, "train_scales": "2", "epochs": 4},
        paper_scale={"epochs": 10, "steps_per_epoch": 2000, "scale": 2, "train_scales": "2",
                     "lr": 0.1},
        columns=("bicubic_psnr", "ssim", "loss"),
    ),
}

SRCNN_MODEL = register(TuneModel(
    name="srcnn",
    description="SRCNN 9-1-5 super-resolution on the Y channel of scikit-image's pictures",
    paper="Dong et al. 2014, Learning a Deep Convolutional Network for Image Super-Resolution",
    trainable=train, space=SRCNN_SPACE, metric="psnr", mode="max", quick=SRCNN_QUICK,
    studies=SRCNN_STUDIES, pictures=side_by_side,
))
VDSR_MODEL = register(TuneModel(
    name="vdsr",
    description="VDSR: 20-layer residual super-resolution, one model for ×2/×3/×4",
    paper="Kim et al. 2016, Accurate Image Super-Resolution Using Very Deep Convolutional "
          "Networks",
    trainable=train, space=VDSR_SPACE, metric="psnr", mode="max", quick=VDSR_QUICK,
    studies=VDSR_STUDIES, pictures=side_by_side,
))

