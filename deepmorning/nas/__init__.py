"""Neural Architecture Search with Reinforcement Learning (Zoph & Le, ICLR 2017) on Ray."""
