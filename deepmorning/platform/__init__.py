"""The library every area stands on: Ray runtime, run directories, errors, progress, metrics, plots.

It holds no command-line code: the commands around clusters, jobs and results live in
:mod:`deepmorning.ops`.
"""

from deepmorning.platform.errors import DeepmorningError

__all__ = ["DeepmorningError"]
