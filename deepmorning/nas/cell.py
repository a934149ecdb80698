"""The recurrent-cell search space of Zoph & Le (ICLR 2017), Sec. 3.4 (Fig. 4 and 5), in torch.

A cell maps ``(x_t, h_{t-1}, c_{t-1})`` to ``(h_t, c_t)`` through a full binary tree with
``base`` leaves (the paper's search uses base 8: 8 + 4 + 2 + 1 = 15 tree nodes):

* leaf ``k`` combines the inputs: ``pre_k = combine(W_k x_t + b_k, U_k h_{t-1})``;
* inner node ``n`` combines its two children's outputs: ``pre_n = combine(out_l, out_r)``;
* every node's output is ``out_n = activation(pre_n)``; the root's output is ``h_t``.

For every node the controller picks the combination (``add``, ``elem_mult``) and the activation
(``identity``, ``tanh``, ``sigmoid``, ``relu``). Then the *cell inject*: a combination and an
activation that merge ``c_{t-1}`` into one node's output (``out_i <- act(combine(out_i,
c_{t-1}))``, before later nodes read it), and the two *cell indices*: ``i``, the node ``c_{t-1}``
is injected into, and ``j``, the node whose pre-activation value becomes ``c_t`` (paper, Fig. 5:
"the new c_t is set to the output of tree index 1 before the activation"). Both indices range
over every node but the root. Leaves combine with their own weights; inner nodes have none.

Every encoding of this form is a valid cell, so the controller (:class:`CellController`) can
only sample valid cells. An LSTM and a plain tanh RNN are points of the space
(:func:`lstm_cell`, :func:`tanh_rnn_cell`; the tests check them against ``torch.nn.LSTMCell`` and
``torch.nn.RNNCell`` with tied weights).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

COMBINATIONS = ("add", "elem_mult")
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu")
SHORT = {"add": "+", "elem_mult": "*", "identity": "id", "tanh": "tanh", "sigmoid": "sig",
         "relu": "relu"}


@dataclass(frozen=True)
class CellSpace:
    """The paper's recurrent-cell space (Sec. 4.2): base 8, the combinations and activations."""

    base: int = 8
    combinations: tuple[str, ...] = COMBINATIONS
    activations: tuple[str, ...] = ACTIVATIONS

    def __post_init__(self) -> None:
        if self.base < 2 or self.base & (self.base - 1):
            raise ValueError("the cell's base must be a power of two, at least 2")
        for name, values, known in (("combinations", self.combinations, COMBINATIONS),
                                    ("activations", self.activations, ACTIVATIONS)):
            if not values or any(v not in known for v in values):
                raise ValueError(f"{name} must be chosen from {', '.join(known)}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice: {list(values)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CellSpace:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def num_nodes(self) -> int:
        return 2 * self.base - 1

    def tokens(self) -> list[tuple[str, int]]:
        """The controller's tokens in order: (type, number of choices)."""
        per_node = [("combination", len(self.combinations)),
                    ("activation", len(self.activations))]
        return (per_node * self.num_nodes + per_node
                + [("inject_index", self.num_nodes - 1), ("cell_index", self.num_nodes - 1)])

    def num_layers(self, sample_index: int) -> int:  # the driver's depth schedule: fixed
        return self.base

    def children_of(self, node: int) -> tuple[int, int] | None:
        """The two children of an inner node (None for a leaf); nodes are numbered level by
        level, leaves first."""
        if node < self.base:
            return None
        start, width = 0, self.base
        while node >= start + width:
            start, width = start + width, width // 2
        first = start - 2 * width + 2 * (node - start)
        return first, first + 1


@dataclass(frozen=True)
class CellArchitecture:
    nodes: tuple[tuple[str, str], ...]  # (combination, activation) per tree node
    inject: tuple[str, str]  # (combination, activation) that merges c_{t-1}
    inject_index: int  # the node c_{t-1} is merged into
    cell_index: int  # the node whose pre-activation becomes c_t

    def __len__(self) -> int:
        return len(self.nodes)

    def to_dict(self) -> dict:
        return {"nodes": [list(n) for n in self.nodes], "inject": list(self.inject),
                "inject_index": self.inject_index, "cell_index": self.cell_index}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict) -> CellArchitecture:
        arch = cls(tuple((str(c), str(a)) for c, a in data["nodes"]),
                   (str(data["inject"][0]), str(data["inject"][1])),
                   int(data["inject_index"]), int(data["cell_index"]))
        base = (len(arch.nodes) + 1) // 2
        if len(arch.nodes) + 1 != 2 * base or not arch.is_valid(CellSpace(base=base)):
            raise ValueError("not a valid cell encoding")
        return arch

    @classmethod
    def from_json(cls, text: str) -> CellArchitecture:
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        nodes = " ".join(f"{SHORT[c]}{SHORT[a]}" for c, a in self.nodes)
        return (f"cell[{nodes}] c_prev->{self.inject_index} "
                f"{SHORT[self.inject[0]]}{SHORT[self.inject[1]]} c<-{self.cell_index}")

    def is_valid(self, space: CellSpace) -> bool:
        pairs = [*self.nodes, self.inject]
        return (len(self.nodes) == space.num_nodes
                and all(c in space.combinations and a in space.activations for c, a in pairs)
                and 0 <= self.inject_index < space.num_nodes - 1
                and 0 <= self.cell_index < space.num_nodes - 1)


def decode(space: CellSpace, indices: list[int]) -> CellArchitecture:
    """Token indices in :meth:`CellSpace.tokens` order -> a cell."""
    pairs = [(space.combinations[indices[2 * k]], space.activations[indices[2 * k + 1]])
             for k in range(space.num_nodes + 1)]
    return CellArchitecture(tuple(pairs[:-1]), pairs[-1], indices[-2], indices[-1])


def encode(space: CellSpace, arch: CellArchitecture) -> list[int]:
    out: list[int] = []
    for comb, act in [*arch.nodes, arch.inject]:
        out += [space.combinations.index(comb), space.activations.index(act)]
    return out + [arch.inject_index, arch.cell_index]


def sample_uniform_cell(space: CellSpace, rng: random.Random) -> CellArchitecture:
    """Random search's control: every token uniform."""
    return decode(space, [rng.randrange(n) for _, n in space.tokens()])


# -- the cell in torch ---------------------------------------------------------------------------

def _combine(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b if kind == "add" else a * b


def _activate(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "identity":
        return x
    return {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": F.relu}[kind](x)


class RecurrentCell(nn.Module):
    """One step of a searched cell: ``(x, (h, c)) -> (h', c')``, like ``nn.LSTMCell``."""

    def __init__(self, arch: CellArchitecture, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.arch = arch
        self.space = CellSpace(base=(len(arch) + 1) // 2)
        self.hidden_size = hidden_size
        base = self.space.base
        self.w_x = nn.Linear(input_size, base * hidden_size)  # W_k x + b_k for every leaf
        self.w_h = nn.Linear(hidden_size, base * hidden_size, bias=False)  # U_k h

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        arch, space = self.arch, self.space
        xs = self.w_x(x).chunk(space.base, dim=-1)
        hs = self.w_h(h).chunk(space.base, dim=-1)
        outs: list[torch.Tensor] = []
        c_new = c
        for node, (comb, act) in enumerate(arch.nodes):
            kids = space.children_of(node)
            pre = _combine(comb, xs[node], hs[node]) if kids is None else _combine(
                comb, outs[kids[0]], outs[kids[1]])
            out = _activate(act, pre)
            if node == arch.inject_index:
                out = _activate(arch.inject[1], _combine(arch.inject[0], out, c))
            if node == arch.cell_index:
                c_new = pre
            outs.append(out)
        return outs[-1], c_new


class CellLM(nn.Module):
    """Embedding -> searched-cell layers -> dropout -> softmax over the vocabulary.

    The paper's small PTB setting uses tied input/output embeddings sized like the hidden state;
    dropout is applied to the embedding, between layers and before the decoder.
    """

    def __init__(self, arch: CellArchitecture, vocab_size: int, hidden: int, layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.cells = nn.ModuleList(RecurrentCell(arch, hidden, hidden) for _ in range(layers))
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab_size)
        self.decoder.weight = self.embedding.weight  # tied embeddings
        self.hidden = hidden

    def init_state(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        zeros = torch.zeros(batch, self.hidden, device=self.decoder.weight.device)
        return [(zeros, zeros) for _ in self.cells]

    def forward(self, tokens: torch.Tensor, state=None):
        """``tokens``: (T, B) ids -> logits (T, B, V) and the final states."""
        state = state or self.init_state(tokens.shape[1])
        x = self.drop(self.embedding(tokens))
        new_state = []
        for cell, (h, c) in zip(self.cells, state, strict=True):
            steps = []
            for t in range(x.shape[0]):
                h, c = cell(x[t], (h, c))
                # keep the memory bounded: a searched cell may let c grow without limit
                c = c.clamp(-50.0, 50.0)
                steps.append(h)
            x = self.drop(torch.stack(steps))
            new_state.append((h, c))
        return self.decoder(x), new_state


# -- the controller ------------------------------------------------------------------------------

class CellController(nn.Module):
    """The paper's controller for cells: the same 2-layer LSTM, one softmax per token type, each
    choice's embedding fed back as the next input. Sampling and scoring share one code path."""

    def __init__(self, space: CellSpace, hidden: int = 35, lstm_layers: int = 2,
                 init_range: float = 0.08) -> None:
        super().__init__()
        self.space = space
        sizes = dict(space.tokens())
        self.lstm = nn.LSTM(hidden, hidden, lstm_layers)
        self.start = nn.Parameter(torch.zeros(hidden))
        self.embeddings = nn.ModuleDict({k: nn.Embedding(n, hidden) for k, n in sizes.items()})
        self.heads = nn.ModuleDict({k: nn.Linear(hidden, n) for k, n in sizes.items()})
        for param in self.parameters():
            nn.init.uniform_(param, -init_range, init_range)

    def forward(self, arch: CellArchitecture | None = None,
                generator: torch.Generator | None = None):
        from deepmorning.nas.controller import Sample

        given = encode(self.space, arch) if arch is not None else None
        log_prob, entropy = torch.zeros(()), torch.zeros(())
        state, x, chosen = None, self.start, []
        for step, (name, _) in enumerate(self.space.tokens()):
            out, state = self.lstm(x.view(1, 1, -1), state)
            logp = F.log_softmax(self.heads[name](out[0, 0]), dim=-1)
            if given is not None:
                index = given[step]
            else:
                index = int(torch.multinomial(logp.exp(), 1, generator=generator))
            log_prob = log_prob + logp[index]
            entropy = entropy - (logp.exp() * logp).sum()
            chosen.append(index)
            x = self.embeddings[name](torch.tensor(index))
        return Sample(decode(self.space, chosen), log_prob, entropy)

    def sample(self, num_layers: int | None = None, generator: torch.Generator | None = None):
        return self(generator=generator)

    def score(self, arch: CellArchitecture):
        return self(arch=arch)


# -- two known cells -----------------------------------------------------------------------------

def lstm_cell() -> CellArchitecture:
    """An LSTM (no peepholes) as a base-8 encoding.

    Leaves: 0 = sigmoid(i), 1 = tanh(g), 2 = sigmoid(f), 3 = 0 (zero weights; c_{t-1} is added
    in: the inject), 4 = o (pre-activation), 5, 6, 7 = 0. Inner: 8 = i*g, 9 = f*c_{t-1},
    10 = o + 0, 11 = 0 + 0, 12 = tanh(i*g + f*c_{t-1}) whose pre-activation is c_t,
    13 = sigmoid(o), root 14 = tanh(c_t) * sigmoid(o) = h_t. Unused leaves get zero weights.
    """
    nodes = [("add", "sigmoid"), ("add", "tanh"), ("add", "sigmoid"), ("add", "identity"),
             ("add", "identity"), ("add", "identity"), ("add", "identity"), ("add", "identity"),
             ("elem_mult", "identity"), ("elem_mult", "identity"), ("add", "identity"),
             ("add", "identity"), ("add", "tanh"), ("add", "sigmoid"), ("elem_mult", "identity")]
    return CellArchitecture(tuple(nodes), ("add", "identity"), inject_index=3, cell_index=12)


def tanh_rnn_cell() -> CellArchitecture:
    """A plain RNN, h_t = tanh(W x + U h + b): leaf 0 carries it up a tree of additions of zero
    leaves; c_{t-1} is multiplied into the zero leaf 7, so it never reaches h_t."""
    nodes = [("add", "tanh")] + [("add", "identity")] * 14
    return CellArchitecture(tuple(nodes), ("elem_mult", "identity"), inject_index=7,
                            cell_index=8)
