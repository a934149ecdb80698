"""The search space a run hands to Tune: the model's space at a scale, ``--set``, ``--max-epochs``.

A model's ``space`` holds the paper's defaults as plain values and the searched ranges as Tune
domains (:mod:`deepmorning.tuning.registry`). What a run searches is built in this order:

1. the model's ``space``;
2. ``quick`` on top (the default ``--scale quick``; ``--scale paper`` skips it);
3. for a claim study: the study's ``base``, then (``--scale paper``) its ``paper_scale``;
4. ``--set KEY=VALUE`` (each value checked against the key's entry: an unknown key, a value of
   the wrong type, a value outside a range or not among a choice's options is one ``error:``
   line, raised here, before Ray starts);
5. ``--max-epochs E`` sets ``epochs`` (every trial reports at most E epochs).

``--search grid`` turns every ``tune.choice`` into a ``tune.grid_search`` over its options
(continuous ranges stay random; ``--num-samples`` repeats the grid). A claim study is a grid of
its arms × seeds: ``arm`` and ``seed`` are grid axes and the keys an arm sets follow the arm.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float, Function, Integer

from deepmorning.platform.errors import DeepmorningError
from deepmorning.tuning.registry import Study, TuneModel

SCALES = ("quick", "paper")
RESERVED = ("seed", "arm")  # set by the runner: --seed, and a study's arms


# -- parsing --------------------------------------------------------------------------------------
def parse_sets(items: Iterable[str]) -> dict[str, tuple[Any, str]]:
    """``("lr=1e-3", "act=relu")`` -> ``{key: (parsed value, raw text)}``.

    Values are parsed as JSON (``1e-3``, ``true``, ``[64, 64]``), else YAML, else kept as text.
    """
    import yaml

    out: dict[str, tuple[Any, str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeepmorningError(f"--set takes KEY=VALUE, got '{item}'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
        out[key] = (value, raw)
    return out


# -- describing -----------------------------------------------------------------------------------
def is_grid(spec: Any) -> bool:
    return isinstance(spec, Mapping) and set(spec) == {"grid_search"}


def is_searched(spec: Any) -> bool:
    """A Tune domain or a grid: something the run samples rather than a fixed value."""
    return (isinstance(spec, Domain) and not isinstance(spec, Function)) or is_grid(spec)


def describe(spec: Any) -> Any:
    """A JSON-friendly description of one entry (for config.json and ``tune list``)."""
    if is_grid(spec):
        return {"grid_search": list(spec["grid_search"])}
    if isinstance(spec, Categorical):
        return {"choice": list(spec.categories)}
    if isinstance(spec, (Float, Integer)):
        kind = "loguniform" if _is_log(spec) else "uniform"
        if isinstance(spec, Integer):
            kind = "lograndint" if _is_log(spec) else "randint"
        return {kind: [spec.lower, spec.upper]}
    if isinstance(spec, Domain):
        return {"sample_from": repr(spec)}
    return spec


def describe_space(space: Mapping[str, Any]) -> dict[str, Any]:
    return {key: describe(spec) for key, spec in space.items()}


def _is_log(spec: Domain) -> bool:
    return type(spec.get_sampler()).__name__ == "LogUniform"


def centre(spec: Any) -> Any:
    """One value of a searched entry, the same for every arm of a study: the middle of a
    range (geometric middle of a log range), the first option of a choice or grid."""
    if is_grid(spec):
        return spec["grid_search"][0]
    if isinstance(spec, Categorical):
        return spec.categories[0]
    if isinstance(spec, (Float, Integer)):
        lo, hi = spec.lower, spec.upper
        mid = math.sqrt(lo * hi) if _is_log(spec) and lo > 0 else (lo + hi) / 2
        return int(round(mid)) if isinstance(spec, Integer) else float(mid)
    return spec


# -- checking --set -------------------------------------------------------------------------------
def check_value(key: str, spec: Any, value: Any, raw: str) -> Any:
    """``value`` for entry ``spec`` (converted where harmless, e.g. 3 -> 3.0), or raise."""
    where = f"--set {key}={raw}"
    if is_grid(spec) or isinstance(spec, Categorical):
        options = list(spec["grid_search"] if is_grid(spec) else spec.categories)
        for option in options:
            candidate = raw if isinstance(option, str) else value
            if _same(candidate, option):
                return option
        shown = ", ".join(json.dumps(o) if not isinstance(o, str) else o for o in options)
        raise DeepmorningError(f"{where}: not one of the options of '{key}': {shown}")
    if isinstance(spec, (Float, Integer)):
        want_int = isinstance(spec, Integer)
        if not _is_number(value) or (want_int and not _is_int(value)):
            kind = "an integer" if want_int else "a number"
            raise DeepmorningError(f"{where}: '{key}' takes {kind} in "
                                   f"[{spec.lower:g}, {spec.upper:g}]")
        if not spec.lower <= value <= spec.upper:
            raise DeepmorningError(f"{where}: '{key}' must lie in [{spec.lower:g}, "
                                   f"{spec.upper:g}], its searched range")
        return int(value) if want_int else float(value)
    if isinstance(spec, Domain):  # sample_from and friends: anything goes
        return value
    return _check_plain(key, spec, value, raw, where)


def _check_plain(key: str, default: Any, value: Any, raw: str, where: str) -> Any:
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise DeepmorningError(f"{where}: '{key}' takes true or false")
        return value
    if isinstance(default, int):
        if not _is_int(value):
            raise DeepmorningError(f"{where}: '{key}' takes an integer (default {default})")
        return int(value)
    if isinstance(default, float):
        if not _is_number(value):
            raise DeepmorningError(f"{where}: '{key}' takes a number (default {default:g})")
        return float(value)
    if isinstance(default, str):
        return raw.strip()
    if isinstance(default, (list, tuple)):
        if not isinstance(value, list):
            raise DeepmorningError(f"{where}: '{key}' takes a list such as "
                                   f"{json.dumps(list(default))}")
        return value
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise DeepmorningError(f"{where}: '{key}' takes a mapping such as "
                                   f"{json.dumps(dict(default))}")
        return dict(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return a == b and type(a) is type(b)


def apply_sets(space: dict[str, Any], sets: Mapping[str, tuple[Any, str]], model: str,
               locked: Iterable[str] = ()) -> dict[str, Any]:
    """``space`` with each ``--set`` checked and applied; ``locked`` keys belong to a study."""
    locked = set(locked)
    out = dict(space)
    for key, (value, raw) in sets.items():
        if key in RESERVED:
            hint = "--seed" if key == "seed" else "the study's arms"
            raise DeepmorningError(f"--set {key}: '{key}' is set by {hint}, not by --set")
        if key not in out:
            known = ", ".join(sorted(out))
            raise DeepmorningError(f"--set {key}: unknown key for {model}; known keys: {known}")
        if key in locked:
            raise DeepmorningError(f"--set {key}: the study's arms set '{key}'; setting it for "
                                   "every arm would erase the comparison")
        out[key] = check_value(key, out[key], value, raw)
    return out


def apply_max_epochs(space: dict[str, Any], max_epochs: int | None) -> dict[str, Any]:
    if max_epochs is None:
        return space
    if max_epochs < 1:
        raise DeepmorningError("--max-epochs must be at least 1")
    return {**space, "epochs": int(max_epochs)}


# -- building -------------------------------------------------------------------------------------
def scaled(model: TuneModel, scale: str) -> dict[str, Any]:
    """The model's space at ``scale``: quick overrides on top, or the paper's own values."""
    if scale not in SCALES:
        raise DeepmorningError(f"--scale must be one of {', '.join(SCALES)}, not '{scale}'")
    space = dict(model.space)
    if scale == "quick":
        unknown = set(model.quick) - set(space)
        if unknown:
            raise ValueError(f"{model.name}: quick sets keys outside the space: {unknown}")
        space.update(model.quick)
    return space


def to_grid(space: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``tune.choice`` becomes a ``tune.grid_search`` over its options."""
    return {k: tune.grid_search(list(v.categories)) if isinstance(v, Categorical) else v
            for k, v in space.items()}


def grid_size(space: Mapping[str, Any]) -> int:
    size = 1
    for spec in space.values():
        if is_grid(spec):
            size *= len(spec["grid_search"])
    return size


def searched(space: Mapping[str, Any]) -> list[str]:
    return [k for k, v in space.items() if is_searched(v)]


def run_space(model: TuneModel, *, scale: str, sets: Mapping[str, tuple[Any, str]],
              max_epochs: int | None, seed: int, grid: bool) -> dict[str, Any]:
    """The param_space of a plain run (no study)."""
    space = apply_max_epochs(apply_sets(scaled(model, scale), sets, model.name), max_epochs)
    if grid:
        space = to_grid(space)
    return {**space, "seed": int(seed)}


def study_arms(model: TuneModel, study: Study, *, scale: str,
               sets: Mapping[str, tuple[Any, str]], max_epochs: int | None
               ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """``(shared config, arm -> its own values, searched keys held at their centre)``.

    Every value is plain: a study compares its arms, so a searched key that neither the
    study's base nor the arm fixes is held at :func:`centre` for every arm alike.
    """
    space = scaled(model, scale)
    layers = [study.base] + ([study.paper_scale] if scale == "paper" else [])
    layers += list(study.arms.values())
    for layer in layers:
        unknown = set(layer) - set(space)
        if unknown:
            raise ValueError(f"{model.name}/{study.name}: sets keys outside the space: "
                             f"{sorted(unknown)}")
    space.update(study.base)
    if scale == "paper":
        space.update(study.paper_scale)
    arm_keys = sorted({k for arm in study.arms.values() for k in arm})
    space = apply_sets(space, sets, model.name, locked=arm_keys)
    space = apply_max_epochs(space, max_epochs)
    held = {k: centre(space[k]) for k in searched(space) if k not in arm_keys}
    shared = {k: held.get(k, v) for k, v in space.items() if k not in arm_keys}
    arms = {}
    for name, values in study.arms.items():
        arm = {k: values.get(k, space[k]) for k in arm_keys}
        arms[name] = {k: centre(v) for k, v in arm.items()}
    return shared, arms, held


class ArmValue:
    """``tune.sample_from`` function: the value of one key for the trial's arm.

    A class (not a lambda) so that the experiment state Tune pickles stays small and readable.
    """

    def __init__(self, key: str, arms: Mapping[str, Mapping[str, Any]]) -> None:
        self.key = key
        self.values = {arm: values[key] for arm, values in arms.items()}

    def __call__(self, config: Mapping[str, Any]) -> Any:
        return self.values[config["arm"]]


def study_space(shared: Mapping[str, Any], arms: Mapping[str, Mapping[str, Any]],
                seeds: list[int]) -> dict[str, Any]:
    """The param_space of a claim study: the grid arms × seeds."""
    space: dict[str, Any] = dict(shared)
    space["arm"] = tune.grid_search(list(arms))
    space["seed"] = tune.grid_search(list(seeds))
    keys = sorted({k for values in arms.values() for k in values})
    for key in keys:
        space[key] = tune.sample_from(ArmValue(key, arms))
    return space
