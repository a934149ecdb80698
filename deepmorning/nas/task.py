"""One child as a Ray task, importable without torch: the search's unit of work.

A Ray worker that runs a child imports this module (and unpickles :class:`ChildConfig`) and
nothing else until the child needs it, so the synthetic children of tests and benchmarks
(``synthetic``: reward = share of layers with filter height 3, no training; ``sleep:SECONDS``: a
fixed-time child; ``fail:N``: child ids divisible by N raise; ``wait:PATH``: child 0 waits until
the file PATH exists, a replica that is slow for as long as a test wants; ``gpu-ids``: the
synthetic reward, and the GPU ids Ray assigned the child in its ``device`` column, without
touching CUDA: for clusters whose GPUs are declared, not real, such as ``clusters/fake.yaml``)
run in a worker of
about 45 MB instead of one holding torch (about 270 MB): 64 concurrent children fit on a small
machine. The ``table[:PATH][@SECONDS]`` trainer looks the child up in a tabular benchmark
(:mod:`deepmorning.nas.table`, torch-free too), optionally taking SECONDS like a real child.
The ``torch`` trainer imports :mod:`deepmorning.nas.child` (CNNs) or
:mod:`deepmorning.nas.lm` (recurrent cells) when it starts.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class ChildConfig:
    """How one child is trained (paper values: Zoph & Le 2017, Sec. 4.1)."""

    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    reward_window: int = 5  # max validation accuracy over the last 5 epochs ...
    reward_power: float = 3.0  # ... cubed
    threads: int = 1  # torch threads per child (the search sets it from --cpus-per-child)
    trainer: str = "torch"
    seed: int = 0  # the search sets it from --seed; child k trains with child_seed(seed, k)
    gpus: float = 0.0  # GPUs the child was given (the search sets it from --gpus-per-child)


# What a random stream of a run is for: part of its key, so no two purposes share a stream.
STREAM_SAMPLE = 0  # the architectures of batch b (controller or random search)
STREAM_CHILD = 1  # the training of child k


def stream_seed(seed: int, purpose: int, index: int) -> int:
    """A 64-bit seed for stream ``index`` (a batch id, a child id) of ``purpose`` in the run
    with ``--seed seed``.

    Keyed on (run seed, purpose, index) by :class:`numpy.random.SeedSequence`, which hashes the
    key: two different run seeds share no stream (an arithmetic key such as
    ``seed * 1_000_003 + index`` gives seed ``s`` index ``1_000_003`` the stream of seed
    ``s + 1`` index 0), and the same key always gives the same stream.
    """
    import numpy as np  # not at import time: a synthetic child's worker stays small

    if seed < 0:
        raise ValueError(f"a run seed must not be negative (got {seed})")
    key = np.random.SeedSequence(entropy=seed, spawn_key=(purpose, index))
    return int(key.generate_state(1, np.uint64)[0])


def child_seed(seed: int, child_id: int) -> int:
    """The torch seed of child ``child_id`` in a search run with ``--seed seed``."""
    return stream_seed(seed, STREAM_CHILD, child_id)


def hide_gpus() -> None:
    """Hide every GPU from this process (effective while CUDA is not initialised in it): Ray
    does not hide GPUs from a task that asked for none."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


def node_label() -> str:
    """Where a child ran, for the history's ``node`` column: ``host/node/pid``, ``node`` the
    last 12 hex digits of the Ray node id (several Ray nodes can share a host: the raylets of
    ``ray.cluster_utils.Cluster`` or of the fake autoscaler, whose ids differ only at the end);
    ``host/pid`` outside Ray."""
    label = socket.gethostname()
    import ray  # already imported in a Ray worker: no cost

    if ray.is_initialized():
        label += "/" + ray.get_runtime_context().get_node_id()[-12:]
    return f"{label}/{os.getpid()}"


def synthetic_reward(arch: Any) -> float:
    """Share of layers whose filter height is 3: a reward the controller can learn quickly."""
    return sum(layer.filter_height == 3 for layer in arch.layers) / max(1, len(arch))


def _synthetic(arch_dict: dict) -> float:
    if "nodes" in arch_dict:  # a recurrent cell
        from deepmorning.nas.cell import CellArchitecture
        from deepmorning.nas.lm import synthetic_cell_reward

        return synthetic_cell_reward(CellArchitecture.from_dict(arch_dict))
    from deepmorning.nas.space import Architecture

    return synthetic_reward(Architecture.from_dict(arch_dict))


def _train(arch_dict: dict, data: Any, cfg: ChildConfig, lm: Any) -> tuple[dict, str, int]:
    """The real trainer: (result, device, torch threads)."""
    import torch

    from deepmorning.nas.child import child_device, fit
    from deepmorning.nas.spaces import arch_from_dict

    device = child_device(cfg.gpus)  # hides the GPUs from a 0-GPU child before torch sees them
    torch.set_num_threads(max(1, cfg.threads))
    arch = arch_from_dict(arch_dict)
    if "nodes" in arch_dict:
        from deepmorning.nas.config import LMConfig
        from deepmorning.nas.lm import fit_lm

        lm = LMConfig(**lm) if isinstance(lm, dict) else lm
        result = fit_lm(arch, data, cfg, lm, device)
    else:
        result = fit(arch, data, cfg)
    return result, str(device), torch.get_num_threads()


def table_trainer(spec: str) -> tuple[str | None, float] | None:
    """``table[:PATH][@SECONDS]`` -> (PATH or None for the shipped table, SECONDS); None when
    ``spec`` is another trainer."""
    base, at, seconds = spec.rpartition("@")
    if not at:
        base, seconds = spec, ""
    kind, colon, path = base.partition(":")
    if kind != "table":
        return None
    try:
        wait = float(seconds) if seconds else 0.0
    except ValueError:
        raise ValueError(f"trainer '{spec}': SECONDS after '@' must be a number") from None
    if wait < 0:
        raise ValueError(f"trainer '{spec}': SECONDS must not be negative")
    return (path or None) if colon else None, wait


def table_child(arch_dict: dict, cfg: ChildConfig, seed: int) -> dict[str, Any]:
    """A child looked up in a tabular benchmark (:mod:`deepmorning.nas.table`): one seed's
    training of the architecture, drawn with the child's own ``seed`` (the noise a real search
    sees), rewarded as the torch trainer rewards (:func:`deepmorning.nas.child.fit`: the table's
    ``val_acc`` is already the best of the last epochs, raised to ``reward_power``)."""
    from deepmorning.nas import table

    path, _ = table_trainer(cfg.trainer)
    row = table.lookup(str(table.table_path(path)), arch_dict, seed)
    return {"val_acc": row["val_acc"], "reward": row["val_acc"] ** cfg.reward_power,
            "test_acc": row["test_acc"], "params": row["params"],
            "table_seed": row["table_seed"]}


def run_child(child_id: int, arch_dict: dict, data: Any, cfg: ChildConfig,
              lm: Any = None) -> dict[str, Any]:
    """Train (or simulate) one child; the body of the Ray task the search fans out.

    ``arch_dict`` is a CNN architecture or a recurrent cell (then ``data`` is a text corpus and
    ``lm`` the language model's settings, see :mod:`deepmorning.nas.lm`).
    """
    start = time.time()
    seed = child_seed(cfg.seed, child_id)
    kind, _, arg = cfg.trainer.partition(":")
    if kind == "torch":
        result, device, threads = _train(arch_dict, data, dataclasses.replace(cfg, seed=seed),
                                         lm)
    elif kind == "gpu-ids":  # testing: the GPUs Ray assigned, never touching CUDA
        import ray

        device = "ray-gpus:" + ",".join(str(i) for i in ray.get_gpu_ids())
        threads = max(1, cfg.threads)
        acc = _synthetic(arch_dict)
        result = {"val_acc": acc, "reward": acc, "params": 0}
    else:
        if cfg.gpus > 0:  # a synthetic child given a GPU must be able to use it, like a real one
            from deepmorning.nas.child import child_device

            device = str(child_device(cfg.gpus))
        else:
            hide_gpus()
            device = "cpu"
        threads = max(1, cfg.threads)
        table = table_trainer(cfg.trainer)
        if table is not None:
            result = table_child(arch_dict, cfg, seed)
            time.sleep(table[1])
        elif kind == "sleep":
            time.sleep(float(arg or 1.0))
        elif kind == "wait":  # testing: child 0 waits until the file ARG exists
            while child_id == 0 and not os.path.exists(arg):
                time.sleep(0.05)
        elif kind == "fail":
            if child_id % int(arg or 3) == 0:
                raise RuntimeError(f"child {child_id} failed on purpose (trainer {cfg.trainer})")
        elif kind != "synthetic":
            raise ValueError(f"unknown child trainer '{cfg.trainer}'")
        if table is None:
            acc = _synthetic(arch_dict)
            result = {"val_acc": acc, "reward": acc, "params": 0}
    result["seconds"] = time.time() - start
    result["node"] = node_label()
    result["seed"] = seed
    result["device"] = device
    result["threads"] = threads
    result.pop("val_curve", None)
    return result


TRAINERS = ("torch", "table[:PATH][@SECONDS]", "synthetic", "sleep:SECONDS", "fail:N",
            "wait:PATH", "gpu-ids")


def check_trainer(spec: str) -> None:
    """Refuse an unknown trainer (ValueError); for ``table``, a table that is not there or
    not usable (:class:`~deepmorning.platform.errors.DeepmorningError`)."""
    table = table_trainer(spec)
    if table is not None:
        from deepmorning.nas.table import usable_table

        usable_table(table[0])
        return
    kind, _, arg = spec.partition(":")
    if kind not in {"torch", "synthetic", "sleep", "fail", "wait", "gpu-ids"}:
        raise ValueError(f"unknown trainer '{spec}' (choose from {', '.join(TRAINERS)})")
    if kind in {"sleep", "fail"} and arg:
        float(arg)
