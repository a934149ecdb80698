"""Offline validation of cluster configurations: Ray launcher YAMLs and KubeRay manifests.

This module reads the files and sends each document to its validator:
:mod:`~deepmorning.ops.launcher_config` (``ray up`` YAMLs, with Ray's own schema and checks),
:mod:`~deepmorning.ops.kuberay_config` (KubeRay manifests) and
:mod:`~deepmorning.ops.grafana_config` (the Grafana dashboard).

Every function returns a list of problems, one line each; an empty list means valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from deepmorning.ops.grafana_config import validate_grafana
from deepmorning.ops.kuberay_config import KUBERAY_KINDS, auth_warnings, validate_kuberay
from deepmorning.ops.launcher_config import validate_launcher
from deepmorning.platform.yamlfile import get_in, load_documents

__all__ = ["CLUSTERS_DIR", "kind_of", "load_documents", "resolve", "validate_file", "warnings_of",
           "validate_grafana", "validate_kuberay", "validate_launcher"]

CLUSTERS_DIR = "clusters"


# -- files ----------------------------------------------------------------------------------------
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
            described.append(f"{family} {doc.get('kind')} '{get_in(doc, 'metadata', 'name')}'")
        elif kind == "grafana":
            problems += validate_grafana(doc)
            described.append(f"Grafana dashboard '{doc.get('title')}'")
        else:
            problems += validate_launcher(doc)
            if isinstance(doc, Mapping):
                provider = get_in(doc, "provider", "type")
                described.append(f"Ray launcher config '{doc.get('cluster_name')}' ({provider})")
    return problems, described


def warnings_of(path: Path) -> list[str]:
    """What a valid file still gets wrong (a KubeRay manifest without token authentication)."""
    try:
        docs = load_documents(path)
    except ValueError:
        return []
    return [w for doc in docs if kind_of(doc) == "kuberay" for w in auth_warnings(doc)]


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
