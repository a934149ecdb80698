"""Tables a Tune run leaves behind: results.csv, epochs.csv, best.json, claim.csv and claim.md.

- ``results.csv``: one row per trial (the ResultGrid's last result): ``trial_id``, ``status``,
  ``epoch``, the metrics the trainable reported, ``time_total_s``, ``stopped_early`` (a scheduler
  ended it before its last epoch), ``error`` and the trial's config flattened as
  ``config/KEY`` (``config/a/b`` for nested values); a study adds ``arm`` and ``seed`` up front.
- ``epochs.csv``: every report of every trial (``trial_id``, ``epoch``, metrics), the data
  behind ``curves.png`` (``deepmorning results plot`` redraws from it without Ray).
- ``best.json``: the best trial by its last value of the metric: config, value, the best
  checkpoint's path (by the metric, within that trial) and its latest checkpoint's path.
- ``claim.csv``/``claim.md`` of a study: one row per arm and seed; mean ± std per arm beside the
  paper's own figure, the paired difference ± SE of each comparison the verdict made
  (:mod:`deepmorning.tuning.verdict`), and whether the claim held at this scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from deepmorning.platform.results import flatten
from deepmorning.tuning.registry import Study
from deepmorning.tuning.verdict import Comparison, Outcome, comparisons_of

#: Tune's own bookkeeping in every result: not the trainable's metrics.
INTERNAL = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "config", "experiment_tag", "logdir", "should_checkpoint",
})


def reported(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The trainable's own metrics from one Tune result."""
    return {k: v for k, v in metrics.items() if k not in INTERNAL and not k.startswith("config")}


def trial_id(result: Any) -> str:
    return str((result.metrics or {}).get("trial_id") or _dir_id(result.path))


def _dir_id(path: str | None) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1].removeprefix("trial_") if path else "?"


def trial_rows(grid: Any, study: bool) -> list[dict[str, Any]]:
    """One row per trial of a ResultGrid (see the module docstring)."""
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        config = dict(result.config or metrics.get("config") or {})
        epochs = config.get("epochs")
        epoch = metrics.get("epoch")
        row: dict[str, Any] = {"trial_id": trial_id(result)}
        if study:
            row.update(arm=config.get("arm"), seed=config.get("seed"))
        row["status"] = "ERROR" if result.error is not None else "TERMINATED"
        row.update(reported(metrics))
        row["epoch"] = epoch
        row["time_total_s"] = metrics.get("time_total_s")
        row["stopped_early"] = bool(result.error is None and epoch is not None
                                    and epochs is not None and epoch < epochs)
        row["error"] = _error_line(result.error)
        row.update({f"config/{k}": v for k, v in flatten(config, sep="/").items()})
        rows.append(row)
    return rows


def _error_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error).strip().splitlines()
    last = [line for line in text if line.strip()]
    return (last[-1] if last else type(error).__name__)[:300]


def epoch_rows(grid: Any, study: bool) -> list[dict[str, Any]]:
    """Every epoch of every trial (the last report of an epoch wins after a resume)."""
    rows = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or df.empty or "epoch" not in df.columns:
            continue
        df = df.drop_duplicates("epoch", keep="last").sort_values("epoch")
        config = dict(result.config or {})
        keep = [c for c in df.columns if c not in INTERNAL and not c.startswith("config")]
        for record in df[keep].to_dict("records"):
            row: dict[str, Any] = {"trial_id": trial_id(result)}
            if study:
                row.update(arm=config.get("arm"), seed=config.get("seed"))
            row.update(record)
            rows.append(row)
    return rows


def table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> a frame whose columns are the union of the rows' keys, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return pd.DataFrame(list(rows), columns=columns)


def best_result(grid: Any, metric: str, mode: str) -> Any | None:
    """The finished trial with the best last value of ``metric`` (None if none reported it)."""
    best, best_value = None, math.nan
    for result in grid:
        value = (result.metrics or {}).get(metric)
        if result.error is not None or value is None or not math.isfinite(float(value)):
            continue
        if best is None or (value > best_value if mode == "max" else value < best_value):
            best, best_value = result, float(value)
    return best


def best_checkpoint(result: Any, metric: str, mode: str) -> Any | None:
    try:
        return result.get_best_checkpoint(metric, mode) or result.checkpoint
    except (RuntimeError, ValueError, KeyError):
        return result.checkpoint


def best_record(result: Any, metric: str, mode: str) -> dict[str, Any]:
    """best.json's content for the best trial."""
    checkpoint = best_checkpoint(result, metric, mode)
    return {
        "trial_id": trial_id(result),
        "metric": metric,
        "mode": mode,
        "value": float(result.metrics[metric]),
        "epoch": result.metrics.get("epoch"),
        "metrics": reported(result.metrics),
        "config": dict(result.config or {}),
        "checkpoint": checkpoint.path if checkpoint is not None else None,
        "last_checkpoint": result.checkpoint.path if result.checkpoint is not None else None,
        "trial_path": result.path,
    }


# -- claim studies --------------------------------------------------------------------------------
def claim_frame(results: pd.DataFrame, study: Study) -> pd.DataFrame:
    """claim.csv: arm, seed, trial, status, the study's metric and columns, every other metric."""
    front = ["arm", "seed", "trial_id", "status", study.metric, *study.columns]
    metric_cols = [c for c in results.columns if c not in front and not c.startswith("config/")
                   and c not in ("error", "time_total_s", "stopped_early")]
    cols = [c for c in front if c in results.columns] + metric_cols + ["time_total_s"]
    order = {arm: i for i, arm in enumerate(study.arms)}
    df = results[[c for c in cols if c in results.columns]].copy()
    df["_order"] = df["arm"].map(order)
    return df.sort_values(["_order", "seed"]).drop(columns="_order").reset_index(drop=True)


def finished(claim: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows a verdict may use: finished trials that reported the metric."""
    ok = claim["status"] == "TERMINATED" if "status" in claim else True
    return claim[ok & claim[metric].notna()] if metric in claim else claim.iloc[0:0]


def number(value: float, digits: int = 4) -> str:
    """4 significant digits; large numbers (parameter counts) in full, not as 3.414e+04."""
    if abs(value) >= 10**digits and math.isfinite(value):
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def mean_std(values: pd.Series) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return number(float(values.iloc[0]))
    return f"{number(float(values.mean()))} ± {number(float(values.std(ddof=1)), 2)}"


def arm_rows(claim: pd.DataFrame, study: Study) -> list[dict[str, Any]]:
    """Mean ± std (sample std over seeds) per arm of the metric and the study's columns."""
    done = finished(claim, study.metric)
    rows = []
    for arm in study.arms:
        part = done[done["arm"] == arm]
        row: dict[str, Any] = {"arm": arm, "seeds": len(part)}
        for col in (study.metric, *study.columns):
            row[col] = mean_std(part[col]) if col in part else "–"
        rows.append(row)
    return rows


def verdict(study: Study, claim: pd.DataFrame) -> Outcome:
    """The study's verdict on the finished trials (unpacks as ``(held, sentence)``; held is
    None when it cannot be decided), with the comparisons it made."""
    done = finished(claim, study.metric)
    missing = [arm for arm in study.arms if not (done["arm"] == arm).any()]
    if missing:
        return Outcome(None, f"not decided: no finished trial for arm(s) {', '.join(missing)}")
    try:
        result = study.verdict(done.reset_index(drop=True))
        held, sentence = result
    except Exception as exc:  # noqa: BLE001 - a verdict bug must not lose the run's tables
        return Outcome(None, f"not decided: the verdict failed ({type(exc).__name__}: {exc})")
    return Outcome(bool(held), str(sentence), comparisons_of(result))


def claim_markdown(model: str, study: Study, rows: list[dict[str, Any]], held: bool | None,
                   sentence: str, context: Mapping[str, Any],
                   comparisons: Sequence[Comparison] = ()) -> str:
    """claim.md: the claim, the measured table, the paired comparisons (difference ± SE), the
    paper's figure, and the verdict line."""
    cols = ["arm", "seeds", study.metric, *study.columns]
    word = {True: "**held**", False: "**did not hold**", None: "**not decided**"}[held]
    lines = [
        f"# {model} · {study.name}",
        "",
        f"**Claim.** {study.claim}",
        "",
        f"Measured: {study.metric} ({'higher' if study.mode == 'max' else 'lower'} is better), "
        "mean ± sample std over seeds, last epoch of each trial.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    lines += comparison_lines(comparisons)
    lines += [
        "",
        f"**Paper.** {study.paper}",
        "",
        f"**Verdict.** The claim {word} at this scale: {sentence.rstrip('.')}.",
        "",
        "Run: " + ", ".join(f"{k} {v}" for k, v in context.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def comparison_lines(comparisons: Sequence[Comparison]) -> list[str]:
    """claim.md's table of the verdict's comparisons: paired difference ± SE per comparison."""
    if not comparisons:
        return []
    rows = [c.row() for c in comparisons]
    cols = list(rows[0])
    lines = ["", "Paired by seed (arms of one seed share data and initialisation): difference "
             "as mean ± standard error over seeds.", "",
             "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return lines


# -- the closing table ----------------------------------------------------------------------------
def top_rows(results: pd.DataFrame, metric: str, mode: str, searched: Sequence[str],
             n: int = 10) -> list[dict[str, Any]]:
    """The best ``n`` trials with the searched values, for the closing table."""
    if results.empty:
        return []
    df = results.sort_values(metric, ascending=mode == "min", na_position="last") \
        if metric in results else results
    cols = ["trial_id", *[c for c in ("arm", "seed") if c in df], "status", "epoch", metric]
    cols += [f"config/{k}" for k in searched if f"config/{k}" in df and k not in cols]
    out = []
    for record in df.head(n)[[c for c in cols if c in df]].to_dict("records"):
        out.append({k.removeprefix("config/"): v for k, v in record.items()})
    return out
