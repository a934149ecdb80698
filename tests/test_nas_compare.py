"""The RL-vs-random comparison's statistics (Zoph & Le Fig. 6): top-5 running mean, paired test."""

from __future__ import annotations

import numpy as np
import pytest

from deepmorning.nas.compare import paired_stats, top_k_curve


def test_top_k_curve_hand_computed():
    curve = top_k_curve([1, 5, 2, 0, 4, 3, 9], k=3)
    assert np.allclose(curve, [1, 3, 8 / 3, 8 / 3, 11 / 3, 4, 6])
    assert len(top_k_curve([], k=5)) == 0
    rng = np.random.default_rng(0)
    rewards = rng.random(40)
    curve = top_k_curve(rewards)
    assert np.all(np.diff(curve[4:]) >= 0)  # after k children the top-k mean never falls
    assert curve[-1] == pytest.approx(np.sort(rewards)[-5:].mean())


def test_paired_stats_against_scipy_and_by_hand():
    a, b = [0.5, 0.6, 0.7, 0.4, 0.65], [0.45, 0.5, 0.72, 0.3, 0.6]
    st = paired_stats(a, b)
    diff = np.subtract(a, b)
    assert st["diff"] == pytest.approx(diff.mean())
    half = 2.7764451 * diff.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert st["ci_low"] == pytest.approx(diff.mean() - half, rel=1e-5)
    assert st["ci_high"] == pytest.approx(diff.mean() + half, rel=1e-5)
    assert 0.05 < st["p"] < 0.2  # t = 2.06 on 4 degrees of freedom: p = 0.108
    assert paired_stats([1, 2, 3], [1, 2, 3])["p"] == 1.0
    assert paired_stats([2, 3, 4], [1, 2, 3]) == {"diff": 1.0, "ci_low": 1.0, "ci_high": 1.0,
                                                  "p": 0.0}
    assert np.isnan(paired_stats([1.0], [0.0])["ci_low"])
