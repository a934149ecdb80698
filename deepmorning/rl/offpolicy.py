"""The steps DQN's and DDPG's ``training_step`` share: act, store, learn in one call, sync.

Both algorithms (Mnih et al. 2015, Algorithm 1; Lillicrap et al. 2015, Algorithm 1) alternate
acting in the environment, storing transitions in a uniform replay and taking minibatch
gradient steps on transitions drawn from it. Here one training step does each part once, for
a whole fragment of env steps: every gradient step owed for those steps goes to the Learner in
*one* ``LearnerGroup.update`` call (one minibatch per gradient step), so RLlib's per-call
overhead (connectors, metrics, remote calls) is paid once per training step. What differs
between the algorithms (when learning starts, the replay ratio, the counters they checkpoint)
stays in their own ``training_step``.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_SAMPLE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

from deepmorning.rl.replay import TransitionReplayBuffer

#: Key of the EnvRunners' random state in DQN's and DDPG's checkpoints.
RUNNER_RANDOM_STATE = "env_runner_random_state"

#: RLlib's fault-tolerance settings for DQN's and DDPG's EnvRunners (``AlgorithmConfig.
#: fault_tolerance``), set explicitly so that a change of RLlib's defaults does not change what
#: a lost node costs. A remote EnvRunner is a Ray actor restarted by Ray (``max_restarts``) when
#: its process or node dies; the iteration that lost it samples from the EnvRunners left (a
#: lost fragment only shortens that iteration; the replay is the Learner's, in the driver,
#: so nothing stored is lost), and the next iteration's health probe syncs the restarted one
#: with the current weights. Seen with a node killed under a DQN run: tests/test_multinode.py.
FAULT_TOLERANCE: dict[str, Any] = {
    "restart_failed_env_runners": True,  # Ray restarts a lost EnvRunner on any node that fits
    "max_num_env_runner_restarts": 1000,  # per EnvRunner: a long run on spot nodes
    # An EnvRunner whose env raised sleeps this long before it exits and is restarted
    # (back-pressure against a crash loop); a lost node is not delayed by it.
    "delay_between_env_runner_restarts_s": 10.0,
    # Iterations in a row without one healthy EnvRunner before the run stops with an error.
    "num_consecutive_env_runner_failures_tolerance": 100,
}


def fault_tolerant(config: Any) -> Any:
    """``config`` with :data:`FAULT_TOLERANCE` applied (DQN's and DDPG's ``build_config``)."""
    return config.fault_tolerance(**FAULT_TOLERANCE)


def sample_into_replay(algo: Any, replay: TransitionReplayBuffer) -> int:
    """Every EnvRunner acts for one fragment; the episodes go into ``replay``.

    Returns the number of env steps added.
    """
    with algo.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
        episodes, runner_metrics = synchronous_parallel_sample(
            worker_set=algo.env_runner_group,
            concat=True,
            sample_timeout_s=algo.config.sample_timeout_s,
            _uses_new_env_runners=True,
            _return_metrics=True,
        )
    algo.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
    with algo.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
        replay.add(episodes)
    return sum(len(e) for e in episodes)


def updates_owed(credit: float, new_steps: int, ratio: float) -> tuple[int, float]:
    """Gradient updates due for ``new_steps`` env steps at ``ratio`` updates per step.

    Returns (whole updates to do now, the fractional rest carried to the next call).
    """
    credit += new_steps * ratio
    num_updates = int(credit)
    return num_updates, credit - num_updates


def learn_from_replay(algo: Any, replay: TransitionReplayBuffer, num_updates: int,
                      minibatch_size: int, env_steps: int, num_learners: int = 1,
                      learner_splits: bool = False) -> None:
    """``num_updates`` gradient steps, each on its own uniformly drawn minibatch, in one
    Learner call; then the new weights go to the EnvRunners. With several Learners each
    gets its share of every minibatch step (``minibatch_size`` is per Learner).

    ``learner_splits``: the Learner's ``_update`` receives the whole batch and takes the
    minibatch steps itself (``DQNLearner._update``), instead of RLlib's minibatch iterator
    calling it once per step."""
    size = num_updates * minibatch_size * max(num_learners, 1)
    with algo.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
        transitions = replay.sample_transitions(size)
    batch = MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(transitions)}, env_steps=size)
    with algo.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
        results = algo.learner_group.update(
            batch=batch,
            minibatch_size=None if learner_splits else minibatch_size,
            num_epochs=1,
            shuffle_batch_per_epoch=False,  # the draws are already uniform and independent
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: env_steps},
        )
    algo.metrics.aggregate(results, key=LEARNER_RESULTS)
    with algo.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
        algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=algo.learner_group, inference_only=True
        )


# -- the EnvRunners' random state in checkpoints ---------------------------------------------
def _sub_envs(runner: Any) -> list:
    """The Gymnasium sub-environments of an EnvRunner's vector env (none if it has no list:
    an async vector env's live in other processes)."""
    vector_env = getattr(getattr(runner, "env", None), "unwrapped", None)
    return list(getattr(vector_env, "envs", None) or [])


def _random_pieces(runner: Any) -> list:
    """Module-to-env connector pieces with a random state of their own (DDPG's noise)."""
    pipeline = getattr(runner, "_module_to_env", None)
    return [c for c in getattr(pipeline, "connectors", []) if hasattr(c, "get_random_state")]


def runner_random_state(runner: Any) -> dict[str, Any]:
    """What an EnvRunner draws from: its process's torch RNG (DQN's ε), each sub-env's
    ``np_random`` (start states, Atari no-op starts) and connector pieces' generators (DDPG's
    exploration noise)."""
    import torch

    return {
        "worker_index": int(runner.worker_index or 0),
        "torch": torch.get_rng_state(),
        "envs": [sub.unwrapped.np_random.bit_generator.state for sub in _sub_envs(runner)],
        "pieces": [piece.get_random_state() for piece in _random_pieces(runner)],
    }


def set_runner_random_state(runner: Any, state: dict[str, Any] | None) -> None:
    """Put back what :func:`runner_random_state` saved. The environments are then reset
    without a seed (RLlib otherwise reseeds them with the run seed at the first reset of a
    new EnvRunner, replaying the run's first start states), from their restored generators."""
    import torch

    if not state:
        return
    torch.set_rng_state(state["torch"])
    subs = _sub_envs(runner)
    if len(subs) == len(state["envs"]):
        for sub, env_state in zip(subs, state["envs"], strict=True):
            sub.unwrapped.np_random.bit_generator.state = env_state
        runner._seed = None  # RLlib's seed for the first reset (EnvRunner.__init__)
    pieces = _random_pieces(runner)
    if len(pieces) == len(state["pieces"]):
        for piece, piece_state in zip(pieces, state["pieces"], strict=True):
            piece.set_random_state(piece_state)


def gather_random_states(algo: Any) -> list[dict[str, Any]]:
    """Every EnvRunner's random state (the local one's too), for a checkpoint."""
    return algo.env_runner_group.foreach_env_runner(runner_random_state, local_env_runner=True)


def restore_random_states(algo: Any, states: list[dict[str, Any]] | None) -> None:
    """Give each EnvRunner the state saved from the EnvRunner of its index; an EnvRunner with
    none saved (more of them than when saved) keeps its own."""
    by_index = {s["worker_index"]: s for s in states or []}
    if not by_index:
        return
    algo.env_runner_group.foreach_env_runner(
        lambda runner: set_runner_random_state(runner, by_index.get(int(runner.worker_index
                                                                       or 0))),
        local_env_runner=True,
    )
