"""The recurrent-cell space: encodings, the controller, the torch cell, LSTM and RNN as cells."""

from __future__ import annotations

import random

import pytest
import torch

from deepmorning.nas.cell import (
    ACTIVATIONS,
    COMBINATIONS,
    CellArchitecture,
    CellController,
    CellLM,
    CellSpace,
    RecurrentCell,
    lstm_cell,
    sample_uniform_cell,
    tanh_rnn_cell,
)

SPACES = [CellSpace(), CellSpace(base=2), CellSpace(base=4, activations=("tanh", "relu"))]


def test_tree_numbering_follows_the_paper():
    space = CellSpace()
    assert space.num_nodes == 15 and len(space.tokens()) == 15 * 2 + 2 + 2
    assert [space.children_of(n) for n in (0, 7, 8, 11, 12, 13, 14)] == [
        None, None, (0, 1), (6, 7), (8, 9), (10, 11), (12, 13)]
    with pytest.raises(ValueError, match="power of two"):
        CellSpace(base=6)
    with pytest.raises(ValueError, match="twice"):
        CellSpace(activations=("tanh", "tanh"))


@pytest.mark.parametrize("space", SPACES)
def test_controller_samples_valid_cells_and_scoring_agrees(space):
    controller = CellController(space)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        sample = controller.sample(generator=gen)
        assert sample.arch.is_valid(space)
        assert CellArchitecture.from_json(sample.arch.to_json()) == sample.arch
        scored = controller.score(sample.arch)
        assert torch.allclose(sample.log_prob, scored.log_prob, atol=1e-5)
        assert torch.allclose(sample.entropy, scored.entropy, atol=1e-5)
    rng = random.Random(0)
    assert all(sample_uniform_cell(space, rng).is_valid(space) for _ in range(50))


def test_cells_serialize_and_print_on_one_line():
    arch = lstm_cell()
    assert CellArchitecture.from_dict(arch.to_dict()) == arch
    line = arch.summary()
    assert "\n" not in line and line.startswith("cell[+sig +tanh") and "c<-12" in line
    bad = {**arch.to_dict(), "inject_index": 14}  # the root: not a valid inject target
    with pytest.raises(ValueError, match="not a valid cell"):
        CellArchitecture.from_dict(bad)


@pytest.mark.parametrize("comb", COMBINATIONS)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_combination_and_activation_runs_forward_and_backward(comb, act):
    arch = CellArchitecture(((comb, act),) * 15, (comb, act), inject_index=5, cell_index=13)
    cell = RecurrentCell(arch, input_size=3, hidden_size=4)
    state = (torch.randn(2, 4), torch.randn(2, 4))
    for _ in range(3):
        state = cell(torch.randn(2, 3), state)
    (state[0].sum() + state[1].sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in cell.parameters())


def _tie(cell: RecurrentCell, leaves: dict[int, tuple], hidden: int) -> None:
    """Copy (W_ih rows, W_hh rows, bias) into leaves; every other leaf gets zero weights."""
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        for leaf, (w_ih, w_hh, bias) in leaves.items():
            rows = slice(leaf * hidden, (leaf + 1) * hidden)
            cell.w_x.weight[rows] = w_ih
            cell.w_x.bias[rows] = bias
            cell.w_h.weight[rows] = w_hh


def test_the_lstm_encoding_computes_torchs_lstm_cell():
    torch.manual_seed(0)
    hidden, inputs = 5, 3
    lstm = torch.nn.LSTMCell(inputs, hidden)
    gates = {}
    for k, name in enumerate("ifgo"):  # torch's gate order
        rows = slice(k * hidden, (k + 1) * hidden)
        gates[name] = (lstm.weight_ih[rows], lstm.weight_hh[rows],
                       lstm.bias_ih[rows] + lstm.bias_hh[rows])
    cell = RecurrentCell(lstm_cell(), inputs, hidden)
    _tie(cell, {0: gates["i"], 1: gates["g"], 2: gates["f"], 4: gates["o"]}, hidden)
    h, c = torch.randn(2, hidden), torch.randn(2, hidden)
    ours = (h, c)
    for _ in range(4):
        x = torch.randn(2, inputs)
        h, c = lstm(x, (h, c))
        ours = cell(x, ours)
        assert torch.allclose(ours[0], h, atol=1e-6) and torch.allclose(ours[1], c, atol=1e-6)


def test_the_tanh_rnn_encoding_computes_torchs_rnn_cell():
    torch.manual_seed(0)
    rnn = torch.nn.RNNCell(3, 4, nonlinearity="tanh")
    cell = RecurrentCell(tanh_rnn_cell(), 3, 4)
    _tie(cell, {0: (rnn.weight_ih, rnn.weight_hh, rnn.bias_ih + rnn.bias_hh)}, 4)
    h, ours = torch.zeros(2, 4), (torch.zeros(2, 4), torch.randn(2, 4))
    for _ in range(3):
        x = torch.randn(2, 3)
        h = rnn(x, h)
        ours = cell(x, ours)
        assert torch.allclose(ours[0], h, atol=1e-6)


def test_language_model_on_a_searched_cell():
    model = CellLM(lstm_cell(), vocab_size=11, hidden=6, layers=2, dropout=0.1)
    tokens = torch.randint(0, 11, (7, 3))
    logits, state = model(tokens)
    assert logits.shape == (7, 3, 11) and len(state) == 2
    loss = torch.nn.functional.cross_entropy(logits.view(-1, 11), tokens.view(-1))
    loss.backward()
    assert model.embedding.weight.grad is not None
