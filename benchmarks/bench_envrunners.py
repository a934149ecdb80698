"""Sampling throughput of DQN's EnvRunner group at 0, 1, 2, ... remote EnvRunners.

ALE/Pong-v5 with the ``nature`` preset (4 vector envs per EnvRunner, 1,000 env steps per
iteration split over the EnvRunners, ε-greedy with the Nature Q-network's forward pass on every
step), each setting in a fresh process with its own local Ray (``num_cpus`` = the machine's
cores):

* ``raw``: one process stepping the preprocessed Atari env with random actions, no RLlib, no
  network: the ceiling of one core;
* ``sample``: pure sampling, ``synchronous_parallel_sample`` over the algorithm's own EnvRunner
  group, exactly as ``training_step`` calls it (nothing stored, no learning);
* ``train``: ``algo.train()`` iterations once learning has started (``learning_starts`` lowered
  to one iteration; the Nature ratio of one update of 32 per 4 env steps), with the iteration's
  time split into sampling and learning (storing, the Learner call and the weight sync).

Rates are total env steps / total wall time (after one warm-up iteration: for ``train`` the
one that fills ``learning_starts``). Besides the rates it
records the CPU time each process used (driver, every EnvRunner actor) over the measured
interval as a share of one core, and the load average before and after. Raw results go to
``benchmarks/results/envrunners.json``.

    nice -n 10 python benchmarks/bench_envrunners.py   # 17 min at load 22-55; a few idle
    python benchmarks/bench_envrunners.py --show                     # the saved table
    python benchmarks/bench_envrunners.py --runners 0 1 2 4 --steps 8000 --train-iterations 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "envrunners.json"
ENV = "ALE/Pong-v5"
PRESET = "nature"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# -- the child processes ------------------------------------------------------------------------
def raw(steps: int) -> dict:
    """Random actions through the preprocessed training env in this process."""
    from deepmorning.rl import envs

    env = envs.make_env(ENV, train=True)
    env.reset(seed=0)
    env.action_space.seed(0)
    cpu0, t0 = cpu_seconds(os.getpid()), time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    wall = time.perf_counter() - t0
    return {"mode": "raw", "num_env_runners": 0, "env_steps": steps, "wall_s": wall,
            "env_steps_per_s": steps / wall,
            "cpu_share": {"driver": (cpu_seconds(os.getpid()) - cpu0) / wall}}


def build(num_env_runners: int, learning_starts: int):
    import logging

    from deepmorning.platform.runtime import connect
    from deepmorning.rl import registry

    connect(None, num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)
    spec = registry.get("dqn")
    hp = spec.preset(PRESET) | {"learning_starts": learning_starts}
    run = {"env": ENV, "hyperparameters": hp, "seed": 0, "num_env_runners": num_env_runners,
           "num_gpus_per_learner": 0}
    return spec.build_config(run).build_algo(), hp


def process_ids(algo) -> dict[str, int]:
    pids = {"driver": os.getpid()}
    remote = algo.env_runner_group.foreach_env_runner(lambda r: os.getpid(),
                                                      local_env_runner=False)
    for i, pid in enumerate(remote or []):
        pids[f"env_runner_{i + 1}"] = pid
    return pids


def sample(num_env_runners: int, steps: int) -> dict:
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    algo, hp = build(num_env_runners, learning_starts=10**9)

    def one_round() -> int:
        episodes = synchronous_parallel_sample(worker_set=algo.env_runner_group, concat=True,
                                               _uses_new_env_runners=True)
        return sum(len(e) for e in episodes)

    try:
        one_round()  # warm-up: envs reset, first forward passes
        pids = process_ids(algo)
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        t0, done, rounds = time.perf_counter(), 0, 0
        while done < steps:
            done += one_round()
            rounds += 1
        wall = time.perf_counter() - t0
        share = {k: (cpu_seconds(p) - cpu0[k]) / wall for k, p in pids.items()}
    finally:
        algo.stop()
    return {"mode": "sample", "num_env_runners": num_env_runners, "env_steps": done,
            "rounds": rounds, "env_steps_per_round": hp["env_steps_per_iteration"],
            "wall_s": wall, "env_steps_per_s": done / wall, "cpu_share": share}


def train(num_env_runners: int, iterations: int) -> dict:
    import deepmorning.rl.dqn.algorithm as dqn_algorithm

    spent = {"sampling_s": 0.0, "learning_s": 0.0}

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    dqn_algorithm.sample_into_replay = timed(dqn_algorithm.sample_into_replay, "sampling_s")
    dqn_algorithm.learn_from_replay = timed(dqn_algorithm.learn_from_replay, "learning_s")
    algo, hp = build(num_env_runners, learning_starts=hp_steps_per_iteration())
    try:
        algo.train()  # fills learning_starts; the updates begin with the next iteration
        pids = process_ids(algo)
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        steps0 = algo.env_steps
        updates0 = algo.gradient_updates
        spent.update(sampling_s=0.0, learning_s=0.0)
        t0 = time.perf_counter()
        for _ in range(iterations):
            algo.train()
        wall = time.perf_counter() - t0
        share = {k: (cpu_seconds(p) - cpu0[k]) / wall for k, p in pids.items()}
        steps, updates = algo.env_steps - steps0, algo.gradient_updates - updates0
    finally:
        algo.stop()
    return {"mode": "train", "num_env_runners": num_env_runners, "iterations": iterations,
            "env_steps": steps, "gradient_updates": updates, "wall_s": wall,
            "env_steps_per_s": steps / wall, "sampling_share": spent["sampling_s"] / wall,
            "learning_share": spent["learning_s"] / wall, "cpu_share": share}


def hp_steps_per_iteration() -> int:
    from deepmorning.rl.dqn.presets import PRESETS

    return int(PRESETS[PRESET]()["env_steps_per_iteration"])


def child(args: argparse.Namespace) -> None:
    mode, n = args.child
    n = int(n)
    if mode == "raw":
        res = raw(args.steps)
    elif mode == "sample":
        res = sample(n, args.steps)
    else:
        res = train(n, args.train_iterations)
    print("RESULT " + json.dumps(res), flush=True)


# -- the parent ---------------------------------------------------------------------------------
def run_child(mode: str, n: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(n), "--steps", str(args.steps),
           "--train-iterations", str(args.train_iterations)]
    before = loadavg()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: {mode} with {n} EnvRunners failed:\n{proc.stderr[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    res["loadavg_before"], res["loadavg_after"] = before, loadavg()
    return res


def table(results: list[dict]) -> str:
    """Markdown table; speed-ups are against the same mode at 0 EnvRunners. "per CPU-s" divides
    by the CPU time of the driver and EnvRunner processes (Ray's own daemons not counted): on a
    machine shared with other jobs it is the figure that does not depend on their load."""
    base = {r["mode"]: r["env_steps_per_s"] for r in results if r["num_env_runners"] == 0}
    rows = ["| mode | EnvRunners | env steps | wall s | env steps/s | speed-up vs 0 | "
            "CPU (cores) per process | env steps per CPU-s | sampling / learning share |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_share"].items())
        per_cpu = r["env_steps_per_s"] / max(1e-9, sum(r["cpu_share"].values()))
        split = (f"{r['sampling_share']:.0%} / {r['learning_share']:.0%}"
                 if "sampling_share" in r else "")
        speedup = (f"×{r['env_steps_per_s'] / base[r['mode']]:.2f}" if r["mode"] in base
                   else "")
        rows.append(f"| {r['mode']} | {r['num_env_runners']} | {r['env_steps']:,} | "
                    f"{r['wall_s']:.1f} | {r['env_steps_per_s']:.0f} | {speedup} | {cpu} | "
                    f"{per_cpu:.0f} | {split} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runners", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=4_000, help="env steps sampled per setting")
    parser.add_argument("--train-iterations", type=int, default=3,
                        help="training iterations measured per setting (0: skip training)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the raw results go")
    parser.add_argument("--show", action="store_true",
                        help="print the table of the saved results (--out) and exit")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.show:
        print(table(json.loads(args.out.read_text())["results"]))
        return
    results = [run_child("raw", 0, args)]
    print(table(results), flush=True)
    for mode in ("sample", "train"):
        if mode == "train" and args.train_iterations <= 0:
            continue
        for n in args.runners:
            results.append(run_child(mode, n, args))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "env": ENV, "preset": PRESET, "args": vars(args), "cpu_count": os.cpu_count(),
        "machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "results": results}, indent=2, default=str) + "\n")
    print(f"raw results: {args.out}")


if __name__ == "__main__":
    main()
