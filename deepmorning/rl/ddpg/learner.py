"""DDPG's Learner: critic and actor losses, two optimizers, soft target updates.

Lillicrap et al. (2015), Algorithm 1 and section 7:

* critic: minimise ``L = 1/N sum_i (y_i - Q(s_i, a_i))^2`` with
  ``y_i = r_i + gamma Q'(s_{i+1}, mu'(s_{i+1}))`` (no bootstrap past a terminal state);
  Adam, learning rate 1e-3, L2 weight decay 1e-2 on the critic's weight matrices only;
* actor: follow the deterministic policy gradient ``grad_a Q(s, a)|_{a=mu(s)} grad mu(s)``,
  i.e. minimise ``-mean Q(s, mu(s))`` with respect to the actor's weights; Adam, 1e-4;
* targets: ``theta' <- tau theta + (1 - tau) theta'`` after every update, ``tau = 0.001``
  (batch norm's running statistics are copied, not averaged: :func:`soft_update`).

Both optimizers are registered with RLlib (as RLlib's SAC learner does); each gets the gradient
of its own loss only, computed from the same forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import POLICY_LOSS_KEY
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.metrics import ALL_MODULES
from ray.rllib.utils.typing import ModuleID, ParamDict, TensorType

from deepmorning.rl.ddpg.module import Q_OF_POLICY, Q_TARGET_NEXT, Q_VALUES
from deepmorning.rl.gradients import skip_if_nonfinite

CRITIC = "critic"
ACTOR = "actor"
CRITIC_LOSS_KEY = "critic_loss"


@torch.no_grad()
def soft_update(module: TargetNetworkAPI, tau: float) -> None:
    """``theta' <- tau theta + (1 - tau) theta'`` for every (main, target) pair of ``module``.

    Algorithm 1's Polyak average applies to the weights ``theta``, done in place with one fused
    ``lerp`` (rebuilding and reloading state dicts, as RLlib's ``update_target_network`` does,
    cost more than the update itself for these small networks). Buffers, i.e. batch norm's
    running mean and variance, are not weights but estimates of the replay's statistics: they
    are copied. Averaging them too (RLlib's way) keeps the targets' statistics near their
    initial mean 0 and variance 1 for thousands of updates at ``tau = 0.001`` (0.999^2000 = 13.5%
    of the initial unit variance is still there after 2,000 updates, against a replay variance of
    0.007 for InvertedPendulum's pole angle), while the online networks normalize with the
    minibatch's statistics. See docs/ddpg.md, "Batch norm", for what this did to the paper
    preset.
    """
    mains: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for main_net, target_net in module.get_target_network_pairs():
        main_params = dict(main_net.named_parameters())
        for name, target in target_net.named_parameters():
            targets.append(target.data)
            mains.append(main_params[name].data)
        main_buffers = dict(main_net.named_buffers())
        for name, buffer in target_net.named_buffers():
            buffer.copy_(main_buffers[name])
    if targets:
        torch._foreach_lerp_(targets, mains, tau)


def weight_decay_groups(net: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weight matrices with ``weight_decay``, the rest (biases, batch
    norm's scale and shift) without, as L2 weight decay is usually read (and as rllab's DDPG,
    the reference of Duan et al. 2016, regularizes only the layers' ``W``). Decaying batch
    norm's scale at 1e-2 pulls the normalized units towards zero."""
    decayed = [p for p in net.parameters() if p.dim() > 1]
    rest = [p for p in net.parameters() if p.dim() <= 1]
    return [{"params": decayed, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0}]


class DDPGTorchLearner(TorchLearner):
    """Updates a :class:`DDPGTorchRLModule`; one ``_update`` is one DDPG step on a minibatch."""

    def build(self) -> None:
        super().build()
        # Small MLPs: one intra-op thread per Learner CPU. More threads than cores (PyTorch's
        # default on a shared machine) makes each update tens of times slower.
        cpus = self.config.num_cpus_per_learner
        torch.set_num_threads(max(1, int(cpus)) if isinstance(cpus, (int, float)) else 1)
        # Target networks live on the Learner only (EnvRunners hold the actor).
        self.module.foreach_module(
            lambda mid, mod: mod.make_target_networks()
            if isinstance(mod, TargetNetworkAPI) else None
        )
        self._temp_losses: dict[tuple[ModuleID, str], TensorType] = {}

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [TargetNetworkAPI]

    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        module = self._module[module_id]
        critic_params = self.get_parameters(module.critic)
        actor_params = self.get_parameters(module.actor)
        # L2 weight decay on the critic's weights only (section 7); Adam adds wd * theta to the
        # gradient.
        self.register_optimizer(
            module_id=module_id, optimizer_name=CRITIC,
            optimizer=torch.optim.Adam(
                weight_decay_groups(module.critic, config.critic_weight_decay), foreach=True),
            params=critic_params, lr_or_lr_schedule=config.critic_lr,
        )
        self.register_optimizer(
            module_id=module_id, optimizer_name=ACTOR,
            optimizer=torch.optim.Adam(actor_params, foreach=True),
            params=actor_params, lr_or_lr_schedule=config.actor_lr,
        )

    def compute_loss_for_module(self, *, module_id: ModuleID, config=None,
                                batch: dict[str, Any], fwd_out: dict[str, TensorType],
                                ) -> TensorType:
        not_done = 1.0 - batch[Columns.TERMINATEDS].float()
        y = batch[Columns.REWARDS].float() + config.gamma * not_done * fwd_out[Q_TARGET_NEXT]
        q = fwd_out[Q_VALUES]
        critic_loss = torch.mean((y.detach() - q) ** 2)
        actor_loss = -torch.mean(fwd_out[Q_OF_POLICY])
        self._temp_losses[(module_id, CRITIC)] = critic_loss
        self._temp_losses[(module_id, ACTOR)] = actor_loss
        self.metrics.log_dict(
            {
                CRITIC_LOSS_KEY: critic_loss,
                POLICY_LOSS_KEY: actor_loss,
                "q_mean": torch.mean(q),
                "q_target_mean": torch.mean(y),
            },
            key=module_id,
            window=1,
        )
        return critic_loss + actor_loss

    def compute_gradients(self, loss_per_module: dict[ModuleID, TensorType],
                          **kwargs: Any) -> ParamDict:
        """Each optimizer gets the gradient of its own loss: the actor loss's gradient with
        respect to the critic's weights is never applied."""
        grads: ParamDict = {}
        for module_id in set(loss_per_module) - {ALL_MODULES}:
            for optim_name, optim in self.get_optimizers_for_module(module_id):
                params = self.filter_param_dict_for_optimizer(self._params, optim)
                loss = self._temp_losses.pop((module_id, optim_name))
                values = torch.autograd.grad(loss, list(params.values()))
                grads.update(zip(params.keys(), values, strict=True))
        self._temp_losses.clear()
        return grads

    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        """Set the gradients and step both optimizers.

        Unlike RLlib's default this does not check every gradient tensor for NaN/inf one by
        one (a device sync per tensor, a noticeable share of a small DDPG update): a
        non-finite update is skipped whole (:mod:`deepmorning.rl.gradients`).
        """
        if skip_if_nonfinite(self, gradients_dict):
            return
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for optim in self._optimizer_parameters:
            optim.step()

    def _update(self, batch: dict[str, Any], **kwargs: Any):
        """One gradient step on one minibatch, then the soft target update (Algorithm 1)."""
        result = super()._update(batch, **kwargs)
        for module_id in batch:
            module = self.module[module_id].unwrapped()
            soft_update(module, self.config.get_config_for_module(module_id).tau)
        return result
