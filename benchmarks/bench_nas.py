"""NAS benchmarks (not timed tests): run with ``pytest benchmarks/bench_nas.py -m benchmark -s``
or ``python benchmarks/bench_nas.py [rl-vs-random|overhead] …``.

1. **RL vs random search** (Zoph & Le's control, Sec. 4.1) on digits at equal budget over
   several seeds: best and mean-of-top-5 validation accuracy side by side, and their ratio.
2. **Orchestration overhead**: a synthetic child that sleeps a fixed time, 1 -> 64 concurrent
   children (K x m) on a local Ray with that many logical CPUs: children/hour against the ideal
   (workers / child time), and the share of wall time spent outside child training.
3. **Driver cost**: the driver's time per event with instant children, at S=2/K=2/m=2 and at
   S=20/K=100/m=8 (``driver-cost --layouts``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pytest
import ray

from deepmorning.nas.config import NASConfig, quick
from deepmorning.nas.search import Search, search
from deepmorning.platform.console import print_table
from deepmorning.platform.rundir import RunDir


def _config(**overrides) -> NASConfig:
    cfg = quick().to_dict()
    child = overrides.pop("child", {})
    cfg.update(overrides)
    cfg["child"].update(child)
    return NASConfig.from_dict(cfg)


def rl_vs_random(seeds: int = 3, children: int = 24, epochs: int = 6) -> list[dict]:
    rows = []
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(seeds):
                for strategy in ("rl", "random"):
                    cfg = _config(strategy=strategy, seed=seed, max_children=children,
                                  child={"epochs": epochs})
                    run = RunDir.create(Path(tmp) / f"{strategy}-{seed}", "nas", "bench",
                                        cfg.to_dict())
                    s = search(cfg, run, resumed=False)
                    rows.append({"seed": seed, "strategy": strategy,
                                 "best_val_acc": s["best_val_acc"],
                                 "top5_mean_val_acc": s["top5_mean_val_acc"],
                                 "wall_s": s["wall_seconds"]})
    finally:
        ray.shutdown()
    print_table("RL vs random search (digits, equal budget)", rows)
    summary = []
    for metric in ("best_val_acc", "top5_mean_val_acc"):
        rl = statistics.mean(r[metric] for r in rows if r["strategy"] == "rl")
        rnd = statistics.mean(r[metric] for r in rows if r["strategy"] == "random")
        summary.append({"metric": metric, "rl": rl, "random": rnd, "rl/random": rl / rnd})
    print_table(f"mean over {seeds} seeds, {children} children each", summary)
    return summary


def overhead(levels: tuple[int, ...] = (1, 4, 16, 64), child_seconds: float = 2.0,
             rounds: int = 6) -> list[dict]:
    rows = []
    for level in levels:
        k = max(1, int(level ** 0.5))
        m = level // k
        ray.init(address="local", num_cpus=level, include_dashboard=False, log_to_driver=False)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = _config(controllers=k, children_per_controller=m,
                              max_children=level * rounds, param_servers=2,
                              child={"trainer": f"sleep:{child_seconds}"})
                run = RunDir.create(Path(tmp) / "run", "nas", "bench", cfg.to_dict())
                start = time.time()
                Search(cfg, run, resumed=False).run_search()
                wall = time.time() - start
                hist = run.read_table("history.csv")
        finally:
            ray.shutdown()
        ideal = level / child_seconds * 3600
        # Steady state: from the end of the first round of children to the last child, so the
        # one-off start (worker processes, actors) is reported apart.
        done = hist["wall"].sort_values().to_numpy()
        steady_s = done[-1] - done[level - 1]
        steady = (len(done) - level) / steady_s * 3600
        rows.append({
            "concurrent": level, "K": k, "m": m, "children": len(hist),
            "startup_s": round(done[level - 1] - child_seconds, 1),
            "per_hour_total": round(len(hist) / wall * 3600),
            "per_hour_steady": round(steady), "ideal_per_hour": round(ideal),
            "steady/ideal": round(steady / ideal, 3),
            "outside_training_share": round(1 - (len(done) - level) * child_seconds
                                            / (steady_s * level), 3),
        })
    print_table(f"orchestration overhead (child = sleep {child_seconds}s)", rows)
    return rows


def driver_cost(layouts: tuple[tuple[int, int, int], ...] = ((2, 2, 2), (20, 100, 8)),
                rounds: int = 3) -> list[dict]:
    """The driver's time per event (journal, history row, launches) with instant children.

    ``layouts`` are (S, K, m); each runs ``rounds * K * m`` synthetic children, so the journal
    holds up to K open batches (K * m open children) at once.
    """
    rows = []
    for s_, k, m in layouts:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = _config(param_servers=s_, controllers=k, children_per_controller=m,
                              max_children=rounds * k * m,
                              child={"trainer": "synthetic"})
                run = RunDir.create(Path(tmp) / "run", "nas", "bench", cfg.to_dict())
                search_ = Search(cfg, run, resumed=False)
                summary = search_.run_search()
                rows.append({"S": s_, "K": k, "m": m, "children": summary["children"],
                             "events": search_.handled,
                             "driver_ms_per_event": summary["driver_ms_per_event"]})
        finally:
            ray.shutdown()
    print_table("driver cost per event (instant synthetic children)", rows)
    return rows


@pytest.mark.benchmark
def test_rl_vs_random_search():
    summary = rl_vs_random()
    assert all(row["rl"] > 0 for row in summary)


@pytest.mark.benchmark
def test_orchestration_overhead():
    rows = overhead()
    assert all(0 < row["steady/ideal"] <= 1.05 for row in rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["rl-vs-random", "overhead", "driver-cost"])
    parser.add_argument("--layouts", default="2x2x2,20x100x8", help="SxKxm,...")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--children", type=int, default=24)
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--child-seconds", type=float, default=2.0)
    args = parser.parse_args()
    if args.which == "rl-vs-random":
        rl_vs_random(args.seeds, args.children)
    elif args.which == "driver-cost":
        driver_cost(tuple(tuple(int(v) for v in lay.split("x")) for lay in
                          args.layouts.split(",")))
    else:
        overhead(tuple(int(x) for x in args.levels.split(",")), args.child_seconds)
