"""The search driver: replicas sample, children train as Ray tasks, servers learn.

The driver is a bookkeeper. It asks each controller replica for a batch of ``m``
architectures, launches one Ray task per child (asking for ``cpus_per_child`` /
``gpus_per_child``), records every finished child in ``history.csv`` at once, and when a
replica's batch is complete it computes the advantages ``R_k - b`` with the moving-average
baseline and has that replica push its gradient to the parameter servers. Replicas run
independently: a fast batch never waits for a slow one.

Durability: the journal (counters, baseline, open batches with their children) and the
servers' states are saved to ``checkpoints/search.pt`` after every event, history rows are
written before the journal. ``--resume`` rebuilds the servers, keeps every child that
finished (taking results from ``history.csv`` if the journal missed them), re-launches the
children that were running, and re-sends updates the servers had not applied (they ignore
duplicates). So a killed driver loses no finished child and trains none twice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import torch

from deepmorning.nas import ps
from deepmorning.nas.child import run_child
from deepmorning.nas.config import NASConfig
from deepmorning.nas.plots import plot_run
from deepmorning.nas.space import Architecture
from deepmorning.platform import console
from deepmorning.platform.errors import summarize
from deepmorning.platform.metrics import RunMetrics
from deepmorning.platform.rundir import RunDir
from deepmorning.platform.tracking import TensorBoard

CHECKPOINT = "search.pt"
HISTORY = "history.csv"


def child_error(exc: BaseException) -> str:
    """The ``error`` cell of a failed child: one line, even for an empty message."""
    return summarize(exc)[:200]


@dataclass
class Child:
    child_id: int
    arch: dict
    status: str = "pending"  # pending | ok | failed
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    batch_id: int
    replica: int
    version: int
    children: list[Child]
    advantages: list[float] | None = None  # set when complete: the update to push

    def complete(self) -> bool:
        return all(c.status != "pending" for c in self.children)


@dataclass
class Journal:
    next_child: int = 0
    next_batch: int = 0
    baseline: float | None = None
    children_done: int = 0
    children_failed: int = 0
    best: dict[str, Any] | None = None
    elapsed: float = 0.0  # wall seconds of earlier driver sessions
    batches: dict[int, Batch] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "next_child": self.next_child, "next_batch": self.next_batch,
            "baseline": self.baseline, "children_done": self.children_done,
            "children_failed": self.children_failed, "best": self.best, "elapsed": self.elapsed,
            "batches": [
                {"batch_id": b.batch_id, "replica": b.replica, "version": b.version,
                 "advantages": b.advantages,
                 "children": [c.__dict__ for c in b.children]}
                for b in self.batches.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Journal:
        batches = {}
        for raw in data.pop("batches"):
            children = [Child(**c) for c in raw.pop("children")]
            batches[raw["batch_id"]] = Batch(children=children, **raw)
        return cls(batches=batches, **data)


class Search:
    def __init__(self, cfg: NASConfig, run: RunDir, resumed: bool, data: Any = None):
        self.cfg = cfg
        self.run = run
        self.resumed = resumed
        self.data_ref = ray.put(data) if data is not None else None
        self.metrics = RunMetrics(run.path.name, "nas", {
            "nas_children_done": "children trained so far",
            "nas_last_reward": "reward of the latest child",
            "nas_best_reward": "best reward so far",
            "nas_baseline": "REINFORCE moving-average baseline",
        })
        self.tensorboard = TensorBoard(run)
        states = None
        self.journal = Journal()
        ckpt = run.checkpoints / CHECKPOINT
        if resumed and ckpt.is_file():
            saved = torch.load(ckpt, weights_only=True)
            self.journal = Journal.from_dict(saved["journal"])
            states = saved["servers"]
        self.shards, names = ps.start_servers(
            cfg.space, cfg.controller, cfg.param_servers, cfg.apply_every, cfg.seed, states
        )
        self.replicas = ps.start_replicas(
            cfg.controllers, cfg.space, cfg.controller, self.shards, names, cfg.strategy,
            cfg.seed,
        )
        self.child_task = ray.remote(run_child).options(
            num_cpus=cfg.cpus_per_child, num_gpus=cfg.gpus_per_child,
            max_retries=cfg.child_retries, retry_exceptions=True,
        )
        self.pending: dict[ray.ObjectRef, tuple[str, Any]] = {}
        self.idle: set[int] = set()
        self.session_start = time.time()
        if resumed:
            self._reconcile_with_history()

    # -- durability -----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        servers = ray.get([s.get_state.remote() for s in self.shards])
        journal = self.journal.to_dict()
        journal["elapsed"] = self.elapsed()
        path = self.run.checkpoints / CHECKPOINT
        tmp = path.with_suffix(".tmp")
        torch.save({"journal": journal, "servers": servers}, tmp)
        os.replace(tmp, path)
        self.tensorboard.flush()
        self.run.sync()  # a run at a URI: every checkpoint reaches it

    def _reconcile_with_history(self) -> None:
        """Take results of children that finished after the last checkpoint from history.csv."""
        df = self.run.read_table(HISTORY)
        if df.empty:
            return
        rows = {int(r["child_id"]): r for r in df.to_dict("records")}
        for batch in self.journal.batches.values():
            for child in batch.children:
                row = rows.get(child.child_id)
                if child.status == "pending" and row is not None:
                    child.status = row["status"]
                    child.result = {k: row[k] for k in ("val_acc", "reward", "params", "seconds",
                                                        "node")}
                    self._count(child)

    def elapsed(self) -> float:
        return self.journal.elapsed + time.time() - self.session_start

    # -- the loop -------------------------------------------------------------------------------
    def run_search(self) -> dict[str, Any]:
        cfg = self.cfg
        self.idle = set(range(cfg.controllers))
        for batch in list(self.journal.batches.values()):  # resumed: finish open batches first
            self.idle.discard(batch.replica)
            if batch.complete():
                self._send_update(batch)
            else:
                self._launch_children(batch)
        with console.progress(cfg.max_children, f"NAS {cfg.strategy}") as bar:
            self._show(bar)
            while True:
                for replica in sorted(self.idle):
                    if self.journal.next_child >= cfg.max_children:
                        break
                    self._request_batch(replica)
                if not self.pending:
                    break
                ready, _ = ray.wait(list(self.pending), num_returns=1)
                kind, payload = self.pending.pop(ready[0])
                if kind == "sample":
                    self._on_sample(payload, ready[0])
                elif kind == "child":
                    self._on_child(payload, ready[0])
                else:
                    self._on_update(payload, ready[0])
                self.checkpoint()
                self._show(bar)
        return self.finish()

    def _request_batch(self, replica: int) -> None:
        cfg, j = self.cfg, self.journal
        count = min(cfg.children_per_controller, cfg.max_children - j.next_child)
        num_layers = cfg.space.num_layers(j.next_child)
        self.idle.discard(replica)
        ids = list(range(j.next_child, j.next_child + count))
        j.next_child += count
        batch_id = j.next_batch
        j.next_batch += 1
        ref = self.replicas[replica].sample.remote(batch_id, count, num_layers)
        self.pending[ref] = ("sample", (batch_id, replica, ids))

    def _on_sample(self, payload, ref) -> None:
        batch_id, replica, ids = payload
        out = ray.get(ref)
        batch = Batch(batch_id, replica, out["version"],
                      [Child(i, arch) for i, arch in zip(ids, out["archs"], strict=True)])
        self.journal.batches[batch_id] = batch
        self._launch_children(batch)

    def _launch_children(self, batch: Batch) -> None:
        for child in batch.children:
            if child.status == "pending":
                ref = self.child_task.remote(child.child_id, child.arch, self.data_ref,
                                             self.cfg.child)
                self.pending[ref] = ("child", (batch, child))

    def _on_child(self, payload, ref) -> None:
        batch, child = payload
        try:
            child.result = ray.get(ref)
            child.status = "ok"
        except Exception as exc:  # noqa: BLE001 - retries are spent: record and go on
            child.status = "failed"
            child.result = {"error": child_error(exc)}
        self._record(batch, child)
        self._count(child)
        if batch.complete():
            self._send_update(batch)

    def _count(self, child: Child) -> None:
        j = self.journal
        if child.status == "failed":
            j.children_failed += 1
            return
        j.children_done += 1
        reward = float(child.result["reward"])
        self.metrics.set("nas_last_reward", reward)
        if j.best is None or reward > j.best["reward"]:
            j.best = {"child_id": child.child_id, "arch": child.arch, **child.result}
            self.metrics.set("nas_best_reward", reward)
        self.metrics.set("nas_children_done", j.children_done)
        self.tensorboard.scalars(child.child_id, {
            "nas/reward": reward, "nas/val_acc": child.result.get("val_acc"),
            "nas/params": child.result.get("params"), "nas/best_reward": j.best["reward"],
            "nas/baseline": j.baseline, "nas/children_done": j.children_done,
        })

    def _record(self, batch: Batch, child: Child) -> None:
        r = child.result
        arch = Architecture.from_dict(child.arch)
        self.run.append_rows(HISTORY, [{
            "child_id": child.child_id,
            "replica": batch.replica,
            "batch_id": batch.batch_id,
            "param_version": batch.version,
            "num_layers": len(arch),
            "architecture": child.arch,
            "summary": arch.summary(),
            "params": r.get("params", ""),
            "val_acc": r.get("val_acc", ""),
            "reward": r.get("reward", ""),
            "baseline": self.journal.baseline if self.journal.baseline is not None else "",
            "seconds": round(r["seconds"], 3) if "seconds" in r else "",
            "node": r.get("node", ""),
            "status": child.status,
            "error": r.get("error", ""),
            "wall": round(self.elapsed(), 2),
        }])

    def _send_update(self, batch: Batch) -> None:
        ok = [c for c in batch.children if c.status == "ok"]
        if batch.advantages is None:
            batch.advantages = []
            decay = self.cfg.controller.baseline_decay
            for child in ok:
                reward = float(child.result["reward"])
                j = self.journal
                # b starts at the first reward, then b <- decay * b + (1 - decay) * R
                baseline = reward if j.baseline is None else j.baseline
                batch.advantages.append(reward - baseline)
                j.baseline = decay * baseline + (1 - decay) * reward
            self.metrics.set("nas_baseline", self.journal.baseline or 0.0)
        if self.cfg.strategy == "random" or not ok:
            ref = ray.put(0)  # nothing to learn: the batch is done once recorded
        else:
            ref = self.replicas[batch.replica].update.remote(
                batch.batch_id, [c.arch for c in ok], batch.advantages
            )
        self.pending[ref] = ("update", batch)
        # Queue the replica's next batch right behind its update: Ray runs one actor's calls in
        # order, so it samples with the parameters it has just pushed to, and no driver round
        # trip sits between one batch of children and the next.
        if self.journal.next_child < self.cfg.max_children:
            self._request_batch(batch.replica)

    def _on_update(self, batch: Batch, ref) -> None:
        ray.get(ref)
        del self.journal.batches[batch.batch_id]
        if not any(b.replica == batch.replica for b in self.journal.batches.values()) and not any(
            kind == "sample" and p[1] == batch.replica for kind, p in self.pending.values()
        ):
            self.idle.add(batch.replica)

    def _show(self, bar) -> None:
        j = self.journal
        done = j.children_done + j.children_failed
        hours = max(self.elapsed(), 1e-9) / 3600
        fields = {"best": j.best["reward"] if j.best else float("nan"),
                  "per_hour": round(j.children_done / hours) if j.children_done else 0}
        if j.children_failed:
            fields["failed"] = j.children_failed
        if j.best:
            fields["arch"] = Architecture.from_dict(j.best["arch"]).summary()[:70]
        bar.update(done, **fields)

    # -- the end --------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        j = self.journal
        df = self.run.read_table(HISTORY)
        ok = df[df["status"] == "ok"] if not df.empty else df
        top = ok.sort_values("reward", ascending=False).head(5) if not ok.empty else ok
        best_arch = Architecture.from_dict(j.best["arch"]) if j.best else None
        wall = self.elapsed()
        summary = {
            "strategy": self.cfg.strategy,
            "dataset": self.cfg.dataset,
            "children": int(len(df)),
            "children_ok": int(j.children_done),
            "children_failed": int(j.children_failed),
            "best_reward": j.best["reward"] if j.best else None,
            "best_val_acc": j.best["val_acc"] if j.best else None,
            "best_params": j.best.get("params") if j.best else None,
            "best_child_id": j.best["child_id"] if j.best else None,
            "best_architecture": best_arch.summary() if best_arch else None,
            "top5_mean_val_acc": float(top["val_acc"].mean()) if not top.empty else None,
            "final_baseline": j.baseline,
            "wall_seconds": round(wall, 1),
            "children_per_hour": round(j.children_done / max(wall, 1e-9) * 3600, 1),
            "param_servers": self.cfg.param_servers,
            "controllers": self.cfg.controllers,
            "children_per_controller": self.cfg.children_per_controller,
        }
        if j.best:
            self.run.write_json("best.json", {**j.best, "summary": best_arch.summary()})
        plot_run(self.run)
        self.tensorboard.close()
        self.run.finish(summary)
        if not top.empty:
            console.print_table("top architectures", top.to_dict("records"),
                                ["child_id", "val_acc", "reward", "params", "summary"])
        console.print_kv("NAS search summary", {k: v for k, v in summary.items()
                                                 if k != "best_architecture"})
        if best_arch:
            console.console.print(f"[bold]best architecture[/bold]: {best_arch.summary()}")
        console.console.print(f"run directory: {self.run.location}")
        return summary


def load_data(cfg: NASConfig) -> Any:
    """The dataset the children train on (None for the synthetic trainers)."""
    if cfg.child.trainer != "torch":
        return None
    from deepmorning.nas.data import load_dataset

    return load_dataset(cfg.dataset, seed=cfg.seed, limit=cfg.data_limit)


def search(cfg: NASConfig, run: RunDir, resumed: bool, data: Any = None) -> dict[str, Any]:
    if data is None:
        data = load_data(cfg)
    if data is not None:
        console.console.print(f"data: {data.describe()}")
    return Search(cfg, run, resumed, data).run_search()


def checkpoint_path(run: RunDir) -> Path:
    return run.checkpoints / CHECKPOINT
