"""Offline validation of Ray cluster launcher configs (``ray up`` YAMLs).

Checked with Ray's own JSON schema (``ray/autoscaler/ray-schema.json``), then filled out and
validated the way ``ray up`` does (``prepare_config`` + ``validate_config``); neither touches a
cloud. Returns a list of problems, one line each; empty means valid.
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

from deepmorning.platform.yamlfile import get_in


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
    if get_in(raw, "provider", "type") == "local":
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
            if get_in(config, "provider", "type") == "fake_multinode":
                # Ray's wheel lacks the provider's defaults file (fake_multi_node/example.yaml)
                # that prepare_config merges in; the autoscaler reads the config as written,
                # so it must be complete (clusters/fake.yaml is).
                prepared = copy.deepcopy(dict(config))
            else:
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
