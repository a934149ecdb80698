"""The paper's control plane at the paper's size on one machine (docs/nas.md, "The paper's
layout on one machine"): ``deepmorning nas search --preset paper`` with S = 20 parameter-server
shards, K = 100 controller replicas and m = 8 children each (800 children in flight), children
simulated by ``--trainer sleep:2``, run through the real CLI as a user would.

Per layout it reports: peak memory (sum of the RSS, and of the PSS, of the driver and every
process below it: the embedded Ray's GCS, raylet, dashboard, the control plane's processes and
the children's workers), the most worker processes seen, the driver's wall and CPU ms per event
(``summary.json``), and children per hour overall and in the steady state against the ideal
(K x m children every 2 s). ``--kill-at N`` instead kills the driver's whole process group with
SIGKILL once N children are recorded, resumes with ``--resume`` and checks the journal's
guarantees at that size: every child id filled exactly once, the rows recorded before the kill
kept, no child recorded twice.

    python benchmarks/bench_nas_control_plane.py run --layout 20x100x8 --children 1600
    python benchmarks/bench_nas_control_plane.py run --layout 20x100x8 --children 1600 \\
        --kill-at 500

Raw results: ``benchmarks/results/nas_control_plane.json`` (one row appended per run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results" / "nas_control_plane.json"


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _kind(pid: int, root: int) -> str:
    title = _title(pid)
    if pid == root:
        return "driver"
    if title.startswith(("ray::ParameterServerGroup", "ray::ControllerReplicaGroup")):
        return "control"
    if title.startswith(("ray::IDLE", "ray::run_child")):
        return "workers"
    return "ray_system"  # GCS, raylet, dashboard and its agents, log monitor


def memory(root: int) -> dict[str, float]:
    """RSS and PSS (MB) summed over ``root``'s tree, RSS by kind of process, and counts."""
    out = {"rss_mb": 0.0, "pss_mb": 0.0, "driver_rss_mb": 0.0, "control_rss_mb": 0.0,
           "workers_rss_mb": 0.0, "ray_system_rss_mb": 0.0, "control_processes": 0,
           "child_workers": 0}
    pids = descendants(root)
    for pid in pids:
        rss = pss = 0
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1]) / 1024
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1]) / 1024
        except OSError:
            continue
        kind = _kind(pid, root)
        out["rss_mb"] += rss
        out["pss_mb"] += pss
        out[f"{kind}_rss_mb"] += rss
        out["control_processes"] += kind == "control"
        out["child_workers"] += kind == "workers"
    out["processes"] = len(pids)
    return out


# The machine is shared: a run stops itself (SIGKILL of its process group) rather than push
# the others into the OOM killer when the free memory falls below this.
MIN_AVAILABLE_MB = 1500


def available_mb() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def _rows(history: Path) -> int:
    try:
        return max(0, len(history.read_text().splitlines()) - 1)
    except OSError:
        return 0


def _search(args: list[str], kill_at: int | None, history: Path) -> tuple[int, dict, float]:
    """Run the CLI, sampling memory every 2 s; SIGKILL its process group at ``kill_at`` rows."""
    env = {**os.environ, "COLUMNS": "160"}
    proc = subprocess.Popen([sys.executable, "-m", "deepmorning", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    peak: dict[str, float] = {}
    start = time.time()
    while proc.poll() is None:
        sample = memory(proc.pid)
        peak = {k: max(peak.get(k, 0), v) for k, v in sample.items()}
        if available_mb() < MIN_AVAILABLE_MB:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SystemExit(f"stopped: the machine has under {MIN_AVAILABLE_MB} MB free "
                             f"(this run's tree: {sample['rss_mb']:.0f} MB RSS)")
        if kill_at is not None and _rows(history) >= kill_at:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray, at once
            proc.wait()
            return -9, peak, time.time() - start
        time.sleep(2)
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"search failed ({proc.returncode}):\n{err[-3000:]}")
    return proc.returncode, peak, time.time() - start


def _open_children(run: Path) -> int:
    """Children sampled but not recorded in the journal: those a kill leaves in flight."""
    from deepmorning.nas.search import Journal

    journal = Journal(run / "checkpoints" / "journal.jsonl")
    journal.close()
    return sum(c.status == "pending" for b in journal.batches.values() for c in b.children)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    except AssertionError:
        return False
    return True


def _check_resume(run: Path, before: pd.DataFrame, children: int) -> dict:
    after = pd.read_csv(run / "history.csv")
    events = [json.loads(line) for line in
              (run / "checkpoints" / "journal.jsonl").read_text().splitlines()]
    recorded = [e["child_id"] for e in events if e["e"] == "child"]
    ok = {
        "every_id_once": sorted(after.child_id) == list(range(children)),
        "rows_before_kill_kept": _same(after.head(len(before)), before),
        "no_child_recorded_twice": len(recorded) == len(set(recorded)) == children,
    }
    if not all(ok.values()):
        raise SystemExit(f"resume lost or repeated children: {ok}")
    return ok


def run(layout: str, children: int, child_seconds: float, cpus_per_child: float,
        kill_at: int | None, out: Path) -> dict:
    s, k, m = (int(x) for x in layout.split("x"))
    run_dir = out / f"search-{layout}"
    args = ["nas", "search", "--preset", "paper", "--trainer", f"sleep:{child_seconds}",
            "-S", str(s), "-K", str(k), "-m", str(m), "--max-children", str(children),
            "--gpus-per-child", "0", "--cpus-per-child", str(cpus_per_child),
            "--output", str(run_dir)]
    load = os.getloadavg()[0]
    code, peak, wall = _search(args, kill_at, run_dir / "history.csv")
    row: dict = {"layout": layout, "S": s, "K": k, "m": m, "in_flight": k * m,
                 "children": children, "child_seconds": child_seconds,
                 "cpus_per_child": cpus_per_child, "load_before": round(load, 1)}
    if code == -9:
        before = pd.read_csv(run_dir / "history.csv")
        row["killed_at_rows"] = len(before)
        row["open_children_at_kill"] = _open_children(run_dir)
        _, peak2, wall2 = _search(["nas", "search", "--resume", str(run_dir)], None,
                                  run_dir / "history.csv")
        peak = {key: max(peak[key], peak2[key]) for key in peak}
        wall += wall2
        row.update(_check_resume(run_dir, before, children))
    summary = json.loads((run_dir / "summary.json").read_text())
    done = pd.read_csv(run_dir / "history.csv")["wall"].sort_values().to_numpy()
    ideal = k * m / child_seconds * 3600
    first = min(k * m, len(done)) - 1  # steady state: after the first K x m children
    steady = (len(done) - 1 - first) / max(1e-9, done[-1] - done[first]) * 3600
    row.update({f"peak_{key}": round(value) for key, value in peak.items()})
    row.update({
        "cli_wall_s": round(wall, 1), "search_wall_s": summary["wall_seconds"],
        "per_hour": summary["children_per_hour"], "per_hour_steady": round(steady),
        "ideal_per_hour": round(ideal), "steady/ideal": round(steady / ideal, 4),
        "driver_ms_per_event": summary["driver_ms_per_event"],
        "driver_cpu_ms_per_event": summary["driver_cpu_ms_per_event"],
        "load_after": round(os.getloadavg()[0], 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    })
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
    RESULTS.write_text(json.dumps({"rows": [*rows, row], "cpus": os.cpu_count()}, indent=1)
                       + "\n")
    print(json.dumps(row, indent=1))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="which", required=True)
    one = sub.add_parser("run", help="one search at a layout (S x K x m)")
    one.add_argument("--layout", default="20x100x8")
    one.add_argument("--children", type=int, default=1600)
    one.add_argument("--child-seconds", type=float, default=2.0)
    # 1/16 of a CPU per simulated child: at most 32 of them sleep at once on 2 CPUs, each in a
    # worker process of its own (a 0-CPU child would let Ray start a worker per child: 800).
    one.add_argument("--cpus-per-child", type=float, default=0.0625)
    one.add_argument("--kill-at", type=int, help="SIGKILL the driver at this many rows, resume")
    one.add_argument("--output", type=Path, help="where the run directories go (default: tmp)")
    a = parser.parse_args()
    if a.output is not None:
        run(a.layout, a.children, a.child_seconds, a.cpus_per_child, a.kill_at, a.output)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(a.layout, a.children, a.child_seconds, a.cpus_per_child, a.kill_at, Path(tmp))


if __name__ == "__main__":
    main()
