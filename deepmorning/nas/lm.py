"""Training a recurrent-cell child: a language model scored by validation perplexity.

Reward (Zoph & Le 2017, Sec. 4.2): ``c / (validation perplexity)^2``, c = 80 on word-level Penn
Treebank; the ``quick`` preset's character-level text uses c = 4 (see ``config.py``). The child
is an embedding, ``lm.layers`` layers of the searched cell and a tied softmax
(:class:`deepmorning.nas.cell.CellLM`), trained with truncated backpropagation through time
(``lm.bptt`` steps, hidden state carried across segments), Adam at ``child.lr`` and gradient
norm clipping at ``lm.clip``. The paper does not give its children's training; these choices
are ours. A cell whose loss is not finite (a searched cell can explode) gets reward 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from deepmorning.nas.cell import CellArchitecture, CellLM

EVAL_BATCH = 10


def _detach(state):
    return [(h.detach(), c.detach()) for h, c in state]


@torch.no_grad()
def perplexity(model: CellLM, data: torch.Tensor, bptt: int) -> float:
    model.eval()
    total, count, state = 0.0, 0, None
    for start in range(0, data.shape[0] - 1, bptt):
        x = data[start:start + bptt]
        y = data[start + 1:start + 1 + len(x)]
        x = x[: len(y)]
        logits, state = model(x, state)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                       reduction="sum"))
        count += y.numel()
    mean = total / max(1, count)
    return math.exp(mean) if math.isfinite(mean) and mean < 700 else math.inf


def fit_lm(arch: CellArchitecture, corpus: Any, child: Any, lm: Any, device: torch.device, *,
           test: bool = False, progress=None) -> dict[str, Any]:
    """Train a cell's language model; ``val_ppl`` is its lowest validation perplexity over the
    epochs. With ``test`` the test perplexity is of that same epoch's weights (``val_epoch``,
    1-based), not of the last epoch's."""
    from deepmorning.nas.child import BestEpoch
    from deepmorning.nas.text import batchify

    torch.manual_seed(child.seed)
    model = CellLM(arch, corpus.vocab_size, lm.hidden, lm.layers, lm.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=child.lr)
    train = torch.tensor(batchify(corpus.train, child.batch_size), device=device)
    valid = torch.tensor(batchify(corpus.valid, EVAL_BATCH), device=device)
    curve: list[float] = []
    kept = BestEpoch(lower_is_better=True)
    for epoch in range(child.epochs):
        model.train()
        state = None
        for start in range(0, train.shape[0] - 1, lm.bptt):
            x = train[start:start + lm.bptt]
            y = train[start + 1:start + 1 + len(x)]
            x = x[: len(y)]
            logits, state = model(x, state)
            state = _detach(state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            if not torch.isfinite(loss):
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), lm.clip)
            opt.step()
        curve.append(perplexity(model, valid, lm.bptt))
        if test:
            kept.offer(epoch + 1, curve[-1], model)
        if progress is not None:
            progress(epoch + 1, curve[-1])
    best = min(curve)
    result = {
        "val_ppl": best,
        "reward": lm.reward_c / best ** 2 if math.isfinite(best) else 0.0,
        "val_curve": curve,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if test:
        kept.restore(model)
        result["val_epoch"] = kept.epoch
        result["test_ppl"] = perplexity(model, torch.tensor(
            batchify(corpus.test, EVAL_BATCH), device=device), lm.bptt)
    return result


def synthetic_cell_reward(arch: CellArchitecture) -> float:
    """Share of tree nodes with a tanh: a reward the controller can learn quickly (tests)."""
    return float(np.mean([act == "tanh" for _, act in arch.nodes]))
