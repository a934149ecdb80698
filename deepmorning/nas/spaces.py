"""The two search spaces behind one interface: CNN layers (Sec. 3.1-3.3) and recurrent cells
(Sec. 3.4). A space or an architecture is told apart by its serialized fields (cells have a
``base`` / ``nodes``), so history rows, journals and actor arguments stay plain JSON."""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from deepmorning.nas.cell import CellArchitecture, CellController, CellSpace, sample_uniform_cell
from deepmorning.nas.controller import Controller
from deepmorning.nas.space import Architecture, SearchSpace, sample_uniform

AnySpace = SearchSpace | CellSpace
AnyArchitecture = Architecture | CellArchitecture


def space_from_dict(data: dict[str, Any]) -> AnySpace:
    return CellSpace.from_dict(data) if "base" in data else SearchSpace.from_dict(data)


def arch_from_dict(data: dict[str, Any]) -> AnyArchitecture:
    return CellArchitecture.from_dict(data) if "nodes" in data else Architecture.from_dict(data)


def build_controller(space: AnySpace, hidden: int, lstm_layers: int, init_range: float
                     ) -> nn.Module:
    kind = CellController if isinstance(space, CellSpace) else Controller
    return kind(space, hidden=hidden, lstm_layers=lstm_layers, init_range=init_range)


def controller_tensors(space: AnySpace, lstm_layers: int) -> int:
    """The controller's parameter tensors: the most shards (``--param-servers``) its parameters
    can be split into, since a shard holds whole tensors (22 for the paper's CNN space, 21 for
    its cells). The count does not depend on the hidden size, so a 1-unit controller counts."""
    return sum(1 for _ in build_controller(space, 1, lstm_layers, 0.08).parameters())


def sample_random(space: AnySpace, num_layers: int, rng: random.Random) -> AnyArchitecture:
    if isinstance(space, CellSpace):
        return sample_uniform_cell(space, rng)
    return sample_uniform(space, num_layers, rng)
