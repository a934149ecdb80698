"""Reading YAML/JSON files (cluster configs, manifests) with one-line errors.

Lives in the library layer because both :mod:`deepmorning.platform.capacity` (what a cluster's
node types can add) and the ops commands (``cluster validate``) read cluster configs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


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


def get_in(doc: Any, *keys: str) -> Any:
    """``doc[k1][k2]…``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc
