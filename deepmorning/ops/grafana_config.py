"""Offline structural check of the Grafana dashboard in ``clusters/grafana/``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
