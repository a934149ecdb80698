"""Offline validation of KubeRay manifests (``RayCluster``, ``RayJob``, ``RayService``).

Checked against the fields their CRDs require; plain Kubernetes objects next to them (the shared
storage claim, the token Secret) get a light check. Returns a list of problems, one line each;
empty means valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KUBERAY_KINDS = ("RayCluster", "RayJob", "RayService")


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _check_pod_template(template: Any, where: str) -> list[str]:
    if not isinstance(template, Mapping):
        return [f"{where}.template: missing (a pod template with spec.containers)"]
    containers = _get(template, "spec", "containers")
    if not isinstance(containers, list) or not containers:
        return [f"{where}.template.spec.containers: missing or empty"]
    problems = []
    for i, container in enumerate(containers):
        here = f"{where}.template.spec.containers[{i}]"
        if not isinstance(container, Mapping):
            problems.append(f"{here}: must be a mapping")
            continue
        for key in ("name", "image"):
            if not container.get(key):
                problems.append(f"{here}: missing '{key}'")
    return problems


def _check_ray_cluster_spec(spec: Any, where: str) -> list[str]:
    if not isinstance(spec, Mapping):
        return [f"{where}: missing"]
    problems = []
    head = spec.get("headGroupSpec")
    if not isinstance(head, Mapping):
        problems.append(f"{where}.headGroupSpec: missing")
    else:
        problems += _check_pod_template(head.get("template"), f"{where}.headGroupSpec")
    workers = spec.get("workerGroupSpecs", [])
    if not isinstance(workers, list):
        return [*problems, f"{where}.workerGroupSpecs: must be a list"]
    names: set[str] = set()
    for i, group in enumerate(workers):
        here = f"{where}.workerGroupSpecs[{i}]"
        if not isinstance(group, Mapping):
            problems.append(f"{here}: must be a mapping")
            continue
        name = group.get("groupName")
        if not name:
            problems.append(f"{here}: missing 'groupName' (every worker group needs a name)")
        elif name in names:
            problems.append(f"{here}: groupName '{name}' is used twice")
        names.add(name)
        problems += _check_replicas(group, here)
        problems += _check_pod_template(group.get("template"), here)
    return problems


def _check_replicas(group: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    values = {k: group.get(k) for k in ("minReplicas", "maxReplicas", "replicas")}
    for key, value in values.items():
        if value is not None and (not isinstance(value, int) or value < 0):
            problems.append(f"{where}.{key}: must be a non-negative integer, got {value!r}")
    lo, hi = values["minReplicas"], values["maxReplicas"]
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        problems.append(f"{where}: minReplicas {lo} is larger than maxReplicas {hi}")
    return problems


def validate_kuberay(doc: Mapping[str, Any]) -> list[str]:
    """Problems of a KubeRay ``RayCluster`` / ``RayJob`` / ``RayService`` manifest."""
    kind = doc.get("kind")
    problems = []
    if not str(doc.get("apiVersion", "")).startswith("ray.io/"):
        if kind in KUBERAY_KINDS:
            return [f"apiVersion: expected ray.io/v1, got '{doc.get('apiVersion')}'"]
        return validate_kubernetes(doc)
    if kind not in KUBERAY_KINDS:
        return [*problems, f"kind: expected one of {', '.join(KUBERAY_KINDS)}, got '{kind}'"]
    if not _get(doc, "metadata", "name"):
        problems.append("metadata.name: missing")
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return [*problems, "spec: missing"]
    if kind == "RayCluster":
        problems += _check_ray_cluster_spec(spec, "spec")
    elif kind == "RayJob":
        if not spec.get("entrypoint") and not spec.get("submitterPodTemplate"):
            problems.append("spec.entrypoint: missing (the command the job runs)")
        if "rayClusterSpec" in spec:
            problems += _check_ray_cluster_spec(spec["rayClusterSpec"], "spec.rayClusterSpec")
        elif not spec.get("clusterSelector"):
            problems.append("spec: needs rayClusterSpec (a cluster for the job) or "
                            "clusterSelector (an existing RayCluster)")
    else:
        problems += _check_ray_cluster_spec(spec.get("rayClusterConfig"), "spec.rayClusterConfig")
    return problems


def validate_kubernetes(doc: Mapping[str, Any]) -> list[str]:
    """A plain Kubernetes object next to the KubeRay ones (e.g. the shared-storage claim)."""
    problems = [] if _get(doc, "metadata", "name") else ["metadata.name: missing"]
    if doc.get("kind") == "PersistentVolumeClaim":
        modes = _get(doc, "spec", "accessModes") or []
        if "ReadWriteMany" not in modes:
            problems.append("spec.accessModes: a claim shared by all Ray pods needs ReadWriteMany")
    return problems
