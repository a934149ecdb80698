"""The models ``deepmorning tune`` knows, each described by a :class:`TuneModel`.

A model module (one paper, one module: ``srcnn.py``, ``basics.py`` …) registers itself at import
time::

    MODEL = register(TuneModel(name="srcnn", trainable=train, space=SPACE, metric="psnr", ...))

and the study runner (:mod:`deepmorning.tuning.runner`: Tuner, run directory, progress, resume,
claim studies) works with any registered model. Built-in model modules are listed in
:data:`BUILTIN_MODULES` and imported on first lookup; a module that is not there (yet) is skipped.
Further modules (a user's own models, the tests' toy model) are named, comma-separated, in the
environment variable ``DEEPMORNING_TUNE_MODULES``; each must import.

The trainable contract (see :mod:`deepmorning.tuning.trial` for the helpers):

- a Ray Tune *function* trainable ``train(config: dict) -> None``;
- ``config`` holds every key of the model's ``space`` (resolved to plain values) plus
  ``seed`` (int) and ``epochs`` (int, the number of reports it makes);
- once per epoch it calls :func:`deepmorning.tuning.trial.report` with a dict of metrics that
  contains ``epoch`` (1-based) and the model's ``metric``, plus the state to checkpoint;
- it starts from :func:`deepmorning.tuning.trial.restore` when Tune hands it a checkpoint, so
  a resumed or PBT-exploited trial continues rather than restarts;
- it uses :func:`deepmorning.tuning.trial.device` (CUDA when Ray gave the trial a GPU, else
  CPU), so the same code runs with ``--gpus-per-trial 0`` and ``--gpus-per-trial 0.5``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmorning.platform.errors import DeepmorningError

#: Modules that define built-in models (each calls :func:`register` on import).
BUILTIN_MODULES = (
    "deepmorning.tuning.srcnn",  # srcnn, vdsr
    "deepmorning.tuning.basics",
    "deepmorning.tuning.deformable",
    "deepmorning.tuning.gan",  # gan, infogan
    "deepmorning.tuning.seq2seq",
    "deepmorning.tuning.ntm",
    "deepmorning.tuning.relnet",
    "deepmorning.tuning.imbalance",
)

#: Environment variable naming extra model modules (comma-separated import paths).
MODULES_ENV = "DEEPMORNING_TUNE_MODULES"

#: (final results of a study, one row per trial: columns ``arm``, ``seed`` and every metric
#: the trainable reported, last value) -> (held, one sentence saying what was measured).
Verdict = Callable[[Any], tuple[bool, str]]

#: (trial config, the trial's latest checkpoint directory, folder to write into, a tag for
#: the file names) -> the PNGs written.
Pictures = Callable[[Mapping[str, Any], Path, Path, str], list[Path]]


@dataclass(frozen=True)
class Study:
    """A named claim of the paper, run as a grid of arms × seeds.

    Attributes:
        name: the NAME of ``deepmorning tune MODEL --study NAME``.
        claim: the claim in one sentence, as the paper makes it.
        arms: arm name -> config overrides that make the arm (on top of ``base``).
        metric: the reported metric the claim is about; ``mode`` "max" or "min".
        paper: the paper's own figure for the same comparison, with its figure/table number.
        verdict: decides whether the claim held at this scale (see :data:`Verdict`).
        base: overrides shared by every arm (e.g. ``{"depth": 30}``), on top of the quick scale.
        paper_scale: overrides for ``--scale paper`` (the paper's sizes, for a GPU cluster).
        seeds: default number of seeds per arm (``--seeds`` changes it; at least 3).
        columns: further reported metrics shown in the claim table beside ``metric``.
        pictures: per-arm pictures (best seed of each arm); defaults to the model's.
    """

    name: str
    claim: str
    arms: Mapping[str, Mapping[str, Any]]
    metric: str
    mode: str
    paper: str
    verdict: Verdict
    base: Mapping[str, Any] = field(default_factory=dict)
    paper_scale: Mapping[str, Any] = field(default_factory=dict)
    seeds: int = 3
    columns: tuple[str, ...] = ()
    pictures: Pictures | None = None

    def __post_init__(self) -> None:  # the metric is always shown; each column once
        columns = tuple(dict.fromkeys(c for c in self.columns if c != self.metric))
        object.__setattr__(self, "columns", columns)


@dataclass(frozen=True)
class TuneModel:
    """How the study runner tunes one model.

    Attributes:
        name: the MODEL argument of ``deepmorning tune``.
        description: one line for ``deepmorning tune list``.
        paper: the citation, e.g. "Dong et al. 2014, Image Super-Resolution Using Deep
            Convolutional Networks".
        trainable: the Ray Tune function trainable (see the module docstring).
        space: the search space: key -> a plain value (fixed; the paper's default) or a Tune
            domain (``tune.loguniform`` …) searched by default. Must include ``epochs``.
        metric, mode: what "best" means ("max" or "min").
        quick: overrides that shrink the work for a CPU laptop (the default scale; ``--scale
            paper`` drops them). Say in the module docstring what they shrink.
        studies: name -> :class:`Study`.
        pictures: PNGs of the best trial (e.g. a side-by-side, a sample grid); optional.
    """

    name: str
    description: str
    paper: str
    trainable: Callable[[dict[str, Any]], None]
    space: Mapping[str, Any]
    metric: str
    mode: str
    quick: Mapping[str, Any] = field(default_factory=dict)
    studies: Mapping[str, Study] = field(default_factory=dict)
    pictures: Pictures | None = None

    def study(self, name: str) -> Study:
        if name not in self.studies:
            known = ", ".join(sorted(self.studies)) or "none"
            raise DeepmorningError(
                f"unknown study '{name}' for {self.name}; choose one of: {known}"
            )
        return self.studies[name]


_REGISTRY: dict[str, TuneModel] = {}
_loaded = False


def register(model: TuneModel) -> TuneModel:
    if model.mode not in ("max", "min"):
        raise ValueError(f"{model.name}: mode must be 'max' or 'min', not {model.mode!r}")
    if "epochs" not in model.space:
        raise ValueError(f"{model.name}: the space must define 'epochs'")
    _REGISTRY[model.name] = model
    return model


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
    for module in extra_modules():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise DeepmorningError(f"{MODULES_ENV} names '{module}', which cannot be imported"
                                   ) from exc


def extra_modules() -> list[str]:
    """The modules named in ``DEEPMORNING_TUNE_MODULES``."""
    return [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> TuneModel:
    _load_builtins()
    if name not in _REGISTRY:
        raise DeepmorningError(f"unknown model '{name}'; choose one of: {', '.join(names())}")
    return _REGISTRY[name]

