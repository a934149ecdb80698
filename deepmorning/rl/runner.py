"""The algorithm-agnostic training loop behind ``deepmorning rl train`` and ``rl evaluate``.

Any algorithm registered in :mod:`deepmorning.rl.registry` runs through :func:`train`:

1. resolve the run config (env id, preset hyperparameters, resources) and open the run
   directory (``--output``/``--resume``);
2. build the RLlib ``Algorithm`` from the spec's ``AlgorithmConfig``; on resume restore the
   latest checkpoint and drop the progress rows written after it (they are re-done);
3. call ``algo.train()`` until ``timesteps`` env steps, with a live line (steps, episode return
   mean, steps/s), one ``progress.csv`` row per iteration, periodic evaluations and
   checkpoints, dashboard metrics;
4. save the final checkpoint, evaluate, write ``summary.json`` and the learning-curve PNG.

Evaluation runs the RLModule's ``forward_inference`` (for DQN: ε = 0.05 greedy) on the
evaluation environment (for Atari: raw scores, whole games) in this process. Its reset seeds
come from a per-run stream (:func:`evaluation_seeds`): fresh start states for every
evaluation, different ones for every training seed.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepmorning.platform import rundir
from deepmorning.platform.errors import DeepmorningError
from deepmorning.rl import envs, registry

PROGRESS = "progress.csv"
CHECKPOINT_PREFIX = "iter_"
KEEP_CHECKPOINTS = 2
MODULE_PATH = ("learner_group", "learner", "rl_module", "default_policy")


@dataclass
class TrainRequest:
    """What the user asked for; ``None`` means the preset's value."""

    algo: str
    env: str
    preset: str | None = None
    timesteps: int | None = None
    num_env_runners: int = 0
    num_gpus_per_learner: float = 0
    seed: int | None = 0
    output: str | Path | None = None
    resume: str | Path | None = None
    eval_every: int | None = None  # env steps between evaluations; 0 = only at the end
    eval_episodes: int | None = None
    stop_return: float | None = None  # stop early once an evaluation reaches this mean
    checkpoint_every: int = 10  # iterations
    overrides: Mapping[str, Any] | None = None  # hyperparameters replacing the preset's
    address: str | None = None
    quiet: bool = False
    mlflow: str | None = None  # --mlflow: a tracking URI, '' for MLflow's default, None: off
    given: frozenset[str] = frozenset()  # options the user typed (--timesteps, ...)


# -- configuration ---------------------------------------------------------------------------
def resolve_config(req: TrainRequest) -> dict[str, Any]:
    """Validate the request (env id, spaces, preset) and return the run's config dict."""
    spec = registry.get(req.algo)
    envs.check_env_id(req.env)
    obs_space, action_space = envs.spaces(req.env)
    spec.check_spaces(obs_space, action_space, req.env)
    preset = req.preset or spec.default_preset(req.env)
    hp = spec.preset(preset)
    for key, value in (req.overrides or {}).items():
        if key not in hp:
            known = ", ".join(sorted(hp))
            raise DeepmorningError(f"unknown hyperparameter '{key}' for preset {preset}; "
                                   f"known: {known}")
        hp[key] = value
    timesteps = int(req.timesteps if req.timesteps is not None else hp.get("timesteps", 100_000))
    if timesteps <= 0:
        raise DeepmorningError("--timesteps must be positive")
    if req.num_env_runners < 0:
        raise DeepmorningError("--num-env-runners must be >= 0")
    cfg = {
        "algo": spec.name,
        "env": req.env,
        "preset": preset,
        "timesteps": timesteps,
        "seed": req.seed,
        "num_env_runners": req.num_env_runners,
        "num_gpus_per_learner": req.num_gpus_per_learner,
        "eval_every": int(req.eval_every if req.eval_every is not None else 0),
        "eval_episodes": int(req.eval_episodes or hp.get("eval_episodes", 10)),
        "stop_return": req.stop_return,
        "checkpoint_every": max(1, req.checkpoint_every),
        "hyperparameters": hp,
    }
    validate(spec, cfg)
    return cfg


def validate(spec: registry.AlgoSpec, cfg: Mapping[str, Any]) -> None:
    """RLlib's ``AlgorithmConfig.validate()`` now, before Ray starts: a bad value fails at once
    with one line instead of at the first update."""
    import ray.rllib  # noqa: F401 - importing it sets its logger's level: quiet it afterwards

    logging.getLogger("ray.rllib").setLevel(logging.ERROR)  # "new API stack" notices etc.
    try:
        spec.build_config(cfg).validate()
    except (ValueError, TypeError) as exc:
        raise DeepmorningError(f"invalid {spec.name} configuration: {exc}") from exc


def env_slug(env_id: str) -> str:
    return env_id.replace("/", "-").lower()


# -- checkpoints -----------------------------------------------------------------------------
def checkpoints(run: rundir.RunDir) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    if not run.checkpoints.is_dir():
        return []
    return sorted(p for p in run.checkpoints.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir()
                  and not p.name.endswith(".tmp"))


def latest_checkpoint(run: rundir.RunDir) -> Path | None:
    found = checkpoints(run)
    return found[-1] if found else None


def save_checkpoint(algo: Any, run: rundir.RunDir) -> Path:
    """Save to ``iter_NNNNNN.tmp`` then rename, so a killed driver never leaves half of one."""
    final = run.checkpoints / f"{CHECKPOINT_PREFIX}{algo.iteration:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoints(run)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    run.sync()  # a run at a URI: every checkpoint reaches it
    return final


def trim_progress(run: rundir.RunDir, iteration: int) -> None:
    """Drop progress rows after ``iteration`` (written after the checkpoint we resume from)."""
    df = run.read_table(PROGRESS)
    if df.empty:
        return
    kept = df[df["iteration"] <= iteration]
    if len(kept) == len(df):
        return
    path = run.path / PROGRESS
    path.unlink()
    if not kept.empty:
        run.append_rows(PROGRESS, kept.to_dict("records"))


# -- evaluation ------------------------------------------------------------------------------
def policy_action(module: Any, obs: np.ndarray) -> np.ndarray:
    """The module's evaluation action for one observation (``forward_inference``)."""
    import torch
    from ray.rllib.core.columns import Columns

    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: torch.as_tensor(np.asarray(obs)[None])})
        if Columns.ACTIONS in out:
            action = out[Columns.ACTIONS]
        else:
            dist_cls = module.get_inference_action_dist_cls()
            dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
            action = dist.to_deterministic().sample()
    return action[0].cpu().numpy()


#: Spawn key of the evaluation stream ("eval" in ASCII): apart from any other stream drawn
#: from the run seed with numpy's SeedSequence.
EVALUATION_KEY = 0x6576616C


def _evaluation_stream(seed: int, evaluation: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(EVALUATION_KEY, evaluation))


def evaluation_seeds(seed: int, evaluation: int, episodes: int) -> list[int]:
    """Reset seeds of the episodes of evaluation number ``evaluation`` (0, 1, ...) of a run
    with seed ``seed``: 64-bit words of a SeedSequence keyed on the run seed, the evaluation
    key and the evaluation's number. Each evaluation plays fresh start states, and two
    training seeds share none (a 64-bit collision, about n^2 / 2^65 for n seeds drawn)."""
    words = _evaluation_stream(seed, evaluation).spawn(1)[0].generate_state(episodes, np.uint64)
    return [int(w) for w in words]


def _policy_seed(seed: int, evaluation: int) -> int:
    """Seed of the evaluation policy's own randomness (DQN's ε) in that evaluation."""
    return int(_evaluation_stream(seed, evaluation).spawn(2)[1].generate_state(1)[0])


def run_episodes(module: Any, env_id: str, episodes: int, seed: int | None = 0,
                 evaluation: int = 0) -> list[float]:
    """Undiscounted returns of ``episodes`` evaluation episodes: evaluation number
    ``evaluation`` of the run seed's stream (:func:`evaluation_seeds`); ``seed=None``:
    unseeded."""
    import torch

    env = envs.make_env(env_id, train=False)
    reset_seeds: list[int | None] = (
        [None] * episodes if seed is None else evaluation_seeds(seed, evaluation, episodes))
    returns = []
    # In eval mode for the whole evaluation: RLlib's forward_inference then switches no
    # mode back and forth (two walks over every submodule) on each step.
    was_training = bool(getattr(module, "training", False))
    # The evaluation policy's own randomness (ε) is reproducible, on a forked RNG: reseeding
    # the global one would replay the same exploration after every evaluation.
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(_policy_seed(seed, evaluation))
        try:
            if was_training:
                module.eval()
            for reset_seed in reset_seeds:
                returns.append(_episode_return(module, env, reset_seed))
        finally:
            env.close()
            if was_training:
                module.train()
    return returns


def _episode_return(module: Any, env: Any, seed: int | None) -> float:
    import gymnasium as gym

    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = policy_action(module, obs)
        if isinstance(env.action_space, gym.spaces.Box):
            action = np.clip(action, env.action_space.low, env.action_space.high)
        elif isinstance(env.action_space, gym.spaces.Discrete):
            action = int(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total


def load_module(checkpoint: Path) -> Any:
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = checkpoint.joinpath(*MODULE_PATH)
    if not path.is_dir():
        raise DeepmorningError(f"{checkpoint} holds no RLModule at {'/'.join(MODULE_PATH)}")
    # RLlib's from_checkpoint goes through its own deprecated RLModuleConfig and warns about
    # it: a line about RLlib's internals, not about the user's checkpoint.
    deprecations = logging.getLogger("ray._common.deprecation")
    level = deprecations.level
    deprecations.setLevel(logging.ERROR)
    try:
        module = RLModule.from_checkpoint(str(path))
    finally:
        deprecations.setLevel(level)
    module.eval()
    return module


def evaluate(run_dir: str | Path, episodes: int | None = None,
             seed: int | None = 0) -> dict[str, Any]:
    """Mean ± std return of the run's latest checkpoint under its evaluation policy, on the
    start states of evaluation 0 of ``seed``'s stream (those of a run's first evaluation)."""
    run = rundir.RunDir.open(run_dir)
    cfg = run.config
    if cfg.get("algo") is None or "env" not in cfg:
        raise DeepmorningError(f"{run.location} is not an rl run directory")
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise DeepmorningError(f"{run.location} has no checkpoint to evaluate")
    registry.get(cfg["algo"])  # algorithm module imported: its RLModule class is importable
    episodes = int(episodes or cfg.get("eval_episodes", 10))
    if episodes <= 0:
        raise DeepmorningError("--episodes must be positive")
    returns = run_episodes(load_module(checkpoint), cfg["env"], episodes, seed)
    return summarize_returns(returns) | {"checkpoint": str(checkpoint), "env": cfg["env"]}


def summarize_returns(returns: list[float]) -> dict[str, Any]:
    arr = np.asarray(returns, dtype=float)
    return {"eval_return_mean": float(arr.mean()), "eval_return_std": float(arr.std()),
            "eval_episodes": len(returns), "eval_returns": [float(r) for r in returns]}


# -- training --------------------------------------------------------------------------------
def _peek(result: Mapping[str, Any], *keys: str, default: Any = math.nan) -> Any:
    node: Any = result
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def progress_row(result: Mapping[str, Any], wall_s: float, steps_per_s: float) -> dict[str, Any]:
    from ray.rllib.utils.metrics import (
        ENV_RUNNER_RESULTS,
        EPISODE_LEN_MEAN,
        EPISODE_RETURN_MEAN,
        LEARNER_RESULTS,
        NUM_ENV_STEPS_SAMPLED_LIFETIME,
        NUM_EPISODES_LIFETIME,
    )

    return {
        "iteration": int(result["training_iteration"]),
        "env_steps": int(_peek(result, ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME,
                               default=0)),
        "episodes": int(_peek(result, ENV_RUNNER_RESULTS, NUM_EPISODES_LIFETIME, default=0)),
        "episode_return_mean": float(_peek(result, ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN)),
        "episode_len_mean": float(_peek(result, ENV_RUNNER_RESULTS, EPISODE_LEN_MEAN)),
        "loss": float(_peek(result, LEARNER_RESULTS, "default_policy", "total_loss")),
        "wall_s": round(wall_s, 3),
        "env_steps_per_s": round(steps_per_s, 2),
        "eval_return_mean": math.nan,
        "eval_return_std": math.nan,
    }


def _evaluate_algo(algo: Any, cfg: Mapping[str, Any], evaluation: int = 0) -> dict[str, Any]:
    """Evaluation number ``evaluation`` of the run (its start states: :func:`evaluation_seeds`)."""
    returns = run_episodes(algo.get_module(), cfg["env"], cfg["eval_episodes"], cfg.get("seed"),
                           evaluation)
    return summarize_returns(returns)


def train(req: TrainRequest) -> dict[str, Any]:
    """Train (or resume) one run; returns its summary (also written to summary.json)."""
    from deepmorning.platform.console import console, print_kv, progress
    from deepmorning.platform.metrics import RunMetrics
    from deepmorning.platform.runtime import connect
    from deepmorning.platform.storage import check_shared_output
    from deepmorning.platform.tracking import prepare_mlflow

    if req.resume is not None:
        cfg = None
    else:
        cfg = resolve_config(req)
    name = f"{req.algo}-{env_slug(req.env)}" if req.env else req.algo
    if req.resume is None:
        mlflow_plan = prepare_mlflow(req.mlflow, f"rl-{cfg['algo']}")  # before Ray starts
        if req.output is not None:
            rundir.RunDir.ensure_new(req.output)  # a bad --output fails before Ray starts,
        conn = connect(req.address)  # and a new run directory appears only once Ray is there
        _note(check_resources(cfg, conn), req.quiet)
        # RLlib copies remote learners' and EnvRunners' checkpoint files back to the driver,
        # but the run must outlive the head: on several nodes, shared storage or a URI.
        check_shared_output(req.output or "runs", len(conn.nodes))
    run, resumed = rundir.open_or_create(group="rl", name=name, config=cfg or {},
                                         output=req.output, resume=req.resume)
    cfg = run.config
    if resumed and cfg.get("algo") != req.algo:
        raise DeepmorningError(f"{run.location} is a {cfg.get('algo')} run, not {req.algo}")
    if resumed and req.env and req.env != cfg.get("env"):
        raise DeepmorningError(f"{run.location} is a run on {cfg.get('env')}, not {req.env}")
    spec = registry.get(cfg["algo"])
    if resumed:
        rundir.warn_ignored_on_resume(req.given, honoured={"--env", "--mlflow"})
        mlflow_plan = prepare_mlflow(req.mlflow, f"rl-{cfg['algo']}", run)
        _note(check_resources(cfg, connect(req.address)), req.quiet)
    if mlflow_plan is not None:
        mlflow_plan.start(run, cfg)
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)  # "new API stack" notices etc.
    algo = spec.build_config(cfg).build_algo()
    start_wall = 0.0
    if resumed:
        checkpoint = latest_checkpoint(run)
        if checkpoint is not None:
            algo.restore_from_path(str(checkpoint))
        trim_progress(run, algo.iteration)
        previous = run.read_table(PROGRESS)
        start_wall = float(previous["wall_s"].iloc[-1]) if not previous.empty else 0.0
    metrics = RunMetrics(run=run.path.name, area="rl")
    if not req.quiet:
        console.print(f"[bold]{cfg['algo']}[/bold] on {cfg['env']} (preset {cfg['preset']}, "
                      f"{cfg['timesteps']} env steps) -> {run.location}"
                      + (" (resumed)" if resumed else ""))
    summary = _train_loop(algo, run, cfg, metrics, progress, start_wall, req.quiet)
    algo.stop()
    if not req.quiet:
        print_kv(f"{cfg['algo']} {cfg['env']}", {k: v for k, v in summary.items()
                                                 if k != "eval_returns"})
    return summary


def check_resources(cfg: Mapping[str, Any], conn: Any) -> str | None:
    """Refuse at once, in one line, what would fail or wait forever; a note when the
    EnvRunners wait for the autoscaler.

    The Learner runs in this driver process (``num_learners=0``): RLlib gives it this
    machine's CUDA device, so a GPU learner needs a GPU here, which no autoscaler can add.
    Each EnvRunner is an actor asking for 1 CPU, checked like a NAS child or a Tune trial
    (:func:`deepmorning.platform.capacity.check_cluster`).
    """
    from deepmorning.platform import capacity

    gpus = float(cfg.get("num_gpus_per_learner") or 0)
    if gpus > 0:
        import torch

        if torch.cuda.device_count() < math.ceil(gpus):
            raise DeepmorningError(
                f"the learner asks for {gpus:g} GPU but runs in this driver process, and torch "
                "sees no GPU here; pass --num-gpus-per-learner 0 or start the driver on a GPU "
                "node (deepmorning job submit runs it on the head)")
    if int(cfg.get("num_env_runners") or 0) > 0:
        return capacity.check_cluster({"CPU": 1.0}, conn, "EnvRunner",
                                      less="--num-env-runners 0")
    return None


def _note(note: str | None, quiet: bool) -> None:
    if note and not quiet:
        from deepmorning.platform.console import console

        console.print(note)


def _best_eval(progress: Any) -> float:
    """The best evaluation so far; -inf when none was kept (NaN would never compare >=)."""
    evals = progress["eval_return_mean"].dropna() if not progress.empty else progress
    return float(evals.max()) if len(evals) else -math.inf


def _checkpoint_due(row: Mapping[str, Any], cfg: Mapping[str, Any],
                    last_checkpoint_steps: int) -> bool:
    """Every ``checkpoint_every`` iterations, but at least ``checkpoint_min_steps`` env steps
    apart when the preset sets it (a checkpoint that pickles a 10^6-step replay is costly)."""
    min_steps = int(cfg["hyperparameters"].get("checkpoint_min_steps", 0) or 0)
    return (row["iteration"] % cfg["checkpoint_every"] == 0
            and row["env_steps"] - last_checkpoint_steps >= min_steps)


def _train_loop(algo: Any, run: rundir.RunDir, cfg: Mapping[str, Any], metrics: Any,
                progress: Any, start_wall: float, quiet: bool) -> dict[str, Any]:
    from deepmorning.platform.tracking import Trackers
    from deepmorning.rl.plots import plot_run

    tracking = Trackers(run)
    timesteps, eval_every = cfg["timesteps"], cfg["eval_every"]
    previous = run.read_table(PROGRESS)
    steps = int(previous["env_steps"].iloc[-1]) if not previous.empty else 0
    best_eval = _best_eval(previous)
    # The evaluation stream's position: the evaluations in the kept rows (a resumed run's
    # rows end at its checkpoint), so a resume continues the stream.
    evaluations = int(previous["eval_return_mean"].notna().sum()) if not previous.empty else 0
    next_eval = (steps // eval_every + 1) * eval_every if eval_every else math.inf
    started = time.monotonic()
    last_checkpoint_steps = steps
    reached_at: int | None = None
    last_return = float(previous["episode_return_mean"].iloc[-1]) if not previous.empty \
        else math.nan
    last_len = float(previous["episode_len_mean"].iloc[-1]) if not previous.empty else math.nan
    with progress(timesteps, f"{cfg['algo']} {cfg['env']}") as line:
        while steps < timesteps:
            t0, steps_before = time.monotonic(), steps
            result = algo.train()
            wall = start_wall + time.monotonic() - started
            row = progress_row(result, wall, 0.0)
            if math.isnan(row["episode_return_mean"]):  # no episode ended this iteration
                row["episode_return_mean"] = last_return
                row["episode_len_mean"] = last_len
            last_return, last_len = row["episode_return_mean"], row["episode_len_mean"]
            steps = row["env_steps"]
            row["env_steps_per_s"] = round((steps - steps_before) / max(1e-9, time.monotonic()
                                                                         - t0), 2)
            if steps >= next_eval:
                row.update({k: v for k, v in _evaluate_algo(algo, cfg, evaluations).items()
                            if k in ("eval_return_mean", "eval_return_std")})
                evaluations += 1
                next_eval = (steps // eval_every + 1) * eval_every
                best_eval = max(best_eval, row["eval_return_mean"])
            run.append_rows(PROGRESS, [row])
            tracking.scalars(steps, {f"rl/{k}": v for k, v in row.items() if k != "env_steps"})
            if _checkpoint_due(row, cfg, last_checkpoint_steps):
                tracking.flush()
                save_checkpoint(algo, run)
                last_checkpoint_steps = steps
            metrics.set("rl_episode_return_mean", row["episode_return_mean"])
            metrics.set("rl_env_steps_per_s", row["env_steps_per_s"])
            line.update(min(steps, timesteps), ret=row["episode_return_mean"],
                        sps=row["env_steps_per_s"], eval=row["eval_return_mean"])
            stop = cfg.get("stop_return")
            if stop is not None and best_eval >= stop:
                reached_at = steps
                break
    checkpoint = save_checkpoint(algo, run)
    final_eval = _evaluate_algo(algo, cfg, evaluations)
    tracking.scalars(steps, {"rl/final_eval_return_mean": final_eval["eval_return_mean"]})
    tracking.close()
    table = run.read_table(PROGRESS)
    wall = float(table["wall_s"].iloc[-1]) if not table.empty else 0.0
    summary = {
        "algo": cfg["algo"],
        "env": cfg["env"],
        "preset": cfg["preset"],
        "env_steps": steps,
        "iterations": algo.iteration,
        "wall_s": wall,
        "env_steps_per_s": steps / wall if wall else math.nan,
        "episode_return_mean": float(table["episode_return_mean"].iloc[-1])
        if not table.empty else math.nan,
        **final_eval,
        "best_eval_return_mean": max(best_eval, final_eval["eval_return_mean"]),
        "stopped_at_return": reached_at,
        "checkpoint": str(checkpoint),
    }
    plot_run(run)
    run.finish(summary)  # last, so that a run at a URI gets its plot too
    tracking.finish(summary)
    return summary
