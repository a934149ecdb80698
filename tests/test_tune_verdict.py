"""The paired verdict helper (deepmorning.tuning.verdict) on hand-made per-seed tables."""

from __future__ import annotations

import pandas as pd
import pytest

from deepmorning.tuning import verdict as V


def table(metric: str, **arms: list[float]) -> pd.DataFrame:
    return pd.DataFrame([{"arm": arm, "seed": s, metric: v}
                         for arm, values in arms.items() for s, v in enumerate(values)])


def test_a_clear_gain_holds_under_both_rules():
    t = table("acc", a=[0.90, 0.92, 0.91], b=[0.80, 0.81, 0.82])
    held, sentence = V.paired(t, "acc", "a", "b")
    assert held and "a − b (acc) = +0.1 ±" in sentence and "3/3 seeds pass" in sentence
    assert "> 0 in every seed" in sentence
    held, sentence = V.paired(t, "acc", "a", "b", rule="se")
    assert held and "mean > 2 SE" in sentence


@pytest.mark.parametrize("rule", V.RULES)
def test_a_tie_fails(rule):
    t = table("acc", a=[0.9, 0.8, 0.85], b=[0.9, 0.8, 0.85])
    held, sentence = V.paired(t, "acc", "a", "b", rule=rule)
    assert not held and "= +0 ± 0" in sentence and "0/3 seeds pass" in sentence


def test_one_bad_seed_fails_the_every_seed_rule_but_not_a_large_mean():
    t = table("acc", a=[0.95, 0.95, 0.95, 0.95, 0.79], b=[0.80] * 5)
    held, sentence = V.paired(t, "acc", "a", "b")
    assert not held and "4/5 seeds pass" in sentence and "fails" in sentence
    assert V.paired(t, "acc", "a", "b", rule="se").held  # +0.118 ± 0.030: over 2 SE


def test_a_noisy_mean_gain_fails_the_se_rule():
    t = table("acc", a=[0.9, 0.7, 0.95], b=[0.8, 0.8, 0.8])  # +0.05 ± 0.076
    assert not V.paired(t, "acc", "a", "b", rule="se").held
    assert not V.paired(t, "acc", "a", "b").held


def test_lower_is_better_ratio_margin_and_unpaired_seeds():
    t = table("err", a=[1.0, 2.0, 3.0], b=[10.0, 10.0, 10.0])
    assert V.paired(t, "err", "a", "b", mode="min").held
    assert V.paired(t, "err", "a", "b", mode="min", ratio=0.5).held  # below half of b
    assert not V.paired(t, "err", "a", "b", mode="min", margin=7.5).held  # 7 is not > 7.5
    assert not V.paired(t, "err", "b", "a", mode="min").held
    lone = pd.concat([t, pd.DataFrame([{"arm": "a", "seed": 9, "err": 99.0}])])
    assert V.paired(lone, "err", "a", "b", mode="min").comparisons[0].n == 3  # seed 9 unpaired


def test_fewer_than_two_seeds_decide_nothing():
    held, sentence = V.paired(table("acc", a=[0.9], b=[0.1]), "acc", "a", "b")
    assert not held and "needs at least 2 paired seeds" in sentence


def test_level_within_and_all_of_keep_every_comparison():
    t = table("acc", a=[0.8, 0.75, 0.65], b=[0.1, 0.1, 0.1])
    held, sentence = V.level(t, "acc", "a", 0.7)
    assert not held and "2/3 seeds pass" in sentence
    two = pd.DataFrame({"arm": ["m"] * 3, "seed": [0, 1, 2], "psnr": [30.0, 31, 32],
                        "bicubic": [29.0, 30.5, 31]})
    assert V.within(two, "m", "psnr", "bicubic").held
    out = V.all_of(V.level(t, "acc", "a", 0.6), V.paired(t, "acc", "a", "b"))
    assert out.held and len(out.comparisons) == 2
    assert [r["result"] for r in map(V.Comparison.row, out.comparisons)] == ["holds", "holds"]
    held, sentence = out  # the Verdict contract: a (held, sentence) pair
    assert held and sentence == out.sentence and out == (True, out.sentence)


def test_an_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="rule must be one of every, se"):
        V.paired(table("acc", a=[1, 2], b=[0, 1]), "acc", "a", "b", rule="mean")
