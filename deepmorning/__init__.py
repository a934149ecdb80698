"""deepmorning: reproduce and scale the deepmorning reading group's papers on Ray.

Areas: :mod:`deepmorning.nas` (Zoph & Le's architecture search), :mod:`deepmorning.rl` (DQN and
DDPG on RLlib's new API stack), :mod:`deepmorning.tuning` (Ray Tune studies) and
:mod:`deepmorning.platform` (runtime, CLI plumbing, run directories, metrics).
"""

__version__ = "0.1.0"
