"""``deepmorning.platform`` is the library every area stands on: no CLI, and nothing from ``ops``.

Issue 13 §6: cluster and job tooling (with its click groups) lives in ``deepmorning.ops``; the
library layer must import without it so NAS, RL and Tune stay usable as plain Python.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import deepmorning.platform as platform_pkg

AWS = Path(__file__).parents[1] / "clusters" / "aws.yaml"


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
