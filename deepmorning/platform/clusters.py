"""``deepmorning cluster``: placeholder until the clusters/jobs issue lands."""

from deepmorning.platform.pending import pending_group

cluster = pending_group(
    "cluster", "Validate, start and stop Ray clusters.", "arrives with the clusters and jobs issue"
)
