"""``deepmorning job``: submit deepmorning commands to a Ray cluster and follow them.

Jobs go through Ray's Jobs API (:class:`ray.job_submission.JobSubmissionClient`), which is served
by the cluster's dashboard. The address is the dashboard URL, found in this order:

1. ``deepmorning job … --address URL`` (``http://HOST:8265``; ``HOST:PORT`` means http);
2. ``RAY_API_SERVER_ADDRESS`` (what ``ray job`` reads);
3. the global ``deepmorning --address`` / ``RAY_ADDRESS``: a dashboard URL is used as is, a GCS
   address ``HOST:6379`` (or ``ray://HOST:10001``) becomes ``http://HOST:8265``;
4. ``http://127.0.0.1:8265``, a head on this machine or the local end of an SSH port-forward
   (``deepmorning cluster dashboard aws``).

Token authentication needs nothing by hand when the token is in ``~/.ray/auth_token``,
``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` (``ray get-auth-token`` on the head prints it).

The entrypoint runs ``python -m deepmorning …`` with the interpreter that runs the cluster's Ray,
found on the node itself at run time (see :func:`python_finder`), never with whatever ``python``
comes first on the node's ``PATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import click

from deepmorning import __version__
from deepmorning.platform import console
from deepmorning.platform.errors import DeepmorningError, first_line
from deepmorning.platform.runtime import quiet_ray_logs, use_token_if_available

DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_JOBS_ADDRESS = f"http://127.0.0.1:{DEFAULT_DASHBOARD_PORT}"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
POLL_S = 1.0
TAIL_DRAIN_S = 10.0  # how long an ended job's log stream may take to deliver its tail


class JobFailed(DeepmorningError):
    """The job ended in FAILED or STOPPED: exit status 1, not a usage error."""

    exit_code = 1


# -- the entrypoint -------------------------------------------------------------------------------
def python_finder() -> str:
    """A POSIX-shell snippet setting ``$PY`` to the interpreter that runs the cluster's Ray.

    Ray runs the entrypoint with ``/bin/sh -c`` as a child of the job's supervisor, a Ray worker
    started with the cluster's own interpreter. That worker has loaded ``ray/_raylet.so`` from
    ``PREFIX/lib/pythonX.Y/site-packages``, so ``PREFIX/bin/pythonX.Y`` is that interpreter with
    its virtualenv or conda prefix (``/proc/PID/exe`` alone would lose the virtualenv). Where
    ``/proc`` is missing (macOS), or for distribution layouts (``dist-packages``), it falls back
    to the supervisor's executable and then to ``python3``.
    """
    raylet_so = r"s#^.* \(/.*\)/lib/\(python3\.[0-9]*\)/site-packages/ray/_raylet\.so$#\1/bin/\2#p"
    return (
        f"PY=$(sed -n '{raylet_so}' /proc/$PPID/maps 2>/dev/null | head -n 1); "
        '[ -x "$PY" ] || PY=$(readlink /proc/$PPID/exe 2>/dev/null); '
        '[ -x "$PY" ] || PY=python3; '
    )


def build_entrypoint(args: Sequence[str], python: str | None = None) -> str:
    """The shell entrypoint running ``deepmorning ARGS`` on the cluster."""
    args = list(args)
    if args and args[0] == "deepmorning":
        args = args[1:]
    if not args:
        raise DeepmorningError(
            "give the deepmorning command to run after '--', e.g. "
            "deepmorning job submit -- nas search --preset quick"
        )
    command = " ".join(shlex.quote(a) for a in args)
    if python:
        return f"exec {shlex.quote(python)} -m deepmorning {command}"
    return f'{python_finder()}exec "$PY" -m deepmorning {command}'


# -- the address and the client -------------------------------------------------------------------
def jobs_address(explicit: str | None, global_address: str | None, env: dict[str, str]) -> str:
    """The dashboard URL to submit to; see the module docstring for the order."""
    if explicit:
        return _as_url(explicit)
    if env.get("RAY_API_SERVER_ADDRESS"):
        return _as_url(env["RAY_API_SERVER_ADDRESS"])
    if global_address and global_address not in ("auto", "local"):
        if global_address.startswith(("http://", "https://")):
            return global_address.rstrip("/")
        host = urlparse(global_address).hostname if "://" in global_address else (
            global_address.rpartition(":")[0] or global_address
        )
        if host:
            return f"http://{host}:{DEFAULT_DASHBOARD_PORT}"
    return DEFAULT_JOBS_ADDRESS


def _as_url(address: str) -> str:
    address = address.rstrip("/")
    if address.startswith("ray://"):
        raise DeepmorningError(
            f"{address} is a Ray Client address; jobs need the dashboard URL, "
            f"e.g. http://HOST:{DEFAULT_DASHBOARD_PORT}"
        )
    return address if "://" in address else f"http://{address}"


def connect_jobs(address: str) -> Any:
    """A :class:`JobSubmissionClient` for ``address``, or one clear line saying why not."""
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DeepmorningError(f"--address must be a dashboard URL like {DEFAULT_JOBS_ADDRESS}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=3.0):
            pass
    except OSError as exc:
        raise DeepmorningError(
            f"cannot reach a Ray dashboard at {address} ({exc.strerror or type(exc).__name__}); "
            "start the cluster, forward its port with `deepmorning cluster dashboard CONFIG`, "
            "or give its dashboard URL with `deepmorning job … --address http://HOST:PORT`"
        ) from None
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    quiet_ray_logs()
    use_token_if_available()

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as exc:
        raise DeepmorningError(_auth_message(address, str(exc))) from None
    except Exception as exc:  # noqa: BLE001 - ConnectionError, a non-Ray server, ...
        raise DeepmorningError(f"no Ray Jobs API at {address}: {first_line(exc)}") from None


TOKEN_HINT = ("set RAY_AUTH_TOKEN to the output of `ray get-auth-token` on its head node (on "
              "KubeRay: the auth_token of the cluster's token Secret, docs/clusters.md)")


def _auth_message(address: str, text: str) -> str:
    if "Authentication failed" in text or "Invalid" in text:
        return f"the Ray cluster at {address} rejected our authentication token; {TOKEN_HINT}"
    return (f"the Ray cluster at {address} requires an authentication token and none was "
            f"found; {TOKEN_HINT}")


def _call(address: str, job_id: str | None, fn: Callable[[], Any]) -> Any:
    """Run one Jobs API call, turning its failures into one line."""
    from ray.exceptions import AuthenticationError

    try:
        return fn()
    except AuthenticationError as exc:
        raise DeepmorningError(_auth_message(address, str(exc))) from None
    except RuntimeError as exc:
        if job_id is not None and "404" in str(exc):
            raise DeepmorningError(
                f"no job '{job_id}' on the Ray cluster at {address} "
                "(`deepmorning job list` shows the jobs)"
            ) from None
        raise DeepmorningError(f"Ray Jobs API at {address}: {first_line(exc)}") from None
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise DeepmorningError(f"lost the Ray cluster at {address}: {first_line(exc)}") from None


def _submit_with_retry(address: str, submit: Callable[[], str], wait_s: float = 90.0) -> str:
    """Submit, retrying while a just-started head has no job agent yet (Ray answers 500)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _call(address, None, submit)
        except DeepmorningError as exc:
            if "No available agent" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise DeepmorningError(
                    f"the Ray cluster at {address} has no job agent answering after "
                    f"{wait_s:.0f}s; if another Ray runs on the head machine, it may hold the "
                    "agent's port: start the head with --dashboard-agent-listen-port=FREE_PORT"
                ) from None
        time.sleep(2.0)


# -- following a job ------------------------------------------------------------------------------
def _status(info: Any) -> str:
    return str(getattr(info.status, "value", info.status))


def report_pending(job_id: str, info: Any, logs: str, waited: float) -> None:
    """Say that a job is still PENDING, why (Ray's message) and what its setup log says."""
    console.warn(
        f"job {job_id} is still PENDING after {waited:.0f}s: "
        f"{info.message or 'waiting for the runtime environment or for resources'}"
    )
    setup = logs.strip() or "(the setup log is empty so far)"
    print("--- setup log so far ---", file=sys.stderr)
    print("\n".join(setup.splitlines()[-20:]), file=sys.stderr)
    print("---", file=sys.stderr, flush=True)


class _LogTail:
    """A job's log, streamed once through Ray's ``tail_job_logs`` websocket.

    Each chunk is fetched once, so following a long job costs what its log is worth (refetching
    the whole log every second would be quadratic). If the stream breaks (a proxy without
    websockets, a restarted dashboard), what it missed is printed from one ``get_job_logs`` call
    at the end.
    """

    def __init__(self, client: Any, job_id: str, show: bool) -> None:
        self.client, self.job_id, self.show = client, job_id, show
        self.shown = 0
        self.failed: BaseException | None = None

    async def run(self) -> None:
        try:
            async for chunk in self.client.tail_job_logs(self.job_id):
                if self.show:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                self.shown += len(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - fall back to one fetch at the end
            self.failed = exc

    def catch_up(self, logs: str) -> None:
        if self.show and len(logs) > self.shown:
            sys.stdout.write(logs[self.shown:])
            sys.stdout.flush()
        self.shown = max(self.shown, len(logs))


def follow(client: Any, address: str, job_id: str, *, show_logs: bool = True,
           pending_warn_s: float = 30.0, pending_timeout_s: float | None = None) -> str:
    """Stream a job's logs until it ends; return its final status.

    A job still PENDING after ``pending_warn_s`` is reported with its setup log; after
    ``pending_timeout_s`` this gives up (the job is left as it is).
    """
    try:
        return asyncio.run(_follow(client, address, job_id, show_logs, pending_warn_s,
                                   pending_timeout_s))
    except KeyboardInterrupt:
        raise JobFailed(
            f"stopped following; job {job_id} keeps running "
            f"(`deepmorning job logs --follow {job_id}`, `deepmorning job stop {job_id}`)"
        ) from None


async def _follow(client: Any, address: str, job_id: str, show_logs: bool,
                  pending_warn_s: float, pending_timeout_s: float | None) -> str:
    def call(fn: Callable[[], Any]) -> Any:
        return asyncio.to_thread(_call, address, job_id, fn)

    tail = _LogTail(client, job_id, show_logs)
    streaming = asyncio.create_task(tail.run())
    start, warned = time.monotonic(), False
    try:
        while True:
            info = await call(lambda: client.get_job_info(job_id))
            status = _status(info)
            if status in TERMINAL:
                # The stream ends by itself once it has read the log to its end.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(streaming), TAIL_DRAIN_S)
                if tail.failed is not None or not streaming.done():
                    tail.catch_up(await call(lambda: client.get_job_logs(job_id)))
                return status
            waited = time.monotonic() - start
            if status == "PENDING" and (
                (not warned and waited >= pending_warn_s)
                or (pending_timeout_s is not None and waited >= pending_timeout_s)
            ):
                logs = await call(lambda: client.get_job_logs(job_id))  # once, to show setup
                if not warned:
                    report_pending(job_id, info, logs, waited)
                    warned = True
                if pending_timeout_s is not None and waited >= pending_timeout_s:
                    raise JobFailed(
                        f"job {job_id} is still PENDING after {waited:.0f}s "
                        f"({info.message or 'no message from Ray'}); it was left as it is: "
                        f"`deepmorning job stop {job_id}` cancels it"
                    )
            await asyncio.sleep(POLL_S)
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await streaming


def finish(client: Any, address: str, job_id: str, status: str) -> None:
    """Print the closing line of a followed job; raise unless it SUCCEEDED."""
    if status == "SUCCEEDED":
        click.echo(f"job {job_id} SUCCEEDED")
        return
    info = _call(address, job_id, lambda: client.get_job_info(job_id))
    raise JobFailed(f"job {job_id} {status}{_reason(info.message)}")


def _reason(message: str | None) -> str:
    """``": <first line of Ray's message>"`` without the log tail Ray appends, or ``""``."""
    if not message or not message.strip():
        return ""
    first = message.strip().splitlines()[0].split(", last available logs")[0]
    return f": {first.rstrip('.:')}"


# -- commands -------------------------------------------------------------------------------------
ADDRESS_OPTION = click.option(
    "--address",
    "job_address",
    default=None,
    metavar="URL",
    help="Dashboard URL of the cluster (default: RAY_API_SERVER_ADDRESS, else derived from "
    f"the global --address / RAY_ADDRESS, else {DEFAULT_JOBS_ADDRESS}).",
)


def _client(ctx: click.Context, job_address: str | None) -> tuple[Any, str]:
    settings = ctx.find_root().obj
    address = jobs_address(job_address, getattr(settings, "address", None), dict(os.environ))
    return connect_jobs(address), address


@click.group()
def job() -> None:
    """Submit deepmorning commands to a Ray cluster and follow them.

    \b
    deepmorning job submit -- nas search --preset quick   # run, stream logs, exit with its result
    deepmorning job submit --no-wait -- rl train …        # print the job id and return
    deepmorning job status|logs [--follow]|stop JOB_ID
    deepmorning job list

    The cluster is named by its dashboard URL (http://127.0.0.1:8265 by default); a GCS address
    given to the global --address becomes http://HOST:8265.
    """


@job.command(context_settings={"ignore_unknown_options": True})
@ADDRESS_OPTION
@click.option("--working-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Local directory uploaded as the job's working directory (e.g. a checkout "
              "of deepmorning that the cluster should run instead of its installed copy).")
@click.option("--gpus", type=click.FloatRange(min=0), default=None,
              help="GPUs reserved for the job's driver process (entrypoint_num_gpus).")
@click.option("--no-wait", is_flag=True, help="Return after submitting; don't stream logs.")
@click.option("--python", "python", default=None, metavar="PATH",
              help="Interpreter on the cluster (default: the one running the cluster's Ray).")
@click.option("--pending-timeout", type=click.FloatRange(min=0), default=None, metavar="S",
              help="Give up following a job that is still PENDING after S seconds.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.pass_context
def submit(ctx: click.Context, job_address: str | None, working_dir: str | None,
           gpus: float | None, no_wait: bool, python: str | None,
           pending_timeout: float | None, command: tuple[str, ...]) -> None:
    """Run `deepmorning COMMAND` on the cluster; exit 0 only if the job SUCCEEDED."""
    entrypoint = build_entrypoint(command, python)
    client, address = _client(ctx, job_address)
    runtime_env = {"working_dir": working_dir} if working_dir else None
    shown = "deepmorning " + " ".join(shlex.quote(a) for a in command if a != "deepmorning")
    job_id = _submit_with_retry(address, lambda: client.submit_job(
        entrypoint=entrypoint,
        runtime_env=runtime_env,
        entrypoint_num_gpus=gpus,
        metadata={"deepmorning_command": shown, "deepmorning_version": __version__},
    ))
    click.echo(f"submitted job {job_id}: {shown}")
    click.echo(f"dashboard: {address}/#/jobs/{job_id}")
    if no_wait:
        click.echo(f"follow it with: deepmorning job logs --follow {job_id}")
        return
    status = follow(client, address, job_id, pending_timeout_s=pending_timeout)
    finish(client, address, job_id, status)


@job.command()
@ADDRESS_OPTION
@click.argument("job_id")
@click.pass_context
def status(ctx: click.Context, job_address: str | None, job_id: str) -> None:
    """Show a job's state, command, times and Ray's message (and setup log while PENDING)."""
    client, address = _client(ctx, job_address)
    info = _call(address, job_id, lambda: client.get_job_info(job_id))
    state = _status(info)
    meta = info.metadata or {}
    console.print_kv(
        f"job {job_id}",
        {
            "status": state,
            "command": meta.get("deepmorning_command", info.entrypoint),
            "message": info.message or "",
            "started": _when(info.start_time),
            "ended": _when(info.end_time),
            "driver exit code": "" if info.driver_exit_code is None else info.driver_exit_code,
            "dashboard": f"{address}/#/jobs/{job_id}",
        },
    )
    if state == "PENDING":
        logs = _call(address, job_id, lambda: client.get_job_logs(job_id))
        waited = time.time() - (info.start_time or time.time() * 1000) / 1000
        report_pending(job_id, info, logs, waited)


@job.command()
@ADDRESS_OPTION
@click.option("--follow", "-f", "follow_logs", is_flag=True,
              help="Keep streaming until the job ends.")
@click.argument("job_id")
@click.pass_context
def logs(ctx: click.Context, job_address: str | None, follow_logs: bool, job_id: str) -> None:
    """Print a job's logs (with --follow: until it ends, exiting 0 only if it SUCCEEDED)."""
    client, address = _client(ctx, job_address)
    if not follow_logs:
        text = _call(address, job_id, lambda: client.get_job_logs(job_id))
        sys.stdout.write(text)
        return
    final = follow(client, address, job_id)
    finish(client, address, job_id, final)


@job.command()
@ADDRESS_OPTION
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for the job to reach STOPPED (0: ask and return).")
@click.argument("job_id")
@click.pass_context
def stop(ctx: click.Context, job_address: str | None, timeout: float, job_id: str) -> None:
    """Stop a job and wait until Ray reports it ended."""
    client, address = _client(ctx, job_address)
    info = _call(address, job_id, lambda: client.get_job_info(job_id))
    if _status(info) in TERMINAL:
        click.echo(f"job {job_id} already ended: {_status(info)}")
        return
    _call(address, job_id, lambda: client.stop_job(job_id))
    deadline = time.monotonic() + timeout
    while True:
        state = _status(_call(address, job_id, lambda: client.get_job_info(job_id)))
        if state in TERMINAL:
            click.echo(f"job {job_id} {state}")
            return
        if timeout == 0:
            click.echo(f"job {job_id} was asked to stop; it is {state} "
                       f"(`deepmorning job status {job_id}` shows when it ends)")
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    if state == "PENDING":
        raise JobFailed(
            f"job {job_id} is still PENDING: Ray stops it once its supervisor starts, and fails "
            "it by itself after RAY_JOB_START_TIMEOUT_SECONDS (default 900s) of waiting"
        )
    raise JobFailed(f"job {job_id} was asked to stop but is still {state} after {timeout:.0f}s")


@job.command(name="list")
@ADDRESS_OPTION
@click.pass_context
def list_jobs(ctx: click.Context, job_address: str | None) -> None:
    """List the cluster's jobs, newest first."""
    client, address = _client(ctx, job_address)
    jobs = _call(address, None, client.list_jobs)
    jobs = sorted(jobs, key=lambda j: j.start_time or 0, reverse=True)
    rows = [
        {
            "job id": j.submission_id or j.job_id,
            "status": _status(j),
            "started": _when(j.start_time),
            "command": (j.metadata or {}).get("deepmorning_command", j.entrypoint),
        }
        for j in jobs
    ]
    console.print_table(f"jobs on {address}", rows, ["job id", "status", "started", "command"])


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
