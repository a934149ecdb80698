"""The search driver: replicas sample, children train as Ray tasks, servers learn.

The driver is a bookkeeper. It asks each controller replica for a batch of ``m``
architectures, launches one Ray task per child (asking for ``cpus_per_child`` /
``gpus_per_child``), records every finished child at once, and when a replica's batch is
complete it computes the advantages ``R_k - b`` with the moving-average baseline and has that
replica push the gradient (at the parameters it sampled with) and sample its next batch, in one
call. Replicas run independently: a fast batch never waits for a slow one. A replica has at
most one open batch.

Durability: ``checkpoints/journal.jsonl`` is an append-only log of events, each written (and
fsynced) before the driver acts on it:

* ``request`` — a replica is asked for batch ``b``; the child ids (slots) it will fill are fixed
  here, before the request leaves the driver;
* ``sample`` — the architectures came back (the sampling parameters are in
  ``checkpoints/sampled/<b>.pt``, written first);
* ``child`` — a child finished (ok or failed) with its ``history.csv`` row, written before the
  row;
* ``update`` — the batch is complete: its advantages and the new baseline;
* ``updated`` — the servers applied (or, for random search, had nothing to apply for) the batch.

The driver's state is the replay of this log; servers save their own state (see ``ps.py``).
``--resume`` replays it and carries on: a requested batch is sampled again into the same child
ids, children not yet recorded are launched again, an update not confirmed is sent again (the
servers ignore a batch they applied). So a killed driver leaves no hole in the child ids: a
child recorded in the journal is never trained again, and one that finished but was not yet
recorded is trained again. The cost per event is one short appended line, whatever S, K and m.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from deepmorning.nas import ps
from deepmorning.nas.config import NASConfig
from deepmorning.nas.controller import advantages_and_baseline
from deepmorning.nas.plots import plot_run
from deepmorning.nas.spaces import arch_from_dict
from deepmorning.nas.task import run_child
from deepmorning.platform import console
from deepmorning.platform.errors import DeepmorningError, summarize
from deepmorning.platform.metrics import RunMetrics
from deepmorning.platform.rundir import RunDir
from deepmorning.platform.tracking import Trackers

JOURNAL = "journal.jsonl"
SAMPLED = "sampled"  # checkpoints/sampled/<batch>.pt: the parameters a batch was sampled with
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
    ids: list[int]  # the child ids (slots) this batch fills, fixed when it is requested
    num_layers: list[int]  # each child's depth: the depth schedule of its own child id
    version: int | None = None
    children: list[Child] = field(default_factory=list)  # empty until sampled
    params: dict[str, np.ndarray] | None = None  # sampling parameters (rl), kept with the batch
    advantages: list[float] | None = None  # set when complete: the update to push

    @property
    def sampled(self) -> bool:
        return bool(self.children)

    def complete(self) -> bool:
        return self.sampled and all(c.status != "pending" for c in self.children)


class Journal:
    """The driver's state as the replay of an append-only event log (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_child = 0
        self.next_batch = 0
        self.baseline: float | None = None
        self.children_done = 0
        self.children_failed = 0
        self.best: dict[str, Any] | None = None
        self.elapsed = 0.0  # wall seconds of the search at the last event
        self.batches: dict[int, Batch] = {}
        self.rows: dict[int, dict[str, Any]] = {}  # history rows of recorded children
        self.events = 0
        if path.is_file():
            self._replay()
        self._fh = path.open("a")

    def _replay(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # a line torn by a kill: drop it
            data = data[: data.rfind(b"\n") + 1]
            with self.path.open("r+b") as fh:
                fh.truncate(len(data))
        for number, line in enumerate(data.decode().splitlines(), 1):
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DeepmorningError(f"{self.path} line {number} is not an event: {exc}"
                                       ) from exc
            self.apply(event)

    def record(self, event: dict[str, Any]) -> None:
        """Append ``event`` durably, then apply it."""
        self._fh.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.apply(event)

    def apply(self, event: dict[str, Any]) -> None:
        kind = event["e"]
        self.events += 1
        self.elapsed = float(event.get("t", self.elapsed))
        if kind == "request":
            layers = event["layers"]  # one per child (older journals: one per batch)
            layers = [layers] * len(event["ids"]) if isinstance(layers, int) else list(layers)
            batch = Batch(event["batch"], event["replica"], list(event["ids"]), layers)
            self.batches[batch.batch_id] = batch
            self.next_child = max(self.next_child, batch.ids[-1] + 1)
            self.next_batch = max(self.next_batch, batch.batch_id + 1)
        elif kind == "sample":
            batch = self.batches[event["batch"]]
            batch.version = event["version"]
            batch.children = [Child(i, arch) for i, arch in zip(batch.ids, event["archs"],
                                                                 strict=True)]
        elif kind == "child":
            batch = self.batches[event["batch"]]
            child = next(c for c in batch.children if c.child_id == event["child_id"])
            child.status, child.result = event["status"], event["result"]
            self.rows[child.child_id] = event["row"]
            self._count(child)
        elif kind == "update":
            self.batches[event["batch"]].advantages = event["advantages"]
            self.baseline = event["baseline"]
        elif kind == "updated":
            del self.batches[event["batch"]]
        else:
            raise DeepmorningError(f"{self.path}: unknown event '{kind}'")

    def _count(self, child: Child) -> None:
        if child.status == "failed":
            self.children_failed += 1
            return
        self.children_done += 1
        reward = float(child.result["reward"])
        if self.best is None or reward > self.best["reward"]:
            self.best = {"child_id": child.child_id, "arch": child.arch, **child.result}

    def replica_batches(self, replica: int) -> list[Batch]:
        return sorted((b for b in self.batches.values() if b.replica == replica),
                      key=lambda b: b.batch_id)

    def close(self) -> None:
        self._fh.close()


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
        self.tracking = Trackers(run)
        if resumed and (run.checkpoints / "search.pt").is_file() and not (
                run.checkpoints / JOURNAL).is_file():
            raise DeepmorningError(f"{run.path} was checkpointed by an older deepmorning "
                                   "(search.pt, no journal); it cannot be resumed by this one")
        (run.checkpoints / SAMPLED).mkdir(parents=True, exist_ok=True)
        self.journal = Journal(run.checkpoints / JOURNAL)
        self._repair_history()
        self.shards, names = ps.start_servers(
            cfg.arch_space, cfg.controller, cfg.param_servers, cfg.apply_every, cfg.seed,
            state_dir=run.checkpoints, processes=cfg.server_processes,
        )
        self.replicas = ps.start_replicas(
            cfg.controllers, cfg.arch_space, cfg.controller, self.shards, names, cfg.strategy,
            cfg.seed, processes=cfg.replica_processes,
        )
        self.child_cfg = dataclasses.replace(
            cfg.child, seed=cfg.seed, threads=max(1, math.ceil(cfg.cpus_per_child)),
            gpus=cfg.gpus_per_child,
        )
        self.child_task = ray.remote(run_child).options(
            num_cpus=cfg.cpus_per_child, num_gpus=cfg.gpus_per_child,
            max_retries=cfg.child_retries, retry_exceptions=True,
        )
        # a plain dict, so that a worker running a synthetic child never imports torch
        self.lm = dataclasses.asdict(cfg.lm) if cfg.search_space == "rnn" else None
        self.pending: dict[ray.ObjectRef, tuple[str, Any]] = {}
        self.driver_seconds = 0.0  # time spent handling events (journal, history, launches)
        self.driver_cpu_seconds = 0.0  # the driver's CPU time in them (robust to a loaded host)
        self.handled = 0
        self.session_start = time.time()
        self.session_elapsed = self.journal.elapsed

    # -- durability -----------------------------------------------------------------------------
    def _record(self, event: dict[str, Any]) -> None:
        self.journal.record({**event, "t": round(self.elapsed(), 3)})
        self.run.sync()  # a run at a URI: every event reaches it before the driver acts on it

    def _repair_history(self) -> None:
        """Append the rows of children the journal recorded but history.csv missed (a kill)."""
        df = self.run.read_table(HISTORY)
        have = set() if df.empty else {int(i) for i in df["child_id"]}
        missing = [row for cid, row in sorted(self.journal.rows.items()) if cid not in have]
        self.run.append_rows(HISTORY, missing)

    def _params_path(self, batch_id: int) -> Path:
        return self.run.checkpoints / SAMPLED / f"{batch_id}.pt"

    def _save_params(self, batch_id: int, params: dict[str, np.ndarray]) -> None:
        path = self._params_path(batch_id)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            torch.save({k: torch.tensor(v) for k, v in params.items()}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _load_params(self, batch_id: int) -> dict[str, np.ndarray]:
        saved = torch.load(self._params_path(batch_id), weights_only=True)
        return {k: v.numpy() for k, v in saved.items()}

    def elapsed(self) -> float:
        return self.session_elapsed + time.time() - self.session_start

    # -- the loop -------------------------------------------------------------------------------
    def run_search(self) -> dict[str, Any]:
        cfg = self.cfg
        for replica in range(cfg.controllers):  # resumed: each replica goes on where it was
            running = [b for b in self.journal.replica_batches(replica)
                       if b.sampled and not b.complete()]
            if running:
                self._launch_children(running[0])
            else:
                self._advance(replica)
        with console.progress(cfg.max_children, f"NAS {cfg.strategy}") as bar:
            self._show(bar)
            while self.pending:
                for ref in self._ready():
                    start, cpu = time.perf_counter(), time.process_time()
                    kind, payload = self.pending.pop(ref)
                    if kind == "step":
                        self._on_step(payload, ref)
                    else:
                        self._on_child(payload, ref)
                    self.driver_seconds += time.perf_counter() - start
                    self.driver_cpu_seconds += time.process_time() - cpu
                    self.handled += 1
                self._show(bar)
        return self.finish()

    def _ready(self) -> list[ray.ObjectRef]:
        """Every finished call, waiting for one when none is: one wait per wake-up, not one per
        event, so many children finishing together (K x m of them at the paper's scale) cost
        one scan of the pending calls."""
        refs = list(self.pending)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready:
            ready, _ = ray.wait(refs, num_returns=1)
        return ready

    def _advance(self, replica: int) -> None:
        """Close the replica's complete batch and request its next one, in one replica call.

        The journal holds, per replica, either one sampled batch whose children are running, or
        a complete batch to close and/or a requested batch to sample: never two open batches.
        """
        j, cfg = self.journal, self.cfg
        batches = j.replica_batches(replica)
        closing = [b for b in batches if b.complete()]
        requested = [b for b in batches if not b.sampled]
        if len(closing) > 1 or len(requested) > 1 or len(closing) + len(requested) < len(batches):
            raise RuntimeError(f"replica {replica} has more than one open batch: "
                               f"{[b.batch_id for b in batches]}")
        close = closing[0] if closing else None
        if close is not None and close.advantages is None:
            ok = [c for c in close.children if c.status == "ok"]
            advantages, baseline = advantages_and_baseline(
                [float(c.result["reward"]) for c in ok], j.baseline,
                cfg.controller.baseline_decay)
            self._record({"e": "update", "batch": close.batch_id, "advantages": advantages,
                          "baseline": baseline})
            self.metrics.set("nas_baseline", baseline or 0.0)
        nxt = requested[0] if requested else None
        if nxt is None and j.next_child < cfg.max_children:
            count = min(cfg.children_per_controller, cfg.max_children - j.next_child)
            ids = list(range(j.next_child, j.next_child + count))
            self._record({"e": "request", "batch": j.next_batch, "replica": replica, "ids": ids,
                          "layers": [cfg.arch_space.num_layers(i) for i in ids]})
            nxt = j.batches[j.next_batch - 1]
        if close is None and nxt is None:
            return  # this replica is done
        update = None
        if close is not None:
            ok = [c for c in close.children if c.status == "ok"]
            params = None
            if ok and cfg.strategy == "rl":
                params = close.params if close.params is not None else self._load_params(
                    close.batch_id)
            update = {"batch_id": close.batch_id, "archs": [c.arch for c in ok],
                      "advantages": close.advantages, "params": params}
        sample = None
        if nxt is not None:
            sample = {"batch_id": nxt.batch_id, "count": len(nxt.ids),
                      "num_layers": nxt.num_layers}
        ref = self.replicas[replica].step.remote(update, sample)
        self.pending[ref] = ("step", (close.batch_id if close else None,
                                      nxt.batch_id if nxt else None))

    def _on_step(self, payload, ref) -> None:
        closed, sampled = payload
        out = ray.get(ref)
        if closed is not None:
            self._record({"e": "updated", "batch": closed})
            self._params_path(closed).unlink(missing_ok=True)
            self.tracking.flush()
        if sampled is not None:
            result = out["sample"]
            if result["params"] is not None:
                self._save_params(sampled, result["params"])
            self._record({"e": "sample", "batch": sampled, "version": result["version"],
                          "archs": result["archs"]})
            batch = self.journal.batches[sampled]
            batch.params = result["params"]
            self._launch_children(batch)

    def _launch_children(self, batch: Batch) -> None:
        for child in batch.children:
            if child.status == "pending":
                ref = self.child_task.remote(child.child_id, child.arch, self.data_ref,
                                             self.child_cfg, self.lm)
                self.pending[ref] = ("child", (batch, child))

    def _on_child(self, payload, ref) -> None:
        batch, child = payload
        try:
            result = ray.get(ref)
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - retries are spent: record and go on
            status = "failed"
            result = {"error": child_error(exc)}
        row = self._row(batch, child, status, result)
        self._record({"e": "child", "batch": batch.batch_id, "child_id": child.child_id,
                      "status": status, "result": result, "row": row})
        # Not fsynced: the journal line above is the durable copy, and a row a crash drops from
        # history.csv is appended again from it on resume (_repair_history).
        self.run.append_rows(HISTORY, [row], durable=False)
        if status == "ok":
            reward = float(result["reward"])
            self.metrics.set("nas_last_reward", reward)
            self.metrics.set("nas_best_reward", float(self.journal.best["reward"]))
            self.metrics.set("nas_children_done", self.journal.children_done)
            j = self.journal
            self.tracking.scalars(child.child_id, {
                "nas/reward": reward, "nas/val_acc": result.get("val_acc"),
                "nas/val_ppl": result.get("val_ppl"), "nas/params": result.get("params"),
                "nas/best_reward": j.best["reward"], "nas/baseline": j.baseline,
                "nas/children_done": j.children_done,
            })
        if batch.complete():
            self._advance(batch.replica)

    def _row(self, batch: Batch, child: Child, status: str, r: dict[str, Any]
             ) -> dict[str, Any]:
        arch = arch_from_dict(child.arch)
        return {
            "child_id": child.child_id,
            "replica": batch.replica,
            "batch_id": batch.batch_id,
            "param_version": batch.version,
            "num_layers": len(arch),
            "architecture": child.arch,
            "summary": arch.summary(),
            "params": r.get("params", ""),
            "val_acc": r.get("val_acc", ""),
            "val_ppl": r.get("val_ppl", ""),
            "reward": r.get("reward", ""),
            "baseline": self.journal.baseline if self.journal.baseline is not None else "",
            "seconds": round(r["seconds"], 3) if "seconds" in r else "",
            "node": r.get("node", ""),
            "device": r.get("device", ""),
            "seed": r.get("seed", ""),
            "status": status,
            "error": r.get("error", ""),
            "wall": round(self.elapsed(), 2),
        }

    def _show(self, bar) -> None:
        j = self.journal
        done = j.children_done + j.children_failed
        hours = max(self.elapsed(), 1e-9) / 3600
        fields = {"best": j.best["reward"] if j.best else float("nan"),
                  "per_hour": round(j.children_done / hours) if j.children_done else 0}
        if j.children_failed:
            fields["failed"] = j.children_failed
        if j.best:
            fields["arch"] = arch_from_dict(j.best["arch"]).summary()[:70]
        bar.update(done, **fields)

    # -- the end --------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        j = self.journal
        if self.cfg.strategy == "rl":  # gradients still waiting under apply_every: apply them
            ray.get([shard.flush.remote() for shard in self.shards])
        df = self.run.read_table(HISTORY)
        ok = df[df["status"] == "ok"] if not df.empty else df
        top = ok.sort_values("reward", ascending=False).head(5) if not ok.empty else ok
        best_arch = arch_from_dict(j.best["arch"]) if j.best else None
        wall = self.elapsed()
        summary = {
            "strategy": self.cfg.strategy,
            "dataset": self.cfg.dataset,
            "children": int(len(df)),
            "children_ok": int(j.children_done),
            "children_failed": int(j.children_failed),
            "best_reward": j.best["reward"] if j.best else None,
            "best_val_acc": j.best.get("val_acc") if j.best else None,
            "best_val_ppl": j.best.get("val_ppl") if j.best else None,
            "best_params": j.best.get("params") if j.best else None,
            "best_child_id": j.best["child_id"] if j.best else None,
            "best_architecture": best_arch.summary() if best_arch else None,
            "top5_mean_val_acc": _mean(top, "val_acc"),
            "top5_mean_val_ppl": _mean(top, "val_ppl"),
            "final_baseline": j.baseline,
            "wall_seconds": round(wall, 1),
            "children_per_hour": round(j.children_done / max(wall, 1e-9) * 3600, 1),
            "driver_ms_per_event": round(1000 * self.driver_seconds / max(1, self.handled), 2),
            "driver_cpu_ms_per_event": round(
                1000 * self.driver_cpu_seconds / max(1, self.handled), 2),
            "param_servers": self.cfg.param_servers,
            "controllers": self.cfg.controllers,
            "children_per_controller": self.cfg.children_per_controller,
        }
        metric = "val_ppl" if self.cfg.search_space == "rnn" else "val_acc"
        summary = {k: v for k, v in summary.items() if v is not None or metric in k
                   or not k.endswith(("_acc", "_ppl"))}
        if j.best:
            self.run.write_json("best.json", {**j.best, "summary": best_arch.summary()})
        plot_run(self.run)
        self.journal.close()
        self.tracking.close()
        self.run.finish(summary)
        self.tracking.finish(summary)
        if not top.empty:
            console.print_table("top architectures", top.to_dict("records"),
                                ["child_id", metric, "reward", "params", "summary"])
        console.print_kv("NAS search summary", {k: v for k, v in summary.items()
                                                 if k != "best_architecture"})
        if best_arch:
            console.console.print(f"[bold]best architecture[/bold]: {best_arch.summary()}")
        console.console.print(f"run directory: {self.run.location}")
        return summary


def _mean(df, column: str) -> float | None:
    if df.empty or column not in df:
        return None
    values = df[column].astype(float)
    return float(values.mean()) if values.notna().any() else None


def load_data(cfg: NASConfig) -> Any:
    """The dataset the children train on (None for the synthetic trainers)."""
    if cfg.child.trainer != "torch":
        return None
    if cfg.search_space == "rnn":
        from deepmorning.nas.text import load_corpus

        return load_corpus(cfg.dataset, limit=cfg.data_limit)
    from deepmorning.nas.data import load_dataset

    return load_dataset(cfg.dataset, seed=cfg.seed, limit=cfg.data_limit)


def search(cfg: NASConfig, run: RunDir, resumed: bool, data: Any = None) -> dict[str, Any]:
    if data is None:
        data = load_data(cfg)
    if data is not None:
        console.console.print(f"data: {data.describe()}")
    return Search(cfg, run, resumed, data).run_search()


def journal_path(run: RunDir) -> Path:
    return run.checkpoints / JOURNAL
