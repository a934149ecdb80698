"""RNN encoder-decoder (Cho et al. 2014): gated unit, generator, BLEU, decoding, trainable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tune_step import run_step

from deepmorning.tuning import seq2seq as s2s
from deepmorning.tuning import trial

SMALL = {"epochs": 1, "updates": 2, "emb": 8, "hidden": 16, "maxout": 8, "train_size": 200,
         "val_size": 40, "test_size": 80, "beam": 3}


def words_to_int(words: list[str]) -> int:
    """An independent reading of number words (for checking the generator)."""
    small = {w: i for i, w in enumerate(s2s.ONES)}
    small.update({w: 10 * i for i, w in enumerate(s2s.TENS) if w})
    total, group = 0, 0
    for w in words:
        if w in small:
            group += small[w]
        elif w == "hundred":
            group *= 100
        else:
            total += group * {"thousand": 1000, "million": 10**6}[w]
            group = 0
    return total + group


def paired_gru(reset_after: bool, hidden: int = 5, inputs: int = 3):
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(inputs, hidden)
    unit = s2s.GatedUnit(inputs, hidden, reset_after=reset_after)
    unit.load_state_dict(cell.state_dict())  # same weights, same layout
    return cell, unit, torch.randn(4, inputs), torch.randn(4, hidden)


def test_gated_unit_matches_grucell_with_reset_after():
    cell, unit, x, h = paired_gru(reset_after=True)
    assert torch.allclose(unit(x, h), cell(x, h), atol=1e-6)


def test_gated_unit_follows_the_papers_equations():
    _, unit, x, h = paired_gru(reset_after=False)
    H = unit.hidden_size
    W, U = unit.weight_ih.detach().numpy(), unit.weight_hh.detach().numpy()
    bw, bu = unit.bias_ih.detach().numpy(), unit.bias_hh.detach().numpy()
    xn, hn = x.numpy(), h.numpy()

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    def part(M, b, k):
        return M[k * H : (k + 1) * H], b[k * H : (k + 1) * H]

    (Wr, br), (Wz, bz), (Wh, bh) = (part(W, bw, k) for k in range(3))
    (Ur, cr), (Uz, cz), (Uh, ch) = (part(U, bu, k) for k in range(3))
    r = sigmoid(xn @ Wr.T + br + hn @ Ur.T + cr)  # eq. 5
    z = sigmoid(xn @ Wz.T + bz + hn @ Uz.T + cz)  # eq. 6
    h_tilde = np.tanh(xn @ Wh.T + bh + (r * hn) @ Uh.T + ch)  # eq. 8: reset before U
    expected = z * hn + (1 - z) * h_tilde  # eq. 7
    assert np.allclose(unit(x, h).detach().numpy(), expected, atol=1e-6)


def test_papers_reset_differs_from_grucell_unless_the_gate_is_open():
    cell, unit, x, h = paired_gru(reset_after=False)
    assert not torch.allclose(unit(x, h), cell(x, h), atol=1e-4)
    with torch.no_grad():  # r = 1: U (r * h) = r * (U h), both forms agree
        for module in (unit, cell):
            module.bias_ih[: unit.hidden_size] = 50.0
    assert torch.allclose(unit(x, h), cell(x, h), atol=1e-6)


def test_number_words():
    cases = {0: "zero", 7: "seven", 13: "thirteen", 42: "forty two", 100: "one hundred",
             1000: "one thousand", 5_000_000: "five million",
             342_007: "three hundred forty two thousand seven",
             999_999_999: "nine hundred ninety nine million nine hundred ninety nine thousand "
                          "nine hundred ninety nine"}
    for n, text in cases.items():
        assert " ".join(s2s.number_words(n)) == text
    with pytest.raises(ValueError):
        s2s.number_words(10**9)


def test_generator_splits():
    train, val, test = s2s.make_splits((3000, 300, 600), seed=1)
    assert (len(train), len(val), len(test)) == (3000, 300, 600)
    assert not (set(train) & set(test)) and not (set(train) & set(val)) and not (set(val) &
                                                                                 set(test))
    assert set(len(str(n)) for n in train) == set(range(4, 10))  # 4-9 digits, all present
    for n in train[:500]:
        assert words_to_int(s2s.number_words(n)) == n
    lengths = [len(s2s.number_words(n)) for n in test]
    assert min(lengths) <= 3 and max(lengths) >= 13  # sentence lengths vary
    assert s2s.make_splits((3000, 300, 600), seed=1)[2] == test  # documented and repeatable
    src, lengths_t, tgt = s2s.encode([42_000, 1234])
    assert lengths_t.tolist() == [3, 6]  # "one thousand two hundred thirty four"
    assert tgt[:, 1].tolist() == [s2s.TGT_INDEX[d] for d in "1234"] + [s2s.EOS, s2s.PAD]


def test_bleu_and_exact_match():
    refs = ["1 2 3 4", "5 6 7 8 9"]
    assert s2s.bleu(refs, refs) == pytest.approx(100.0)
    assert s2s.bleu(["9 9 9 9", "0 0 0 0 0"], refs) < 1.0
    assert s2s.scores([1234, 56789], ["1 2 3 4", "5 6 7 8 0"])["exact"] == 0.5


def test_beam_of_width_one_is_greedy_and_beam_scores_at_least_as_high():
    torch.manual_seed(0)
    model = s2s.EncoderDecoder("gated", emb=8, hidden=16, maxout=8).eval()
    numbers = s2s.make_splits((50, 10, 20), seed=3)[2]
    src, lengths, _ = s2s.encode(numbers)
    greedy = model.greedy(src, lengths)
    assert model.beam(src, lengths, width=1) == greedy

    @torch.no_grad()
    def logprob(seq, i):
        c = model.encode(src[:, i : i + 1], lengths[i : i + 1])
        h, y, total = torch.tanh(model.init_dec(c)), torch.tensor([s2s.BOS]), 0.0
        ended = len(seq) < s2s.MAX_DIGITS + 2  # otherwise cut at the length limit, no </s>
        for tok in seq + ([s2s.EOS] if ended else []):
            logp, h = model.decode_step(y, h, c)
            total += float(logp[0, tok])
            y = torch.tensor([tok])
        return total

    beamed = model.beam(src, lengths, width=4)
    assert beamed != greedy  # the search explores: here it finds short, likelier answers
    for i in range(len(numbers)):  # and never returns a less likely one than greedy here
        assert logprob(beamed[i], i) >= logprob(greedy[i], i) - 1e-4


def frame(**arms):
    rows = []
    for arm, values in arms.items():
        for seed, (bleu, exact, short, long) in enumerate(values):
            rows.append({"arm": arm, "seed": seed, "test_bleu_beam": bleu,
                         "test_exact_beam": exact, "bleu_short": short, "bleu_long": long})
    return pd.DataFrame(rows)


def test_verdicts_held_and_not_held():
    good = [(70.0, 0.6, 80.0, 55.0), (72.0, 0.62, 79.0, 60.0), (68.0, 0.58, 81.0, 50.0)]
    poor = [(20.0, 0.0, 25.0, 18.0)] * 3
    assert s2s.learns(frame(gated=good))[0]
    assert not s2s.learns(frame(gated=poor))[0]
    assert s2s.falls_with_length(frame(gated=good))[0]
    mixed = good[:2] + [(70.0, 0.6, 50.0, 60.0)]  # one seed where long beats short
    held, text = s2s.falls_with_length(frame(gated=mixed))
    assert not held and "2/3" in text
    assert s2s.gated_beats_tanh(frame(gated=good, tanh=poor))[0]
    assert not s2s.gated_beats_tanh(frame(gated=poor, tanh=good))[0]


def test_tanh_arm_trains_through_the_same_encoder_decoder():
    torch.manual_seed(0)
    model = s2s.EncoderDecoder("tanh", emb=8, hidden=16, maxout=8)
    src, lengths, tgt = s2s.encode([1234, 987_654_321])
    loss = torch.nn.functional.cross_entropy(model(src, lengths, tgt).flatten(0, 1),
                                             tgt.flatten(), ignore_index=s2s.PAD)
    loss.backward()
    assert isinstance(model.encoder, s2s.TanhUnit) and model.encoder.weight_hh.grad.abs().sum() > 0


def test_trainable_one_step_checkpoint_and_picture(ray_local, tmp_path):
    result = run_step("seq2seq", tmp_path / "tune", unit="gated", **SMALL)
    metrics = result.metrics
    assert metrics["epoch"] == 1
    for key in ("bleu", "test_bleu", "test_exact", "test_bleu_beam", "bleu_short", "bleu_long"):
        assert 0 <= metrics[key] <= 100
    with result.checkpoint.as_directory() as path:
        assert trial.load_state(path)["epoch"] == 1
        pngs = s2s.MODEL.pictures(result.config, path, tmp_path / "pics", "best")
    assert [p.name for p in pngs] == ["bleu-by-length-best.png"]
    assert pngs[0].stat().st_size > 5_000
