"""Comparing search strategies the way Zoph & Le's Fig. 6 does (RL against random search)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def top_k_curve(rewards, k: int = 5) -> np.ndarray:
    """Running mean of the top-``k`` rewards among the first n children, for every n.

    Before ``k`` children the mean is over the children seen so far (Zoph & Le 2017, Fig. 6).
    """
    curve, top = [], []
    for r in rewards:
        top = sorted([*top, float(r)], reverse=True)[:k]
        curve.append(sum(top) / len(top))
    return np.asarray(curve)


def paired_stats(a, b) -> dict[str, float]:
    """Mean of ``a - b`` over paired seeds, its 95 % t interval and a paired t-test's p-value."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(diff.mean())
    if len(diff) < 2:
        return {"diff": mean, "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan")}
    sd = float(diff.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(diff) - 1)) * sd / np.sqrt(len(diff))
    if sd == 0:  # every seed the same difference: certain (or no difference at all)
        return {"diff": mean, "ci_low": mean, "ci_high": mean, "p": 1.0 if mean == 0 else 0.0}
    p = float(stats.ttest_rel(a, b).pvalue)
    return {"diff": mean, "ci_low": mean - half, "ci_high": mean + half, "p": p}
