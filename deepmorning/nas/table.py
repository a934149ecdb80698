"""A tabular NAS benchmark built by the package itself (NAS-Bench-101/201 style).

Every architecture of a small, enumerable subspace of Zoph & Le's CNN space (Sec. 3.1-3.3) is
trained with a few seeds by the same child-training code a real search uses
(:func:`deepmorning.nas.child.fit`, the function behind the ``torch`` trainer), once; search
strategies are then compared at thousands of samples and dozens of seeds by looking results up
(Ying et al. 2019; Dong & Yang 2020; Zoph & Le's own Fig. 6 is such a comparison at full scale).

A table is a run directory (``deepmorning nas table build``): ``rows.csv`` gets one fsynced row
per (architecture, seed) as it finishes, so a killed build resumes where it stopped
(``--resume``), and the finished build writes ``table.json.gz``: a manifest (space, data, child
training, seeds, code version, hardware, wall time) and the rows. The ``table`` child trainer
(``nas search --trainer table[:PATH][@SECONDS]``) looks a child up there: each child gets one
seed's result, drawn with the child's own seed (the noise a real search sees).

This module imports neither torch nor Ray at import time: a table-backed child runs in a worker
of about 45 MB (see :mod:`deepmorning.nas.task`).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import os
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmorning.nas.space import Architecture, Layer, SearchSpace, chain_inputs
from deepmorning.platform.errors import DeepmorningError

TABLE_FILE = "table.json.gz"
ROWS_FILE = "rows.csv"
COLUMNS = ("arch", "seed", "val_acc", "test_acc", "params", "seconds")
SHIPPED_DIR = Path(__file__).with_name("tables")


@dataclass(frozen=True)
class TableSpec:
    """An enumerable search space, the data and the child training of one table."""

    name: str
    description: str
    layers: int
    space: SearchSpace
    dataset: str = "strokes"
    child: dict[str, Any] = field(default_factory=lambda: {"epochs": 6, "batch_size": 64})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "layers": self.layers,
                "space": self.space.to_dict(), "dataset": self.dataset, "child": self.child}

    def search_space(self) -> SearchSpace:
        """The space a search over this table samples from: fixed depth, no schedule."""
        return SearchSpace.from_dict({**self.space.to_dict(), "layers_start": self.layers,
                                      "layers_step": 0, "layers_max": self.layers})


def _space(heights, widths, filters, skips: bool, layers: int) -> SearchSpace:
    return SearchSpace(filter_heights=heights, filter_widths=widths, num_filters=filters,
                       skip_connections=skips, layers_start=layers, layers_step=0,
                       layers_max=layers)


SPECS: dict[str, TableSpec] = {
    spec.name: spec for spec in (
        TableSpec(
            name="cnn2",
            description="2 layers; filter height and width from {1,3,5,7} (the paper's values, "
                        "Sec. 4.1); 8 or 24 filters; skip connections (layer 1 reads the image "
                        "or layer 0); on strokes: 2,048 architectures",
            layers=2, space=_space((1, 3, 5, 7), (1, 3, 5, 7), (8, 24), True, 2)),
        TableSpec(
            name="tiny",
            description="2 layers of 1x1 or 3x3 filters, 4 filters, a chain: 16 architectures "
                        "on strokes with 1 epoch (for tests)",
            layers=2, space=_space((1, 3), (1, 3), (4,), False, 2),
            child={"epochs": 1, "batch_size": 64}),
    )
}
DEFAULT_SPEC = "cnn2"


def get_spec(name: str) -> TableSpec:
    if name not in SPECS:
        raise DeepmorningError(f"unknown table space '{name}'; choose one of: "
                               f"{', '.join(SPECS)}")
    return SPECS[name]


# -- the space, enumerated
def _input_choices(space: SearchSpace, i: int) -> list[tuple[int, ...]]:
    """Every input set layer ``i`` may have: any subset of earlier layers with skip connections
    (the anchor points of Sec. 3.3; the empty set is the image), else the chain."""
    if not space.skip_connections:
        return [chain_inputs(i)]
    return [tuple(j for j in range(i) if mask >> j & 1) for mask in range(2 ** i)]


def enumerate_architectures(space: SearchSpace, layers: int) -> list[Architecture]:
    """Every architecture of ``layers`` layers in ``space``, in a fixed order (stride 1)."""
    if space.strides:
        raise DeepmorningError("a table space cannot predict strides")
    per_layer = [
        [Layer(h, w, f, inputs=inputs)
         for inputs in _input_choices(space, i)
         for h in space.filter_heights for w in space.filter_widths for f in space.num_filters]
        for i in range(layers)
    ]
    return [Architecture(tuple(combo)) for combo in itertools.product(*per_layer)]


def arch_key(arch: Architecture | dict) -> str:
    """A canonical string of an architecture (its JSON), the table's lookup key."""
    arch = arch if isinstance(arch, Architecture) else Architecture.from_dict(arch)
    return arch.to_json()


# -- building
def train_one(arch_dict: dict, data: Any, child: dict[str, Any], seed: int) -> dict[str, Any]:
    """One (architecture, seed): the search's own child training, plus the test accuracy."""
    import torch

    from deepmorning.nas.child import fit
    from deepmorning.nas.task import ChildConfig, hide_gpus

    hide_gpus()
    torch.set_num_threads(1)
    start = time.time()
    cfg = ChildConfig(**child, seed=seed, threads=1)
    result = fit(Architecture.from_dict(arch_dict), data, cfg, test=True)
    return {"val_acc": round(result["val_acc"], 6), "test_acc": round(result["test_acc"], 6),
            "params": int(result["params"]), "seconds": round(time.time() - start, 3)}


def manifest(spec: TableSpec, seeds: int, archs: int, wall: float) -> dict[str, Any]:
    from deepmorning import __version__

    return {
        "space": spec.to_dict(),
        "architectures": archs,
        "seeds": list(range(seeds)),
        "columns": list(COLUMNS),
        "child_code": "deepmorning.nas.child.fit (the search's torch trainer), 1 thread, CPU",
        "deepmorning_version": __version__,
        "git_commit": _git_commit(),
        "hardware": {"machine": platform.machine(), "processor": platform.processor(),
                     "cpus": os.cpu_count(), "python": platform.python_version()},
        "wall_seconds": round(wall, 1),
    }


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def done_keys(run: Any) -> set[tuple[int, int]]:
    """(architecture index, seed) pairs already in ``rows.csv``."""
    df = run.read_table(ROWS_FILE)
    return set() if df.empty else {(int(a), int(s)) for a, s in zip(df["arch"], df["seed"],
                                                                   strict=True)}


def build_order(n: int) -> list[int]:
    """The order architectures are trained in: a fixed shuffle, so the rows of a partial build
    (one seed done, a build stopped early) are a uniform sample of the space, not its first
    corner."""
    order = list(range(n))
    random.Random(20190211).shuffle(order)  # fixed: every build and resume agree
    return order


def build(run: Any, spec: TableSpec, seeds: int, in_flight: int) -> dict[str, Any]:
    """Train every (architecture, seed) not yet in ``run``'s rows, over Ray; write the table."""
    import ray

    from deepmorning.nas.data import load_dataset
    from deepmorning.platform import console

    archs = enumerate_architectures(spec.space, spec.layers)
    have = done_keys(run)
    todo = [(i, s) for s in range(seeds) for i in build_order(len(archs)) if (i, s) not in have]
    info = run.info
    wall_before = float(info.get("build_seconds", 0.0))
    start = time.time()
    data_ref = ray.put(load_dataset(spec.dataset))
    task = ray.remote(num_cpus=1, max_retries=3)(train_one)
    pending: dict[Any, tuple[int, int]] = {}
    queue = iter(todo)
    total = len(archs) * seeds
    with console.progress(total, f"table {spec.name}") as bar:
        bar.update(len(have))
        done = len(have)
        while True:
            while len(pending) < in_flight:
                nxt = next(queue, None)
                if nxt is None:
                    break
                i, s = nxt
                pending[task.remote(archs[i].to_dict(), data_ref, spec.child, s)] = nxt
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            rows = []
            for ref in ready:
                i, s = pending.pop(ref)
                rows.append({"arch": i, "seed": s, **ray.get(ref)})
            run.append_rows(ROWS_FILE, rows)  # fsynced: a kill loses only children in flight
            run._update_info(build_seconds=wall_before + time.time() - start)
            done += len(rows)
            bar.update(done)
    wall = wall_before + time.time() - start
    table = write_table(run, spec, seeds, len(archs), wall)
    return summarize(table)


def write_table(run: Any, spec: TableSpec, seeds: int, archs: int, wall: float) -> dict:
    df = run.read_table(ROWS_FILE).sort_values(["arch", "seed"])
    rows = [[int(r.arch), int(r.seed), float(r.val_acc), float(r.test_acc), int(r.params),
             float(r.seconds)] for r in df.itertuples()]
    table = {"manifest": manifest(spec, seeds, archs, wall), "rows": rows}
    path = run.path / TABLE_FILE
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump(table, fh, separators=(",", ":"))
    os.replace(tmp, path)
    run.sync()
    return table


def summarize(table: dict) -> dict[str, Any]:
    """The spread of the table: what makes it a useful benchmark (or not)."""
    import numpy as np

    val = per_arch_mean(table, "val_acc")
    test = per_arch_mean(table, "test_acc")
    values = np.asarray(list(val.values()))
    best = max(val, key=val.get)
    noise = seed_noise(table)
    q = np.quantile(values, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    return {
        "architectures": len(val),
        "rows": len(table["rows"]),
        "val_acc_quantiles": {k: round(float(v), 4) for k, v in
                              zip(("min", "p10", "p25", "median", "p75", "p90", "max"), q,
                                  strict=True)},
        "share_within_1pt_of_best": round(float(np.mean(values >= values.max() - 0.01)), 4),
        "best_arch": best,
        "best_val_acc": round(val[best], 4),
        "best_test_acc": round(test[best], 4),
        "optimum_test_acc": round(max(test.values()), 4),
        "seed_noise_val_acc_sd": round(noise, 4),
        "wall_seconds": table["manifest"]["wall_seconds"],
    }


def per_arch_mean(table: dict, column: str) -> dict[int, float]:
    col = COLUMNS.index(column)
    sums: dict[int, list[float]] = {}
    for row in table["rows"]:
        sums.setdefault(int(row[0]), []).append(float(row[col]))
    return {a: sum(v) / len(v) for a, v in sums.items()}


def seed_noise(table: dict) -> float:
    """Mean over architectures of the sample std of validation accuracy across seeds."""
    import numpy as np

    by_arch: dict[int, list[float]] = {}
    for row in table["rows"]:
        by_arch.setdefault(int(row[0]), []).append(float(row[2]))
    sds = [np.std(v, ddof=1) for v in by_arch.values() if len(v) > 1]
    return float(np.mean(sds)) if sds else float("nan")


def check_table(table: dict) -> dict[str, Any]:
    """Check a table against its manifest's space: the architecture count is the space's, the
    seeds are ``0..n-1``, and every (architecture, seed) row is there exactly once (a
    ``partial`` table, read from an unfinished build, may lack rows but never repeat one).
    Returns the counts; raises :class:`DeepmorningError` naming the first problem."""
    m = table["manifest"]
    spec = m["space"]
    n = len(enumerate_architectures(SearchSpace.from_dict(spec["space"]), int(spec["layers"])))
    seeds = [int(s) for s in m["seeds"]]
    problems = []
    if int(m["architectures"]) != n:
        problems.append(f"the manifest says {m['architectures']} architectures, the space "
                        f"{spec['name']} has {n}")
    if seeds != list(range(len(seeds))):
        problems.append(f"the seeds are {seeds}, not 0..{len(seeds) - 1}")
    keys = [(int(r[0]), int(r[1])) for r in table["rows"]]
    if len(set(keys)) != len(keys):
        problems.append(f"{len(keys) - len(set(keys))} (architecture, seed) rows are repeated")
    outside = [k for k in keys if not (0 <= k[0] < n and k[1] in seeds)]
    if outside:
        problems.append(f"{len(outside)} rows lie outside the space or the seeds, e.g. "
                        f"{outside[0]}")
    missing = n * len(seeds) - len(set(keys) - set(outside))
    if missing and not m.get("partial"):
        problems.append(f"{missing} of {n * len(seeds)} (architecture, seed) rows are missing")
    if problems:
        raise DeepmorningError(f"table {spec['name']}: " + "; ".join(problems))
    return {"architectures": n, "seeds": len(seeds), "rows": len(keys),
            "covered": len({k[0] for k in keys}), "missing_rows": missing}


# -- looking up
def table_path(spec: str | None) -> Path:
    """``None``: the shipped default table; else a ``table.json.gz`` file or a build's run
    directory (finished: its ``table.json.gz``; unfinished: its ``rows.csv`` so far, a
    *partial* table)."""
    if not spec:
        path = SHIPPED_DIR / f"{DEFAULT_SPEC}.json.gz"
        if not path.is_file():
            raise DeepmorningError(f"the shipped table {path.name} is missing from this install "
                                   "(build one with `deepmorning nas table build`, or give "
                                   "a table's path)")
        return path
    path = Path(spec).expanduser().absolute()
    if path.is_dir() and (path / TABLE_FILE).is_file():
        return path / TABLE_FILE
    if path.is_file() or (path.is_dir() and (path / ROWS_FILE).is_file()):
        return path
    raise DeepmorningError(f"no table at {spec} (expected a table.json.gz or a "
                           "`nas table build` run directory)")


def _read_partial(run_dir: Path) -> dict[str, Any]:
    """An unfinished build as a table: its manifest (``partial``) and the rows so far."""
    import csv

    try:
        cfg = json.loads((run_dir / "config.json").read_text())
        spec = get_spec(cfg["table_space"])
        with (run_dir / ROWS_FILE).open(newline="") as fh:
            lines = list(csv.DictReader(fh))
        rows = []
        for number, r in enumerate(lines):
            try:
                rows.append([int(r["arch"]), int(r["seed"]), float(r["val_acc"]),
                             float(r["test_acc"]), int(r["params"]), float(r["seconds"])])
            except (TypeError, ValueError):
                if number < len(lines) - 1:  # only the last line may be torn (being written)
                    raise
    except (OSError, ValueError, KeyError) as exc:
        raise DeepmorningError(f"{run_dir} is not a `nas table build` run ({exc})") from exc
    n = len(enumerate_architectures(spec.space, spec.layers))
    return {"manifest": {"space": spec.to_dict(), "architectures": n,
                         "seeds": list(range(int(cfg["seeds"]))), "columns": list(COLUMNS),
                         "partial": True},
            "rows": sorted(rows)}


@functools.lru_cache(maxsize=4)
def load_table(path: str) -> dict[str, Any]:
    """The table at ``path`` (see :func:`table_path`) with a lookup from architecture key to
    its rows (cached per process: a Ray worker reads it once)."""
    if Path(path).is_dir():
        table = _read_partial(Path(path))
    else:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                table = json.load(fh)
            table["manifest"]["space"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeepmorningError(f"{path} is not a deepmorning NAS table ({exc})") from exc
    spec = table["manifest"]["space"]
    space = SearchSpace.from_dict(spec["space"])
    archs = enumerate_architectures(space, int(spec["layers"]))
    keys = [arch_key(a) for a in archs]
    rows: dict[str, list[list[float]]] = {}
    for row in table["rows"]:
        rows.setdefault(keys[int(row[0])], []).append(row)
    table["lookup"] = rows
    table["keys"] = keys
    return table


def usable_table(spec: str | None) -> tuple[str, TableSpec, dict[str, Any]]:
    """Resolve, load and check the table a search or a comparison looks children up in:
    (its path, its :class:`TableSpec`, its counts). Every architecture of the space must have
    at least one row (a partial build's seeds may still be missing), else one line says how
    many lack one."""
    path = str(table_path(spec))
    counts = check_table(load_table(path))
    if counts["covered"] < counts["architectures"]:
        raise DeepmorningError(
            f"the table at {path} has no row yet for {counts['architectures'] - counts['covered']}"
            f" of its {counts['architectures']} architectures (finish the build with "
            "`deepmorning nas table build --resume`)")
    return path, table_spec(path), counts


def table_spec(path: Path | str) -> TableSpec:
    """The :class:`TableSpec` a table was built with (from its manifest)."""
    spec = load_table(str(path))["manifest"]["space"]
    return TableSpec(name=spec["name"], description=spec["description"],
                     layers=int(spec["layers"]), space=SearchSpace.from_dict(spec["space"]),
                     dataset=spec["dataset"], child=dict(spec["child"]))


def lookup(path: str, arch_dict: dict, seed: int) -> dict[str, Any]:
    """One child's result: one of the architecture's seeds, drawn with the child's ``seed``."""
    table = load_table(path)
    try:
        rows = table["lookup"][arch_key(arch_dict)]
    except KeyError:
        raise ValueError("architecture not in the table: "
                         f"{Architecture.from_dict(arch_dict).summary()}") from None
    row = random.Random(seed).choice(rows)
    return {"val_acc": float(row[2]), "test_acc": float(row[3]), "params": int(row[4]),
            "table_seed": int(row[1])}


def plot_distribution(run: Any) -> Path | None:
    """``table.png``: the spread of validation accuracy over the space (per-architecture mean)
    and its seed noise, the two numbers that decide whether the table can tell searches apart."""
    from deepmorning.platform.plots import figure, save

    path = run.path / TABLE_FILE
    if not path.is_file():
        return None
    table = load_table(str(path))
    val = list(per_arch_mean(table, "val_acc").values())
    fig, ax = figure(f"Table {table['manifest']['space']['name']}: validation accuracy of "
                     f"{len(val)} architectures", "validation accuracy (mean over seeds)",
                     "architectures")
    ax.hist(val, bins=40)
    ax.axvline(max(val), color="C1", label=f"best {max(val):.3f}")
    ax.legend()
    return save(fig, run.path / "table.png")
