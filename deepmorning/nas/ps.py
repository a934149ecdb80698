"""The paper's distributed training of the controller (Zoph & Le 2017, Sec. 3.4, Fig. 3) on Ray.

* ``S`` :class:`ParameterServer` actors each hold a shard of the controller's parameters and
  the Adam state of that shard. They apply pushed gradients, optionally only after ``G`` of
  them (the paper's Penn Treebank setting), and ignore a batch they have already applied, so a
  resumed search can re-send an update safely. Each server writes its state (parameters, Adam,
  applied batch ids, gradients still waiting under ``G``) to ``ps-<shard>.pt`` before it
  answers a push; Ray restarts a dead server (a preempted node, a killed process), which
  reloads that file, and re-sends the push it was serving. So a server's death loses no
  applied or waiting gradient and applies none twice.
* ``K`` :class:`ControllerReplica` actors pull the parameters, sample ``m`` architectures and
  hand the parameters they sampled with back with the batch. Once the children's rewards are
  in, the replica loads those parameters again, computes the REINFORCE gradient at them (so a
  restarted replica or a resumed search computes the same gradient) and pushes it to every
  shard. Replicas never wait for each other: each one pushes as soon as its own children are
  done (no global barrier), so gradients may be stale, as in the paper. A replica has at most
  one open batch: :meth:`ControllerReplica.step` pushes the previous batch's gradient before it
  samples the next one, and refuses a second open batch.

Hosting: shards and replicas are *logical* actors, each hosted in one of a few processes
(:class:`ParameterServerGroup`, :class:`ControllerReplicaGroup`; ``--server-processes`` and
``--replica-processes``, by default at most :data:`AUTO_PROCESSES` each). Every process holding
torch costs about 270 MB, so one process per replica capped the layout at K = 16 on a 24 GB
machine; the paper's S = 20 / K = 100 takes 8 processes this way. What the paper describes stays
true per logical actor: each shard has its own parameters, Adam state, applied batch ids,
``apply_every`` count and state file (``ps-<shard>.pt``); each replica has its own controller,
its own open batch and pushes to all S shards (one call per server process, carrying the
gradients of the shards it hosts) without waiting for any other replica. A replica group is a
threaded actor with one thread per replica, so a replica waiting on the servers does not hold
up its group mates, and a replica whose children are slow is never called at all until they are
done. A killed process restarts all it hosts: shards reload their files, replicas are stateless
between calls (the driver hands each call the parameters and batch it needs).

All are light actors (``num_cpus=0``); the CPUs and GPUs go to the children. All are pinned
to the driver's node (:func:`driver_node`): a server's state file lives in the run directory,
which for a run at a URI is the driver's local working copy and on a cluster without shared
storage exists only there; Ray would otherwise put a zero-CPU actor on any alive node.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from deepmorning.nas.config import ControllerConfig
from deepmorning.nas.controller import reinforce_loss
from deepmorning.nas.spaces import AnySpace, arch_from_dict, sample_random, space_from_dict
from deepmorning.nas.spaces import build_controller as _build
from deepmorning.nas.task import STREAM_SAMPLE, stream_seed

# Processes hosting the shards, and the replicas, when the config leaves it open (0): enough for
# the controller's CPU on a small head node (a replica's step is about 0.2 s of CPU for m = 8 at
# 6 layers, mostly under the GIL), few enough that K = 100 fits in a few GB.
AUTO_PROCESSES = 4


def host_count(logical: int, processes: int) -> int:
    """How many processes host ``logical`` shards or replicas: ``processes``, or with 0
    :data:`AUTO_PROCESSES`; never more processes than logical actors."""
    return max(1, min(logical, processes or AUTO_PROCESSES))


def hosted_by(logical: int, hosts: int) -> list[list[int]]:
    """The logical actors each of ``hosts`` processes hosts: contiguous, sizes within one."""
    base, extra = divmod(logical, hosts)
    out, start = [], 0
    for h in range(hosts):
        size = base + (h < extra)
        out.append(list(range(start, start + size)))
        start += size
    return out


@dataclass(frozen=True)
class Hosted:
    """A logical actor (one shard, one replica) in a group process, used like a Ray actor
    handle: ``x.method.remote(*args)`` calls ``method`` of logical actor ``key`` in ``host``.
    ``host`` is the process's actor handle (what ``ray.kill`` takes)."""

    host: Any
    key: int

    def __getattr__(self, method: str) -> _HostedMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return _HostedMethod(self.host, self.key, method)


@dataclass(frozen=True)
class _HostedMethod:
    host: Any
    key: int
    method: str

    def remote(self, *args: Any, **kwargs: Any) -> ray.ObjectRef:
        return self.host.call.remote(self.key, self.method, *args, **kwargs)


def batch_stream(seed: int, batch_id: int) -> int:
    """The seed of the random stream batch ``batch_id`` of a run with ``--seed seed`` samples
    from (random search and the controller alike): keyed on (run seed, batch id), so no two
    runs' seeds share a stream. Batch ids are unique in a run, whichever replica samples one."""
    return stream_seed(seed, STREAM_SAMPLE, batch_id)


def shard_names(sizes: dict[str, int], num_shards: int) -> list[list[str]]:
    """Split parameter names into ``num_shards`` groups of similar total size (greedy)."""
    shards: list[list[str]] = [[] for _ in range(num_shards)]
    load = [0] * num_shards
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        k = load.index(min(load))
        shards[k].append(name)
        load[k] += size
    return shards


def initial_parameters(space: AnySpace, cfg: ControllerConfig, seed: int
                       ) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    controller = build_controller(space, cfg)
    return {k: v.detach().numpy().copy() for k, v in controller.named_parameters()}


def build_controller(space: AnySpace, cfg: ControllerConfig) -> torch.nn.Module:
    return _build(space, cfg.hidden, cfg.lstm_layers, cfg.init_range)


def driver_node() -> NodeAffinitySchedulingStrategy:
    """Hard affinity to this process's node: where the control plane's state files are.

    The servers' ``ps-<i>.pt`` are written under the run directory, which is the driver's
    local working copy for a run at a URI (and the driver's disk on a cluster without shared
    storage). Hard (``soft=False``): a server placed or restarted elsewhere would fail its first
    save, or silently start from the initial parameters. A lost driver node ends the search
    anyway; ``--resume`` starts the control plane again next to the new driver.
    """
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(),
                                          soft=False)


class ParameterServer:
    """One shard of the controller's parameters with its own Adam state, saved after each push.

    A plain object: a :class:`ParameterServerGroup` process hosts one or more of them."""

    def __init__(self, shard_id: int, params: dict[str, np.ndarray], lr: float,
                 apply_every: int = 1, state_path: str | None = None) -> None:
        torch.set_num_threads(1)
        self.shard_id = shard_id
        self.params = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=lr)
        self.apply_every = apply_every
        self.version = 0
        self.applied: set[int] = set()
        self.waiting: list[dict[str, np.ndarray]] = []
        self.state_path = Path(state_path) if state_path else None
        if self.state_path is not None and self.state_path.is_file():  # restarted or resumed
            self.set_state(torch.load(self.state_path, weights_only=True))

    def pid(self) -> int:
        return os.getpid()

    def pull(self) -> tuple[int, dict[str, np.ndarray]]:
        return self.version, {k: v.detach().numpy().copy() for k, v in self.params.items()}

    def push(self, batch_id: int, grads: dict[str, np.ndarray]) -> int:
        """Accept one replica's gradient; apply once ``apply_every`` have arrived."""
        if batch_id in self.applied:
            return self.version
        self.applied.add(batch_id)
        self.waiting.append(grads)
        if len(self.waiting) >= self.apply_every:
            self._apply()
        self._save()
        return self.version

    def push_pull(self, batch_id: int, grads: dict[str, np.ndarray]
                  ) -> tuple[int, dict[str, np.ndarray]]:
        """:meth:`push`, then :meth:`pull`: one round trip for a replica that samples next."""
        self.push(batch_id, grads)
        return self.pull()

    def flush(self) -> int:
        """Apply the gradients still waiting under ``apply_every`` (the search's end)."""
        if self.waiting:
            self._apply()
            self._save()
        return self.version

    def _apply(self) -> None:
        for name, param in self.params.items():
            param.grad = torch.tensor(np.mean([g[name] for g in self.waiting], axis=0))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.waiting = []
        self.version += 1

    def _save(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            torch.save(self.get_state(), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

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


class ParameterServerGroup:
    """One process hosting several shards (:class:`ParameterServer`), each with its own state
    file. Calls are served one at a time, so each shard's push is atomic as before."""

    def __init__(self, shards: dict[int, tuple[dict[str, np.ndarray], float, int, str | None]]
                 ) -> None:
        torch.set_num_threads(1)
        self.shards = {i: ParameterServer(i, *args) for i, args in shards.items()}

    def call(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method`` of one hosted shard (what :class:`Hosted` sends)."""
        return getattr(self.shards[shard], method)(*args, **kwargs)

    def actor_name(self) -> str:
        return ray.get_runtime_context().get_actor_name()

    def pid(self) -> int:
        return os.getpid()

    def pull(self, shards: list[int]) -> dict[int, tuple[int, dict[str, np.ndarray]]]:
        return {i: self.shards[i].pull() for i in shards}

    def push(self, batch_id: int, grads: dict[int, dict[str, np.ndarray]], pull: bool = False
             ) -> dict[int, Any]:
        """One replica's gradient for each hosted shard in ``grads``: each shard applies (or
        keeps waiting) and saves on its own; with ``pull`` each answers its parameters too."""
        call = "push_pull" if pull else "push"
        return {i: getattr(self.shards[i], call)(batch_id, g) for i, g in grads.items()}


class Servers:
    """A replica's view of the S shards: the server processes, found by name, and the shards
    each one hosts; a pull or a push is one call per process, all in flight at once."""

    def __init__(self, host_names: list[str], hosted: list[list[int]],
                 names: list[list[str]]) -> None:
        # Found by name: handles in constructor arguments would not survive a restart of the
        # replica's process reliably (ray-project/ray#53727).
        self.hosts = [ray.get_actor(name) for name in host_names]
        self.hosted = hosted
        self.names = names

    def pull(self) -> tuple[int, dict[str, np.ndarray]]:
        answers = ray.get([h.pull.remote(ids) for h, ids in zip(self.hosts, self.hosted,
                                                                strict=True)])
        return _merge([pulled for answer in answers for pulled in answer.values()])

    def push(self, batch_id: int, grads: dict[str, np.ndarray], pull: bool
             ) -> int | tuple[int, dict[str, np.ndarray]]:
        """Push ``grads`` to every shard (its own tensors to each); the sum of the shards'
        versions after it, with ``pull`` also the parameters."""
        answers = ray.get([
            host.push.remote(batch_id, {i: {k: grads[k] for k in self.names[i]} for i in ids},
                             pull)
            for host, ids in zip(self.hosts, self.hosted, strict=True)])
        per_shard = [value for answer in answers for value in answer.values()]
        return _merge(per_shard) if pull else sum(per_shard)


def _merge(pulled: list[tuple[int, dict[str, np.ndarray]]]) -> tuple[int, dict[str, np.ndarray]]:
    params: dict[str, np.ndarray] = {}
    for _, shard_params in pulled:
        params.update(shard_params)
    return sum(version for version, _ in pulled), params


class ControllerReplica:
    """One controller replica: pull, sample m architectures, push the REINFORCE gradient.

    A plain object: a :class:`ControllerReplicaGroup` process hosts one or more of them."""

    def __init__(self, replica_id: int, space: AnySpace, cfg: ControllerConfig,
                 servers: Servers, strategy: str, seed: int) -> None:
        self.replica_id = replica_id
        self.space = space
        self.cfg = cfg
        self.controller = build_controller(self.space, self.cfg)
        self.servers = servers
        self.strategy = strategy
        self.seed = seed  # the run's seed: every replica keys its batches' streams on it
        self.open_batch: int | None = None  # sampled, gradient not pushed yet

    def _pull(self) -> tuple[int, dict[str, np.ndarray]]:
        return self.servers.pull()

    def _load(self, params: dict[str, np.ndarray]) -> None:
        self.controller.load_state_dict({k: torch.tensor(v) for k, v in params.items()})

    def sample(self, batch_id: int, count: int, num_layers: int | list[int],
               pulled: tuple[int, dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
        """Pull the latest parameters (unless ``pulled`` has them) and sample ``count``
        architectures with them; ``num_layers`` is the depth of each (one per child: the depth
        schedule counts children, so a batch can straddle a step) or of all.

        The random stream is batch ``batch_id``'s of the run's seed (:func:`batch_stream`), so a
        resumed or restarted replica samples a batch again exactly, and no batch of another run
        seed shares it. Returns the architectures, the servers' version and (for ``rl``) the
        parameters sampled with, which the caller keeps with the batch and hands back to
        :meth:`update`.
        """
        if self.open_batch is not None and self.open_batch != batch_id:
            raise RuntimeError(f"replica {self.replica_id} still has batch {self.open_batch} "
                               f"open; it cannot sample batch {batch_id}")
        self.open_batch = batch_id
        depths = [num_layers] * count if isinstance(num_layers, int) else list(num_layers)
        if len(depths) != count:
            raise ValueError(f"{count} architectures asked for with {len(depths)} depths")
        stream = batch_stream(self.seed, batch_id)
        if self.strategy == "random":
            rng = random.Random(stream)
            archs = [sample_random(self.space, n, rng) for n in depths]
            return {"version": 0, "archs": [a.to_dict() for a in archs], "params": None}
        version, params = pulled if pulled is not None else self._pull()
        self._load(params)
        gen = torch.Generator().manual_seed(stream)
        with torch.no_grad():
            archs = [self.controller.sample(n, gen).arch for n in depths]
        return {"version": version, "archs": [a.to_dict() for a in archs], "params": params}

    def gradient(self, archs: list[dict], advantages: list[float],
                 params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """-1/m sum (R_k - b) grad log P(a_k), at the parameters ``params`` (the sampling ones)."""
        self._load(params)
        self.controller.zero_grad(set_to_none=True)
        samples = [self.controller.score(arch_from_dict(a)) for a in archs]
        reinforce_loss(samples, advantages, self.cfg.entropy_weight).backward()
        return {
            k: (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
            for k, p in self.controller.named_parameters()
        }

    def update(self, batch_id: int, archs: list[dict], advantages: list[float],
               params: dict[str, np.ndarray] | None, pull: bool = False
               ) -> int | tuple[int, dict[str, np.ndarray]] | None:
        """Close ``batch_id``: push its gradient (if there is anything to learn) to every shard.

        Returns the servers' version, or with ``pull`` (version, parameters) after the push,
        in the same round trip.
        """
        if self.open_batch == batch_id:
            self.open_batch = None
        if self.strategy == "random" or not archs:
            return None
        grads = self.gradient(archs, advantages, params)
        return self.servers.push(batch_id, grads, pull)

    def step(self, update: dict[str, Any] | None, sample: dict[str, Any] | None
             ) -> dict[str, Any]:
        """Close the previous batch (push its gradient), then sample the next one: one call, so
        the next batch is sampled with the parameters just pushed to and no driver round trip
        sits between them."""
        out: dict[str, Any] = {}
        pulled = None
        if update is not None:
            version = self.update(**update, pull=sample is not None)
            if isinstance(version, tuple):  # pushed and pulled in one round trip per shard
                pulled = version
                version = version[0]
            out["version"] = version
        if sample is not None:
            out["sample"] = self.sample(**sample, pulled=pulled)
        return out

    def ping(self) -> int:
        return self.replica_id


class ControllerReplicaGroup:
    """One process hosting several controller replicas, one thread each (a threaded actor with
    ``max_concurrency`` = replicas hosted): a replica blocked on the servers never holds up a
    group mate. A lock per replica serialises the calls to one replica, so its one-open-batch
    rule holds as in a replica of its own."""

    def __init__(self, replica_ids: list[int], space: dict, cfg: dict, host_names: list[str],
                 hosted: list[list[int]], names: list[list[str]], strategy: str,
                 seed: int) -> None:
        torch.set_num_threads(1)  # a 35-unit LSTM: more threads only fight over the CPUs
        servers = Servers(host_names, hosted, names)
        space_obj, cfg_obj = space_from_dict(space), ControllerConfig(**cfg)
        self.replicas = {k: ControllerReplica(k, space_obj, cfg_obj, servers, strategy, seed)
                         for k in replica_ids}
        self.locks = {k: threading.Lock() for k in replica_ids}

    def call(self, replica: int, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method`` of one hosted replica (what :class:`Hosted` sends)."""
        with self.locks[replica]:
            return getattr(self.replicas[replica], method)(*args, **kwargs)

    def pid(self) -> int:
        return os.getpid()


def start_servers(space: AnySpace, cfg: ControllerConfig, num_shards: int, apply_every: int,
                  seed: int, state_dir: Path | None = None, processes: int = 0
                  ) -> tuple[list[Hosted], list[list[str]]]:
    """Create S shards in :func:`host_count` ``(S, processes)`` server processes; each shard
    reloads ``state_dir/ps-<i>.pt`` when it exists.

    With a ``state_dir`` a dead server process is restarted by Ray, its shards reload their
    saved state and the push it was serving is re-sent (``max_restarts=-1``,
    ``max_task_retries=-1``); without one a server could only restart from scratch, so it is
    not restarted at all.
    """
    params = initial_parameters(space, cfg, seed)
    names = shard_names({k: v.size for k, v in params.items()}, num_shards)
    restarts = -1 if state_dir is not None else 0
    actor = ray.remote(num_cpus=0, max_restarts=restarts, max_task_retries=restarts,
                       scheduling_strategy=driver_node())(ParameterServerGroup)
    prefix = f"deepmorning-nas-ps-{uuid.uuid4().hex[:8]}"
    shards: list[Hosted] = []
    for h, ids in enumerate(hosted_by(num_shards, host_count(num_shards, processes))):
        host = actor.options(name=f"{prefix}-{h}").remote({
            i: ({k: params[k] for k in names[i]}, cfg.lr, apply_every,
                str(state_dir / f"ps-{i}.pt") if state_dir is not None else None)
            for i in ids})
        shards.extend(Hosted(host, i) for i in ids)
    return shards, names


def server_hosts(shards: list[Hosted]) -> tuple[list[Any], list[list[int]]]:
    """The distinct server processes of ``shards``, in order, and the shards each hosts."""
    hosts: list[Any] = []
    hosted: list[list[int]] = []
    for shard in shards:
        if not hosts or hosts[-1] is not shard.host:
            hosts.append(shard.host)
            hosted.append([])
        hosted[-1].append(shard.key)
    return hosts, hosted


def start_replicas(count: int, space: AnySpace, cfg: ControllerConfig, shards: list[Hosted],
                   names: list[list[str]], strategy: str, seed: int, processes: int = 0
                   ) -> list[Hosted]:
    """K replicas of the run with seed ``seed`` in :func:`host_count` ``(K, processes)``
    replica processes; each samples batch b from :func:`batch_stream` ``(seed, b)`` (never
    ``seed + k``: that is replica 0 of run seed ``seed + k``)."""
    hosts, hosted = server_hosts(shards)
    host_names = ray.get([h.actor_name.remote() for h in hosts])
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3,
                       scheduling_strategy=driver_node())(ControllerReplicaGroup)
    replicas: list[Hosted] = []
    for ids in hosted_by(count, host_count(count, processes)):
        group = actor.options(max_concurrency=len(ids)).remote(
            ids, space.to_dict(), cfg.__dict__, host_names, hosted, names, strategy, seed)
        replicas.extend(Hosted(group, k) for k in ids)
    return replicas
