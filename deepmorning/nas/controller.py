"""The NAS controller of Zoph & Le (ICLR 2017), Sec. 3.1-3.3.

A 2-layer LSTM with 35 units per layer emits one token at a time; each token has its own
softmax classifier and its embedding is fed back as the next input (Sec. 3.1). Skip
connections use anchor points (Sec. 3.3): after the tokens of layer i one more step gives the
anchor state h_i, and layer j < i feeds layer i with probability

    P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i)).

The input after an anchor step is a learned vector plus the mean anchor state of the chosen
inputs (the paper leaves it open; ENAS does the same). Weights are uniform in [-0.08, 0.08]
(Sec. 4.1). The same code path samples an architecture or scores a given one, so the
log-probabilities of sampling and scoring agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from deepmorning.nas.space import (
    NUM_FILTERS,
    STRIDE_HEIGHT,
    STRIDE_WIDTH,
    Architecture,
    Layer,
    SearchSpace,
    chain_inputs,
)


@dataclass
class Sample:
    """An architecture with its log-probability and entropy under the controller."""

    arch: Architecture
    log_prob: torch.Tensor
    entropy: torch.Tensor


class Controller(nn.Module):
    def __init__(self, space: SearchSpace, hidden: int = 35, lstm_layers: int = 2,
                 init_range: float = 0.08) -> None:
        super().__init__()
        self.space = space
        self.hidden = hidden
        self.tokens = space.token_choices()
        self.lstm = nn.LSTM(hidden, hidden, lstm_layers)
        self.start = nn.Parameter(torch.zeros(hidden))
        self.anchor_input = nn.Parameter(torch.zeros(hidden))
        self.embeddings = nn.ModuleDict(
            {name: nn.Embedding(len(choices), hidden) for name, choices in self.tokens}
        )
        self.heads = nn.ModuleDict(
            {name: nn.Linear(hidden, len(choices)) for name, choices in self.tokens}
        )
        self.w_prev = nn.Linear(hidden, hidden, bias=False)
        self.w_curr = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)
        for param in self.parameters():
            nn.init.uniform_(param, -init_range, init_range)

    def _step(self, x: torch.Tensor, state):
        out, state = self.lstm(x.view(1, 1, -1), state)
        return out[0, 0], state

    def forward(self, num_layers: int | None = None, arch: Architecture | None = None,
                generator: torch.Generator | None = None) -> Sample:
        """Sample an architecture of ``num_layers`` layers, or score ``arch`` if given."""
        if arch is None and num_layers is None:
            raise ValueError("give num_layers to sample or arch to score")
        n = len(arch) if arch is not None else int(num_layers)
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        state = None
        x = self.start
        anchors: list[torch.Tensor] = []
        anchor_proj: list[torch.Tensor] = []
        layers: list[Layer] = []
        for i in range(n):
            chosen: dict[str, int] = {}
            for name, choices in self.tokens:
                h, state = self._step(x, state)
                logits = self.heads[name](h)
                logp_all = F.log_softmax(logits, dim=-1)
                if arch is not None:
                    index = choices.index(_token_value(arch.layers[i], name))
                else:
                    index = int(torch.multinomial(logp_all.exp(), 1, generator=generator))
                log_prob = log_prob + logp_all[index]
                entropy = entropy - (logp_all.exp() * logp_all).sum()
                chosen[name] = choices[index]
                x = self.embeddings[name](torch.tensor(index))
            inputs: tuple[int, ...] = chain_inputs(i)  # without skips: the paper's chain
            if self.space.skip_connections:
                inputs = ()
                h_i, state = self._step(x, state)
                if anchors:
                    scores = self.v(torch.tanh(torch.stack(anchor_proj) + self.w_curr(h_i)))
                    scores = scores.squeeze(-1)  # one logit per earlier layer j
                    if arch is not None:
                        take = torch.zeros(i)
                        take[list(arch.layers[i].inputs)] = 1.0
                    else:
                        take = (torch.rand(i, generator=generator) < torch.sigmoid(scores)).float()
                    log_prob = log_prob + (
                        take * F.logsigmoid(scores) + (1 - take) * F.logsigmoid(-scores)
                    ).sum()
                    p = torch.sigmoid(scores)
                    entropy = entropy - (
                        p * F.logsigmoid(scores) + (1 - p) * F.logsigmoid(-scores)
                    ).sum()
                    inputs = tuple(int(j) for j in torch.nonzero(take).flatten())
                anchors.append(h_i)
                anchor_proj.append(self.w_prev(h_i))
                chosen_states = [anchors[j] for j in inputs]
                x = self.anchor_input + (
                    torch.stack(chosen_states).mean(0) if chosen_states else 0.0
                )
            layers.append(
                Layer(
                    filter_height=chosen["filter_height"],
                    filter_width=chosen["filter_width"],
                    num_filters=chosen[NUM_FILTERS],
                    stride_height=chosen.get(STRIDE_HEIGHT, 1),
                    stride_width=chosen.get(STRIDE_WIDTH, 1),
                    inputs=inputs,
                )
            )
        return Sample(Architecture(tuple(layers)), log_prob, entropy)

    def sample(self, num_layers: int, generator: torch.Generator | None = None) -> Sample:
        return self(num_layers=num_layers, generator=generator)

    def score(self, arch: Architecture) -> Sample:
        return self(arch=arch)


def _token_value(layer: Layer, name: str) -> int:
    return int(getattr(layer, name))


def reinforce_loss(samples: list[Sample], advantages: list[float],
                   entropy_weight: float = 0.0) -> torch.Tensor:
    """Zoph & Le eq. (2): -1/m sum_k (R_k - b) log P(a_k), minus an optional entropy bonus."""
    m = len(samples)
    adv = torch.tensor(advantages, dtype=torch.float32)
    log_probs = torch.stack([s.log_prob for s in samples])
    loss = -(adv * log_probs).sum() / m
    if entropy_weight:
        loss = loss - entropy_weight * torch.stack([s.entropy for s in samples]).mean()
    return loss


def advantages_and_baseline(rewards: list[float], baseline: float | None, decay: float
                            ) -> tuple[list[float], float | None]:
    """REINFORCE advantages ``R_k - b`` and the moving-average baseline after them (Sec. 3.2).

    Rewards are taken in order: each one's advantage uses the baseline before it, then
    ``b <- decay * b + (1 - decay) * R``. The baseline starts at the first reward ever seen (so the
    first advantage is 0). Returns the advantages and the new baseline.
    """
    advantages = []
    for reward in rewards:
        b = reward if baseline is None else baseline
        advantages.append(reward - b)
        baseline = decay * b + (1 - decay) * reward
    return advantages, baseline
