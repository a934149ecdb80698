"""``deepmorning rl``: placeholder until the DQN/DDPG issues land."""

from deepmorning.platform.pending import pending_group

rl = pending_group(
    "rl", "DQN and DDPG as custom RLlib algorithms.", "arrives with the DQN and DDPG issues"
)
