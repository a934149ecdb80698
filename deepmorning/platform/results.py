"""``deepmorning results show|plot DIR``: read any run directory, whatever wrote it.

Each area registers the function that draws its plots under its run-directory group
(``run.json``'s ``group``). The registry holds import paths, so reading results never imports
torch or RLlib unless the plotter needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from deepmorning.platform import console
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir

#: group -> "module:function" taking a RunDir and returning the PNG paths it wrote.
PLOTTERS: dict[str, str] = {
    "nas": "deepmorning.nas.plots:plot_run",
    "rl": "deepmorning.rl.plots:plot_run",
    "tune": "deepmorning.tuning.plots:plot_run",
}


def plotter_for(group: str) -> Callable[[RunDir], list[Path]]:
    target = PLOTTERS.get(group)
    if target is None:
        raise DeepmorningError(f"no plotter is registered for '{group}' runs")
    module, _, func = target.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise DeepmorningError(f"the plotter for '{group}' runs is not available ({exc})") from exc


def plot(path: str | Path) -> list[Path]:
    run = RunDir.open(path)
    paths = plotter_for(run.info["group"])(run)
    run.sync()  # a run at a URI gets its new plots
    return paths


def show(path: str | Path, rows: int = 10) -> None:
    run = RunDir.open(path)
    info = run.info
    console.console.print(
        f"[bold]{run.location}[/bold]  {info['group']}/{info['name']}  status: {info['status']}"
    )
    if run.is_finished():
        console.print_kv("summary", flatten(run.summary))
    else:
        console.console.print("(no summary.json yet: the run is unfinished)")
    for table in run.tables():
        df = run.read_table(table.name)
        console.print_table(
            f"{table.name} ({len(df)} rows, first {min(rows, len(df))})",
            df.head(rows).to_dict("records"),
        )
    plots = run.plots()
    if plots:
        console.console.print("plots: " + ", ".join(p.name for p in plots))


def flatten(mapping: Mapping[str, Any], prefix: str = "", sep: str = ".",
            keep_empty: bool = False) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested mappings become ``sep``-joined keys.

    An empty nested mapping leaves no key, or (``keep_empty``) stays a value of its own."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and (value or not keep_empty):
            flat.update(flatten(value, f"{name}{sep}", sep, keep_empty))
        else:
            flat[name] = value
    return flat
