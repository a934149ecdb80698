"""Ray runtime: an embedded local Ray by default, any cluster by address.

* No address: start an embedded single-node Ray with the dashboard on 127.0.0.1 (when
  ``ray[default]`` is installed). Ray itself gives the GCS and raylet the node's own IP, never
  loopback, so that workers can reach them. Ray 2.60 turns token authentication on for such
  clusters and keeps the token in ``~/.ray/auth_token``; nothing needs setting.
* ``--address HOST:PORT`` (or ``RAY_ADDRESS``): connect to a running cluster's GCS. A cluster
  started with token authentication needs its token on the client: Ray reads it from
  ``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``. When a
  token is available we switch the client to token mode ourselves (Ray only does that for
  ``address="auto"``), so a head started on this machine just works. For a remote head, copy its
  token (``ray get-auth-token`` there) into ``RAY_AUTH_TOKEN`` on the client.
* ``--address auto``: the cluster started on this machine by ``ray start``.

An unreachable address is reported in one line before Ray starts its long connection retries.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from deepmorning.platform.errors import DeepmorningError, describe_exception

LOOPBACK = "127.0.0.1"


@dataclass
class Connection:
    """How this process is attached to Ray, for ``info`` and for the jobs' start banners."""

    mode: str  # "embedded" or "cluster"
    address: str
    dashboard_url: str | None
    ray_version: str
    nodes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_cpus(self) -> float:
        return sum(n["cpus"] for n in self.nodes)

    @property
    def total_gpus(self) -> float:
        return sum(n["gpus"] for n in self.nodes)


def token_available() -> bool:
    """Whether a Ray auth token can be found the way Ray itself looks for one."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidate = Path(path) if path else Path.home() / ".ray" / "auth_token"
    return candidate.is_file() and candidate.stat().st_size > 0


def use_token_if_available() -> bool:
    """Switch this client to token mode when a token exists and RAY_AUTH_MODE is unset.

    Ray does this by itself only for ``address="auto"``; an explicit address would otherwise
    connect without its token and be refused by a head started with token authentication.
    """
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    return maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def parse_gcs_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (the form ``ray start --head`` prints); raise a user error otherwise."""
    if address.startswith(("http://", "https://")):
        raise DeepmorningError(
            f"{address} looks like a dashboard URL; --address takes the cluster's GCS address "
            "HOST:PORT (default port 6379), e.g. 127.0.0.1:6379"
        )
    if address.startswith("ray://"):
        parsed = urlparse(address)
        host, port = parsed.hostname, parsed.port or 10001
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not host or not port_text.isdigit():
            raise DeepmorningError(f"--address must be HOST:PORT or 'auto', got '{address}'")
        port = int(port_text)
    if not host:
        raise DeepmorningError(f"--address has no host: '{address}'")
    return host, port


def check_reachable(host: str, port: int, timeout: float = 3.0) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DeepmorningError(f"cannot reach a Ray cluster at {host}:{port} ({reason})") from exc


#: Ray loggers whose notices (token auth defaults, the Jobs client's packaging chatter) are not
#: the user's business on every command; they stay in Ray's session logs.
RAY_CHATTER = ("ray", "ray._private.authentication.authentication_token_setup",
               "ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging",
               "ray._private.runtime_env.working_dir")


def quiet_ray_logs() -> None:
    """Raise Ray's chattiest loggers to ERROR in this process."""
    for name in RAY_CHATTER:
        logging.getLogger(name).setLevel(logging.ERROR)


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_dashboard: bool | None = None,
    log_to_driver: bool = True,
) -> Connection:
    """Attach this process to Ray (idempotent: an existing connection is reused)."""
    import ray

    if ray.is_initialized():
        return describe()
    quiet_ray_logs()
    if address in (None, "", "local"):
        try:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=include_dashboard,
                dashboard_host=LOOPBACK,
                log_to_driver=log_to_driver,
                configure_logging=False,
            )
        except Exception as exc:  # noqa: BLE001 - any start failure becomes one line
            raise DeepmorningError(
                f"could not start an embedded Ray: {describe_exception(exc)}"
            ) from exc
    else:
        if address != "auto":
            host, port = parse_gcs_address(address)
            check_reachable(host, port)
            use_token_if_available()
        try:
            ray.init(address=address, log_to_driver=log_to_driver, configure_logging=False)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, AuthenticationError, ...
            hint = ""
            if "Authentication" in type(exc).__name__ or token_available():
                hint = (
                    "; if the cluster uses token authentication, set RAY_AUTH_TOKEN to the "
                    "output of `ray get-auth-token` on its head node"
                )
            raise DeepmorningError(
                f"cannot connect to Ray at {address}: {describe_exception(exc)}{hint}"
            ) from exc
    conn = describe()
    conn.mode = "embedded" if address in (None, "", "local") else "cluster"
    return conn


def describe() -> Connection:
    """Version, address, dashboard and nodes of the current connection."""
    import ray

    ctx = ray.get_runtime_context()
    gcs = ctx.gcs_address
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res = node.get("Resources", {})
        nodes.append(
            {
                "node_id": node["NodeID"][:12],
                "ip": node.get("NodeManagerAddress", "?"),
                "cpus": float(res.get("CPU", 0)),
                "gpus": float(res.get("GPU", 0)),
                "memory_gib": float(res.get("memory", 0)) / 2**30,
                "head": "node:__internal_head__" in res,
            }
        )
    return Connection(
        mode="cluster",
        address=gcs,
        dashboard_url=dashboard_url(),
        ray_version=ray.__version__,
        nodes=nodes,
    )


def dashboard_url() -> str | None:
    """The dashboard's URL as http://host:port, or None when the dashboard is not running."""
    try:
        from ray._private.worker import _global_node, global_worker

        node = _global_node or getattr(global_worker, "node", None)
        url = node.webui_url if node is not None else None
    except Exception:  # noqa: BLE001 - a missing dashboard is not an error
        url = None
    if not url:
        try:
            import ray

            url = ray.get_runtime_context().dashboard_url  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            url = None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
