"""NAS benchmarks (not timed tests): run with ``pytest benchmarks/bench_nas.py -m benchmark -s``
or ``python benchmarks/bench_nas.py WHICH …`` (see docs/nas.md, "Benchmarks").

1. **RL vs random search** (Zoph & Le's control, Fig. 6) for both spaces: the CNN search on the
   generated ``strokes`` task, the cell search on the embedded text; equal budget, paired seeds;
   the running mean of the top-5 rewards (PNG) and a paired t-test on the final values.
2. **Spread**: validation accuracy of random architectures on a CNN task.
3. **Orchestration overhead**: a synthetic child that sleeps a fixed time, 1 -> 64 concurrent
   children (K x m) on a local Ray with that many logical CPUs: children/hour against the ideal
   (workers / child time), and the share of wall time spent outside child training.
4. **Driver cost**: the driver's time per event with instant children, at S=2/K=2/m=2 and at
   S=20/K/m=8 (``driver-cost --layouts``), and one scan of the open calls (``wait-cost``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from deepmorning.nas.child import run_child
from deepmorning.nas.compare import paired_stats, top_k_curve
from deepmorning.nas.config import NASConfig, quick, rnn_quick
from deepmorning.nas.data import load_dataset
from deepmorning.nas.search import Search, search
from deepmorning.nas.spaces import sample_random
from deepmorning.platform.console import print_table
from deepmorning.platform.plots import figure, save
from deepmorning.platform.rundir import RunDir


def _config(base: str = "cnn", **overrides) -> NASConfig:
    cfg = (rnn_quick() if base == "rnn" else quick()).to_dict()
    for key in ("child", "controller", "lm", "space"):
        cfg[key].update(overrides.pop(key, {}))
    cfg.update(overrides)
    return NASConfig.from_dict(cfg)


RESULTS = Path(__file__).parent / "results"
IMAGES = Path(__file__).parents[1] / "docs" / "img"
# The comparison's settings per space (on top of the `quick` presets, whose controller settings
# are the small-budget ones): the CNN task is the harder generated one (see nas/data.py).
COMPARE = {
    "cnn": {"dataset": "strokes"},
    "rnn": {},
}


def compare(space: str, seeds: int = 5, children: int = 100, out: Path | None = None,
            first_seed: int = 0) -> Path:
    """RL against random search at an equal budget, seed by seed (paired), written as it goes.

    Each finished search appends its children (``child_id`` = sampling order, reward) to
    ``benchmarks/results/nas_compare_<space>.csv``, so a partial run is still usable.
    """
    out = out or RESULTS / f"nas_compare_{space}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.is_file():
        old = pd.read_csv(out)
        done = set(zip(old["seed"], old["strategy"], strict=True))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(first_seed, seeds):
                for strategy in ("rl", "random"):
                    if (seed, strategy) in done:
                        continue
                    cfg = _config(space, strategy=strategy, seed=seed, max_children=children,
                                  **COMPARE[space])
                    run = RunDir.create(Path(tmp) / f"{strategy}-{seed}", "nas", "bench",
                                        cfg.to_dict())
                    search(cfg, run, resumed=False)
                    hist = run.read_table("history.csv").sort_values("child_id")
                    metric = "val_ppl" if space == "rnn" else "val_acc"
                    rows = pd.DataFrame({
                        "space": space, "seed": seed, "strategy": strategy,
                        "child_id": hist["child_id"], "reward": hist["reward"],
                        "metric": hist[metric], "summary": hist["summary"],
                        "seconds": hist["seconds"],
                    })
                    rows.to_csv(out, mode="a", header=not out.is_file(), index=False)
    finally:
        ray.shutdown()
    return out


def compare_report(space: str, path: Path | None = None, image: Path | None = None
                   ) -> list[dict]:
    """The Fig. 6 plot (mean and min-max band over seeds) and the paired table."""
    path = path or RESULTS / f"nas_compare_{space}.csv"
    image = image or IMAGES / f"nas_rl_vs_random_{space}.png"
    df = pd.read_csv(path)
    seeds = sorted(set(df[df.strategy == "rl"].seed) & set(df[df.strategy == "random"].seed))
    curves: dict[str, list[np.ndarray]] = {"rl": [], "random": []}
    finals: dict[str, dict[str, list[float]]] = {s: {"best": [], "top5": []} for s in curves}
    tables = {(strategy, seed): df[(df.strategy == strategy) & (df.seed == seed)]
              .sort_values("child_id") for strategy in curves for seed in seeds}
    n = min(len(t) for t in tables.values())  # an equal budget: the shortest run's children
    # the metric of the best child: highest validation accuracy, lowest validation perplexity
    metric, best = ("val_ppl", np.nanmin) if space == "rnn" else ("val_acc", np.nanmax)
    for (strategy, _), table in tables.items():
        rewards = table["reward"].fillna(0.0).to_numpy(float)[:n]
        curve = top_k_curve(rewards)
        curves[strategy].append(curve)
        finals[strategy]["best"].append(float(rewards.max()))
        finals[strategy]["top5"].append(float(curve[-1]))
        # has the policy moved? the mean reward of the last third of the children sampled
        finals[strategy].setdefault("last", []).append(float(rewards[-max(1, n // 3):].mean()))
        finals[strategy].setdefault(metric, []).append(
            float(best(table["metric"].to_numpy(float)[:n])))
    fig, ax = figure(f"RL vs random search ({space}, {len(seeds)} seeds)", "children sampled",
                     "mean reward of the top 5 so far")
    for strategy, color in (("rl", "C0"), ("random", "C1")):
        stack = np.stack([c[:n] for c in curves[strategy]])
        x = np.arange(1, n + 1)
        ax.plot(x, stack.mean(0), color=color, label=f"{strategy} (mean over seeds)")
        ax.fill_between(x, stack.min(0), stack.max(0), color=color, alpha=0.2,
                        label=f"{strategy} (min-max over seeds)")
    ax.legend()
    image.parent.mkdir(parents=True, exist_ok=True)
    save(fig, image)
    rows = []
    for name in ("best", "top5", metric, "last"):
        rl, rnd = finals["rl"][name], finals["random"][name]
        st = paired_stats(rl, rnd)
        label = {"best": "best reward", "top5": "top-5 mean reward",
                 "val_acc": "best val accuracy", "val_ppl": "lowest val perplexity",
                 "last": "mean reward, last third of children"}[name]
        rows.append({"space": space, "metric": label, "seeds": len(seeds),
                     "children": n, "rl_mean": round(float(np.mean(rl)), 4),
                     "random_mean": round(float(np.mean(rnd)), 4),
                     "rl-random": round(st["diff"], 4),
                     "95% CI": f"[{st['ci_low']:.4f}, {st['ci_high']:.4f}]",
                     "paired t p": round(st["p"], 3),
                     "rl better": f"{sum(map(_better(name), rl, rnd))}/{len(rl)}"})
    print_table(f"RL vs random search ({space}): final values over paired seeds", rows)
    _save_results(f"{path.stem}_table.json", rows)
    return rows


def _better(name: str):
    """Whether RL's value beats random's: lower is better for a perplexity."""
    return (lambda rl, rnd: rl < rnd) if name == "val_ppl" else (lambda rl, rnd: rl > rnd)


def spread(dataset: str = "strokes", count: int = 50, seed: int = 12345,
           out: Path | None = None) -> dict[str, float]:
    """Validation accuracy of ``count`` uniformly random architectures of the quick space.

    Architecture ``i`` has the depth the search's schedule gives child ``i * 100 // count`` of a
    100-child search (3 to 5 layers); each trains as a child of the ``quick`` preset. Rows are
    appended to ``benchmarks/results/nas_spread_<dataset>.jsonl`` as they finish.
    """
    out = out or RESULTS / f"nas_spread_{dataset}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = _config(dataset=dataset)
    data = load_dataset(dataset)
    rng = random.Random(seed)
    accs = []
    with out.open("w") as fh:
        for i in range(count):
            arch = sample_random(cfg.space, cfg.space.num_layers(i * 100 // count), rng)
            result = run_child(i, arch.to_dict(), data, cfg.child)
            accs.append(result["val_acc"])
            fh.write(json.dumps({"i": i, "val_acc": result["val_acc"],
                                 "params": result["params"],
                                 "seconds": round(result["seconds"], 2),
                                 "summary": arch.summary()}) + "\n")
            fh.flush()
    p10, p50, p90 = np.percentile(accs, [10, 50, 90])
    row = {"dataset": dataset, "architectures": count, "p10": round(p10, 3),
           "median": round(p50, 3), "p90": round(p90, 3), "p90-p10": round(p90 - p10, 3),
           "min": round(min(accs), 3), "max": round(max(accs), 3)}
    print_table("validation accuracy of random architectures", [row])
    return row


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
                summary = Search(cfg, run, resumed=False).run_search()
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
            "driver_ms_per_event": summary["driver_ms_per_event"],
            "driver_cpu_ms_per_event": summary["driver_cpu_ms_per_event"],
        })
        _save_results("nas_overhead.json", rows, child_seconds=child_seconds)
    print_table(f"orchestration overhead (child = sleep {child_seconds}s)", rows)
    return rows


def _save_results(name: str, rows: list[dict], **meta) -> None:
    """Raw results, rewritten after each configuration so a partial run is kept."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps({
        "rows": rows, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **meta}, indent=1) + "\n")


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
                             "driver_ms_per_event": summary["driver_ms_per_event"],
                             "driver_cpu_ms_per_event": summary["driver_cpu_ms_per_event"]})
        finally:
            ray.shutdown()
        _save_results("nas_driver_cost.json", rows)
    print_table("driver cost per event (instant synthetic children)", rows)
    return rows


@ray.remote(num_cpus=0)
class _Gate:
    """Calls that stay pending until released: open children without a process each."""

    def __init__(self) -> None:
        import asyncio

        self.event = asyncio.Event()

    async def hold(self) -> int:
        await self.event.wait()
        return 0

    async def release(self) -> None:
        self.event.set()


def wait_cost(pending: tuple[int, ...] = (4, 800), repeats: int = 200) -> list[dict]:
    """The driver's wait for the next finished call with ``pending`` calls open (K x m = 800
    at the paper's scale), one of them finished: the part of an event that scans them."""
    rows = []
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for n in pending:
            gate = _Gate.remote()
            refs = [gate.hold.remote() for _ in range(n - 1)] + [ray.put(0)]
            start = time.perf_counter()
            for _ in range(repeats):
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                assert len(ready) == 1
            rows.append({"open_calls": n,
                         "wait_ms": round(1000 * (time.perf_counter() - start) / repeats, 3)})
            ray.get(gate.release.remote())
    finally:
        ray.shutdown()
    _save_results("nas_wait_cost.json", rows)
    print_table("one scan of the open calls (ray.wait)", rows)
    return rows


@pytest.mark.benchmark
@pytest.mark.parametrize("space", ["cnn", "rnn"])
def test_rl_vs_random_search(space, tmp_path):
    path = compare(space, seeds=5, children=100, out=tmp_path / "compare.csv")
    rows = compare_report(space, path, tmp_path / "compare.png")
    assert all(row["seeds"] == 5 for row in rows)


@pytest.mark.benchmark
def test_orchestration_overhead():
    rows = overhead()
    assert all(0 < row["steady/ideal"] <= 1.05 for row in rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["rl-vs-random", "report", "spread", "overhead",
                                          "driver-cost", "wait-cost"])
    parser.add_argument("--space", choices=["cnn", "rnn"], default="cnn")
    parser.add_argument("--layouts", default="2x2x2,20x100x8", help="SxKxm,...")
    parser.add_argument("--dataset", default="strokes", help="spread: the CNN dataset")
    parser.add_argument("--count", type=int, default=50, help="spread: random architectures")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="rl-vs-random / report: the CSV (default "
                        "benchmarks/results/nas_compare_<space>.csv)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="rl-vs-random: start at this seed (a second process can share)")
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--child-seconds", type=float, default=2.0)
    args = parser.parse_args()
    if args.which == "rl-vs-random":
        out = compare(args.space, args.seeds, args.children, args.out, args.first_seed)
        image = IMAGES / f"{out.stem.replace('nas_compare', 'nas_rl_vs_random')}.png"
        compare_report(args.space, out, image)
    elif args.which == "spread":
        spread(args.dataset, args.count)
    elif args.which == "report":
        out = args.out or RESULTS / f"nas_compare_{args.space}.csv"
        compare_report(args.space, out,
                       IMAGES / f"{out.stem.replace('nas_compare', 'nas_rl_vs_random')}.png")
    elif args.which == "wait-cost":
        wait_cost()
    elif args.which == "driver-cost":
        driver_cost(tuple(tuple(int(v) for v in lay.split("x")) for lay in
                          args.layouts.split(",")))
    else:
        overhead(tuple(int(x) for x in args.levels.split(",")), args.child_seconds)
