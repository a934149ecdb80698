"""One policy for non-finite gradients, shared by every deepmorning Learner.

A minibatch whose gradients hold NaN or ±inf is skipped whole: no parameter and no optimizer
state moves, and the Learner counts it under ``nonfinite_updates_skipped``. RLlib's own switch
(``torch_skip_nan_gradients``) does not do this in Ray 2.60: ``True`` applies NaN gradients as
they are and ``False`` zeroes them tensor by tensor (one device sync each) and still steps the
optimizers, whose moment estimates then carry the damage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

SKIPPED = "nonfinite_updates_skipped"


def all_finite(gradients: Mapping[Any, torch.Tensor]) -> bool:
    """True when every gradient is finite; one device sync for all tensors together."""
    grads = [g for g in gradients.values() if g is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, norm_type=2.0)))


def skip_if_nonfinite(learner: Any, gradients: Mapping[Any, torch.Tensor]) -> bool:
    """Count and report a non-finite update; True means the caller must not apply it."""
    if all_finite(gradients):
        return False
    learner.metrics.log_value(SKIPPED, 1, reduce="lifetime_sum")
    return True
