"""What a Ray cluster can run: the nodes it has now and the node types its autoscaler can add.

A task fits a cluster when one node has every resource it asks for. The live nodes come from
Ray; the node types the autoscaler may start come, in this order, from

1. a cluster file the user names (``--cluster-config``): a Ray launcher YAML
   (``available_node_types``) or a KubeRay ``RayCluster``/``RayJob`` (``workerGroupSpecs``);
2. the cluster configuration the autoscaler publishes in the GCS (what Ray Data reads too,
   ``ray._private.state.state.get_cluster_config()``);
3. ``~/ray_bootstrap_config.yaml`` on the head of a ``ray up`` cluster (the autoscaler's file).

Shipped configs start their GPU workers at 0, so a GPU job checked against live nodes only
would be refused on every one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.yamlfile import load_documents

if TYPE_CHECKING:
    from deepmorning.platform.runtime import Connection

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict[str, float]
    max_count: int  # -1: no limit


def fits(need: Mapping[str, float], resources: Mapping[str, float]) -> bool:
    return all(amount <= 0 or resources.get(key, 0) >= amount for key, amount in need.items())


def _quantity(value: Any) -> float:
    """A Kubernetes quantity ("7", "500m", 2) as a number of units."""
    text = str(value).strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def _kuberay_groups(spec: Mapping[str, Any]) -> list[NodeType]:
    types = []
    for group in spec.get("workerGroupSpecs") or []:
        params = group.get("rayStartParams") or {}
        containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or [{}]
        res = containers[0].get("resources") or {}
        amounts = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        resources = {
            "CPU": _quantity(params.get("num-cpus", amounts.get("cpu", 0))),
            "GPU": _quantity(params.get("num-gpus", amounts.get("nvidia.com/gpu", 0))),
        }
        max_count = group.get("maxReplicas", group.get("replicas", 0))
        types.append(NodeType(str(group.get("groupName", "worker")), resources, int(max_count)))
    return types


def node_types_from_config(doc: Mapping[str, Any]) -> list[NodeType]:
    """Node types of a launcher config or a KubeRay manifest (the head's excluded)."""
    if "apiVersion" in doc:  # KubeRay
        spec = doc.get("spec") or {}
        if doc.get("kind") in ("RayJob", "RayService"):
            spec = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or {}
        return _kuberay_groups(spec)
    head = doc.get("head_node_type")
    default_max = int(doc.get("max_workers", 2))
    types = []
    for name, node in (doc.get("available_node_types") or {}).items():
        if name == head or not isinstance(node, Mapping):
            continue
        resources = {k: float(v) for k, v in (node.get("resources") or {}).items()}
        types.append(NodeType(str(name), resources, int(node.get("max_workers", default_max))))
    return types


def node_types_from_file(path: Path) -> list[NodeType]:
    try:
        docs = load_documents(path)
    except ValueError as exc:
        raise DeepmorningError(f"cluster config {path}: {exc}") from None
    types = [t for doc in docs if isinstance(doc, Mapping) for t in node_types_from_config(doc)]
    if not types:
        raise DeepmorningError(f"cluster config {path} names no worker node types "
                               "(available_node_types or workerGroupSpecs)")
    return types


def node_types_from_cluster() -> list[NodeType]:
    """Node types the running cluster's autoscaler published, or those of its bootstrap file."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001 - no autoscaler state: a fixed cluster
        config = None
    if config is not None and config.node_group_configs:
        return [NodeType(g.name, {k: float(v) for k, v in g.resources.items()}, g.max_count)
                for g in config.node_group_configs]
    bootstrap = BOOTSTRAP_CONFIG.expanduser()
    if bootstrap.is_file():
        try:
            return node_types_from_file(bootstrap)
        except DeepmorningError:
            return []
    return []


def check_fits(need: Mapping[str, float], nodes: list[Mapping[str, float]],
               node_types: list[NodeType], what: str, less: str = "",
               cluster_config_flag: bool = False) -> str | None:
    """None if a live node fits ``need``; a one-line note if only an addable node type does.

    Raises a one-line :class:`DeepmorningError` when neither does. ``nodes`` are the live
    nodes' resources (``{"CPU": .., "GPU": ..}``); ``less`` is the flag that asks for less
    (``--gpus-per-child 0``); ``cluster_config_flag``: the command takes ``--cluster-config``.
    """
    wanted = ", ".join(f"{v:g} {k}" for k, v in need.items() if v > 0) or "nothing"
    if any(fits(need, node) for node in nodes):
        return None
    addable = [t for t in node_types if t.max_count != 0 and fits(need, t.resources)]
    if addable:
        names = ", ".join(f"'{t.name}'" for t in addable)
        return (f"no node has {wanted} for one {what} now; the autoscaler can add {names} "
                "nodes, so the run waits for them")
    gpu = need.get("GPU", 0) > 0 and not any(node.get("GPU", 0) for node in nodes)
    hint = ": pass --cluster-config FILE" if cluster_config_flag else ""
    source = (" nor any node type the autoscaler can add" if node_types else
              f" (and no autoscaler node types are known{hint})")
    reason = "the Ray cluster has no GPU" if gpu else f"no node of the Ray cluster has {wanted}"
    example = f" (e.g. {less})" if less else ""
    raise DeepmorningError(f"each {what} asks for {wanted} but {reason}{source}; "
                           f"ask for less{example} or use a bigger cluster")


def check_cluster(need: Mapping[str, float], conn: Connection, what: str, *,
                  node_types: list[NodeType] | None = None, less: str = "",
                  cluster_config_flag: bool = False) -> str | None:
    """:func:`check_fits` against the connected cluster: one ``what`` (a NAS child, a Tune trial,
    an RL EnvRunner) asking for ``need`` fits a live node or a node type the autoscaler can
    add. ``node_types``: from ``--cluster-config``; by default those the cluster publishes.
    Every area checks its asks here, so a GPU job is accepted on the shipped configs, whose
    GPU workers start at 0."""
    if node_types is None:
        node_types = node_types_from_cluster()
    nodes = [{"CPU": n["cpus"], "GPU": n["gpus"]} for n in conn.nodes]
    return check_fits(need, nodes, node_types, what, less, cluster_config_flag)
