"""``deepmorning nas``: placeholder until the NAS issue lands."""

from deepmorning.platform.pending import pending_group

nas = pending_group(
    "nas", "Neural Architecture Search with RL (Zoph & Le 2017).", "arrives with the NAS issue"
)
