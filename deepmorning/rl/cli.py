"""``deepmorning rl``: train and evaluate the registered RL algorithms (DQN, DDPG)."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.tracking import MLFLOW_HELP


@click.group("rl")
def rl() -> None:
    """DQN and DDPG as custom RLlib algorithms (new API stack).

    \b
      deepmorning rl train dqn --env CartPole-v1            # a few minutes on a CPU
      deepmorning rl train dqn --env ALE/Pong-v5 --preset nature --num-gpus-per-learner 1
      deepmorning rl evaluate runs/rl-dqn-cartpole-v1-...
    """


@rl.command("train")
@click.argument("algo")
@click.option("--env", "env_id", default=None,
              help="Gymnasium id, e.g. CartPole-v1, ALE/Pong-v5 (not needed with --resume).")
@click.option("--preset", default=None, help="Hyperparameter preset (default: by environment).")
@click.option("--timesteps", type=int, default=None, help="Env steps to train (default: preset).")
@click.option("--num-env-runners", type=int, default=0, show_default=True,
              help="Parallel EnvRunner actors (0: sample in the driver).")
@click.option("--num-gpus-per-learner", type=float, default=0, show_default=True,
              help="GPUs for the learner (0: CPU).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-every", type=int, default=None,
              help="Evaluate every N env steps (default: only at the end).")
@click.option("--eval-episodes", type=int, default=None, help="Episodes per evaluation.")
@click.option("--stop-return", type=float, default=None,
              help="Stop once an evaluation's mean return reaches this value.")
@click.option("--checkpoint-every", type=int, default=10, show_default=True,
              help="Save a checkpoint every N iterations (and always at the end); a "
                   "preset's checkpoint_min_steps may space them further.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one preset hyperparameter (repeatable), e.g. --set lr=1e-3.")
@click.option("--output", type=click.Path(), default=None,
              help="Run directory (default: runs/rl-ALGO-ENV-TIMESTAMP).")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue an unfinished run from its latest checkpoint.")
@click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value="", default=None,
              metavar="[URI]", help=MLFLOW_HELP)
@click.pass_obj
def train_cmd(settings, algo: str, env_id: str | None, preset: str | None, timesteps: int | None,
              num_env_runners: int, num_gpus_per_learner: float, seed: int,
              eval_every: int | None, eval_episodes: int | None, stop_return: float | None,
              checkpoint_every: int, overrides: tuple[str, ...], output: Path | None,
              resume: Path | None, mlflow_uri: str | None) -> None:
    """Train ALGO (dqn, ddpg) on --env and write a run directory."""
    from deepmorning.platform import runtime
    from deepmorning.rl.runner import TrainRequest, train

    if env_id is None and resume is None:
        raise DeepmorningError("give --env ENV (or --resume DIR to continue a run)")
    if eval_every is not None and eval_every < 0:
        raise DeepmorningError("--eval-every must be >= 0")
    ctx = click.get_current_context()
    given = frozenset(p.opts[0] for p in ctx.command.params if isinstance(p, click.Option)
                      and ctx.get_parameter_source(p.name) is not ParameterSource.DEFAULT)
    req = TrainRequest(
        algo=algo, env=env_id or "", preset=preset, timesteps=timesteps,
        num_env_runners=num_env_runners, num_gpus_per_learner=num_gpus_per_learner,
        seed=seed, output=output, resume=resume, eval_every=eval_every,
        eval_episodes=eval_episodes, stop_return=stop_return,
        checkpoint_every=checkpoint_every, overrides=parse_overrides(overrides),
        address=settings.address if settings else None, mlflow=mlflow_uri, given=given,
    )
    try:
        train(req)
    finally:
        runtime.shutdown()


def parse_overrides(items: tuple[str, ...]) -> dict:
    """``("lr=1e-3", "hiddens=[64, 64]", "loss=mse")`` -> values parsed as JSON, else YAML."""
    import json

    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DeepmorningError(f"--set takes KEY=VALUE, got '{item}'")
        try:
            out[key.strip()] = json.loads(value)
            continue
        except json.JSONDecodeError:
            pass
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise DeepmorningError(f"--set {item}: value is not valid YAML") from exc
    return out


@rl.command("evaluate")
@click.argument("run_dir", type=click.Path())
@click.option("--episodes", type=int, default=None, help="Episodes (default: the run's setting).")
@click.option("--seed", type=int, default=0, show_default=True)
def evaluate_cmd(run_dir: Path, episodes: int | None, seed: int) -> None:
    """Load RUN_DIR's latest checkpoint and report the evaluation return (mean ± std)."""
    from deepmorning.platform.console import console
    from deepmorning.rl.runner import evaluate

    res = evaluate(run_dir, episodes, seed)
    console.print(f"{res['env']}: return {res['eval_return_mean']:.2f} ± "
                  f"{res['eval_return_std']:.2f} over {res['eval_episodes']} episodes "
                  f"({res['checkpoint']})")
