"""`deepmorning job` against a real `ray start --head` on loopback, and its metrics endpoint.

The head gets a PATH without this virtualenv's bin/ and no VIRTUAL_ENV, so a bare `python` in an
entrypoint would be some other interpreter without Ray: the jobs only succeed because the
entrypoint finds the interpreter that runs the cluster's Ray.

The head runs with token authentication, its token in a temporary file named by
RAY_AUTH_TOKEN_PATH, and every process of this module gets a temporary HOME: nothing is written
to the user's ~/.ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, CliResult, free_port, run_cli

PENDING_LIMIT_S = 40  # Ray fails a job whose supervisor cannot start within this


@dataclass
class JobsHead:
    dashboard_url: str
    metrics_url: str
    temp_dir: Path


def _head_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "RAY_ADDRESS")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p) != Path(venv_bin))
    env["PYTHONPATH"] = str(REPO)  # the jobs import this checkout's deepmorning
    env["RAY_JOB_START_TIMEOUT_SECONDS"] = str(PENDING_LIMIT_S)
    # Processes export their metrics every 10 s by default: the metrics tests would wait up to
    # that long for a value already set. 1 s is Ray's floor.
    env["RAY_metrics_report_interval_ms"] = "1000"
    return env


@pytest.fixture(scope="module")
def token_home(tmp_path_factory) -> Iterator[Path]:
    """A temporary HOME and a token file named by RAY_AUTH_TOKEN_PATH, for every process here.

    `ray start --head` turns token authentication on when a token is available (Ray 2.60); the
    token is ours, in a temporary file, never `ray get-auth-token --generate`'s ~/.ray.
    """
    home = tmp_path_factory.mktemp("home")
    token = tmp_path_factory.mktemp("token") / "auth_token"
    token.write_text(secrets.token_hex(32))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("RAY_AUTH_TOKEN_PATH", str(token))
        mp.delenv("RAY_AUTH_TOKEN", raising=False)
        yield home


@pytest.fixture(scope="module")
def jobs_head(token_home) -> Iterator[JobsHead]:
    """`ray start --head --block` on free ports with a metrics port and its own temp dir."""
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    port, dash, metrics = free_port(), free_port(), free_port()
    temp_dir = Path(tempfile.mkdtemp(prefix="dmj", dir="/tmp"))  # short: unix socket paths
    log = temp_dir / "head.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "python"), ray_bin, "start", "--head", "--block",
             f"--port={port}", "--num-cpus=2", "--num-gpus=0", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={dash}", f"--metrics-export-port={metrics}",
             # Other Ray clusters on this machine hold the default agent ports (52365, ...);
             # a head whose job agent cannot bind accepts no jobs.
             f"--dashboard-agent-listen-port={free_port()}",
             f"--dashboard-agent-grpc-port={free_port()}",
             f"--runtime-env-agent-port={free_port()}",
             f"--ray-client-server-port={free_port()}",
             f"--temp-dir={temp_dir}", "--disable-usage-stats"],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=_head_env(),
        )
    url = f"http://127.0.0.1:{dash}"
    try:
        _wait_for(lambda: _http_ok(f"{url}/api/version"), 120, proc, log)
        yield JobsHead(url, f"http://127.0.0.1:{metrics}/metrics", temp_dir)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError as exc:  # 401: up, but wants the token
        return exc.code in (401, 403)
    except OSError:
        return False


def _wait_for(predicate, seconds: float, proc=None, log: Path | None = None) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"ray start --head exited early:\n{log.read_text() if log else ''}")
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"condition not met within {seconds}s" + (f":\n{log.read_text()}" if log else ""))


def job(head: JobsHead, *args: str, env: dict | None = None, timeout: float = 300):
    return run_cli("job", args[0], "--address", head.dashboard_url, *args[1:], env=env,
                   timeout=timeout)


def job_id_of(stdout: str) -> str:
    match = re.search(r"submitted job (\S+):", stdout)
    assert match, stdout
    return match.group(1)


def one_error(res) -> str:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def pending_job(jobs_head) -> tuple[CliResult, str]:
    """A job that asks for a GPU no node has, submitted once for the module.

    It stays PENDING until Ray fails it after ``PENDING_LIMIT_S``; the test that follows it to
    its end runs last, so that this wait overlaps the other tests instead of adding to them.
    """
    res = job(jobs_head, "submit", "--gpus", "1", "--pending-timeout", "5", "--", "info")
    return res, job_id_of(res.stdout)


# -- submitting ---------------------------------------------------------------------------------
def test_job_stuck_pending_is_reported_with_its_setup_log(jobs_head, pending_job):
    """No node has a GPU: the job waits for one until Ray's start timeout (PENDING_LIMIT_S)."""
    res, job_id = pending_job
    line = one_error(res)
    assert "PENDING" in line and "deepmorning job stop" in line
    assert "still PENDING" in res.stderr and "setup log so far" in res.stderr
    status = job(jobs_head, "status", job_id)
    assert "PENDING" in status.stdout and "setup log so far" in status.stderr


def test_submit_info_succeeds_and_streams_its_output(jobs_head):
    res = job(jobs_head, "submit", "--", "info")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCEEDED" in res.stdout
    assert "connection" in res.stdout and "2.60" in res.stdout  # deepmorning info's own table
    assert jobs_head.dashboard_url in res.stdout


def test_tiny_real_job_runs_with_the_cluster_interpreter(jobs_head, tmp_path):
    res = job(jobs_head, "submit", "--", "cluster", "selftest", "--output", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "selftest ok" in res.stdout and "SUCCEEDED" in res.stdout
    driver = re.search(r"driver python: (\S+)", res.stdout).group(1)
    assert Path(driver).parent == Path(sys.executable).parent  # this venv, not PATH's python
    job_id = job_id_of(res.stdout)
    status = job(jobs_head, "status", job_id)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    logs = job(jobs_head, "logs", job_id)
    assert logs.returncode == 0 and "selftest ok" in logs.stdout
    listed = job(jobs_head, "list")
    assert job_id in listed.stdout and "deepmorning cluster selftest" in listed.stdout


def test_working_dir_is_uploaded_and_is_the_jobs_cwd(jobs_head, tmp_path):
    from deepmorning.platform.rundir import RunDir

    run = RunDir.create(tmp_path / "wd", "nas", "upload", {"seed": 1})
    run.finish({"marker": "uploaded-run-4711"})
    res = job(jobs_head, "submit", "--working-dir", str(run.path), "--", "results", "show", ".")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "uploaded-run-4711" in res.stdout


def test_failing_job_exits_non_zero_with_one_line(jobs_head):
    res = job(jobs_head, "submit", "--", "results", "show", "/nonexistent/run")
    line = one_error(res)
    assert "FAILED" in line and res.returncode == 1


def test_long_job_exports_metrics_and_stops(jobs_head):
    run = f"metrics-{os.getpid()}"
    res = job(jobs_head, "submit", "--no-wait", "--", "cluster", "selftest", "--duration", "300",
              "--run", run)
    assert res.returncode == 0, res.stderr
    job_id = job_id_of(res.stdout)
    pattern = re.compile(
        r'^ray_deepmorning_selftest_ticks_total\{[^}]*area="selftest"[^}]*run="' + re.escape(run)
        + r'"[^}]*\} (\d+(\.\d+)?)$', re.M)
    seen: dict[str, str] = {}

    def exported() -> bool:
        with urllib.request.urlopen(jobs_head.metrics_url, timeout=5) as resp:
            text = resp.read().decode()
        found = pattern.search(text)
        if found:
            seen["text"] = text
        return bool(found)

    _wait_for(exported, 120)
    assert re.search(r"^ray_deepmorning_selftest_nodes\{[^}]*SessionName=", seen["text"], re.M)
    # Ray's generated Prometheus config scrapes this very endpoint.
    sd = json.loads(next(jobs_head.temp_dir.glob("session_*/prom_metrics_service_discovery.json"))
                    .read_text())
    port = jobs_head.metrics_url.split(":")[2].split("/")[0]
    assert any(t.endswith(f":{port}") for entry in sd for t in entry["targets"])

    stopped = job(jobs_head, "stop", job_id)
    assert stopped.returncode == 0 and f"job {job_id} STOPPED" in stopped.stdout
    assert "STOPPED" in job(jobs_head, "status", job_id).stdout
    follow = job(jobs_head, "logs", "--follow", job_id)
    assert "STOPPED" in one_error(follow)


def test_submitted_nas_search_exports_its_metrics(jobs_head, tmp_path):
    """The issue's path: a NAS search submitted to a head, followed, its metrics scraped."""
    out = tmp_path / "nas"
    res = job(jobs_head, "submit", "--no-wait", "--", "nas", "search", "--trainer", "sleep:1",
              "--max-children", "400", "--output", str(out))
    assert res.returncode == 0, res.stderr
    job_id = job_id_of(res.stdout)
    pattern = re.compile(r'^ray_deepmorning_nas_children_done\{[^}]*area="nas"[^}]*'
                         r'run="nas"[^}]*\} (\d+(\.\d+)?)$', re.M)
    seen: dict[str, float] = {}

    def exported() -> bool:
        with urllib.request.urlopen(jobs_head.metrics_url, timeout=5) as resp:
            found = pattern.search(resp.read().decode())
        if found and float(found.group(1)) >= 1:
            seen["done"] = float(found.group(1))
        return "done" in seen

    _wait_for(exported, 180)
    assert (out / "history.csv").is_file()
    logs = job(jobs_head, "logs", job_id)
    assert "NAS starting" in logs.stdout
    stopped = job(jobs_head, "stop", job_id)
    assert stopped.returncode == 0 and "STOPPED" in stopped.stdout
    assert not (out / "summary.json").exists()  # stopped, not finished: resumable


def test_stop_with_timeout_zero_asks_and_returns(jobs_head):
    res = job(jobs_head, "submit", "--no-wait", "--", "cluster", "selftest", "--duration", "300")
    job_id = job_id_of(res.stdout)
    stopped = job(jobs_head, "stop", "--timeout", "0", job_id)
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr and f"job {job_id}" in stopped.stdout
    _wait_for(lambda: "STOPPED" in job(jobs_head, "status", job_id).stdout, 120)


FOLLOW_SCRIPT = """
import sys
from ray.job_submission import JobSubmissionClient
from deepmorning.ops import jobs

class Counting(JobSubmissionClient):
    fetched = 0
    def get_job_logs(self, job_id):
        Counting.fetched += 1
        return super().get_job_logs(job_id)

jobs.use_token_if_available()
client = Counting(sys.argv[1])
status = jobs.follow(client, sys.argv[1], sys.argv[2])
print(f"\\nstatus={status} full-log-fetches={Counting.fetched}")
"""


def test_follow_streams_the_log_once_instead_of_refetching_it(jobs_head):
    """`job logs --follow` reads Ray's log stream; it does not refetch the whole log each poll."""
    res = job(jobs_head, "submit", "--no-wait", "--", "cluster", "selftest", "--duration", "6")
    job_id = job_id_of(res.stdout)
    proc = subprocess.run([sys.executable, "-c", FOLLOW_SCRIPT, jobs_head.dashboard_url, job_id],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "selftest ok" in proc.stdout
    assert "status=SUCCEEDED full-log-fetches=0" in proc.stdout


# -- one-line errors ------------------------------------------------------------------------------
def test_unknown_job_id_is_one_line(jobs_head):
    for sub in ("status", "logs", "stop"):
        line = one_error(job(jobs_head, sub, "raysubmit_doesnotexist"))
        assert "no job 'raysubmit_doesnotexist'" in line


def test_wrong_token_is_one_line(jobs_head):
    line = one_error(job(jobs_head, "list", env={"RAY_AUTH_TOKEN": "0" * 32}))
    assert "rejected our authentication token" in line


def test_unreachable_address_is_one_line():
    res = run_cli("job", "list", "--address", f"http://127.0.0.1:{free_port()}", timeout=60)
    assert "cannot reach a Ray dashboard" in one_error(res)


def test_address_comes_from_the_environment(jobs_head):
    res = run_cli("job", "list", env={"RAY_API_SERVER_ADDRESS": jobs_head.dashboard_url})
    assert res.returncode == 0 and jobs_head.dashboard_url in res.stdout


def test_submit_needs_a_command():
    res = run_cli("job", "submit", "--address", "http://127.0.0.1:1")
    assert res.returncode != 0 and "Traceback" not in res.stderr


class PortForward:
    """A TCP relay from a free loopback port to the dashboard: what `kubectl port-forward` does."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


def test_jobs_go_through_a_port_forward_with_the_token_from_the_environment(jobs_head,
                                                                            tmp_path):
    """KubeRay's way: the token exported from its Secret as RAY_AUTH_TOKEN, the dashboard on
    the local end of a port-forward. RAY_AUTH_TOKEN wins over a stale token file."""
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    stale = tmp_path / "stale_token"
    stale.write_text("f" * 64)
    forward = PortForward(int(jobs_head.dashboard_url.rsplit(":", 1)[1]))
    url = f"http://127.0.0.1:{forward.port}"
    try:
        res = run_cli("job", "submit", "--address", url, "--", "info",
                      env={"RAY_AUTH_TOKEN": token, "RAY_AUTH_TOKEN_PATH": str(stale)})
        assert res.returncode == 0, res.stderr
        assert "SUCCEEDED" in res.stdout and "connection" in res.stdout  # logs came through
        refused = run_cli("job", "list", "--address", url,
                          env={"RAY_AUTH_TOKEN_PATH": str(stale)})
        line = one_error(refused)
        assert "rejected our authentication token" in line and "token Secret" in line
    finally:
        forward.close()


def test_a_job_stuck_pending_fails_at_rays_start_timeout(jobs_head, pending_job):
    """The pending job of the first test, followed to its end: Ray fails it once its start
    timeout has passed (most of that wait went by during the tests in between)."""
    ended = job(jobs_head, "logs", "--follow", pending_job[1])
    assert "FAILED" in one_error(ended)


def test_nothing_was_written_to_home(jobs_head, token_home):
    """Runs after the jobs above: the head, the CLI and the jobs left HOME without a ~/.ray."""
    assert not (token_home / ".ray").exists()
