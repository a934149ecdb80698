"""The paper's distributed training of the controller (Zoph & Le 2017, Sec. 3.4, Fig. 3) on Ray.

* ``S`` :class:`ParameterServer` actors each hold a shard of the controller's parameters and
  the Adam state of that shard. They apply pushed gradients, optionally only after ``G`` of
  them (the paper's Penn Treebank setting), and ignore a batch they have already applied, so a
  resumed search can re-send an update safely.
* ``K`` :class:`ControllerReplica` actors pull the parameters, sample ``m`` architectures,
  and, once the children's rewards are in, compute the REINFORCE gradient with the parameters
  they sampled with and push it to every shard. Replicas never wait for each other: each one
  pushes as soon as its own children are done (no global barrier), so gradients may be stale,
  as in the paper.

Both are light actors (``num_cpus=0``); the CPUs and GPUs go to the children. A replica that
dies is restarted by Ray and pulls fresh parameters from the servers.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import numpy as np
import ray
import torch

from deepmorning.nas.config import ControllerConfig
from deepmorning.nas.controller import Controller, reinforce_loss
from deepmorning.nas.space import Architecture, SearchSpace, sample_uniform


def shard_names(sizes: dict[str, int], num_shards: int) -> list[list[str]]:
    """Split parameter names into ``num_shards`` groups of similar total size (greedy)."""
    shards: list[list[str]] = [[] for _ in range(num_shards)]
    load = [0] * num_shards
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        k = load.index(min(load))
        shards[k].append(name)
        load[k] += size
    return shards


def initial_parameters(space: SearchSpace, cfg: ControllerConfig, seed: int
                       ) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    controller = build_controller(space, cfg)
    return {k: v.detach().numpy().copy() for k, v in controller.named_parameters()}


def build_controller(space: SearchSpace, cfg: ControllerConfig) -> Controller:
    return Controller(space, hidden=cfg.hidden, lstm_layers=cfg.lstm_layers,
                      init_range=cfg.init_range)


class ParameterServer:
    """One shard of the controller's parameters with its own Adam state."""

    def __init__(self, shard_id: int, params: dict[str, np.ndarray], lr: float,
                 apply_every: int = 1) -> None:
        torch.set_num_threads(1)
        self.shard_id = shard_id
        self.params = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=lr)
        self.apply_every = apply_every
        self.version = 0
        self.applied: set[int] = set()
        self.waiting: list[dict[str, np.ndarray]] = []

    def actor_name(self) -> str:
        return ray.get_runtime_context().get_actor_name()

    def pull(self) -> tuple[int, dict[str, np.ndarray]]:
        return self.version, {k: v.detach().numpy().copy() for k, v in self.params.items()}

    def push(self, batch_id: int, grads: dict[str, np.ndarray]) -> int:
        """Accept one replica's gradient; apply once ``apply_every`` have arrived."""
        if batch_id in self.applied:
            return self.version
        self.applied.add(batch_id)
        self.waiting.append(grads)
        if len(self.waiting) >= self.apply_every:
            for name, param in self.params.items():
                param.grad = torch.tensor(np.mean([g[name] for g in self.waiting], axis=0))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.waiting = []
            self.version += 1
        return self.version

    def get_state(self) -> dict[str, Any]:
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
            "version": self.version,
            "applied": sorted(self.applied),
            "waiting": [{k: torch.tensor(v) for k, v in g.items()} for g in self.waiting],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, value in state["params"].items():
                self.params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.version = int(state["version"])
        self.applied = set(int(b) for b in state["applied"])
        self.waiting = [{k: v.numpy() for k, v in g.items()} for g in state["waiting"]]


class ControllerReplica:
    """One controller replica: pull, sample m architectures, push the REINFORCE gradient."""

    def __init__(self, replica_id: int, space: dict, cfg: dict, shard_actor_names: list[str],
                 names: list[list[str]], strategy: str, seed: int) -> None:
        torch.set_num_threads(1)  # a 35-unit LSTM: more threads only fight over the CPUs
        self.replica_id = replica_id
        self.space = SearchSpace.from_dict(space)
        self.cfg = ControllerConfig(**cfg)
        self.controller = build_controller(self.space, self.cfg)
        # Shards are found by name: handles in constructor arguments would not survive a
        # restart of this actor reliably (ray-project/ray#53727).
        self.shards = [ray.get_actor(name) for name in shard_actor_names]
        self.names = names
        self.strategy = strategy
        self.seed = seed
        self.version: int | None = None  # None until the first pull (and after a restart)

    def _pull(self) -> int:
        pulled = ray.get([shard.pull.remote() for shard in self.shards])
        state = {}
        for _, params in pulled:
            state.update({k: torch.tensor(v) for k, v in params.items()})
        self.controller.load_state_dict(state)
        self.version = sum(version for version, _ in pulled)
        return self.version

    def sample(self, batch_id: int, count: int, num_layers: int) -> dict[str, Any]:
        """Pull the latest parameters and sample ``count`` architectures."""
        version = self._pull() if self.strategy == "rl" else 0
        if self.strategy == "random":
            rng = random.Random(self.seed * 1_000_003 + batch_id)
            archs = [sample_uniform(self.space, num_layers, rng) for _ in range(count)]
        else:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + batch_id)
            with torch.no_grad():
                archs = [self.controller.sample(num_layers, gen).arch for _ in range(count)]
        return {"version": version, "archs": [a.to_dict() for a in archs]}

    def update(self, batch_id: int, archs: list[dict], advantages: list[float]) -> int:
        """Push -1/m sum (R_k - b) grad log P(a_k) for one batch to every shard."""
        if self.version is None:  # restarted since sampling: use the servers' parameters
            self._pull()
        self.controller.zero_grad(set_to_none=True)
        samples = [self.controller.score(Architecture.from_dict(a)) for a in archs]
        reinforce_loss(samples, advantages, self.cfg.entropy_weight).backward()
        grads = {
            k: (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
            for k, p in self.controller.named_parameters()
        }
        versions = ray.get([
            shard.push.remote(batch_id, {k: grads[k] for k in names})
            for shard, names in zip(self.shards, self.names, strict=True)
        ])
        return sum(versions)

    def ping(self) -> int:
        return self.replica_id


def start_servers(space: SearchSpace, cfg: ControllerConfig, num_shards: int, apply_every: int,
                  seed: int, states: list[dict] | None = None) -> tuple[list, list[list[str]]]:
    """Create S shard actors (restoring their states when resuming)."""
    params = initial_parameters(space, cfg, seed)
    names = shard_names({k: v.size for k, v in params.items()}, num_shards)
    actor = ray.remote(num_cpus=0, max_restarts=0)(ParameterServer)
    prefix = f"deepmorning-nas-ps-{uuid.uuid4().hex[:8]}"
    shards = [
        actor.options(name=f"{prefix}-{i}").remote(i, {k: params[k] for k in group}, cfg.lr,
                                                   apply_every)
        for i, group in enumerate(names)
    ]
    if states is not None:
        if len(states) != num_shards:
            raise ValueError("the checkpoint has a different number of parameter servers")
        ray.get([shard.set_state.remote(state) for shard, state in zip(shards, states,
                                                                      strict=True)])
    return shards, names


def start_replicas(count: int, space: SearchSpace, cfg: ControllerConfig, shards: list,
                   names: list[list[str]], strategy: str, seed: int) -> list:
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3)(ControllerReplica)
    shard_actor_names = ray.get([s.actor_name.remote() for s in shards])
    return [
        actor.remote(k, space.to_dict(), cfg.__dict__, shard_actor_names, names, strategy,
                     seed + k)
        for k in range(count)
    ]
