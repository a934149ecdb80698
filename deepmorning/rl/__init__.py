"""Deep RL papers as custom RLlib algorithms on the new API stack: DQN (Mnih 2013/2015), DDPG."""
