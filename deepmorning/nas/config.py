"""Configuration of a NAS search, with the paper's values and a laptop-sized preset.

``paper`` — Zoph & Le, *Neural Architecture Search with Reinforcement Learning*, ICLR 2017:

* Controller (Sec. 4.1): 2-layer LSTM, 35 hidden units per layer, Adam with learning rate
  0.0006, weights uniform in [-0.08, 0.08].
* Search space (Sec. 4.1): filter height and width in {1, 3, 5, 7}, number of filters in
  {24, 36, 48, 64}; stride fixed at 1 (the ``strides`` option adds the paper's {1, 2, 3}
  variant); skip connections by anchor points (Sec. 3.3).
* Depth schedule (Sec. 4.1): 6 layers at first, 2 more every 1,600 sampled architectures,
  12,800 architectures in total.
* Children (Sec. 4.1): 50 epochs, momentum 0.9 with Nesterov, learning rate 0.1, weight decay
  1e-4; reward = (max validation accuracy of the last 5 epochs)^3; CIFAR-10 with 45,000
  training and 5,000 validation images.
* Distribution (Sec. 3.4): S = 20 parameter-server shards, K = 100 controller replicas, m = 8
  children per replica, gradients pushed asynchronously.
* REINFORCE baseline (Sec. 3.2): an exponential moving average of earlier rewards. The paper
  gives no decay; we use 0.99 (ENAS's value: a horizon of about 100 rewards, short next to
  12,800 samples yet long enough to average over many replicas' batches).

``quick`` — the same algorithm shrunk for a 2-CPU laptop (a few minutes): scikit-learn's
digits, S = 2, K = 2, m = 2, 24 children, 3 to 5 layers with {8, 12, 16, 24} filters, 6 epochs
per child, baseline decay 0.9 (a horizon of about 10 rewards, to fit 24 children). Everything
else is the paper's.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmorning.nas.child import ChildConfig, check_trainer
from deepmorning.nas.space import SearchSpace
from deepmorning.platform.errors import DeepmorningError


@dataclass
class ControllerConfig:
    hidden: int = 35
    lstm_layers: int = 2
    lr: float = 6e-4
    init_range: float = 0.08
    baseline_decay: float = 0.99
    entropy_weight: float = 0.0


@dataclass
class NASConfig:
    preset: str = "paper"
    dataset: str = "cifar10:data/cifar-10-batches-bin"
    data_limit: int | None = None
    strategy: str = "rl"  # "rl" or "random" (the paper's control)
    max_children: int = 12800
    param_servers: int = 20
    controllers: int = 100
    children_per_controller: int = 8
    apply_every: int = 1  # servers apply an update after this many gradients (PTB: 10)
    cpus_per_child: float = 1.0
    gpus_per_child: float = 1.0
    child_retries: int = 2
    seed: int = 0
    space: SearchSpace = field(default_factory=SearchSpace)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    child: ChildConfig = field(default_factory=ChildConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NASConfig:
        data = dict(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise DeepmorningError(f"unknown NAS config key(s): {', '.join(sorted(unknown))}")
        try:
            space = SearchSpace.from_dict(data.pop("space", {}))
            controller = ControllerConfig(**data.pop("controller", {}))
            child = ChildConfig(**data.pop("child", {}))
            cfg = cls(**data, space=space, controller=controller, child=child)
        except (TypeError, ValueError) as exc:
            raise DeepmorningError(f"bad NAS config: {exc}") from exc
        cfg.validate()
        return cfg

    def validate(self) -> None:
        checks = [
            (self.strategy in ("rl", "random"), "--strategy must be 'rl' or 'random'"),
            (self.max_children >= 1, "--max-children must be at least 1"),
            (self.param_servers >= 1, "--param-servers must be at least 1"),
            (self.controllers >= 1, "--controllers must be at least 1"),
            (self.children_per_controller >= 1, "--children-per-controller must be at least 1"),
            (self.apply_every >= 1, "--apply-every must be at least 1"),
            (self.gpus_per_child >= 0 and self.cpus_per_child >= 0,
             "--gpus-per-child and --cpus-per-child must not be negative"),
            (self.child.epochs >= 1, "--child-epochs must be at least 1"),
            (0 <= self.controller.baseline_decay < 1, "--baseline-decay must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise DeepmorningError(message)
        try:
            check_trainer(self.child.trainer)
        except ValueError as exc:
            raise DeepmorningError(str(exc)) from exc


def paper() -> NASConfig:
    """Zoph & Le 2017 as published (see the module docstring for the sources)."""
    return NASConfig()


def quick() -> NASConfig:
    """The paper's search shrunk for a 2-CPU laptop: minutes, not 800 GPUs for weeks."""
    return NASConfig(
        preset="quick",
        dataset="digits",
        max_children=24,
        param_servers=2,
        controllers=2,
        children_per_controller=2,
        gpus_per_child=0.0,
        space=SearchSpace(num_filters=(8, 12, 16, 24), layers_start=3, layers_step=1,
                          layers_every=12, layers_max=5),
        controller=ControllerConfig(baseline_decay=0.9),
        child=ChildConfig(epochs=6, batch_size=64),
    )


PRESETS = {"quick": quick, "paper": paper}


def load_config(preset: str, config_file: Path | None = None) -> NASConfig:
    if preset not in PRESETS:
        raise DeepmorningError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    cfg = PRESETS[preset]().to_dict()
    if config_file is not None:
        cfg = _merge(cfg, _read_config_file(config_file))
    return NASConfig.from_dict(cfg)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DeepmorningError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - JSON and YAML errors alike
        raise DeepmorningError(f"config file {path} is malformed: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise DeepmorningError(f"config file {path} must hold a mapping of settings")
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
