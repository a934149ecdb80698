"""Ray Tune studies of the reading group's supervised models."""
