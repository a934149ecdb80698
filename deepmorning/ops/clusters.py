"""``deepmorning cluster``: validate cluster configs, start/stop clusters, check a running one.

``up``, ``down``, ``attach`` and ``dashboard`` wrap ``ray up/down/attach/dashboard``; a config
may be named without its path (``aws`` means ``clusters/aws.yaml``). Before ``up`` the config is
validated offline, and for on-prem clusters (provider ``local``) every listed host is checked
first: SSH reachable within a few seconds, Python >= 3.10, and Ray's version; the failing host
is named instead of ``ray up`` hanging on it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from deepmorning.ops import cluster_config, fake_cluster, kuberay_config
from deepmorning.platform import console
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.yamlfile import get_in

SSH_PORT = 22
MIN_PYTHON = (3, 10)


# -- config files ---------------------------------------------------------------------------------
def config_path(name: str) -> Path:
    """Resolve ``aws`` / ``clusters/aws.yaml`` / any path, or raise a one-line error."""
    try:
        return cluster_config.resolve(name)
    except FileNotFoundError as exc:
        raise DeepmorningError(str(exc)) from None


def load_launcher_config(path: Path) -> dict[str, Any]:
    """A launcher config that passed offline validation; raise with its first problem."""
    problems, _ = cluster_config.validate_file(path)
    if problems:
        raise DeepmorningError(f"{path}: {problems[0]} (deepmorning cluster validate {path})")
    docs = cluster_config.load_documents(path)
    if cluster_config.kind_of(docs[0]) != "launcher":
        raise DeepmorningError(
            f"{path} is a KubeRay manifest: apply it with `kubectl apply -f {path}`"
        )
    return docs[0]


# -- pre-flight of on-prem hosts -------------------------------------------------------------------
@dataclass
class HostCheck:
    """What the pre-flight found on one host."""

    host: str
    ok: bool
    detail: str


def shell_path(path: str) -> str:
    """``path`` as one shell word: quoted, except a leading ``~/`` that becomes ``"$HOME"/``.

    The interpreter path comes from a config file; quoting keeps a path like
    ``$(cmd)/bin/python`` from running ``cmd`` on the host.
    """
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
    return shlex.quote(path)


def probe_script(python: str) -> str:
    """Remote shell printing ``PY_VERSION`` and ``RAY_VERSION`` (``none`` without Ray)."""
    return (
        f"P={shell_path(python)}; [ -x \"$P\" ] || P=python3; "
        "\"$P\" -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' || exit 3; "
        "\"$P\" -c 'import ray; print(ray.__version__)' 2>/dev/null || echo none"
    )


def config_python(config: Mapping[str, Any]) -> str:
    """The interpreter the config starts Ray with: ``DIR/bin/python`` for ``DIR/bin/ray``."""
    for command in config.get("head_start_ray_commands") or []:
        match = re.search(r"(\S+)/bin/ray\b", str(command))
        if match:
            return f"{match.group(1)}/bin/python"
    return "python3"


def _tcp_reachable(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts a connection, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer on port {port} within {timeout:.0f}s"
    except OSError as exc:
        return f"port {port}: {exc.strerror or type(exc).__name__}"


def ssh_command(host: str, auth: Mapping[str, Any], timeout: float, remote: str) -> list[str]:
    """An ``ssh`` command line that never prompts and gives up after ``timeout`` seconds."""
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(timeout))}",
           "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR"]
    if auth.get("ssh_private_key"):
        cmd += ["-i", os.path.expanduser(str(auth["ssh_private_key"]))]
    if auth.get("ssh_proxy_command"):
        cmd += ["-o", f"ProxyCommand={auth['ssh_proxy_command']}"]
    user = auth.get("ssh_user")
    cmd += [f"{user}@{host}" if user else host, remote]
    return cmd


def check_host(host: str, auth: Mapping[str, Any], python: str, ray_version: str,
               timeout: float = 5.0) -> HostCheck:
    """SSH to ``host``, then ask its Python for its version and Ray's."""
    if not auth.get("ssh_proxy_command"):
        reason = _tcp_reachable(host, SSH_PORT, timeout)
        if reason:
            return HostCheck(host, False, f"SSH unreachable ({reason})")
    if shutil.which("ssh") is None:
        return HostCheck(host, False, "no ssh client on this machine")
    remote = probe_script(python)
    try:
        proc = subprocess.run(ssh_command(host, auth, timeout, remote), capture_output=True,
                              text=True, timeout=timeout + 10, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return HostCheck(host, False, f"SSH did not answer within {timeout + 10:.0f}s")
    if proc.returncode == 255:
        why = (proc.stderr.strip().splitlines() or ["connection failed"])[-1]
        return HostCheck(host, False, f"SSH failed: {why}")
    if proc.returncode != 0:
        return HostCheck(host, False, f"no usable Python ({python} or python3)")
    return judge_versions(host, proc.stdout.strip(), ray_version)


def judge_versions(host: str, answer: str, ray_version: str) -> HostCheck:
    """Turn a host's ``"PY_VERSION RAY_VERSION"`` answer into a verdict."""
    try:
        py, remote_ray = answer.split()[-2:]
        major, minor = (int(x) for x in py.split(".")[:2])
    except ValueError:
        return HostCheck(host, False, f"unexpected answer from its Python: {answer!r}")
    if (major, minor) < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return HostCheck(host, False, f"Python {py} is older than the {need} deepmorning needs")
    if remote_ray == "none":
        return HostCheck(host, True, f"Python {py}; Ray not installed yet (setup_commands will)")
    if remote_ray != ray_version:
        return HostCheck(host, False, f"Ray {remote_ray} there, {ray_version} here: versions "
                         "must match (setup_commands install the pinned Ray)")
    return HostCheck(host, True, f"Python {py}, Ray {remote_ray}")


def preflight(config: Mapping[str, Any], timeout: float = 5.0) -> list[HostCheck]:
    """Check every host of an on-prem (provider ``local``) config; [] for cloud providers."""
    import ray

    provider = config.get("provider") or {}
    if provider.get("type") != "local" or "coordinator_address" in provider:
        return []
    hosts = [provider.get("head_ip"), *(provider.get("worker_ips") or [])]
    auth = config.get("auth") or {}
    python = config_python(config)
    return [check_host(str(h), auth, python, ray.__version__, timeout) for h in hosts if h]


# -- running the ray CLI --------------------------------------------------------------------------
def ray_cli() -> str:
    """The ``ray`` executable of this interpreter's Ray installation."""
    found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if not found:
        raise DeepmorningError("the `ray` command is not installed next to this Python")
    return found


def launcher_cwd(path: Path) -> Path:
    """Where to run ``ray up``: the checkout holding ``clusters/`` (file_mounts use ``.``)."""
    resolved = path.resolve()
    if resolved.parent.name == cluster_config.CLUSTERS_DIR:
        return resolved.parent.parent
    return Path.cwd()


def run_ray(args: Sequence[str], path: Path) -> None:
    """Run ``ray ARGS`` in the foreground; a non-zero exit becomes one line."""
    cmd = [ray_cli(), *args]
    click.echo(f"$ {' '.join(shlex.quote(c) for c in cmd)}", err=True)
    try:
        code = subprocess.call(cmd, cwd=launcher_cwd(path))
    except KeyboardInterrupt:
        raise DeepmorningError(f"interrupted `ray {args[0]}`") from None
    if code != 0:
        raise DeepmorningError(f"`ray {args[0]}` failed with exit status {code}")


def _check_token_mount(config: Mapping[str, Any]) -> None:
    for remote, local in (config.get("file_mounts") or {}).items():
        if "auth_token" in str(remote) and not Path(os.path.expanduser(str(local))).is_file():
            raise DeepmorningError(
                f"the config copies the Ray token {local} to the nodes but it does not exist; "
                "create it with `ray get-auth-token --generate`"
            )


def _fake_up(cfg: Mapping[str, Any]) -> None:
    """``cluster up`` of a fake_multinode config: the head on this machine (no ``ray up``)."""
    state = fake_cluster.up(cfg, ray_cli())
    name = state["name"]
    click.echo(f"fake cluster {name} is up: head pid {state['pid']}, GCS "
               f"{state['gcs_address']}, dashboard {state['dashboard_url']} (log {state['log']})")
    click.echo(f"next: deepmorning job submit --address {state['dashboard_url']} -- nas search "
               "...   # then: deepmorning cluster down clusters/fake.yaml")


# -- commands -------------------------------------------------------------------------------------
@click.group()
def cluster() -> None:
    """Validate cluster configs, start and stop clusters, and check a running one.

    \b
    deepmorning cluster validate clusters/*.yaml clusters/kuberay/*.yaml
    deepmorning cluster up aws          # ray up clusters/aws.yaml (pre-flight for local.yaml)
    deepmorning cluster dashboard aws   # forward the dashboard to http://127.0.0.1:8265
    deepmorning cluster attach aws      # a shell on the head
    deepmorning cluster down aws
    deepmorning --address HOST:6379 cluster selftest   # tasks on every node, metrics, storage
    """


@cluster.command()
@click.argument("files", nargs=-1, required=True)
def validate(files: tuple[str, ...]) -> None:
    """Check launcher YAMLs (Ray's schema and defaults) and KubeRay manifests, offline.

    Prints one line per file (``ok: …``) or per problem (``FILE: problem``) on stdout, and, when
    any file failed, one ``error:`` line on stderr.
    """
    failed = 0
    for name in files:
        try:
            path = cluster_config.resolve(name)
        except FileNotFoundError as exc:
            click.echo(f"{name}: {exc}")
            failed += 1
            continue
        problems, described = cluster_config.validate_file(path)
        for problem in problems:
            click.echo(f"{path}: {problem}")  # the report; stderr gets the one error line
        if problems:
            failed += 1
            continue
        click.echo(f"ok: {path}: {'; '.join(described)}")
        for warning in cluster_config.warnings_of(path):
            console.warn(f"{path}: {warning}")
    if failed:
        raise DeepmorningError(f"{failed} of {len(files)} file(s) failed validation")


@cluster.command(context_settings={"ignore_unknown_options": True})
@click.argument("config")
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation.")
@click.option("--no-preflight", is_flag=True, help="Skip the host checks of on-prem configs.")
@click.option("--ssh-timeout", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="Seconds the pre-flight waits for each host.")
@click.argument("ray_args", nargs=-1, type=click.UNPROCESSED)
def up(config: str, yes: bool, no_preflight: bool, ssh_timeout: float,
       ray_args: tuple[str, ...]) -> None:
    """Start or update a cluster: `ray up CONFIG` after validation and pre-flight."""
    path = config_path(config)
    cfg = load_launcher_config(path)
    if fake_cluster.is_fake(cfg):
        _fake_up(cfg)
        return
    _check_token_mount(cfg)
    if not no_preflight:
        checks = preflight(cfg, timeout=ssh_timeout)
        for check in checks:
            click.echo(f"{'ok' if check.ok else 'FAIL'}: {check.host}: {check.detail}")
        bad = [c for c in checks if not c.ok]
        if bad:
            raise DeepmorningError(
                f"host {bad[0].host} failed the pre-flight: {bad[0].detail}"
                + (f" (and {len(bad) - 1} more host(s))" if len(bad) > 1 else "")
            )
    run_ray(["up", str(path.resolve()), *(["--yes"] if yes else []), *ray_args], path)
    click.echo(f"next: deepmorning cluster dashboard {config}   # then deepmorning job submit …")


@cluster.command(context_settings={"ignore_unknown_options": True})
@click.argument("config")
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation.")
@click.argument("ray_args", nargs=-1, type=click.UNPROCESSED)
def down(config: str, yes: bool, ray_args: tuple[str, ...]) -> None:
    """Tear a cluster down: `ray down CONFIG`."""
    path = config_path(config)
    cfg = load_launcher_config(path)
    if fake_cluster.is_fake(cfg):
        pids = fake_cluster.down(str(cfg["cluster_name"]))
        click.echo(f"fake cluster {cfg['cluster_name']} is down: stopped {len(pids)} "
                   f"process(es) ({' '.join(map(str, pids))})")
        return
    run_ray(["down", str(path.resolve()), *(["--yes"] if yes else []), *ray_args], path)


@cluster.command(context_settings={"ignore_unknown_options": True})
@click.argument("config")
@click.argument("ray_args", nargs=-1, type=click.UNPROCESSED)
def attach(config: str, ray_args: tuple[str, ...]) -> None:
    """Open a shell on the head node: `ray attach CONFIG`."""
    path = config_path(config)
    load_launcher_config(path)
    run_ray(["attach", str(path.resolve()), *ray_args], path)


@cluster.command(context_settings={"ignore_unknown_options": True})
@click.argument("config")
@click.option("--port", "-p", type=int, default=8265, show_default=True,
              help="Local port the dashboard is forwarded to.")
@click.argument("ray_args", nargs=-1, type=click.UNPROCESSED)
def dashboard(config: str, port: int, ray_args: tuple[str, ...]) -> None:
    """Forward the head's dashboard to http://127.0.0.1:PORT: `ray dashboard` over SSH, or
    `kubectl port-forward` for a KubeRay RayCluster manifest."""
    path = config_path(config)
    docs = _documents(path)
    if cluster_config.kind_of(docs[0]) == "kuberay":
        forward_kuberay(docs[0], port, ray_args)
        return
    load_launcher_config(path)
    click.echo(f"dashboard and Jobs API on http://127.0.0.1:{port} while this runs (Ctrl-C ends)",
               err=True)
    run_ray(["dashboard", str(path.resolve()), "--port", str(port), *ray_args], path)


def _documents(path: Path) -> list[Any]:
    try:
        return cluster_config.load_documents(path)
    except ValueError as exc:
        raise DeepmorningError(f"{path}: {exc}") from None


def port_forward_command(doc: Mapping[str, Any], port: int) -> list[str]:
    """``kubectl port-forward`` to a RayCluster's head Service (KubeRay names it NAME-head-svc)."""
    name = get_in(doc, "metadata", "name")
    if doc.get("kind") != "RayCluster" or not name:
        raise DeepmorningError(
            f"a {doc.get('kind')}'s cluster is named by KubeRay; forward it with `kubectl "
            "port-forward svc/$(kubectl get rayjob NAME -o jsonpath='{.status.rayClusterName}')"
            f"-head-svc {port}:8265`"
        )
    namespace = get_in(doc, "metadata", "namespace")
    return ["kubectl", "port-forward", *(["-n", str(namespace)] if namespace else []),
            f"svc/{name}-head-svc", f"{port}:8265"]


def token_hint(doc: Mapping[str, Any]) -> str | None:
    """The shell line exporting the cluster's token for ``deepmorning job``, if from a Secret."""
    secret = kuberay_config.token_secret(doc)
    if secret is None:
        return None
    name, key = secret
    return (f"export RAY_AUTH_TOKEN=\"$(kubectl get secret {name} "
            f"-o jsonpath='{{.data.{key}}}' | base64 -d)\"")


def forward_kuberay(doc: Mapping[str, Any], port: int, extra: Sequence[str]) -> None:
    cmd = [*port_forward_command(doc, port), *extra]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise DeepmorningError(f"kubectl is not installed; run `{' '.join(cmd)}` where it is")
    hint = token_hint(doc)
    click.echo(f"dashboard and Jobs API on http://127.0.0.1:{port} while this runs (Ctrl-C ends)")
    if hint:
        click.echo(f"the cluster uses token authentication; in the shell of `deepmorning job`: "
                   f"{hint}")
    click.echo(f"$ {' '.join(shlex.quote(c) for c in cmd)}", err=True)
    try:
        code = subprocess.call([kubectl, *cmd[1:]])
    except KeyboardInterrupt:
        return
    if code != 0:
        raise DeepmorningError(f"`kubectl port-forward` failed with exit status {code}")


@cluster.command()
@click.option("--duration", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Keep exporting the selftest metrics for this many seconds.")
@click.option("--output", default=None, metavar="PATH",
              help="Check that PATH is usable as a multi-node output (shared storage guard).")
@click.option("--run", "run_name", default=None, help="Run tag of the metrics.")
@click.pass_obj
def selftest(settings: Any, duration: float, output: str | None, run_name: str | None) -> None:
    """Check a running cluster: a task on every node, GPUs, metrics and the output path."""
    from deepmorning.ops import selftest as st
    from deepmorning.platform import runtime

    conn = runtime.connect(getattr(settings, "address", None))
    try:
        click.echo(f"dashboard: {conn.dashboard_url or '(not running)'}")
        click.echo(f"driver python: {sys.executable}")
        rows = st.probe_nodes()
        console.print_table("nodes", rows, ["ip", "hostname", "python", "ray", "gpus"])
        if output is not None:
            st.check_output(output)
            click.echo(f"output {output}: usable by all {len(rows)} node(s)")
        st.export_metrics(run_name or f"selftest-{time.strftime('%Y%m%d-%H%M%S')}",
                          len(rows), duration)
        click.echo("selftest ok")
    finally:
        runtime.shutdown()
