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
per child, baseline decay 0.9 (a horizon of about 10 rewards, to fit 24 children), controller
learning rate 0.01 (:data:`QUICK_LR`: the paper's 6e-4 would barely move the controller in a few
dozen updates). Everything else is the paper's. ``--dataset strokes`` is the generated task on
which architectures differ (the RL-vs-random comparison uses it); digits stays the default.

``--space rnn`` — the recurrent-cell search (Sec. 3.4 and 4.2) with its own presets:

* ``paper``: base-8 cells over {add, elem_mult} x {identity, tanh, sigmoid, relu}; S = 20,
  K = 400, m = 1, servers apply after 10 gradients, controller lr 0.0005; Penn Treebank (word
  level) from ``ptb:PATH``; reward 80 / (validation perplexity)^2. The paper does not give the
  children's training here; we use the small setting of Zaremba et al. (2014) — 2 layers of 200
  units, BPTT 35, batch 20 — with dropout 0.2, tied embeddings, Adam, 2 epochs per child. The
  number of children is not in our notes of the paper; 12,800 like the CNN search.
* ``quick``: the embedded character-level text (Python's help topics, the first 60,000
  characters), S = 2, K = 2, m = 1, G = 2, 8 children, controller lr 0.01 (as for the CNN
  ``quick``), one layer of 48 units, one epoch, and
  c = 4: one epoch leaves character perplexities of about 10 to 20 (measured: 13.7 to 21.5),
  so rewards of about 0.01 to 0.04, the range of the paper's word-level rewards
  (80 / 90^2 = 0.01 to 80 / 60^2 = 0.022).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmorning.nas.cell import CellSpace
from deepmorning.nas.child import ChildConfig, check_trainer
from deepmorning.nas.space import SearchSpace
from deepmorning.nas.task import table_trainer
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
class LMConfig:
    """The language model a recurrent-cell child trains (see the module docstring)."""

    hidden: int = 200
    layers: int = 2
    dropout: float = 0.2
    bptt: int = 35
    clip: float = 0.25
    reward_c: float = 80.0  # reward = c / (validation perplexity)^2 (Sec. 4.2)


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
    # Processes hosting the S shards and the K replicas (0: at most ps.AUTO_PROCESSES each).
    # Not the paper's: a deployment choice (each process holding torch costs about 270 MB).
    server_processes: int = 0
    replica_processes: int = 0
    cpus_per_child: float = 1.0
    gpus_per_child: float = 1.0
    child_retries: int = 2
    seed: int = 0
    search_space: str = "cnn"  # "cnn" (Sec. 3.1-3.3) or "rnn" (the cell search, Sec. 3.4)
    space: SearchSpace = field(default_factory=SearchSpace)
    cell: CellSpace = field(default_factory=CellSpace)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    child: ChildConfig = field(default_factory=ChildConfig)
    lm: LMConfig = field(default_factory=LMConfig)

    @property
    def arch_space(self) -> SearchSpace | CellSpace:
        """The space the controller samples from."""
        return self.cell if self.search_space == "rnn" else self.space

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
            cell = CellSpace.from_dict(data.pop("cell", {}))
            controller = ControllerConfig(**data.pop("controller", {}))
            child = ChildConfig(**data.pop("child", {}))
            lm = LMConfig(**data.pop("lm", {}))
            cfg = cls(**data, space=space, cell=cell, controller=controller, child=child, lm=lm)
        except (TypeError, ValueError) as exc:
            raise DeepmorningError(f"bad NAS config: {exc}") from exc
        cfg.validate()
        return cfg

    def validate(self) -> None:
        checks = [
            (self.strategy in ("rl", "random"), "--strategy must be 'rl' or 'random'"),
            (self.search_space in ("cnn", "rnn"), "--space must be 'cnn' or 'rnn'"),
            (self.max_children >= 1, "--max-children must be at least 1"),
            (self.param_servers >= 1, "--param-servers must be at least 1"),
            (self.controllers >= 1, "--controllers must be at least 1"),
            (self.children_per_controller >= 1, "--children-per-controller must be at least 1"),
            (self.apply_every >= 1, "--apply-every must be at least 1"),
            (self.server_processes >= 0 and self.replica_processes >= 0,
             "--server-processes and --replica-processes must not be negative"),
            (self.gpus_per_child >= 0 and self.cpus_per_child >= 0,
             "--gpus-per-child and --cpus-per-child must not be negative"),
            (self.child.epochs >= 1, "--child-epochs must be at least 1"),
            (0 <= self.controller.baseline_decay < 1, "--baseline-decay must be in [0, 1)"),
            (self.controller.hidden >= 1 and self.controller.lstm_layers >= 1,
             "the controller needs hidden >= 1 and lstm_layers >= 1"),
            (self.seed >= 0, "--seed must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise DeepmorningError(message)
        self._check_param_servers()
        try:
            check_trainer(self.child.trainer)
        except ValueError as exc:
            raise DeepmorningError(str(exc)) from exc
        self._check_table_space()

    def _check_table_space(self) -> None:
        """Children looked up in a table must come from the table's space (fixed depth)."""
        table = table_trainer(self.child.trainer)
        if table is None:
            return
        from deepmorning.nas.table import usable_table

        _, spec, _ = usable_table(table[0])
        if self.search_space != "cnn" or self.space.to_dict() != spec.search_space().to_dict():
            raise DeepmorningError(
                f"--trainer {self.child.trainer}: the search space must be the table's "
                f"({spec.name}: {spec.description}); leave the space to the table")

    def _check_param_servers(self) -> None:
        """A shard holds whole tensors: more shards than the controller has tensors would leave
        a server with nothing to hold (a Ray traceback once it starts). Checked before Ray."""
        from deepmorning.nas.spaces import controller_tensors  # torch: only when validating

        limit = controller_tensors(self.arch_space, self.controller.lstm_layers)
        if self.param_servers > limit:
            raise DeepmorningError(
                f"--param-servers {self.param_servers} is more than the {limit} parameter "
                f"tensors of the {self.search_space} controller (a shard holds whole tensors); "
                f"use at most {limit}")


# The controller's Adam learning rate in the `quick` presets: with 24-100 children (12-50
# updates) the paper's 6e-4 / 5e-4 would move the controller's logits by about 0.01 in the whole
# search, so RL would be random search; 0.01 lets 50 Adam steps move a logit by up to ~0.5.
QUICK_LR = 0.01


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
        controller=ControllerConfig(lr=QUICK_LR, baseline_decay=0.9),
        child=ChildConfig(epochs=6, batch_size=64),
    )


def rnn_paper() -> NASConfig:
    """The recurrent-cell search of Sec. 4.2 (see the module docstring)."""
    return NASConfig(
        search_space="rnn", dataset="ptb:data/ptb", param_servers=20, controllers=400,
        children_per_controller=1, apply_every=10, controller=ControllerConfig(lr=5e-4),
        child=ChildConfig(epochs=2, batch_size=20, lr=2e-3),
    )


def rnn_quick() -> NASConfig:
    """The cell search shrunk for a 2-CPU laptop on the embedded text."""
    return NASConfig(
        preset="quick", search_space="rnn", dataset="pydoc", data_limit=60_000,
        max_children=8, param_servers=2, controllers=2, children_per_controller=1,
        apply_every=2, gpus_per_child=0.0,
        controller=ControllerConfig(lr=QUICK_LR, baseline_decay=0.9),
        child=ChildConfig(epochs=1, batch_size=16, lr=3e-3),
        lm=LMConfig(hidden=48, layers=1, dropout=0.0, reward_c=4.0),
    )


PRESETS = {"quick": quick, "paper": paper}
RNN_PRESETS = {"quick": rnn_quick, "paper": rnn_paper}


def use_table_space(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config dict whose children come from a table (``--trainer table[:PATH]``) searches the
    table's space: fixed depth, the table's choices, its dataset (recorded; nothing is loaded).
    A relative PATH is made absolute, so Ray workers find it wherever they run."""
    table = table_trainer(cfg["child"]["trainer"])
    if table is None:
        return cfg
    from deepmorning.nas.table import table_path, usable_table

    path, wait = table
    if path is not None:
        path = str(table_path(path))
        cfg["child"]["trainer"] = f"table:{path}" + (f"@{wait:g}" if wait else "")
    _, spec, _ = usable_table(path)
    strides = cfg.get("space", {}).get("strides")
    if strides:
        raise DeepmorningError(f"table {spec.name} has no strides to predict "
                               "(leave out --predict-strides)")
    cfg["search_space"] = "cnn"
    cfg["space"] = spec.search_space().to_dict()
    cfg["dataset"] = spec.dataset
    return cfg


def load_config(preset: str, config_file: Path | None = None, space: str = "cnn") -> NASConfig:
    presets = RNN_PRESETS if space == "rnn" else PRESETS
    if preset not in presets:
        raise DeepmorningError(f"unknown preset '{preset}' (choose from {', '.join(presets)})")
    cfg = presets[preset]().to_dict()
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
