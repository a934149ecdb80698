"""``deepmorning job``: placeholder until the clusters/jobs issue lands."""

from deepmorning.platform.pending import pending_group

job = pending_group(
    "job", "Submit and follow jobs on a Ray cluster.", "arrives with the clusters and jobs issue"
)
