"""Search strategies compared on a tabular benchmark (``deepmorning nas compare``).

RL (Zoph & Le 2017), random search (the paper's control) and regularized evolution (Real et
al. 2019, the reference the NAS-Bench papers report) run on a table
(:mod:`deepmorning.nas.table`) at thousands of samples and dozens of seeds, in one process: no
actors, no training, only look-ups. RL and random search are **the search's own code**, not a
copy of it: the architectures come from :meth:`deepmorning.nas.ps.ControllerReplica.sample`
(the same random stream per batch, :func:`deepmorning.nas.ps.batch_stream`), the controller's
parameters and Adam state live in a :class:`deepmorning.nas.ps.ParameterServer`, the gradient is
:meth:`~deepmorning.nas.ps.ControllerReplica.gradient` at the sampling parameters, the
advantages and the moving-average baseline come from
:func:`deepmorning.nas.controller.advantages_and_baseline`, and each child is
:func:`deepmorning.nas.task.table_child` with the child's own seed
(:func:`deepmorning.nas.task.child_seed`). So ``nas search --trainer table -S 1 -K 1`` samples the
same architectures and gets the same rewards as this module for the same seed (tested): the
search's layout with one replica, one shard and its batches one after another. (More shards
would not change the arithmetic: Adam is per element.)

Paired by seed: the strategies of one seed share the children's noise (child ``k`` of seed
``s`` draws the same table seed whichever strategy sampled it).
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from deepmorning.nas.config import ControllerConfig, quick
from deepmorning.nas.space import Architecture, SearchSpace
from deepmorning.nas.task import ChildConfig, child_seed, stream_seed, table_child
from deepmorning.platform.errors import DeepmorningError

#: ``rl``: the controller at the paper's settings (Sec. 4.1: Adam lr 6e-4; baseline decay 0.99,
#: see :mod:`deepmorning.nas.config`); ``rl-quick``: the same controller with the small-budget
#: settings of the ``quick`` preset (lr 0.01, baseline decay 0.9); ``random``: the paper's
#: control; ``evolution``: regularized evolution (Real et al. 2019).
STRATEGIES = ("rl", "rl-quick", "random", "evolution")
STREAM_EVOLUTION = 2  # task.stream_seed purpose of evolution's stream (0, 1: sampling, children)


@dataclass(frozen=True)
class Settings:
    """How each strategy runs (defaults: the papers' values)."""

    samples: int = 1000
    children_per_batch: int = 8  # m (Zoph & Le Sec. 4.1); one update per batch
    controller: ControllerConfig = field(default_factory=ControllerConfig)  # Sec. 4.1
    apply_every: int = 1
    reward_power: float = 3.0  # reward = val_acc ** 3 (Sec. 4.1), as the torch trainer
    # Real et al. 2019 (Algorithm 1) with their main experiments' values: P = 100, S = 25.
    population: int = 100
    sample_size: int = 25


def controller_for(strategy: str, settings: Settings) -> ControllerConfig:
    """The controller settings of an RL strategy (``rl-quick``: the ``quick`` preset's lr and
    baseline decay on top of ``settings.controller``)."""
    if strategy == "rl-quick":
        q = quick().controller
        return dataclasses.replace(settings.controller, lr=q.lr, baseline_decay=q.baseline_decay)
    return settings.controller


Child = dict[str, Any]  # child_id, arch (dict), reward, val_acc, test_acc, params, table_seed


def _child(table: str, settings: Settings, seed: int, child_id: int, arch: dict) -> Child:
    cfg = ChildConfig(trainer=f"table:{table}", reward_power=settings.reward_power)
    return {"child_id": child_id, "arch": arch,
            **table_child(arch, cfg, child_seed(seed, child_id))}


def run_search(strategy: str, table: str, space: SearchSpace, seed: int, settings: Settings
               ) -> Iterator[Child]:
    """RL or random search as ``nas search`` runs it with one replica and one shard: batches of
    ``m`` children one after another, each update pushed before the next batch is sampled."""
    import torch

    from deepmorning.nas import ps
    from deepmorning.nas.controller import advantages_and_baseline

    base = "rl" if strategy.startswith("rl") else "random"
    ccfg = controller_for(strategy, settings)
    threads = torch.get_num_threads()
    try:
        # The replica and server set one torch thread each, as in their actors.
        server = ps.ParameterServer(0, ps.initial_parameters(space, ccfg, seed), ccfg.lr,
                                    settings.apply_every)
        # No shard names: the replica never reaches for a Ray actor; its pushes go to `server`.
        replica = ps.ControllerReplica(0, space, ccfg, None, base, seed)
        baseline: float | None = None
        next_child, batch_id = 0, 0
        while next_child < settings.samples:
            count = min(settings.children_per_batch, settings.samples - next_child)
            ids = list(range(next_child, next_child + count))
            sampled = replica.sample(batch_id, count, [space.num_layers(i) for i in ids],
                                     pulled=server.pull() if base == "rl" else None)
            children = [_child(table, settings, seed, cid, arch)
                        for cid, arch in zip(ids, sampled["archs"], strict=True)]
            advantages, baseline = advantages_and_baseline(
                [c["reward"] for c in children], baseline, ccfg.baseline_decay)
            if base == "rl":
                server.push(batch_id, replica.gradient(sampled["archs"], advantages,
                                                       sampled["params"]))
            replica.open_batch = None  # closed: what ControllerReplica.update does first
            for child, advantage in zip(children, advantages, strict=True):
                yield {**child, "advantage": advantage, "baseline": baseline}
            next_child += count
            batch_id += 1
    finally:
        torch.set_num_threads(threads)


def mutate(arch: Architecture, space: SearchSpace, rng: random.Random) -> Architecture:
    """Real et al. 2019's mutation for this space: one choice of the parent, drawn uniformly
    among the choices the controller makes (a layer's filter height, filter width, filter
    count, stride if searched, or one of its skip connections, Sec. 3.3), set to another
    value, so the child always differs from its parent in exactly one choice."""
    choices: list[tuple[int, str, Any]] = []
    for i in range(len(arch)):
        choices += [(i, name, values) for name, values in space.token_choices()
                    if len(values) > 1]
        if space.skip_connections:
            choices += [(i, "input", j) for j in range(i)]
    if not choices:
        return arch
    i, name, arg = rng.choice(choices)
    layer = arch.layers[i]
    if name == "input":
        changed = dataclasses.replace(layer, inputs=tuple(sorted(set(layer.inputs) ^ {arg})))
    else:
        value = rng.choice([v for v in arg if v != getattr(layer, name)])
        changed = dataclasses.replace(layer, **{name: value})
    return Architecture(arch.layers[:i] + (changed,) + arch.layers[i + 1:])


def run_evolution(table: str, space: SearchSpace, seed: int, settings: Settings
                  ) -> Iterator[Child]:
    """Regularized (aging) evolution, Real et al. 2019, Algorithm 1: ``P`` random architectures
    first; then each cycle draws ``S`` members of the population at random (with replacement),
    mutates the fittest of them (by the reward the search sees), adds the child and removes the
    oldest member."""
    from deepmorning.nas.space import sample_uniform

    rng = random.Random(stream_seed(seed, STREAM_EVOLUTION, 0))
    population: deque[Child] = deque()
    for child_id in range(settings.samples):
        depth = space.num_layers(child_id)
        if child_id < settings.population:
            arch = sample_uniform(space, depth, rng)
        else:
            sample = [rng.choice(population) for _ in range(settings.sample_size)]
            parent = max(sample, key=lambda c: c["reward"])
            arch = mutate(Architecture.from_dict(parent["arch"]), space, rng)
        child = _child(table, settings, seed, child_id, arch.to_dict())
        population.append(child)
        if len(population) > settings.population:
            population.popleft()
        yield child


def run_strategy(strategy: str, table: str, space: SearchSpace, seed: int, settings: Settings
                 ) -> Iterator[Child]:
    if strategy == "evolution":
        return run_evolution(table, space, seed, settings)
    if strategy in ("rl", "rl-quick", "random"):
        return run_search(strategy, table, space, seed, settings)
    raise DeepmorningError(f"unknown strategy '{strategy}' (choose from {', '.join(STRATEGIES)})")


def parse_strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise DeepmorningError(f"unknown strategy '{','.join(unknown) or text}' (choose from "
                               f"{', '.join(STRATEGIES)}, comma-separated)")
    if len(set(names)) != len(names):
        raise DeepmorningError(f"--strategies names a strategy twice: {text}")
    return names


def run_seed(table: str, strategies: list[str], seed: int, settings: Settings
             ) -> list[tuple[str, list[Child]]]:
    """Every strategy with one seed, in the order given."""
    from deepmorning.nas.table import table_spec

    space = table_spec(table).search_space()
    return [(s, list(run_strategy(s, table, space, seed, settings))) for s in strategies]


def _run_seed_worker(args: tuple) -> list[tuple[str, list[Child]]]:
    import torch

    torch.set_num_threads(1)
    return run_seed(*args)


def compare(table: str, strategies: list[str], seeds: list[int], settings: Settings,
            on_run: Callable[[str, int, list[Child]], None], workers: int = 1) -> None:
    """Every strategy with every seed; ``on_run(strategy, seed, children)`` after each run, in
    seed order (so the per-seed results of the strategies stay aligned for pairing). With
    ``workers`` > 1, seeds run in that many processes (each run is deterministic in its seed,
    so the results are the same)."""
    if workers <= 1:
        for seed in seeds:
            for strategy, children in run_seed(table, strategies, seed, settings):
                on_run(strategy, seed, children)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no forked copy of torch's or Ray's state
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        jobs = [(table, strategies, seed, settings) for seed in seeds]
        for seed, runs in zip(seeds, pool.map(_run_seed_worker, jobs), strict=True):
            for strategy, children in runs:
                on_run(strategy, seed, children)


# -- the comparison's records, summary and plots
ROWS = "rows.csv"


def run_compare(run: Any, table: str, strategies: list[str], seeds: list[int],
                settings: Settings, workers: int = 1) -> dict[str, Any]:
    """Run the comparison into ``run`` (a :class:`~deepmorning.platform.rundir.RunDir`):
    ``rows.csv`` (one row per child, appended run by run), ``topk.png``, ``regret.png`` and the
    summary (finals per strategy at several budgets, paired statistics against random)."""
    import numpy as np

    from deepmorning.nas import compare as C
    from deepmorning.nas import table as T
    from deepmorning.platform import console

    loaded = T.load_table(table)
    index = {key: i for i, key in enumerate(loaded["keys"])}
    arch_test = T.per_arch_mean(loaded, "test_acc")
    optimum = max(arch_test.values())
    topk: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    regret: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    rewards: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    total = len(strategies) * len(seeds)

    with console.progress(total, "NAS compare") as bar:
        def on_run(strategy: str, seed: int, children: list[Child]) -> None:
            archs = [index[T.arch_key(c["arch"])] for c in children]
            reg = C.regret_curve([c["val_acc"] for c in children],
                                 [arch_test[a] for a in archs], optimum)
            top = C.top_k_curve([c["reward"] for c in children], C.TOP_K)
            topk[strategy].append(top)
            rewards[strategy].append(np.array([c["reward"] for c in children]))
            regret[strategy].append(reg)
            run.append_rows(ROWS, [
                {"strategy": strategy, "seed": seed, "child_id": c["child_id"], "arch": a,
                 "reward": c["reward"], "val_acc": c["val_acc"], "test_acc": c["test_acc"],
                 "table_seed": c["table_seed"], "regret": float(r)}
                for c, a, r in zip(children, archs, reg, strict=True)], durable=False)
            done = sum(len(v) for v in topk.values())
            bar.update(done, strategy=strategy, seed=seed, top5=float(top[-1]),
                       regret=float(reg[-1]))

        compare(table, strategies, seeds, settings, on_run, workers)
    C.plot_bands({s: np.stack(v) for s, v in topk.items()}, run.path / "topk.png",
                 f"Top-{C.TOP_K} mean reward (Zoph & Le Fig. 6 analogue)",
                 f"mean reward of the top {C.TOP_K} so far")
    C.plot_bands({s: np.stack(v) for s, v in regret.items()}, run.path / "regret.png",
                 "Regret: table optimum minus the test accuracy of the best-by-validation "
                 "architecture", "test-accuracy regret")
    return summarize(topk, regret, rewards, seeds, settings, optimum)


RECENT = 100  # "mean reward": of the last 100 children before a budget (is it still learning?)


def summarize(topk: dict[str, list], regret: dict[str, list], rewards: dict[str, list],
              seeds: list[int], settings: Settings, optimum: float) -> dict[str, Any]:
    """Finals per strategy at each budget (mean, sd over seeds): top-5 reward, regret, share of
    seeds that found the optimum, mean reward of the last :data:`RECENT` children (what the
    strategy samples by then); and, against ``random``, the paired difference per seed
    (:func:`deepmorning.nas.compare.paired_stats`) at the full budget."""
    import numpy as np

    from deepmorning.nas import compare as C

    finals: dict[str, dict[str, Any]] = {}
    for budget in C.budgets(settings.samples):
        for s in topk:
            top = np.array([curve[budget - 1] for curve in topk[s]])
            reg = np.array([curve[budget - 1] for curve in regret[s]])
            recent = np.array([r[max(0, budget - RECENT):budget].mean() for r in rewards[s]])
            finals.setdefault(s, {})[str(budget)] = {
                "top5_reward": _ms(top), "regret": _ms(reg),
                "optimum_found": round(float(np.mean(reg <= 0)), 4),
                "mean_reward_recent": _ms(recent)}
    paired: dict[str, Any] = {}
    if "random" in topk:
        n = settings.samples - 1
        for s in (x for x in topk if x != "random"):
            paired[f"{s} - random"] = {
                "top5_reward": _round(C.paired_stats([c[n] for c in topk[s]],
                                                     [c[n] for c in topk["random"]])),
                "regret": _round(C.paired_stats([c[n] for c in regret[s]],
                                                [c[n] for c in regret["random"]])),
                "mean_reward_recent": _round(C.paired_stats(
                    [r[-RECENT:].mean() for r in rewards[s]],
                    [r[-RECENT:].mean() for r in rewards["random"]])),
            }
    return {"strategies": list(topk), "seeds": len(seeds), "samples": settings.samples,
            "table_optimum_test_acc": round(optimum, 4), "finals": finals, "paired": paired,
            "settings": dataclasses.asdict(settings)}


def _ms(values) -> dict[str, float]:
    import numpy as np

    sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return {"mean": round(float(np.mean(values)), 5), "sd": round(sd, 5)}


def _round(st: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 5) if k != "p" else float(f"{v:.3g}") for k, v in st.items()}


def print_summary(summary: dict[str, Any]) -> None:
    """The closing tables: finals per strategy, then the paired differences against random."""
    from deepmorning.platform import console

    n = str(summary["samples"])
    console.print_table(
        f"after {n} architectures, {summary['seeds']} seeds (mean ± sd; regret = table "
        f"optimum {summary['table_optimum_test_acc']} − test acc of the best-by-validation)",
        [{"strategy": s, "top5 reward": _pm(f[n]["top5_reward"]),
          "regret": _pm(f[n]["regret"]), "optimum found": f[n]["optimum_found"],
          f"mean reward (last {RECENT})": _pm(f[n]["mean_reward_recent"])}
         for s, f in summary["finals"].items()])
    if summary["paired"]:
        console.print_table(
            "paired by seed (difference, 95 % CI, paired t-test p)",
            [{"comparison": name, "metric": metric,
              "difference": f"{st['diff']:+.4f}",
              "95% CI": f"[{st['ci_low']:+.4f}, {st['ci_high']:+.4f}]", "p": st["p"]}
             for name, by in summary["paired"].items() for metric, st in by.items()])


def _pm(ms: dict[str, float]) -> str:
    return f"{ms['mean']:.4f} ± {ms['sd']:.4f}"
