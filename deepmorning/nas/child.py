"""Child networks of Zoph & Le (ICLR 2017): built from an architecture, trained for a reward.

Building rules (Sec. 3.3): each layer is conv -> batch norm -> ReLU (Sec. 4.1); a layer with
several inputs concatenates them on depth, zero-padding smaller maps to the largest; a layer
with no input takes the image; every layer no later layer uses is concatenated (zero-padded)
before the classifier. A space without skip connections samples chains (layer i reads layer
i-1), so its children are plain stacks. Strides have a height and a width (Fig. 2). The
classifier is global average pooling and a linear layer (the paper does not specify it).

Training (Sec. 4.1): momentum 0.9 with Nesterov, learning rate 0.1, weight decay 1e-4; the
reward is the maximum validation accuracy of the last 5 epochs, cubed.

The Ray task around :func:`fit` and the synthetic trainers for tests and benchmarks are in
:mod:`deepmorning.nas.task` (importable without torch); their names are re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepmorning.nas.space import Architecture
from deepmorning.nas.task import (  # noqa: F401 - re-exported: the child's settings and task
    TRAINERS,
    ChildConfig,
    check_trainer,
    child_seed,
    hide_gpus,
    run_child,
    synthetic_reward,
)


def _pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]))


def concat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate feature maps on depth, zero-padding each to the largest height and width."""
    if len(tensors) == 1:
        return tensors[0]
    height = max(t.shape[-2] for t in tensors)
    width = max(t.shape[-1] for t in tensors)
    return torch.cat([_pad_to(t, height, width) for t in tensors], dim=1)


class ChildNet(nn.Module):
    def __init__(self, arch: Architecture, input_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.arch = arch
        channels_in, _, _ = input_shape
        out_channels: list[int] = []
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in arch.layers:
            cin = sum(out_channels[j] for j in layer.inputs) if layer.inputs else channels_in
            self.convs.append(
                nn.Conv2d(
                    cin,
                    layer.num_filters,
                    kernel_size=(layer.filter_height, layer.filter_width),
                    stride=layer.stride,
                    padding=(layer.filter_height // 2, layer.filter_width // 2),
                    bias=False,
                )
            )
            self.norms.append(nn.BatchNorm2d(layer.num_filters))
            out_channels.append(layer.num_filters)
        used = {j for layer in arch.layers for j in layer.inputs}
        self.unused = [i for i in range(len(arch.layers)) if i not in used]
        self.classifier = nn.Linear(sum(out_channels[i] for i in self.unused), num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        for layer, conv, norm in zip(self.arch.layers, self.convs, self.norms, strict=True):
            x = concat_padded([outputs[j] for j in layer.inputs]) if layer.inputs else image
            outputs.append(F.relu(norm(conv(x))))
        features = concat_padded([outputs[i] for i in self.unused])
        return self.classifier(features.mean(dim=(-2, -1)))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def child_device(gpus: float) -> torch.device:
    """CUDA when the child was given a GPU, the CPU when it was given none; never a silent switch.

    Ray does not hide GPUs from a task that asked for none, so such a child hides them itself
    (``CUDA_VISIBLE_DEVICES=""``, effective when CUDA is not yet initialised in the worker) and
    trains on the CPU whatever it can see. A child given a GPU that torch cannot use is an error.
    """
    if gpus <= 0:
        hide_gpus()
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"this task was given {gpus:g} GPU but torch {torch.__version__} cannot use CUDA "
            "here; install a CUDA build of torch on the GPU nodes or ask for 0 GPUs"
        )
    return torch.device("cuda")


def _tensors(x: np.ndarray, y: np.ndarray, device: torch.device):
    return torch.tensor(np.asarray(x), device=device), torch.tensor(np.asarray(y), device=device)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), batch):
        correct += (model(x[start:start + batch]).argmax(-1) == y[start:start + batch]).sum()
    return float(correct) / max(1, len(x))


class BestEpoch:
    """The weights of the epoch whose validation figure is reported, kept so that the test
    figure beside it is of the same model (not of the last epoch's)."""

    def __init__(self, lower_is_better: bool = False) -> None:
        self.sign = -1.0 if lower_is_better else 1.0
        self.value: float | None = None
        self.epoch = 0  # 1-based; 0: none offered
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, epoch: int, value: float, model: nn.Module) -> None:
        """Keep ``model``'s weights if ``value`` is strictly better than the best so far."""
        if self.value is None or self.sign * value > self.sign * self.value:
            self.value, self.epoch = value, epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


def fit(arch: Architecture, data: Any, cfg: ChildConfig, *, test: bool = False,
        progress=None) -> dict[str, Any]:
    """Train a child on ``data`` (a :class:`deepmorning.nas.data.Splits`) and score it.

    ``val_acc`` is the best validation accuracy of the last ``reward_window`` epochs (the
    paper's reward, Sec. 4.1). With ``test`` the test accuracy is of that same epoch's weights
    (``val_epoch``, 1-based), not of the last epoch's.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    device = child_device(cfg.gpus)
    model = ChildNet(arch, data.input_shape, data.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                          weight_decay=cfg.weight_decay)
    x_train, y_train = _tensors(data.x_train, data.y_train, device)
    x_val, y_val = _tensors(data.x_val, data.y_val, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    val_curve: list[float] = []
    best = BestEpoch()
    window_start = cfg.epochs - cfg.reward_window  # epochs from here on count for the reward
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen).to(device)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two examples
                continue
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_curve.append(accuracy(model, x_val, y_val))
        if test and epoch >= window_start:
            best.offer(epoch + 1, val_curve[-1], model)
        if progress is not None:
            progress(epoch + 1, val_curve[-1])
    val_acc = max(val_curve[-cfg.reward_window:]) if val_curve else 0.0
    result = {
        "val_acc": val_acc,
        "reward": val_acc ** cfg.reward_power,
        "val_curve": val_curve,
        "params": count_parameters(model),
    }
    if test:
        best.restore(model)
        x_test, y_test = _tensors(data.x_test, data.y_test, device)
        result["test_acc"] = accuracy(model, x_test, y_test)
        result["val_epoch"] = best.epoch
    return result
