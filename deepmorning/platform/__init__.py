"""The shared layer every area stands on: Ray runtime, run directories, progress, metrics, plots."""

from deepmorning.platform.errors import DeepmorningError

__all__ = ["DeepmorningError"]
