"""Offline validation of KubeRay manifests (``RayCluster``, ``RayJob``, ``RayService``).

Checked against the fields their CRDs require; plain Kubernetes objects next to them (the shared
storage claim) get a light check. :func:`validate_kuberay` returns problems, one line each;
empty means valid.

Token authentication (:func:`auth_warnings`, :func:`token_secret`): a Ray cluster without it
lets any pod that reaches the dashboard submit jobs, that is run code. A manifest has it when
every Ray container (head, each worker group, and a RayJob's submitter) gets
``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` from a Kubernetes Secret
(``valueFrom.secretKeyRef``, any KubeRay version), or when ``spec.authOptions.mode`` is
``token`` (KubeRay >= 1.5.1 generates the Secret). A manifest without it validates with a
warning; a half-configured one (a worker group without the token would never join) is a problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepmorning.platform.yamlfile import get_in

KUBERAY_KINDS = ("RayCluster", "RayJob", "RayService")
AUTH_DOC = "docs/clusters.md, 'KubeRay with token authentication'"


def _check_pod_template(template: Any, where: str) -> list[str]:
    if not isinstance(template, Mapping):
        return [f"{where}.template: missing (a pod template with spec.containers)"]
    containers = get_in(template, "spec", "containers")
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
    if not get_in(doc, "metadata", "name"):
        problems.append("metadata.name: missing")
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return [*problems, "spec: missing"]
    problems += auth_problems(doc)
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
    problems = [] if get_in(doc, "metadata", "name") else ["metadata.name: missing"]
    if doc.get("kind") == "PersistentVolumeClaim":
        modes = get_in(doc, "spec", "accessModes") or []
        if "ReadWriteMany" not in modes:
            problems.append("spec.accessModes: a claim shared by all Ray pods needs ReadWriteMany")
    return problems


# -- token authentication -------------------------------------------------------------------------
def _cluster_spec(doc: Mapping[str, Any]) -> tuple[Any, str]:
    """The RayCluster spec inside a manifest, with its path for messages."""
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind == "RayJob":
        return spec.get("rayClusterSpec"), "spec.rayClusterSpec"
    if kind == "RayService":
        return spec.get("rayClusterConfig"), "spec.rayClusterConfig"
    return spec, "spec"


def _ray_containers(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(where, container)`` for every container that runs Ray or talks to it."""
    spec, where = _cluster_spec(doc)
    groups: list[tuple[str, Any]] = []
    if isinstance(spec, Mapping):
        groups.append((f"{where}.headGroupSpec", get_in(spec, "headGroupSpec", "template")))
        for i, group in enumerate(spec.get("workerGroupSpecs") or []):
            groups.append((f"{where}.workerGroupSpecs[{i}]", get_in(group, "template")))
    if doc.get("kind") == "RayJob" and get_in(doc, "spec", "submitterPodTemplate"):
        groups.append(("spec.submitterPodTemplate", get_in(doc, "spec", "submitterPodTemplate")))
    found = []
    for here, template in groups:
        for i, container in enumerate(get_in(template, "spec", "containers") or []):
            if isinstance(container, Mapping):
                found.append((f"{here}.template.spec.containers[{i}]", container))
    return found


def _env(container: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []
            if isinstance(e, Mapping) and "name" in e}


def _auth_options(doc: Mapping[str, Any]) -> bool:
    spec, _ = _cluster_spec(doc)
    modes = [get_in(doc, "spec", "authOptions", "mode"), get_in(spec, "authOptions", "mode")]
    return "token" in modes


def auth_problems(doc: Mapping[str, Any]) -> list[str]:
    """Token auth switched on for some Ray containers but not for all, or without its token."""
    if _auth_options(doc):
        return []
    containers = _ray_containers(doc)
    on = [(w, c) for w, c in containers if _env(c).get("RAY_AUTH_MODE", {}).get("value") == "token"]
    if not on:
        return []
    problems = []
    if doc.get("kind") == "RayJob" and not get_in(doc, "spec", "submitterPodTemplate"):
        problems.append("spec.submitterPodTemplate: the job's submitter needs RAY_AUTH_MODE and "
                        "RAY_AUTH_TOKEN too (or use spec.rayClusterSpec.authOptions.mode: token)")
    for where, container in containers:
        env = _env(container)
        if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
            problems.append(f"{where}: RAY_AUTH_MODE=token is missing (other Ray containers "
                            "use token authentication; this one could not join them)")
        elif "RAY_AUTH_TOKEN" not in env:
            problems.append(f"{where}: RAY_AUTH_MODE=token but no RAY_AUTH_TOKEN "
                            "(from the token Secret)")
    return problems


def auth_warnings(doc: Mapping[str, Any]) -> list[str]:
    """Why a valid manifest is still unsafe: no token authentication, or a token in plain text."""
    if not isinstance(doc, Mapping) or doc.get("kind") not in KUBERAY_KINDS:
        return []
    if _auth_options(doc):
        return []
    containers = _ray_containers(doc)
    tokens = [(w, _env(c).get("RAY_AUTH_TOKEN")) for w, c in containers]
    if not any(_env(c).get("RAY_AUTH_MODE", {}).get("value") == "token" for _, c in containers):
        return [f"{doc.get('kind')} '{get_in(doc, 'metadata', 'name')}' runs Ray without token "
                "authentication: any pod that reaches its dashboard can submit jobs; set "
                "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN from a Secret on every Ray container "
                f"({AUTH_DOC})"]
    return [f"{where}: RAY_AUTH_TOKEN is written in the manifest; take it from a Secret "
            "(valueFrom.secretKeyRef)" for where, token in tokens
            if token is not None and "value" in token]


def token_secret(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(secret name, key)`` the head takes RAY_AUTH_TOKEN from, if it takes it from a Secret."""
    for _, container in _ray_containers(doc)[:1]:
        ref = get_in(_env(container).get("RAY_AUTH_TOKEN"), "valueFrom", "secretKeyRef")
        if isinstance(ref, Mapping) and ref.get("name"):
            return str(ref["name"]), str(ref.get("key", "auth_token"))
    return None
