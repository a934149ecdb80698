"""``deepmorning.platform`` is the library every area stands on: no CLI, and nothing from ``ops``.

Issue 13 §6: cluster and job tooling (with its click groups) lives in ``deepmorning.ops``; the
library layer must import without it so NAS, RL and Tune stay usable as plain Python. Issue 20
§5: ``platform`` imports no area, and the areas (``nas``, ``rl``, ``tuning``, ``ops``) import
nothing from each other; checked on the source, lazy imports inside functions included.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import deepmorning.platform as platform_pkg

AWS = Path(__file__).parents[1] / "clusters" / "aws.yaml"
PACKAGE = Path(__file__).parents[1] / "deepmorning"
AREAS = ("nas", "rl", "tuning", "ops")


def test_platform_modules_import_neither_click_nor_ops():
    modules = [f"deepmorning.platform.{m.name}"
               for m in pkgutil.iter_modules(platform_pkg.__path__)]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from pathlib import Path\n"
        "from deepmorning.platform import capacity\n"
        f"assert capacity.node_types_from_file(Path({str(AWS)!r}))\n"
        "bad = sorted(m for m in sys.modules if m == 'click' or m.startswith('deepmorning.ops'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) >= 10
    assert out.stdout.strip() == ""


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module ``path`` imports, wherever the import statement stands (module level, in a
    function, under ``TYPE_CHECKING``), relative imports resolved against ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> str | None:
    """``deepmorning.nas.search`` -> ``nas``; ``deepmorning.cli`` -> ``cli``; others: None."""
    parts = module.split(".")
    if parts[0] != "deepmorning" or len(parts) < 2:
        return None
    return parts[1]


def layer_violations() -> list[str]:
    allowed = {"platform": {"platform"}} | {area: {area, "platform"} for area in AREAS}
    bad = []
    for layer, may_use in allowed.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
            if path.name != "__init__.py":
                package = package.rsplit(".", 1)[0]
            for module in sorted(imported_modules(path, package)):
                used = layer_of(module)
                if used in {"cli", "platform", *AREAS} and used not in may_use:
                    bad.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    return bad


def test_platform_imports_no_area_and_areas_import_nothing_from_each_other():
    assert layer_violations() == []


def test_the_layer_check_sees_lazy_and_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\n"
                      "def f():\n    from deepmorning.rl import runner\n"
                      "    import deepmorning.ops.jobs\n")
    found = imported_modules(source, "deepmorning.tuning")
    assert {"deepmorning.tuning.sibling", "deepmorning.rl.runner", "deepmorning.ops.jobs"} <= found
    assert {layer_of(m) for m in found} == {"tuning", "rl", "ops"}
