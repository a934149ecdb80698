"""Replay micro-benchmark: deepmorning's ``TransitionReplayBuffer`` vs RLlib's own sampling.

1. Sampling: transitions/s drawn by ``TransitionReplayBuffer.sample_transitions(n)`` and by
   RLlib's ``EpisodeReplayBuffer.sample(num_items=n, n_step=1, sample_episodes=True)`` (the
   one-step transition sampling RLlib's DQN uses) from the same stored episodes, at
   CartPole size (4 float32 observations, 100,000 steps stored, n = 8,192: one ``cartpole``
   preset iteration, 128 updates of 64) and at Atari size (4×84×84 uint8 stacks, 20,000 steps
   stored, n = 8,000: one Nature preset iteration, 250 updates of 32).
2. Memory: resident memory of an Atari replay holding ``--transitions`` steps (episodes of
   1,000 steps added in 250-step chunks, as the Nature preset's 4 envs deliver them), ours
   (one 84×84 frame per step) vs RLlib's ``EpisodeReplayBuffer`` holding the same episodes
   with their 4×84×84 stacks, each measured in a fresh process and scaled to 10^6 steps.

Prints the ratios; the raw figures go to ``benchmarks/results/replay.json``.

    python benchmarks/bench_replay.py                       # a few minutes, ~2 GB peak
    python benchmarks/bench_replay.py --transitions 300000 --turnover 2     # as in docs/rl.md
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

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "replay.json"
FRAME = (84, 84)
STACK = 4


# -- synthetic episodes -----------------------------------------------------------------------
def cartpole_chunks(steps: int, length: int = 200, rng=None) -> list:
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    rng = rng or np.random.default_rng(0)
    out = []
    for _ in range(steps // length):
        out.append(SingleAgentEpisode(
            observations=list(rng.standard_normal((length + 1, 4)).astype(np.float32)),
            actions=list(rng.integers(2, size=length)), rewards=[1.0] * length,
            terminated=True, len_lookback_buffer=0).to_numpy())
    return out


def atari_chunks(steps: int, episode_len: int = 1_000, chunk: int = 250, seed: int = 0):
    """Yield episode chunks of Atari-like 4×84×84 uint8 stacks (as FrameStackObservation
    builds them: the reset frame repeated at the start), ``chunk`` steps at a time."""
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    rng = np.random.default_rng(seed)
    made = 0
    while made < steps:
        length = min(episode_len, steps - made)
        frames = rng.integers(256, size=(length + 1, *FRAME), dtype=np.uint8)
        padded = np.concatenate([np.repeat(frames[:1], STACK - 1, axis=0), frames])
        stacks = np.lib.stride_tricks.sliding_window_view(padded, STACK, axis=0)
        stacks = np.moveaxis(stacks, -1, 1)  # (length + 1, 4, 84, 84)
        episode = None
        for start in range(0, length, chunk):
            stop = min(start + chunk, length)
            if episode is None:
                episode = SingleAgentEpisode(observations=[stacks[0].copy()],
                                             len_lookback_buffer=0)
            for t in range(start, stop):
                episode.add_env_step(stacks[t + 1].copy(), int(rng.integers(6)), 0.0,
                                     terminated=t == length - 1)
            yield episode.to_numpy()
            episode = None if episode.is_done else episode.cut()
        made += length


# -- sampling ---------------------------------------------------------------------------------
def rate(sample, n: int, min_s: float) -> float:
    """Transitions per second of ``sample(n)`` (repeated for at least ``min_s`` seconds)."""
    sample(n)  # warm caches
    calls, t0 = 0, time.perf_counter()
    while True:
        sample(n)
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s:
            return calls * n / elapsed


def sampling(name: str, chunks: list, n: int, frame_stack: int, min_s: float,
             rounds: int = 3) -> dict:
    from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

    from deepmorning.rl.replay import TransitionReplayBuffer

    ours = TransitionReplayBuffer(capacity=10**7, frame_stack=frame_stack, seed=0)
    ours.add(chunks)
    rllib = EpisodeReplayBuffer(capacity=10**7)
    rllib.add(chunks)
    assert ours.get_num_timesteps() == rllib.get_num_timesteps()
    samplers = {
        "ours": ours.sample_transitions,
        "rllib": lambda k: rllib.sample(num_items=k, n_step=1, sample_episodes=True),
    }
    rates: dict[str, list[float]] = {"ours": [], "rllib": []}
    for _ in range(rounds):  # alternated, so both see the same load; the best round counts
        for key, sample in samplers.items():
            rates[key].append(rate(sample, n, min_s))
    result = {
        "size": name,
        "stored_steps": ours.get_num_timesteps(),
        "n": n,
        "ours_per_s": max(rates["ours"]),
        "rllib_per_s": max(rates["rllib"]),
        "rounds": rates,
    }
    result["ratio"] = result["ours_per_s"] / result["rllib_per_s"]
    return result


# -- memory (each in a fresh process) ---------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(kind: str, steps: int, turnover: int = 1) -> dict:
    import gc

    from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

    from deepmorning.rl.replay import TransitionReplayBuffer

    if kind == "ours":
        buf = TransitionReplayBuffer(capacity=steps, frame_stack=STACK, seed=0)
    else:
        buf = EpisodeReplayBuffer(capacity=steps)
    next(atari_chunks(10, episode_len=10))  # import and warm everything before measuring
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    for chunk in atari_chunks(steps * turnover):  # turnover > 1: old episodes get evicted
        buf.add(chunk)
    fill_s = time.perf_counter() - t0
    gc.collect()
    used = rss_bytes() - before
    assert abs(buf.get_num_timesteps() - steps) < 1_000
    steps = buf.get_num_timesteps()
    frames = sum(np.asarray(e.observations.data).nbytes for e in buf.episodes)
    return {"kind": kind, "steps": steps, "turnover": turnover, "rss_bytes": used,
            "obs_array_bytes": frames,
            "bytes_per_step": used / steps, "gb_per_1e6": used / steps * 1e6 / 1e9,
            "fill_s": fill_s}


def memory(kind: str, steps: int, turnover: int = 1) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", kind, str(steps),
                          str(turnover)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=200_000,
                        help="Atari steps stored for the memory figure (ours)")
    parser.add_argument("--stacked-transitions", type=int, default=50_000,
                        help="Atari steps stored for the stacked (RLlib) memory figure")
    parser.add_argument("--skip-stacked", action="store_true")
    parser.add_argument("--min-s", type=float, default=2.0, help="seconds per sampling rate")
    parser.add_argument("--turnover", type=int, default=1,
                        help="add this many times --transitions (evicting the oldest)")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        kind, steps, turnover = args.memory_child
        print(json.dumps(memory_child(kind, int(steps), int(turnover))))
        return

    results: dict = {"machine": f"{platform.node()} {os.cpu_count()} CPUs",
                     "load_avg": os.getloadavg(), "sampling": [], "memory": []}
    runs = [("cartpole", lambda: cartpole_chunks(100_000), 8_192, 0),
            ("atari", lambda: list(atari_chunks(20_000)), 8_000, STACK)]
    for name, make, n, frame_stack in runs:
        res = sampling(name, make(), n, frame_stack, args.min_s)
        results["sampling"].append(res)
        print(f"sampling {name:8} ({res['stored_steps']} stored, n={n}): ours "
              f"{res['ours_per_s']:,.0f}/s, RLlib {res['rllib_per_s']:,.0f}/s, "
              f"ratio x{res['ratio']:.1f}", flush=True)
    kinds = [("ours", args.transitions)]
    if not args.skip_stacked:
        kinds.append(("stacked", args.stacked_transitions))
    for kind, steps in kinds:
        res = memory(kind, steps, args.turnover)
        results["memory"].append(res)
        print(f"memory {kind:8} {res['steps']} steps (x{args.turnover} added): "
              f"{res['rss_bytes'] / 1e9:.2f} GB resident "
              f"({res['bytes_per_step']:,.0f} B/step) -> {res['gb_per_1e6']:.2f} GB per 10^6 "
              f"steps (filled in {res['fill_s']:.0f} s)", flush=True)
    if len(results["memory"]) == 2:
        ours, stacked = results["memory"]
        ratio = stacked["gb_per_1e6"] / ours["gb_per_1e6"]
        print(f"memory per 10^6 Atari steps: ours {ours['gb_per_1e6']:.2f} GB, stacked "
              f"{stacked['gb_per_1e6']:.2f} GB, stacked/ours x{ratio:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous["latest"] = results
    RESULTS.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"raw results: {RESULTS}")


if __name__ == "__main__":
    main()
