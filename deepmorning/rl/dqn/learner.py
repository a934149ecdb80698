"""The DQN loss and target-network schedule as an RLlib ``TorchLearner``.

Loss (Mnih et al. 2015, Methods "Training details" and Algorithm 1): for a minibatch of
transitions (s, a, r, s', terminal),

    y = r + γ · max_a' Q_target(s', a') · (1 − terminal)
    δ = y − Q(s, a)

and the loss is the mean over the minibatch of

* ``huber``: Huber(δ) with threshold 1 — the Nature paper's "clip the error term to [−1, 1]";
* ``clipped_mse``: ½δ² whose gradient uses clip(δ, −1, 1) (the clipped error as the paper
  states it; the same gradient as Huber, but the reported value is the squared error);
* ``mse``: ½δ² (the 2013 paper, which clips rewards but not errors).

The target network is copied from the online network every ``target_update_period`` gradient
updates, C in the Nature paper (Extended Data Table 1, "target network update frequency":
10,000, measured in parameter updates). Optimisers: the papers' RMSProp (lr 0.00025, squared
gradient momentum 0.95, min squared gradient 0.01) as DeepMind's code runs it,
:class:`DeepMindRMSprop`, or Adam. ``loss_reduction`` ``sum`` (the Atari presets) adds the
minibatch's per-sample losses as DeepMind's code accumulates its gradients; ``mean`` averages.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.utils import update_target_network
from ray.rllib.core.rl_module.apis import TargetNetworkAPI

from deepmorning.rl.dqn.module import Q_VALUES
from deepmorning.rl.gradients import skip_if_nonfinite

LOSSES = ("huber", "clipped_mse", "mse")
OPTIMIZERS = ("rmsprop", "adam")
NUM_UPDATES = "num_gradient_updates"
NUM_TARGET_UPDATES = "num_target_updates"
ACTION_INDEX = "_dqn_action_index"  # actions as a (B, 1) int64 gather index
DISCOUNTS = "_dqn_discounts"  # γ (1 − terminal)


REDUCTIONS = ("mean", "sum")


def td_loss(td_error: torch.Tensor, kind: str, reduction: str = "mean") -> torch.Tensor:
    """The loss of TD errors δ for ``kind`` in :data:`LOSSES` (module docstring), averaged
    (``mean``) or added up (``sum``) over the minibatch."""
    if kind == "huber":
        per_sample = F.huber_loss(td_error, torch.zeros_like(td_error), delta=1.0,
                                  reduction="none")
    elif kind == "clipped_mse":
        value = 0.5 * td_error.detach() ** 2
        clipped = td_error.detach().clamp(-1.0, 1.0)
        per_sample = value + clipped * (td_error - td_error.detach())
    elif kind == "mse":
        per_sample = 0.5 * td_error**2
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


class DeepMindRMSprop(torch.optim.Optimizer):
    """RMSProp as DeepMind's DQN code runs it (``NeuralQLearner.lua``), which the papers cite
    as "RMSProp" with squared gradient momentum 0.95 and min squared gradient 0.01::

        g  ← α g  + (1 − α) ∇          (running mean of the gradient)
        g2 ← α g2 + (1 − α) ∇²         (running mean of its square)
        θ  ← θ − lr ∇ / sqrt(g2 − g² + ε)

    ε sits *inside* the square root. ``torch.optim.RMSprop(centered=True, eps=0.01)`` puts it
    outside (∇ / (sqrt(g2 − g²) + ε)), a different step whenever g2 − g² is small.
    """

    def __init__(self, params: Any, lr: float = 2.5e-4, alpha: float = 0.95,
                 eps: float = 0.01) -> None:
        if lr <= 0 or not 0.0 <= alpha < 1.0 or eps <= 0:
            raise ValueError(f"invalid RMSProp settings lr={lr}, alpha={alpha}, eps={eps}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["g"] = torch.zeros_like(p)
                    state["g2"] = torch.zeros_like(p)
                g, g2, grad = state["g"], state["g2"], p.grad
                g.mul_(alpha).add_(grad, alpha=1 - alpha)
                g2.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                denom = (g2 - g * g).add_(eps).sqrt_()
                p.addcdiv_(grad, denom, value=-lr)
        return loss


def discounts(terminateds: torch.Tensor, gamma: float) -> torch.Tensor:
    """γ for non-terminal transitions, 0 for terminal ones."""
    return gamma * (1.0 - terminateds.float())


def td_targets(rewards: torch.Tensor, terminateds: torch.Tensor, next_q_target: torch.Tensor,
               gamma: float, discount: torch.Tensor | None = None) -> torch.Tensor:
    """y = r + γ max_a' Q_target(s', a') for non-terminal s', y = r otherwise.

    ``discount``: :func:`discounts` of ``terminateds``, when already computed."""
    if discount is None:
        discount = discounts(terminateds, gamma)
    return rewards.float() + discount * next_q_target.max(dim=-1).values


def clip_by_global_norm(grads: list[torch.Tensor], clip: float) -> torch.Tensor:
    """Scale ``grads`` in place to a global L2 norm of at most ``clip``; returns the norm.

    RLlib's ``clip_gradients(grad_clip_by="global_norm")`` step for step (per-tensor norms
    with ±inf replaced by ±1e9, their norm, the coefficient clamped to 1, no branch), in a
    few foreach calls instead of a Python loop of small ones."""
    norms = torch.stack(torch._foreach_norm(grads, 2.0)).nan_to_num_(neginf=-1e9, posinf=1e9)
    total = torch.linalg.vector_norm(norms, 2.0).nan_to_num_(neginf=-1e9, posinf=1e9)
    coeff = torch.clamp(clip / torch.clamp(total + 1e-6, min=clip), max=1.0)
    torch._foreach_mul_(grads, coeff)
    return total


class DQNLearner(TorchLearner):
    """Computes the DQN loss and copies the target network every C gradient updates.

    ``_update`` takes every minibatch step of a call in a lean loop (:meth:`_lean_update`):
    forward of the online and target nets, TD loss, backward, global-norm clip, the
    non-finite check, optimizer step, target copy — the same operations, in the same order,
    as RLlib's ``TorchLearner._update`` (``forward_train``, ``compute_losses``,
    ``compute_gradients``, ``postprocess_gradients``, ``apply_gradients``), without its
    per-step dispatch and metrics. Where the lean loop does not apply (several Learners or
    optimizers, mixed precision, ``torch.compile``, learning-rate schedulers, another clip
    mode, ``lean = False``) each step goes through RLlib's path instead; a test checks both
    leave bit-identical weights.
    """

    #: Take the minibatch steps in the lean loop when it applies (see the class docstring).
    lean = True

    def build(self) -> None:
        super().build()
        self.module.foreach_module(
            lambda mid, mod: mod.make_target_networks()
            if isinstance(mod, TargetNetworkAPI) else None
        )
        self._num_updates = 0

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        params = self.get_parameters(self._module[module_id])
        if config.optimizer == "rmsprop":
            optimizer = DeepMindRMSprop(params, lr=config.lr, alpha=config.rmsprop_alpha,
                                        eps=config.rmsprop_eps)
        elif config.optimizer == "adam":
            # fused: one kernel per tensor for the whole Adam step, on CPU as on CUDA (the
            # foreach path makes intermediate tensors; measured in docs/rl.md, "Learner").
            optimizer = torch.optim.Adam(params, lr=config.lr, eps=config.adam_eps, fused=True)
        else:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}")
        self.register_optimizer(module_id=module_id, optimizer=optimizer, params=params,
                                lr_or_lr_schedule=config.lr)

    @staticmethod
    def td_terms(module: Any, q: torch.Tensor, batch: dict[str, Any], config: Any,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Q(s, a), δ, loss) for online Q-values ``q`` of ``batch`` (module docstring).

        ``batch`` may hold the gather index of the actions (``ACTION_INDEX``) and the
        :func:`discounts` (``DISCOUNTS``) already computed: :meth:`_lean_update` computes
        them once per call, for all its minibatches."""
        index = batch.get(ACTION_INDEX)
        if index is None:
            index = batch[Columns.ACTIONS].long().unsqueeze(-1)
        q_taken = q.gather(-1, index).squeeze(-1)
        with torch.no_grad():
            next_q = module.forward_target({Columns.OBS: batch[Columns.NEXT_OBS]})[Q_VALUES]
            y = td_targets(batch[Columns.REWARDS], batch[Columns.TERMINATEDS], next_q,
                           config.gamma, batch.get(DISCOUNTS))
        td_error = y - q_taken
        return q_taken, td_error, td_loss(td_error, config.loss, config.loss_reduction)

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict[str, Any],
                                fwd_out: dict[str, Any]) -> torch.Tensor:
        module = self.module[module_id].unwrapped()
        q_taken, td_error, loss = self.td_terms(module, fwd_out[Q_VALUES], batch, config)
        self.metrics.log_dict(
            {"q_mean": q_taken.mean(), "td_error_abs_mean": td_error.abs().mean()},
            key=module_id, window=1,
        )
        return loss

    def apply_gradients(self, gradients_dict: dict[str, Any]) -> None:
        """Step the optimizer unless the update is non-finite (:mod:`deepmorning.rl.gradients`);
        ``torch_skip_nan_gradients=True`` keeps RLlib's per-tensor checks out of the way."""
        if not skip_if_nonfinite(self, gradients_dict):
            super().apply_gradients(gradients_dict)

    def _update(self, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
        """Gradient steps on consecutive ``batch_size`` slices of ``batch``, in order.

        ``Learner.update(minibatch_size=B)`` calls this once per minibatch of B. Called with
        the whole batch (``minibatch_size=None``, what ``DQN.training_step`` does) it takes
        the same gradient steps on the same minibatches in the same order, but pays RLlib's
        per-minibatch bookkeeping (iterator, tensor conversion, step and Prometheus metrics)
        once per call instead of once per step.
        """
        sizes = {len(b[Columns.OBS]) for b in batch.values()}
        minibatch = min(self.config.get_config_for_module(mid).batch_size for mid in batch)
        if self._lean_applies(batch, sizes):
            return self._lean_update(batch, minibatch)
        total = max(sizes)
        if len(sizes) != 1 or total <= minibatch:
            return self._one_update(batch)
        for start in range(0, total, minibatch):
            result = self._one_update(
                {mid: {k: v[start:start + minibatch] for k, v in b.items()}
                 for mid, b in batch.items()})
        return result

    def _lean_applies(self, batch: dict[str, Any], sizes: set[int]) -> bool:
        if not self.lean or len(batch) != 1 or len(sizes) != 1:
            return False
        module_id = next(iter(batch))
        config = self.config.get_config_for_module(module_id)
        return (len(self.get_optimizers_for_module(module_id)) == 1  # one clip, as RLlib's
                and self.config.num_learners <= 1 and self._grad_scalers is None
                and self._lr_scheduler_classes is None
                and not self.config.torch_compile_learner and not config.log_gradients
                and (not config.grad_clip or config.grad_clip_by == "global_norm"))

    def _one_update(self, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
        """One gradient step through RLlib's ``TorchLearner._update``; then the target copy
        when C steps have passed."""
        result = super()._update(batch)
        self._after_step()
        self.metrics.log_value(NUM_UPDATES, self._num_updates, reduce="max", window=1)
        return result

    def _after_step(self) -> None:
        """Count one gradient step; copy the target networks every C steps."""
        self._num_updates += 1
        for module_id, module in self.module._rl_modules.items():
            config = self.config.get_config_for_module(module_id)
            if self._num_updates % config.target_update_period == 0:
                for main, target in module.unwrapped().get_target_network_pairs():
                    update_target_network(main_net=main, target_net=target, tau=1.0)
                self.metrics.log_value((module_id, NUM_TARGET_UPDATES), 1,
                                       reduce="lifetime_sum")

    def _lean_update(self, batch: dict[str, Any], minibatch: int) -> tuple[Any, Any, Any]:
        """Every ``minibatch`` slice of a one-module ``batch``: one gradient step each.

        Per step only tensor work and the one device sync of the non-finite check; the
        steps' Q(s, a), |δ|, losses and gradient norms are reported once per call, as means
        over its steps (RLlib's path reports the last step's)."""
        (module_id, columns), = batch.items()
        config = self.config.get_config_for_module(module_id)
        module = self.module[module_id].unwrapped()
        module.train()  # what TorchRLModule.forward_train does before every step
        self._compute_off_policyness(batch)
        optimizers = [optim for _, optim in self.get_optimizers_for_module(module_id)]
        params = [p for optim in optimizers for group in optim.param_groups
                  for p in group["params"]]
        # Computed once for the whole batch, sliced per step: elementwise, so each step sees
        # the values it would compute itself.
        columns = {Columns.OBS: columns[Columns.OBS], Columns.NEXT_OBS: columns[Columns.NEXT_OBS],
                   Columns.REWARDS: columns[Columns.REWARDS].float(),
                   Columns.TERMINATEDS: columns[Columns.TERMINATEDS],
                   ACTION_INDEX: columns[Columns.ACTIONS].long().unsqueeze(-1),
                   DISCOUNTS: discounts(columns[Columns.TERMINATEDS], config.gamma)}
        q_taken, td_errors, losses, norms = [], [], [], []
        for start in range(0, len(columns[Columns.OBS]), minibatch):
            mb = {k: v[start:start + minibatch] for k, v in columns.items()}
            q = module._forward_train(mb)[Q_VALUES]
            q_a, td_error, loss = self.td_terms(module, q, mb, config)
            for p in params:  # Optimizer.zero_grad(set_to_none=True) without its wrappers
                p.grad = None
            loss.backward()
            grads = {i: p.grad for i, p in enumerate(params) if p.grad is not None}
            if config.grad_clip:
                norms.append(clip_by_global_norm(list(grads.values()), config.grad_clip))
            if not skip_if_nonfinite(self, grads):
                for optim in optimizers:
                    optim.step()
            self._after_step()
            q_taken.append(q_a.detach())
            td_errors.append(td_error.detach())
            losses.append(loss.detach())
        metrics = {"q_mean": torch.cat(q_taken).mean(),
                   "td_error_abs_mean": torch.cat(td_errors).abs().mean()}
        if norms:
            name = self.get_optimizers_for_module(module_id)[0][0]
            metrics[f"gradients_{name}_global_norm"] = torch.stack(norms).mean()
        self.metrics.log_dict(metrics, key=module_id, window=1)
        self.metrics.log_value(NUM_UPDATES, self._num_updates, reduce="max", window=1)
        return {}, {module_id: torch.stack(losses).mean()}, {}

    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().get_state(*args, **kwargs)
        state[NUM_UPDATES] = self._num_updates
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._num_updates = int(state.get(NUM_UPDATES, self._num_updates))
