"""Offline validation of cluster configurations: Ray launcher YAMLs and KubeRay manifests.

Launcher configs (``ray up``) are checked with Ray's own JSON schema
(``ray/autoscaler/ray-schema.json``) and then filled out and validated the way ``ray up`` does
(``prepare_config`` + ``validate_config``); neither touches a cloud. KubeRay manifests
(``RayCluster``, ``RayJob``) are checked against the fields their CRDs require. Grafana
dashboards (JSON with ``panels``) get a light structural check.

Every function returns a list of problems, one line each; an empty list means valid.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import io
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

KUBERAY_KINDS = ("RayCluster", "RayJob", "RayService")
CLUSTERS_DIR = "clusters"


# -- files ----------------------------------------------------------------------------------------
def load_documents(path: Path) -> list[Any]:
    """The YAML (or JSON) documents of ``path``; raise ValueError with one line if unreadable."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read it ({exc.strerror or exc})") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"not valid YAML{where}: {problem}") from None
    if not docs:
        raise ValueError("empty file")
    return docs


def kind_of(doc: Any) -> str:
    """``launcher``, ``kuberay`` or ``grafana``."""
    if isinstance(doc, Mapping) and "apiVersion" in doc and "kind" in doc:
        return "kuberay"
    if isinstance(doc, Mapping) and "panels" in doc:
        return "grafana"
    return "launcher"


def validate_file(path: Path) -> tuple[list[str], list[str]]:
    """``(problems, descriptions)`` for one file; problems empty means valid."""
    try:
        docs = load_documents(path)
    except ValueError as exc:
        return [str(exc)], []
    problems: list[str] = []
    described: list[str] = []
    for doc in docs:
        kind = kind_of(doc)
        if kind == "kuberay":
            problems += validate_kuberay(doc)
            family = "KubeRay" if doc.get("kind") in KUBERAY_KINDS else "Kubernetes"
            described.append(f"{family} {doc.get('kind')} '{_get(doc, 'metadata', 'name')}'")
        elif kind == "grafana":
            problems += validate_grafana(doc)
            described.append(f"Grafana dashboard '{doc.get('title')}'")
        else:
            problems += validate_launcher(doc)
            if isinstance(doc, Mapping):
                provider = _get(doc, "provider", "type")
                described.append(f"Ray launcher config '{doc.get('cluster_name')}' ({provider})")
    return problems, described


def resolve(name: str, search: Iterable[Path] = ()) -> Path:
    """A config path: ``name`` itself, else ``clusters/NAME[.yaml]`` in the working directory or
    next to the deepmorning sources. Raises FileNotFoundError naming the places tried."""
    given = Path(name).expanduser()
    if given.exists():
        return given
    roots = [*search, Path.cwd() / CLUSTERS_DIR, Path(__file__).resolve().parents[2] / CLUSTERS_DIR]
    tried = []
    for root in roots:
        for candidate in (root / name, root / f"{name}.yaml", root / f"{name}.yml"):
            tried.append(str(candidate))
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no cluster config '{name}' (looked for {name} and in {roots[-2]})")


# -- Ray cluster launcher -------------------------------------------------------------------------
def _ray_schema() -> dict[str, Any]:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _where(path: Iterable[Any]) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "top level"


def _schema_problem(error: Any) -> str:
    """One line for a jsonschema error, with a spelling suggestion for unknown keys."""
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        hints = []
        for key in extra:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        legacy = [k for k in extra if k in ("head_node", "worker_nodes")]
        if legacy:
            return (f"{where}: '{legacy[0]}' is the deprecated format; describe nodes in "
                    "available_node_types and name the head in head_node_type")
        return f"{where}: unknown key {', '.join(hints)}"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"{where}: missing required key '{missing[0] if missing else error.message}'"
    return f"{where}: {error.message}"


def validate_launcher(config: Any) -> list[str]:
    """Problems of a ``ray up`` config: Ray's schema, then Ray's own fill-out and checks."""
    if not isinstance(config, Mapping):
        return ["a Ray cluster config must be a mapping of keys (cluster_name, provider, ...)"]
    import jsonschema

    raw = dict(config)
    if _get(raw, "provider", "type") == "local":
        raw.pop("min_workers", None)  # accepted for on-prem clusters, moved by prepare_config
    validator = jsonschema.Draft7Validator(_ray_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    problems = [_schema_problem(e) for e in errors]
    if problems:
        return problems
    problems += _ray_prepare_and_validate(config)
    problems += _deepmorning_checks(config)
    return problems


def _ray_prepare_and_validate(config: Mapping[str, Any]) -> list[str]:
    """Run Ray's ``prepare_config`` (defaults) and ``validate_config`` like ``ray up`` does."""
    from ray.autoscaler._private import util

    quiet = logging.getLogger("ray.autoscaler")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        # Ray's cli_logger prints its own PANIC lines before raising: keep them out of ours.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            prepared = util.prepare_config(copy.deepcopy(dict(config)))
            util.validate_config(prepared)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - cli_logger.abort raises click errors
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return [f"Ray rejects the config: {text.strip().splitlines()[0]}"]
    finally:
        quiet.setLevel(level)
    return []


def _deepmorning_checks(config: Mapping[str, Any]) -> list[str]:
    commands = [*config.get("setup_commands", []), *config.get("head_setup_commands", [])]
    for node in (config.get("available_node_types") or {}).values():
        commands += node.get("worker_setup_commands", []) if isinstance(node, Mapping) else []
    if not any("deepmorning" in str(c) for c in commands):
        return ["setup_commands: nothing installs deepmorning on the nodes "
                "(add e.g. `pip install deepmorning` or a git URL)"]
    return []


# -- KubeRay --------------------------------------------------------------------------------------
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


# -- Grafana --------------------------------------------------------------------------------------
def validate_grafana(doc: Mapping[str, Any]) -> list[str]:
    """A Grafana dashboard needs a title, a uid and panels whose targets have expressions."""
    problems = [f"{key}: missing" for key in ("title", "uid") if not doc.get(key)]
    panels = doc.get("panels")
    if not isinstance(panels, list) or not panels:
        return [*problems, "panels: missing or empty"]
    for i, panel in enumerate(panels):
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets or not all(t.get("expr") for t in targets):
            problems.append(f"panels[{i}] ('{panel.get('title')}'): a target has no expr")
    return problems
