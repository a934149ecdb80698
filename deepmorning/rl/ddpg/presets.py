"""DDPG hyperparameter presets; each docstring says where its values come from.

A preset is a function returning plain JSON values (stored in the run's ``config.json``): the
:class:`~deepmorning.rl.ddpg.algorithm.DDPGConfig` settings of :data:`HYPERPARAMETERS` plus the
runner's ``timesteps`` and ``eval_episodes``.
"""

from __future__ import annotations

from typing import Any


def paper() -> dict[str, Any]:
    """The paper's low-dimensional settings (Lillicrap et al. 2015, section 7).

    - actor_lr 1e-4, critic_lr 1e-3: "Adam ... learning rate of 10^-4 and 10^-3 for the actor
      and critic respectively".
    - critic_weight_decay 1e-2: "For Q we included L2 weight decay of 10^-2".
    - gamma 0.99: "discount factor of gamma = 0.99".
    - tau 0.001: "soft target updates ... tau = 0.001".
    - hiddens (400, 300), ReLU, action into the critic's 2nd layer, final layers in
      ±3e-3: "2 hidden layers with 400 and 300 units ... Actions were not included until the
      2nd hidden layer of Q ... final layer weights and biases ... [-3e-3, 3e-3]".
    - batch_norm on: section 3, "batch normalization" on the low-dimensional inputs.
    - train_batch_size 64, replay 10^6: "minibatch sizes of 64 ... replay buffer size of 10^6".
    - noise OU, theta 0.15, sigma 0.2: "Ornstein-Uhlenbeck process ... theta = 0.15 and
      sigma = 0.2" (here in units of half the action range, dt = 1).
    - updates_per_step 1: Algorithm 1 (one minibatch update per environment step).
    - Not in the paper: learning starts once one minibatch is stored (64 steps);
      timesteps 1,000,000 (the paper's curves run to about 1M steps on most tasks);
      rollout_fragment_length 64 (env steps per environment per training step, i.e. how much
      work one RLlib call batches); num_envs 1 (environments stepped together by each
      EnvRunner, each with its own noise process; the replay ratio counts env steps);
      checkpoint_min_steps 50,000: checkpoints carry the replay (up to 10^6 steps), so the
      runner saves one at most every 50,000 env steps (and at the end) rather than every 10
      iterations (640 steps); a killed run redoes at most that much on ``--resume``.
    """
    return {
        "actor_lr": 1e-4,
        "critic_lr": 1e-3,
        "critic_weight_decay": 1e-2,
        "gamma": 0.99,
        "tau": 1e-3,
        "train_batch_size": 64,
        "replay_capacity": 1_000_000,
        "actor_hiddens": [400, 300],
        "critic_hiddens": [400, 300],
        "batch_norm": True,
        "noise_type": "ou",
        "noise_sigma": 0.2,
        "ou_theta": 0.15,
        "ou_dt": 1.0,
        "random_steps": 0,
        "updates_per_step": 1.0,
        "learning_starts": 64,
        "rollout_fragment_length": 64,
        "num_envs": 1,
        "store_buffer_in_checkpoints": True,
        "checkpoint_min_steps": 50_000,
        "timesteps": 1_000_000,
        "eval_episodes": 10,
    }


def pendulum() -> dict[str, Any]:
    """Tuned to solve Pendulum-v1 (mean evaluation return >= -200) fast on a CPU.

    Same as ``paper`` except (the rl-zoo3 DDPG settings for Pendulum, with a shorter warm-up):

    - actor_lr 1e-3 (paper 1e-4) and tau 0.005 (paper 0.001): a run of a few thousand
      updates has to move the actor and the targets far enough;
    - critic_weight_decay 0 (paper 1e-2): with returns of -1000..0 the decay pulls Q towards
      0 and slows learning on this task;
    - gamma 0.98 (paper 0.99): a shorter horizon suits 200-step episodes;
    - batch_norm off (paper on): Pendulum's inputs are already of order 1, and batch norm
      makes the few thousand early updates noisier;
    - Gaussian noise, sigma 0.1 of the half action range (paper: OU, theta 0.15, sigma 0.2);
    - 1,000 uniformly random warm-up steps before learning starts (paper: none), filling the
      buffer with diverse swings;
    - train_batch_size 128 (paper 64): lower-variance updates for little extra CPU;
    - replay 200,000 (paper 10^6): plenty for 30k steps;
    - rollout_fragment_length 200 (one Pendulum episode per training step), timesteps 30,000;
    - checkpoint_min_steps 0 (paper preset 50,000): a 30k-step replay is cheap to save, so
      a checkpoint every 10 iterations (2,000 steps).
    """
    return {
        **paper(),
        "actor_lr": 1e-3,
        "critic_weight_decay": 0.0,
        "gamma": 0.98,
        "tau": 5e-3,
        "batch_norm": False,
        "noise_type": "gaussian",
        "noise_sigma": 0.1,
        "random_steps": 1000,
        "learning_starts": 1000,
        "train_batch_size": 128,
        "replay_capacity": 200_000,
        "rollout_fragment_length": 200,
        "timesteps": 30_000,
        "checkpoint_min_steps": 0,
    }


PRESETS = {"paper": paper, "pendulum": pendulum}
