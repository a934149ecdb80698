"""DDPG (Lillicrap et al. 2015, "Continuous control with deep reinforcement learning").

RLlib dropped DDPG from its core (it moved to rllib_contrib in Ray 2.8, pinned to the old API
stack); this package is the paper's algorithm on RLlib's new API stack:

* :mod:`.module`: actor and critic (+ targets) as one ``TorchRLModule``;
* :mod:`.learner`: the two losses, two optimizers and soft target updates;
* :mod:`.noise`: Ornstein-Uhlenbeck / Gaussian exploration as an EnvRunner connector;
* :mod:`.replay`: uniform transition sampling on RLlib's ``EpisodeReplayBuffer``;
* :mod:`.algorithm`: ``DDPGConfig`` and ``DDPG`` with its own ``training_step``;
* :mod:`.presets`: the paper's settings and a tuned ``pendulum`` preset.
"""

from deepmorning.rl.ddpg.algorithm import DDPG, DDPGConfig

__all__ = ["DDPG", "DDPGConfig"]
