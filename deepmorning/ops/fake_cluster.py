"""``deepmorning cluster up/down`` for a launcher config of Ray's fake multi-node provider.

``provider: type: fake_multinode`` (``clusters/fake.yaml``) is Ray's provider for trying the
autoscaler on one machine: the head's autoscaler starts each worker "node" as a raylet on this
machine (``ray/autoscaler/_private/fake_multi_node/node_provider.py``). ``ray up`` cannot start
it (there is nothing to SSH into), so ``up`` starts the head itself, as Ray's docs do, with
``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=CONFIG --block``, on free ports, the
dashboard on 127.0.0.1, in a Ray temporary directory of its own. ``down`` stops exactly the
processes of that cluster: the ``ray start`` process group and every process whose command
line names the cluster's temporary directory (the head's and the autoscaled nodes' raylets and
workers), by pid. Never ``ray stop``, which stops every Ray on the machine.

The cluster's state (pid, addresses, temporary directory, log) is kept in
``~/.deepmorning/fake-clusters/CLUSTER_NAME.json``.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.yamlfile import get_in

PROVIDER = "fake_multinode"
HEAD_TYPE = "ray.head.default"  # the node type name the fake provider gives its head
UP_TIMEOUT_S = 180.0
STARTED = "Ray runtime started"  # what `ray start` prints once the head is up
#: The autoscaler's update period on a fake cluster (Ray's default is 5 s; its own fake-cluster
#: tests use 1 s): workers arrive sooner after work asks for them.
AUTOSCALER_UPDATE_INTERVAL_S = "1"


def is_fake(config: Mapping[str, Any]) -> bool:
    return get_in(config, "provider", "type") == PROVIDER


def state_dir() -> Path:
    return Path.home() / ".deepmorning" / "fake-clusters"


def state_file(name: str) -> Path:
    return state_dir() / f"{name}.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cluster_pids(temp_dir: str, gcs_address: str) -> list[int]:
    """Pids of this user's processes whose command line names ``temp_dir`` or the cluster's
    GCS address (every process of the cluster: GCS, raylets, dashboard, autoscaler, workers of
    the head and of the fake nodes)."""
    found = []
    needles = (temp_dir.encode(), f"={gcs_address}".encode())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if proc.stat().st_uid == os.getuid() and any(n in cmdline for n in needles):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def read_state(name: str) -> dict[str, Any] | None:
    path = state_file(name)
    return json.loads(path.read_text()) if path.is_file() else None


def _head_resources(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(get_in(config, "available_node_types", HEAD_TYPE, "resources") or {})


def _wait_for(port: int, proc: subprocess.Popen, log: Path) -> None:
    """Until ``ray start`` says the head is up and its dashboard answers. The port alone is not
    enough: the dashboard may answer while the raylet still fails to register (``ray start``
    gives up after 30 s on a loaded machine) and the head then exits."""
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text() if log.is_file() else ""
        if proc.poll() is not None:
            raise DeepmorningError(f"the fake cluster's head exited at start (status "
                                   f"{proc.returncode}); its log {log} ends: "
                                   f"{text[-1500:].strip()}")
        if STARTED in text:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                pass
        time.sleep(0.5)
    raise DeepmorningError(f"the fake cluster's head was not up within {UP_TIMEOUT_S:.0f} s "
                           f"(log: {log})")


def up(config: Mapping[str, Any], ray_cli: str) -> dict[str, Any]:
    """Start the head of a fake multi-node cluster; returns its state (also saved)."""
    import ray._private.services as services

    name = str(config["cluster_name"])
    state = read_state(name)
    if state and _alive(int(state["pid"])):
        raise DeepmorningError(f"fake cluster {name} is already up (dashboard "
                               f"{state['dashboard_url']}); `deepmorning cluster down` first")
    if HEAD_TYPE not in (config.get("available_node_types") or {}):
        raise DeepmorningError(f"a fake_multinode config names its head node type {HEAD_TYPE}")
    state_dir().mkdir(parents=True, exist_ok=True)
    port, dash, agent, client = (_free_port() for _ in range(4))
    ip = services.get_node_ip_address()
    prepared = copy.deepcopy(dict(config))
    prepared["provider"]["gcs_address"] = f"{ip}:{port}"  # else the provider assumes :6379
    autoscaling = state_dir() / f"{name}.yaml"
    autoscaling.write_text(yaml.safe_dump(prepared, sort_keys=False))
    # Short: Unix socket paths under it must stay below 108 bytes.
    temp_dir = tempfile.mkdtemp(prefix="dmfake-", dir="/tmp")
    head = _head_resources(config)
    log = state_dir() / f"{name}.log"
    cmd = [ray_cli, "start", "--head", "--block", f"--port={port}",
           f"--num-cpus={int(head.pop('CPU', 1))}", f"--num-gpus={int(head.pop('GPU', 0))}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
           f"--temp-dir={temp_dir}", f"--autoscaling-config={autoscaling}",
           "--disable-usage-stats"]
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1",
           "AUTOSCALER_UPDATE_INTERVAL_S": AUTOSCALER_UPDATE_INTERVAL_S}
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    state = {"name": name, "pid": proc.pid, "temp_dir": temp_dir, "log": str(log),
             "gcs_address": f"{ip}:{port}", "dashboard_url": f"http://127.0.0.1:{dash}",
             "started": time.time()}
    state_file(name).write_text(json.dumps(state, indent=1))
    try:
        _wait_for(dash, proc, log)
    except DeepmorningError:
        down(name)
        raise
    return state


def down(name: str, timeout: float = 30.0) -> list[int]:
    """Stop every process of fake cluster ``name`` (SIGTERM, then SIGKILL after ``timeout``);
    returns their pids. Raises when none is known."""
    import shutil

    state = read_state(name)
    if state is None:
        raise DeepmorningError(f"no fake cluster {name} is up here ({state_file(name)} is "
                               "missing)")
    pid, temp_dir, gcs = int(state["pid"]), str(state["temp_dir"]), str(state["gcs_address"])
    pids = sorted({pid, *cluster_pids(temp_dir, gcs)} - {os.getpid()})
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if sig == signal.SIGTERM and _alive(pid):
            try:
                os.killpg(pid, sig)  # ray start --block stops what it started
            except ProcessLookupError:
                pass
        for other in pids:
            if _alive(other):
                try:
                    os.kill(other, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            left = [p for p in set(pids) | set(cluster_pids(temp_dir, gcs)) if _alive(p)]
            if not left:
                break
            time.sleep(0.2)
        else:
            pids = sorted(set(pids) | set(left))
            continue
        break
    left = [p for p in cluster_pids(temp_dir, gcs) if _alive(p)]
    if left:
        raise DeepmorningError(f"processes of fake cluster {name} survived SIGKILL: {left}")
    state_file(name).unlink(missing_ok=True)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return pids


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our child (a ``ray start`` this process started)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
