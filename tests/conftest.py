"""Shared fixtures: a real in-process Ray, a real `ray start --head` on loopback, a CLI runner."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests never touch the user's home directory: an embedded Ray writes ~/.ray/auth_token when
# none exists (it ignores RAY_AUTH_TOKEN_PATH for that), and matplotlib its caches. Every test,
# and every CLI it runs in a subprocess, sees a home of its own for the session.
os.environ["HOME"] = tempfile.mkdtemp(prefix="deepmorning-tests-home-")

# The models under test are tiny; on a 2-core CI machine extra intra-op threads only thrash.
torch.set_num_threads(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_sigint() -> None:
    """``preexec_fn`` for a CLI child that a test sends SIGINT (Ctrl-C).

    A child inherits an ignored SIGINT (a test run started in the background, ``cmd &``, has
    it ignored), and Python then installs no KeyboardInterrupt handler: the child would never
    see the Ctrl-C. Restore the default before ``exec`` so that Python installs its own.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def __iter__(self):  # code, out, err = run_main(...)
        return iter((self.returncode, self.stdout, self.stderr))


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None,
            ) -> CliResult:
    """Run ``python -m deepmorning ARGS`` as a user would, in a fresh process."""
    full_env = {**os.environ, "COLUMNS": "160", **(env or {})}
    full_env.pop("RAY_ADDRESS", None) if "RAY_ADDRESS" not in (env or {}) else None
    proc = subprocess.run(
        [sys.executable, "-m", "deepmorning", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_main(capsys, *args: str) -> CliResult:
    """``deepmorning ARGS`` through the real ``deepmorning.cli.main``, in this process.

    For input the CLI refuses before Ray starts (a parse error, a bad value, an unknown name):
    milliseconds instead of a fresh interpreter that imports torch, Ray and RLlib. Tests whose
    point is the process itself (an exit status seen by a shell, a signal, Ray never started,
    a fresh environment) keep ``run_cli``.
    """
    from deepmorning import cli

    capsys.readouterr()
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


@pytest.fixture(scope="session")
def _ray_session() -> Iterator[None]:
    """Shut down the embedded Ray of the in-process tests once, at the end of the session."""
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def ray_local(_ray_session) -> None:
    """An embedded Ray of our own for an in-process test, shared by the tests of the session.

    Checked at every use, not once: a module that shuts Ray down in between must not leave a
    later test to Ray's auto-init, which attaches to whatever ``/tmp/ray/ray_current_cluster``
    names (a ``ray start --head`` of another test, perhaps already gone). ``address="local"``
    never attaches to another cluster.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False,
                 log_to_driver=False)


@dataclass
class RayHead:
    address: str
    dashboard_url: str
    process: subprocess.Popen


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory) -> Iterator[RayHead]:
    """A real `ray start --head --block` on loopback with free ports, torn down afterwards.

    ``--block`` ties the cluster's processes to this one; stopping it stops only this cluster
    (``ray stop`` would stop every Ray on the machine).
    """
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    port, dash = free_port(), free_port()
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
             "--disable-usage-stats"],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start --head exited early:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", dash), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"ray head did not come up:\n{log.read_text()}")
    yield RayHead(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", proc)
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
    _forget_cluster(port)


def _forget_cluster(port: int) -> None:
    """Remove ``ray start``'s note of this (now stopped) head from Ray's temp directory.

    Left behind, it makes every later ``ray.init()`` without an address (RLlib's
    ``Algorithm.from_checkpoint`` calls one) try to join the dead head until it times out.
    """
    from ray._common.utils import get_ray_address_file

    note = Path(get_ray_address_file(None))
    try:
        if note.read_text().strip().endswith(f":{port}"):
            note.unlink()
    except OSError:
        pass


@contextmanager
def published_node_groups(**groups: dict[str, float]) -> Iterator[None]:
    """The node groups an autoscaler publishes in the GCS (name -> resources, 0 to 4 nodes
    each), as Ray's autoscaler does on a ``ray up`` or KubeRay cluster; removed afterwards.
    Needs a connected Ray (``ray_local``)."""
    from ray._raylet import GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
    from ray.core.generated import autoscaler_pb2
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

    published = autoscaler_pb2.ClusterConfig(node_group_configs=[
        autoscaler_pb2.NodeGroupConfig(name=name, resources=resources, min_count=0, max_count=4)
        for name, resources in groups.items()])
    _internal_kv_put(GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, published.SerializeToString(),
                     namespace=GCS_AUTOSCALER_STATE_NAMESPACE)
    try:
        yield
    finally:
        _internal_kv_del(GCS_AUTOSCALER_CLUSTER_CONFIG_KEY,
                         namespace=GCS_AUTOSCALER_STATE_NAMESPACE)
