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


# -- a comparison on a tabular benchmark (deepmorning nas compare)
TOP_K = 5  # Zoph & Le's Fig. 6 plots the mean of the top-k rewards; k = 5 as in bench_nas


def regret_curve(val_accs, arch_tests, optimum: float) -> np.ndarray:
    """Regret after each child: the table's optimum test accuracy minus the test accuracy of
    the incumbent, the architecture with the best validation accuracy seen so far (what the
    search itself would pick; the first one on ties). ``arch_tests[i]`` is child i's
    architecture's test accuracy (its mean over the table's seeds); regret >= 0."""
    out, best_val, best_test = [], -np.inf, np.nan
    for val, test in zip(val_accs, arch_tests, strict=True):
        if val > best_val:
            best_val, best_test = val, test
        out.append(optimum - best_test)
    return np.asarray(out)


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and its 95 % t interval, per column."""
    curves = np.asarray(curves, dtype=float)
    mean = curves.mean(axis=0)
    n = curves.shape[0]
    if n < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, n - 1)) * curves.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def budgets(samples: int) -> list[int]:
    """The budgets the summary reports: 100, 300, 1,000 architectures and the full run."""
    return sorted({b for b in (100, 300, 1000) if b < samples} | {samples})


def plot_bands(curves: dict[str, np.ndarray], path, title: str, ylabel: str):
    """One line per strategy (mean over seeds) with its 95 % band, against samples."""
    from deepmorning.platform.plots import figure, save

    fig, ax = figure(title, "architectures sampled", ylabel)
    for i, (name, rows) in enumerate(curves.items()):
        mean, low, high = band(rows)
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, color=f"C{i}", label=f"{name} ({len(rows)} seeds)")
        ax.fill_between(x, low, high, color=f"C{i}", alpha=0.2, linewidth=0)
    ax.legend()
    return save(fig, path)
