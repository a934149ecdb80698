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
