"""The CNN search space of Zoph & Le (ICLR 2017), Sec. 3.1-3.3 and 4.1.

Per layer the controller picks a filter height, a filter width, optionally a stride height and a
stride width (predicted separately, as in the paper's Fig. 2), a number of filters, and
(Sec. 3.3, anchor points) which earlier layers feed this one. Without skip connections the
network is the paper's base case, a chain: layer i reads layer i-1 (the architecture says so
explicitly, ``inputs=(i-1,)``). An :class:`Architecture` is plain data: it serializes to JSON and
prints as one line, e.g.::

    L0 3x5x36 | L1 7x1x24 <-[0] | L2 5x5x48 s2x1 <-[0,1]
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

# Token types the controller emits for one layer, in order (Fig. 2 of the paper, with the
# stride height and width after the filter shape when they are searched, the anchor point last).
FILTER_HEIGHT = "filter_height"
FILTER_WIDTH = "filter_width"
NUM_FILTERS = "num_filters"
STRIDE_HEIGHT = "stride_height"
STRIDE_WIDTH = "stride_width"


@dataclass(frozen=True)
class SearchSpace:
    """Choices per layer and the depth schedule (paper values are the defaults, Sec. 4.1)."""

    filter_heights: tuple[int, ...] = (1, 3, 5, 7)
    filter_widths: tuple[int, ...] = (1, 3, 5, 7)
    num_filters: tuple[int, ...] = (24, 36, 48, 64)
    # () = stride fixed at 1 (the paper's first CIFAR-10 space); (1, 2, 3) = predicted strides,
    # height and width each chosen from this list (Fig. 2).
    strides: tuple[int, ...] = ()
    skip_connections: bool = True
    # Depth schedule: start at 6 layers, +2 every 1,600 sampled architectures (Sec. 4.1).
    layers_start: int = 6
    layers_step: int = 2
    layers_every: int = 1600
    layers_max: int | None = None  # the deepest the schedule goes; None: no cap

    def __post_init__(self) -> None:
        for name in ("filter_heights", "filter_widths", "num_filters"):
            values = getattr(self, name)
            if not values or any(int(v) < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive integers")
        if any(int(s) < 1 for s in self.strides):
            raise ValueError("strides must be positive integers")
        for name in ("filter_heights", "filter_widths", "num_filters", "strides"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                # a value listed twice would be sampled under one index and scored under another
                raise ValueError(f"{name} lists a value twice: {list(values)}")
        if self.layers_start < 1 or self.layers_every < 1 or self.layers_step < 0:
            raise ValueError("the depth schedule needs layers_start >= 1 and layers_every >= 1")
        if self.layers_max is not None and self.layers_max < self.layers_start:
            # 0 once meant "no cap"; a cap below the first depth is a mistake, not a schedule
            raise ValueError(f"layers_max ({self.layers_max}) must be at least layers_start "
                             f"({self.layers_start}); leave it out (null) for no cap")

    def token_choices(self) -> list[tuple[str, tuple[int, ...]]]:
        """The per-layer tokens in emission order, with their vocabularies."""
        tokens = [(FILTER_HEIGHT, self.filter_heights), (FILTER_WIDTH, self.filter_widths)]
        if self.strides:
            tokens += [(STRIDE_HEIGHT, self.strides), (STRIDE_WIDTH, self.strides)]
        tokens.append((NUM_FILTERS, self.num_filters))
        return tokens

    def num_layers(self, sample_index: int) -> int:
        """Depth for the ``sample_index``-th sampled architecture (0-based)."""
        depth = self.layers_start + self.layers_step * (sample_index // self.layers_every)
        return depth if self.layers_max is None else min(depth, self.layers_max)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SearchSpace:
        tupled = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**tupled)


@dataclass(frozen=True)
class Layer:
    filter_height: int
    filter_width: int
    num_filters: int
    stride_height: int = 1
    stride_width: int = 1
    inputs: tuple[int, ...] = ()  # indices of earlier layers; () means the image

    @property
    def stride(self) -> tuple[int, int]:
        return (self.stride_height, self.stride_width)


@dataclass(frozen=True)
class Architecture:
    layers: tuple[Layer, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.layers)

    def to_dict(self) -> dict:
        return {"layers": [asdict(layer) | {"inputs": list(layer.inputs)} for layer in self.layers]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        layers = []
        for i, raw in enumerate(data["layers"]):
            inputs = tuple(int(j) for j in raw.get("inputs", ()))
            if any(j < 0 or j >= i for j in inputs):
                raise ValueError(f"layer {i} takes input from a layer that does not precede it")
            square = int(raw.get("stride", 1))  # older runs stored one square stride
            layers.append(
                Layer(
                    filter_height=int(raw["filter_height"]),
                    filter_width=int(raw["filter_width"]),
                    num_filters=int(raw["num_filters"]),
                    stride_height=int(raw.get("stride_height", square)),
                    stride_width=int(raw.get("stride_width", square)),
                    inputs=inputs,
                )
            )
        return cls(tuple(layers))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        parts = []
        for i, layer in enumerate(self.layers):
            text = f"L{i} {layer.filter_height}x{layer.filter_width}x{layer.num_filters}"
            if layer.stride != (1, 1):
                text += f" s{layer.stride_height}x{layer.stride_width}"
            if layer.inputs:
                text += " <-[" + ",".join(map(str, layer.inputs)) + "]"
            parts.append(text)
        return " | ".join(parts)

    def is_valid(self, space: SearchSpace) -> bool:
        for i, layer in enumerate(self.layers):
            if layer.filter_height not in space.filter_heights:
                return False
            if layer.filter_width not in space.filter_widths:
                return False
            if layer.num_filters not in space.num_filters:
                return False
            if any(s not in (space.strides or (1,)) for s in layer.stride):
                return False
            if any(j < 0 or j >= i for j in layer.inputs):
                return False
            if not space.skip_connections and layer.inputs != chain_inputs(i):
                return False
        return True


def chain_inputs(i: int) -> tuple[int, ...]:
    """Inputs of layer ``i`` in the paper's base case without skip connections: the layer before."""
    return (i - 1,) if i > 0 else ()


def sample_uniform(space: SearchSpace, num_layers: int, rng: random.Random) -> Architecture:
    """The paper's random-search control: every token uniform, every connection p = 0.5."""
    layers = []
    for i in range(num_layers):
        inputs: Sequence[int] = chain_inputs(i)
        if space.skip_connections:
            inputs = tuple(j for j in range(i) if rng.random() < 0.5)
        strides = space.strides or (1,)
        layers.append(
            Layer(
                filter_height=rng.choice(space.filter_heights),
                filter_width=rng.choice(space.filter_widths),
                num_filters=rng.choice(space.num_filters),
                stride_height=rng.choice(strides),
                stride_width=rng.choice(strides),
                inputs=tuple(inputs),
            )
        )
    return Architecture(tuple(layers))
