"""Paired verdicts for claim studies: one helper for every model.

A claim study runs each arm with the same seeds, and the arms of one seed share the data and
the initialisation seed, so two arms are compared **paired by seed**: the verdict looks at the
per-seed differences d_s = (arm a − arm b) (signed so that a positive d means "a is better") and
holds by one stated rule:

- ``"every"`` (the default): d_s > margin in every seed, so one bad seed fails the claim;
- ``"se"``: mean(d) − margin > 2 standard errors of the mean (SE = sample std / √n).

Either way a tie fails (a zero difference is not a gain), fewer than two paired seeds decide
nothing, and the sentence names the rule and gives the paired difference as mean ± SE with the
per-seed values. The same rule serves a check against a fixed level (``level``: d_s = value −
bound, e.g. InfoGAN's code-to-digit accuracy ≥ 0.7) and a difference of two columns of one
trial (``within``: e.g. PSNR − bicubic PSNR of the same image set).

Every helper returns an :class:`Outcome`, which unpacks as ``(held, sentence)`` (the
:data:`~deepmorning.tuning.registry.Verdict` contract) and carries its :class:`Comparison` s,
which ``claim.md`` shows as a table (paired difference ± SE for each comparison).

Usage in a study::

    from deepmorning.tuning import verdict as V
    verdict=lambda r: V.paired(r, "val_acc", "prelu", "relu")           # prelu − relu > 0
    verdict=lambda r: V.all_of(V.paired(r, "acc", "rn", "mlp", margin=0.1),
                               V.level(r, "nonrel_acc", "mlp", 0.85))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

RULES = ("every", "se")
#: How many standard errors the ``"se"`` rule asks of the mean difference.
N_SE = 2.0


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: its label, per-seed differences, rule and result."""

    label: str
    diffs: Mapping[Any, float]
    rule: str = "every"
    margin: float = 0.0
    unit: str = ""

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.diffs.values()))) if self.diffs else math.nan

    @property
    def se(self) -> float:
        """Standard error of the mean difference (sample std / √n); nan below two seeds."""
        if self.n < 2:
            return math.nan
        return float(np.std(list(self.diffs.values()), ddof=1) / math.sqrt(self.n))

    @property
    def passing(self) -> list[Any]:
        """The seeds whose difference exceeds the margin."""
        return [s for s, d in self.diffs.items() if d > self.margin]

    @property
    def held(self) -> bool:
        if self.n < 2 or not all(math.isfinite(d) for d in self.diffs.values()):
            return False
        if self.rule == "every":
            return len(self.passing) == self.n
        return self.mean - self.margin > N_SE * self.se

    def rule_text(self) -> str:
        above = f"> {self.margin:g}" if self.margin else "> 0"
        if self.rule == "every":
            return f"{above} in every seed"
        return f"mean − {self.margin:g} > {N_SE:g} SE" if self.margin else f"mean > {N_SE:g} SE"

    def estimate(self) -> str:
        """``+0.012 ± 0.004`` (paired mean ± SE)."""
        if self.n == 0:
            return "–"
        se = "" if self.n < 2 else f" ± {_num(self.se)}"
        return f"{_num(self.mean, sign=True)}{se}{self.unit}"

    def sentence(self) -> str:
        seeds = ", ".join(_num(d, sign=True) for d in self.diffs.values())
        if self.n < 2:
            return f"{self.label}: {self.estimate()} — needs at least 2 paired seeds, has {self.n}"
        word = "holds" if self.held else "fails"
        return (f"{self.label} = {self.estimate()} (paired mean ± SE over {self.n} seeds: "
                f"{seeds}); rule: {self.rule_text()}, {len(self.passing)}/{self.n} seeds pass"
                f" — {word}")

    def row(self) -> dict[str, Any]:
        """A row of claim.md's comparison table."""
        return {"comparison": self.label, "paired difference ± SE": self.estimate(),
                "seeds passing": f"{len(self.passing)}/{self.n}", "rule": self.rule_text(),
                "result": "holds" if self.held else "fails"}


class Outcome(tuple):
    """A verdict: the tuple ``(held, sentence)``, carrying ``comparisons`` for claim.md."""

    comparisons: tuple[Comparison, ...]

    def __new__(cls, held: bool | None, sentence: str,
                comparisons: Iterable[Comparison] = ()) -> Outcome:
        out = super().__new__(cls, (held, sentence))
        out.comparisons = tuple(comparisons)
        return out

    @property
    def held(self) -> bool | None:
        return self[0]

    @property
    def sentence(self) -> str:
        return self[1]


def _num(value: float, sign: bool = False) -> str:
    if not math.isfinite(value):
        return "nan"
    return f"{value:+.4g}" if sign else f"{value:.2g}"


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")


def _outcome(comparison: Comparison, note: str = "") -> Outcome:
    text = comparison.sentence() + (f"; {note}" if note else "")
    return Outcome(comparison.held, text, (comparison,))


def per_seed(results: Any, metric: str, arm: str) -> dict[Any, float]:
    """``seed -> value`` of ``metric`` for ``arm`` (the rows of a study's finished trials)."""
    part = results[results["arm"] == arm]
    return {int(s) if float(s).is_integer() else s: float(v)
            for s, v in zip(part["seed"], part[metric], strict=True)}


def diffs(results: Any, metric: str, a: str, b: str, mode: str = "max",
          ratio: float = 1.0) -> dict[Any, float]:
    """Per-seed ``a − ratio·b`` (``mode`` max) or ``ratio·b − a`` (``mode`` min) over the seeds
    both arms finished: positive means ``a`` is better."""
    va, vb = per_seed(results, metric, a), per_seed(results, metric, b)
    sign = 1.0 if mode == "max" else -1.0
    return {s: sign * (va[s] - ratio * vb[s]) for s in sorted(va) if s in vb}


def paired(results: Any, metric: str, a: str, b: str, mode: str = "max", *,
           rule: str = "every", margin: float = 0.0, ratio: float = 1.0,
           label: str | None = None) -> Outcome:
    """Arm ``a`` beats arm ``b`` on ``metric``, paired by seed (see the module docstring).

    ``ratio`` compares with a multiple of ``b`` (e.g. "below half the LSTM's errors":
    ``mode="min", ratio=0.5``); ``margin`` asks for more than a positive difference.
    """
    _check_rule(rule)
    if label is None:
        scaled = f"{ratio:g}·{b}" if ratio != 1.0 else b
        label = (f"{a} − {scaled} ({metric})" if mode == "max"
                 else f"{scaled} − {a} ({metric}, lower is better)")
    return _outcome(Comparison(label, diffs(results, metric, a, b, mode, ratio), rule, margin))


def level(results: Any, metric: str, arm: str, bound: float, mode: str = "max", *,
          rule: str = "every", label: str | None = None) -> Outcome:
    """Arm ``arm``'s ``metric`` is above ``bound`` (``mode`` max) or below it (min), per seed."""
    _check_rule(rule)
    sign = 1.0 if mode == "max" else -1.0
    values = per_seed(results, metric, arm)
    label = label or (f"{arm} {metric} − {bound:g}" if mode == "max"
                      else f"{bound:g} − {arm} {metric}")
    return _outcome(Comparison(label, {s: sign * (v - bound) for s, v in values.items()}, rule))


def within(results: Any, arm: str, better_col: str, worse_col: str, mode: str = "max", *,
           rule: str = "every", margin: float = 0.0, label: str | None = None,
           unit: str = "") -> Outcome:
    """Two columns of the same trials (e.g. ``psnr_x2`` vs ``bicubic_x2``), paired by seed."""
    _check_rule(rule)
    a, b = per_seed(results, better_col, arm), per_seed(results, worse_col, arm)
    sign = 1.0 if mode == "max" else -1.0
    label = label or (f"{arm}: {better_col} − {worse_col}" if mode == "max"
                      else f"{arm}: {worse_col} − {better_col}")
    d = {s: sign * (a[s] - b[s]) for s in sorted(a) if s in b}
    return _outcome(Comparison(label, d, rule, margin, unit))


def all_of(*outcomes: Outcome, note: str = "") -> Outcome:
    """Held when every part holds; the sentences joined, the comparisons kept."""
    comparisons = tuple(c for o in outcomes for c in o.comparisons)
    text = "; ".join(o.sentence for o in outcomes) + (f"; {note}" if note else "")
    return Outcome(all(o.held for o in outcomes), text, comparisons)


def comparisons_of(result: Any) -> tuple[Comparison, ...]:
    """The comparisons a verdict's result carries (none for a plain ``(held, sentence)``)."""
    return tuple(getattr(result, "comparisons", ()) or ())


def arm_means(results: Any, metric: str) -> dict[str, float]:
    """Mean of ``metric`` per arm over seeds (context for a sentence, not a verdict)."""
    return {arm: float(v) for arm, v in results.groupby("arm")[metric].mean().items()}


def means_text(results: Any, metric: str, arms: Iterable[str], digits: int = 3) -> str:
    """``none 0.812, under 0.845`` — seed means of ``metric`` for context."""
    m = arm_means(results, metric)
    return ", ".join(f"{a} {m[a]:.{digits}f}" for a in arms if a in m)
