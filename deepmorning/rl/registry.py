"""The algorithms ``deepmorning rl`` knows, each described by an :class:`AlgoSpec`.

An algorithm module registers itself at import time::

    register(AlgoSpec(name="dqn", presets=PRESETS, build_config=build_config, ...))

and the runner (training loop, checkpoints, evaluation) works with any registered spec.
Built-in algorithm modules are listed in :data:`BUILTIN_MODULES` and imported on first lookup;
a module that is not there (yet) is skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from deepmorning.platform.errors import DeepmorningError

#: Modules that define built-in algorithms (each calls :func:`register` on import).
BUILTIN_MODULES = ("deepmorning.rl.dqn", "deepmorning.rl.ddpg")


@dataclass(frozen=True)
class AlgoSpec:
    """How the runner builds and drives one algorithm.

    Attributes:
        name: the ALGO argument of ``deepmorning rl train``.
        presets: preset name -> a function returning the preset's hyperparameters (a dict of
            plain JSON values, stored in the run's config.json).
        default_preset: env id -> the preset to use when ``--preset`` is not given.
        build_config: (run config dict) -> a ready RLlib ``AlgorithmConfig``. The run config
            holds ``env``, ``hyperparameters``, ``seed``, ``num_env_runners`` and
            ``num_gpus_per_learner``.
        check_spaces: (observation space, action space, env id) -> None; raise
            :class:`DeepmorningError` for an environment the algorithm cannot handle.
        description: one line for ``--help``.
        extra: free-form, algorithm-specific data for the algorithm's own use.
        defaults: every hyperparameter ``--set`` may reach, with its default; a preset's
            values override them.
    """

    name: str
    presets: Mapping[str, Callable[[], dict[str, Any]]]
    default_preset: Callable[[str], str]
    build_config: Callable[[Mapping[str, Any]], Any]
    check_spaces: Callable[[gym.Space, gym.Space, str], None]
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def preset(self, name: str) -> dict[str, Any]:
        if name not in self.presets:
            known = ", ".join(sorted(self.presets))
            raise DeepmorningError(
                f"unknown preset '{name}' for {self.name}; choose one of: {known}"
            )
        return {**self.defaults, **self.presets[name]()}


_REGISTRY: dict[str, AlgoSpec] = {}
_loaded = False


def register(spec: AlgoSpec) -> AlgoSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency inside the module is a real error
                raise


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> AlgoSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise DeepmorningError(f"unknown algorithm '{name}'; choose one of: {', '.join(names())}")
    return _REGISTRY[name]
