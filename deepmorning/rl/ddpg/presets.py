"""Named DDPG settings: ``paper`` (Lillicrap et al. 2015) and ``pendulum`` (tuned for a CPU).

A preset is a dict of :class:`DDPGConfig` ``training()`` settings plus a docstring that says
where each value comes from; :func:`apply_preset` applies one to a config.
"""

from __future__ import annotations

from typing import Any

from deepmorning.platform.errors import DeepmorningError

PAPER: dict[str, Any] = {
    "actor_lr": 1e-4,
    "critic_lr": 1e-3,
    "critic_weight_decay": 1e-2,
    "gamma": 0.99,
    "tau": 1e-3,
    "train_batch_size_per_learner": 64,
    "replay_capacity": 1_000_000,
    "actor_hiddens": (400, 300),
    "critic_hiddens": (400, 300),
    "batch_norm": True,
    "noise_type": "ou",
    "noise_sigma": 0.2,
    "ou_theta": 0.15,
    "random_steps": 0,
    "updates_per_step": 1.0,
    "num_steps_sampled_before_learning_starts": 64,
}
PAPER_DOC = """The paper's low-dimensional settings (Lillicrap et al. 2015, section 7 "Experiment
details"): Adam with learning rates 1e-4 (actor) and 1e-3 (critic), L2 weight decay 1e-2 on the
critic, discount 0.99, soft target updates with tau = 0.001, minibatches of 64 from a replay
buffer of 10^6, 400-300 ReLU networks with the action entering the critic at the second layer,
batch normalization, Ornstein-Uhlenbeck exploration with theta = 0.15 and sigma = 0.2, and one
update per environment step (Algorithm 1). Learning starts once one minibatch is stored (the
paper does not say)."""

PENDULUM: dict[str, Any] = {
    **PAPER,
    "actor_lr": 1e-3,
    "critic_lr": 1e-3,
    "critic_weight_decay": 0.0,
    "gamma": 0.98,
    "tau": 5e-3,
    "train_batch_size_per_learner": 128,
    "replay_capacity": 200_000,
    "batch_norm": False,
    "noise_type": "gaussian",
    "noise_sigma": 0.1,
    "random_steps": 1000,
    "num_steps_sampled_before_learning_starts": 1000,
}
PENDULUM_DOC = """Tuned to solve Pendulum-v1 (mean return >= -200) in well under 30k env steps
on a CPU. Differs from the paper in: actor learning rate 1e-3 (paper 1e-4) and tau = 0.005
(paper 0.001), so that a run of a few thousand updates moves far enough; no critic weight
decay (paper 1e-2), which on Pendulum's returns of -1000..0 pulls Q towards 0 and slows
learning; discount 0.98 (paper 0.99), a shorter horizon that suits 200-step episodes;
minibatch 128 (paper 64) for lower-variance updates; no batch normalization (the inputs are
already of order 1); Gaussian noise with sigma = 0.1 of the half action range instead of OU
noise, and 1000 uniformly random warm-up steps before learning starts (paper: none), which
fill the buffer with diverse swings; replay 2e5 (plenty for 30k steps). The network sizes and
the one-update-per-env-step ratio are the paper's. These follow the rl-zoo3 settings for DDPG
on Pendulum, with a shorter warm-up."""

PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "paper": (PAPER, PAPER_DOC),
    "pendulum": (PENDULUM, PENDULUM_DOC),
}


def preset_settings(name: str) -> dict[str, Any]:
    """The ``training()`` settings of preset ``name``; a one-line error for an unknown one."""
    if name not in PRESETS:
        raise DeepmorningError(
            f"unknown DDPG preset '{name}'; choose one of {', '.join(PRESETS)}"
        )
    return dict(PRESETS[name][0])


def apply_preset(config, name: str):
    """Apply preset ``name`` to a :class:`DDPGConfig` and return it."""
    return config.training(**preset_settings(name))
