"""Run directories: the on-disk contract every deepmorning job writes to.

A run directory holds::

    run.json          group, name, status (running | finished), timestamps, deepmorning version
    config.json       the fully resolved configuration of the run
    *.csv             result tables (one row per child / iteration / trial)
    summary.json      final figures; written last, its presence marks the run finished
    *.png             plots (``deepmorning results plot DIR`` redraws them)
    checkpoints/      whatever the job needs to resume

Re-using the directory of an unfinished run requires ``--resume``; a finished run is never
overwritten. A run directory may be a URI (``s3://…``, ``gs://…``, ``file://…``): the job works
in a local copy that :mod:`deepmorning.platform.remote` mirrors to it. Writes of JSON files are
atomic (write to a temporary file, then rename), so a killed driver leaves either the old or the
new file, never half of one.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmorning import __version__
from deepmorning.platform import remote
from deepmorning.platform.errors import DeepmorningError

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


#: The run this process is writing (the last one created or resumed): where the CLI puts
#: ``error.log`` when a run fails.
_ACTIVE: dict[str, Any] = {"run": None}

#: Called with every run this process creates or resumes (the CLI notes how to continue it).
ACTIVATE_HOOKS: list[Callable[[RunDir], None]] = []


def active_run() -> RunDir | None:
    return _ACTIVE["run"]


def _activate(run: RunDir) -> None:
    _ACTIVE["run"] = run
    for hook in ACTIVATE_HOOKS:
        hook(run)


def append_text(run_path: str | os.PathLike, name: str, text: str) -> str:
    """Append ``text`` to the file ``name`` of a run directory; return the file's path."""
    path = Path(run_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(text)
    return str(path)


def default_output(group: str, name: str, root: str | Path = "runs") -> Path:
    """``runs/<group>-<name>-<timestamp>/`` relative to the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{group}-{name}-{stamp}"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; run directories are meant to be shared
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DeepmorningError(f"{path} does not exist") from exc
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})"
        raise DeepmorningError(msg) from exc


def check_creatable(path: Path, shown: str | Path | None = None) -> None:
    """One line now, before any work, when the directory ``path`` cannot be made or written
    (a bad ``--output``: under ``/proc``, under a file, in a read-only place).

    Probes the nearest existing ancestor with a directory made and removed at once, so that a
    refused path leaves nothing behind.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{existing} is not a directory")
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".deepmorning-probe-"))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DeepmorningError(
            f"cannot create output directory {shown or path}: {reason}") from None


@dataclass
class RunDir:
    """A run directory; see the module docstring for its layout.

    ``path`` is the local directory the job writes (made absolute once, here: Ray, RLlib and
    Tune treat a relative path as a URI without a scheme and resolve it against their own
    working directories). For a run at a URI, ``path`` is its local working copy and ``mirror``
    copies it to the URI; ``location`` is what to show the user either way.
    """

    path: Path
    mirror: remote.Mirror | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser().absolute()

    @classmethod
    def at(cls, target: str | Path) -> RunDir:
        """The run directory at a local path or a URI (nothing is read or written yet)."""
        if remote.is_remote(target):
            mirror = remote.Mirror.of(str(target))
            return cls(mirror.local, mirror)
        return cls(Path(target))

    @property
    def location(self) -> str:
        return self.mirror.uri if self.mirror is not None else str(self.path)

    def join(self, name: str) -> str | Path:
        """A location inside this run directory (a URI for a run at a URI)."""
        return f"{self.mirror.uri}/{name}" if self.mirror is not None else self.path / name

    def sync(self, force: bool = True) -> None:
        """Mirror the local copy to the URI now (a no-op for a local run)."""
        if self.mirror is not None:
            self.mirror.sync(force=force)

    # -- creation -----------------------------------------------------------------------------
    @classmethod
    def ensure_new(cls, path: str | Path) -> RunDir:
        """Refuse a directory that holds a run or other files (checked before any work)."""
        run = cls.at(path)
        if run.mirror is not None:
            files = run.mirror.remote_files()
            holds_run, finished = RUN_FILE in files, SUMMARY_FILE in files
            nonempty = bool(files)
        else:
            check_creatable(run.path, shown=path)
            holds_run, finished = run.exists(), run.is_finished()
            nonempty = run.path.exists() and any(run.path.iterdir())
        if holds_run:
            if finished:
                raise DeepmorningError(
                    f"{run.location} already holds a finished run; choose another --output"
                )
            raise DeepmorningError(
                f"{run.location} holds an unfinished run; continue it with --resume "
                f"{run.location} or choose another --output"
            )
        if nonempty:
            raise DeepmorningError(
                f"{run.location} is not empty and is not a deepmorning run directory"
            )
        return run

    @classmethod
    def create(cls, path: str | Path, group: str, name: str, config: Mapping[str, Any]) -> RunDir:
        """Start a new run in ``path``; refuse a directory that already holds a run."""
        run = cls.ensure_new(path)
        if run.mirror is not None:
            shutil.rmtree(run.path, ignore_errors=True)  # a stale working copy of an old run
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        now = time.time()
        write_json_atomic(run.path / CONFIG_FILE, dict(config))
        write_json_atomic(
            run.path / RUN_FILE,
            {
                "group": group,
                "name": name,
                "status": "running",
                "created": now,
                "updated": now,
                "deepmorning_version": __version__,
            },
        )
        run.sync()
        _activate(run)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run directory (for ``results``, ``evaluate`` and friends)."""
        run = cls.at(path)
        if run.mirror is not None:
            if not run.mirror.is_dir():
                raise DeepmorningError(f"run directory {run.location} does not exist")
            if not run.mirror.has_file(RUN_FILE):
                raise DeepmorningError(
                    f"{run.location} is not a deepmorning run directory (no {RUN_FILE})"
                )
            run.mirror.refresh()  # a newer local copy (a killed driver's) is kept
        if not run.path.is_dir():
            raise DeepmorningError(f"run directory {run.location} does not exist")
        if not run.exists():
            raise DeepmorningError(
                f"{run.location} is not a deepmorning run directory (no {RUN_FILE})"
            )
        return run

    @classmethod
    def resume(cls, path: str | Path, group: str | None = None) -> RunDir:
        """Open an unfinished run to continue it; refuse a finished one."""
        run = cls.open(path)
        if group is not None and run.info["group"] != group:
            raise DeepmorningError(
                f"{run.location} is a '{run.info['group']}' run, not a '{group}' run"
            )
        if run.is_finished():
            raise DeepmorningError(f"{run.location} is already finished; nothing to resume")
        run._update_info(status="running")
        run.sync()
        _activate(run)
        return run

    # -- state --------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / RUN_FILE).is_file()

    def is_finished(self) -> bool:
        return (self.path / SUMMARY_FILE).is_file()

    @property
    def info(self) -> dict[str, Any]:
        return read_json(self.path / RUN_FILE)

    @property
    def config(self) -> dict[str, Any]:
        return read_json(self.path / CONFIG_FILE)

    @property
    def summary(self) -> dict[str, Any]:
        return read_json(self.path / SUMMARY_FILE)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def _update_info(self, **fields: Any) -> None:
        info = self.info
        info.update(fields, updated=time.time())
        write_json_atomic(self.path / RUN_FILE, info)

    # -- writing ------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        path = self.path / name
        write_json_atomic(path, obj)
        self.sync(force=False)
        return path

    def append_rows(self, name: str, rows: Iterable[Mapping[str, Any]],
                    durable: bool = True) -> Path:
        """Append rows to a CSV table, writing the header when the file is new.

        Columns are fixed by the first row ever written; later rows must use the same keys.
        Each call flushes and (``durable``, the default) fsyncs, so a killed driver keeps every
        row it reported; a caller that keeps the rows durably elsewhere may skip the fsync.
        """
        path = self.path / name
        rows = list(rows)
        if not rows:
            return path
        new = not path.exists() or path.stat().st_size == 0
        fieldnames = list(rows[0].keys()) if new else _csv_header(path)
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fieldnames, extrasaction="raise")
            if new:
                writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_cell(v) for k, v in row.items()})
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        self.sync(force=False)
        return path

    def read_table(self, name: str):  # -> pandas.DataFrame
        import pandas as pd

        path = self.path / name
        if not path.is_file() or path.stat().st_size == 0:
            return pd.DataFrame()
        return pd.read_csv(path)

    def tables(self) -> list[Path]:
        return sorted(self.path.glob("*.csv"))

    def plots(self) -> list[Path]:
        return sorted(self.path.glob("*.png"))

    def finish(self, summary: Mapping[str, Any]) -> Path:
        """Write ``summary.json`` (marking the run finished)."""
        path = self.write_json(SUMMARY_FILE, dict(summary))
        self._update_info(status="finished")
        self.sync()
        return path


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh))


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if hasattr(value, "item"):
        return value.item()
    return value


def open_or_create(
    *,
    group: str,
    name: str,
    config: Mapping[str, Any],
    output: str | Path | None,
    resume: str | Path | None,
) -> tuple[RunDir, bool]:
    """The one rule every job follows for ``--output`` / ``--resume``.

    Returns ``(run, resumed)``. With ``resume`` the stored configuration wins; the caller reads
    it from ``run.config``.
    """
    if resume is not None:
        if output is not None and not _same_place(output, resume):
            raise DeepmorningError("give either --output or --resume, not both")
        return RunDir.resume(resume, group=group), True
    path = output if output is not None else default_output(group, name)
    return RunDir.create(path, group, name, config), False


def warn_ignored_on_resume(given: Iterable[str], honoured: Iterable[str] = ()) -> list[str]:
    """The one policy for flags given with ``--resume``: the run's stored configuration wins,
    and a warning names every flag that is ignored. ``given``: what the user typed, as flags
    (``--num-samples``) or parameter names (``num_samples``); ``honoured``: those the command
    still applies on a resume, written the same way (``--resume`` itself always is).
    Returns the ignored flags."""
    def flag(name: str) -> str:
        return name if name.startswith("-") else "--" + name.replace("_", "-")

    kept = {flag(name) for name in honoured} | {"--resume"}
    flags = sorted({flag(name) for name in given} - kept)
    if flags:
        from deepmorning.platform.console import warn

        warn(f"resuming uses the run's stored configuration; ignoring {', '.join(flags)}")
    return flags


def _same_place(a: str | Path, b: str | Path) -> bool:
    if remote.is_remote(a) or remote.is_remote(b):
        return str(a).rstrip("/") == str(b).rstrip("/")
    return Path(a).absolute() == Path(b).absolute()
