"""``deepmorning tune``: placeholder until the Tune studies land."""

from deepmorning.platform.pending import pending_group

tune = pending_group("tune", "Ray Tune studies of the papers' supervised models.",
                     "the Tune studies have no issue yet")
