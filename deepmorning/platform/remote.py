"""Run directories on object storage: a local working copy mirrored to a URI with ``pyarrow.fs``.

``--output s3://BUCKET/runs/nas`` (or ``gs://``, ``file://``, anything
``pyarrow.fs.FileSystem.from_uri`` knows, the filesystems Ray itself uses for ``storage_path``)
makes a run directory that lives at the URI. Jobs keep writing plain local files, as they do
for any run directory; the platform works in a local copy (``$DEEPMORNING_STAGING``, default
``<tmp>/deepmorning-staging/``) and mirrors it to the URI:

* when the run is created or resumed, at every checkpoint the job takes (NAS: after each
  event; RL: every ``--checkpoint-every`` iterations), when it finishes, and when it fails
  (``error.log``); other writes are mirrored at most every :data:`SYNC_EVERY_S` seconds;
* each time only the files that changed (size or modification time) are uploaded, and files
  the job deleted (old RL checkpoints) are deleted at the URI.

So what a killed driver loses is what it wrote since its last checkpoint, the same as on a
local disk, and ``--resume URI`` downloads the copy and continues from there. Files are
uploaded oldest first, so the URI never holds a write without the older ones it may depend on.
A working copy newer than the URI's (a driver killed between two mirrorings, resumed on the
same machine) is kept and mirrored, not replaced: see :meth:`Mirror.refresh`. ``results show``,
``results plot``, ``rl evaluate`` and ``nas train`` read a URI the same way.

Filesystems that live in this process (``pyarrow.fs._MockFileSystem``, a ``PyFileSystem`` over
fsspec's memory filesystem) are reached through :func:`register`, which maps a URI scheme to a
filesystem object; tests use them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmorning.platform.errors import DeepmorningError, first_line

#: Seconds between two mirrorings that nobody asked for explicitly.
SYNC_EVERY_S = 30.0
STAGING_ENV = "DEEPMORNING_STAGING"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_REGISTERED: dict[str, Any] = {}


def is_remote(target: str | os.PathLike) -> bool:
    """Whether ``target`` is a URI (``s3://…``, ``gs://…``, ``file://…``), not a plain path."""
    return bool(_SCHEME.match(str(target)))


def register(scheme: str, filesystem: Any) -> None:
    """Resolve ``SCHEME://path`` to ``filesystem`` (a ``pyarrow.fs.FileSystem``) in this process."""
    _REGISTERED[scheme.lower()] = filesystem


def unregister(scheme: str) -> None:
    _REGISTERED.pop(scheme.lower(), None)


def resolve(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path inside it)`` for a URI; one line when it cannot be used."""
    scheme = _SCHEME.match(uri).group(1).lower()  # type: ignore[union-attr]
    if scheme in _REGISTERED:
        return _REGISTERED[scheme], uri[len(scheme) + 3:].rstrip("/")
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # noqa: BLE001 - ArrowInvalid, missing credentials, ...
        raise DeepmorningError(f"cannot use {uri} as run storage: {first_line(exc)}") from None
    return filesystem, path.rstrip("/")


@dataclass
class Mirror:
    """A local working copy of the run directory at ``uri``."""

    uri: str
    filesystem: Any
    root: str
    local: Path
    _sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    _last: float = 0.0

    @classmethod
    def of(cls, uri: str) -> Mirror:
        filesystem, root = resolve(uri)
        return cls(uri.rstrip("/"), filesystem, root, staging_dir(uri))

    # -- the remote side ----------------------------------------------------------------------
    def _info(self, name: str) -> Any:
        try:
            return self.filesystem.get_file_info(f"{self.root}/{name}" if name else self.root)
        except (OSError, ValueError) as exc:  # pyarrow's IO errors are OSErrors
            raise DeepmorningError(f"cannot read {self.uri}: {first_line(exc)}") from None

    def has_file(self, name: str) -> bool:
        import pyarrow.fs as pafs

        return self._info(name).type == pafs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info("").type == pafs.FileType.Directory

    def remote_files(self) -> list[str]:
        """Paths of the files under the URI, relative to it."""
        return sorted(self.remote_sizes())

    def remote_sizes(self) -> dict[str, int]:
        """Size of each file under the URI, by path relative to it."""
        import pyarrow.fs as pafs

        if not self.is_dir():
            return {}
        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        prefix = self.root.strip("/") + "/"
        sizes = {}
        for info in self.filesystem.get_file_info(selector):
            name = info.path.lstrip("/")
            if info.type == pafs.FileType.File and name.startswith(prefix):
                sizes[name[len(prefix):]] = info.size
        return sizes

    # -- copying ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Make the local copy current: keep it when it is newer than the URI's, else download.

        The local copy is newer when the URI holds nothing it has not seen: every file there is
        as this copy last sent it (or as it is locally now: a sync cut short), and every file
        missing there was deleted here too. That is a copy whose driver was killed between two
        mirrorings, on this machine; discarding it would lose what it recorded since. Its
        changes are uploaded by the next :meth:`sync`. Anything else (no local copy, another
        machine wrote the URI since) is replaced by the URI's.
        """
        sent = self._load_state()
        if sent is not None and self.local.is_dir() and self._descends(sent):
            self._sent = sent
            self._last = time.monotonic()
            return
        self.download()

    def _descends(self, sent: dict[str, tuple[int, int]]) -> bool:
        there = self.remote_sizes()
        for name, size in there.items():
            here = self.local / name
            if name in sent and sent[name][0] == size:
                continue
            if not (here.is_file() and here.stat().st_size == size):
                return False
        return all(not (self.local / name).exists() for name in sent if name not in there)

    @property
    def _state_path(self) -> Path:
        """What this copy last sent to the URI; beside the copy, so never mirrored."""
        return self.local.parent / f".{self.local.name}.mirror.json"

    def _save_state(self) -> None:
        path = self._state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"uri": self.uri, "sent": self._sent}))
        os.replace(tmp, path)

    def _load_state(self) -> dict[str, tuple[int, int]] | None:
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return None
        if state.get("uri") != self.uri:
            return None
        return {name: (int(size), int(mtime)) for name, (size, mtime) in state["sent"].items()}

    def download(self) -> None:
        """Replace the local copy with what the URI holds."""
        shutil.rmtree(self.local, ignore_errors=True)
        self.local.mkdir(parents=True, exist_ok=True)
        self._sent = {}
        for name in self.remote_files():
            target = self.local / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.filesystem.open_input_stream(f"{self.root}/{name}") as src, \
                    target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            stat = target.stat()
            self._sent[name] = (stat.st_size, stat.st_mtime_ns)
        self._save_state()
        self._last = time.monotonic()

    def sync(self, force: bool = True) -> None:
        """Upload what changed locally and delete what was deleted; throttled unless forced.

        Files go oldest first (by modification time), so the URI never holds a file without
        the older writes it may depend on: a NAS journal line reaches it after the server
        states and sampling parameters written before it.
        """
        if not force and time.monotonic() - self._last < SYNC_EVERY_S:
            return
        local = {
            p.relative_to(self.local).as_posix(): p for p in self.local.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        }
        try:
            self.filesystem.create_dir(self.root, recursive=True)
            stats = {name: path.stat() for name, path in local.items()}
            changed = [name for name, stat in stats.items()
                       if self._sent.get(name) != (stat.st_size, stat.st_mtime_ns)]
            for name in sorted(changed, key=lambda n: (stats[n].st_mtime_ns, n)):
                path, stat = local[name], stats[name]
                remote = f"{self.root}/{name}"
                parent = remote.rsplit("/", 1)[0]
                self.filesystem.create_dir(parent, recursive=True)
                with path.open("rb") as src, self.filesystem.open_output_stream(remote) as dst:
                    shutil.copyfileobj(src, dst)
                self._sent[name] = (stat.st_size, stat.st_mtime_ns)
            for name in [n for n in self._sent if n not in local]:
                self.filesystem.delete_file(f"{self.root}/{name}")
                del self._sent[name]
            self._save_state()
        except OSError as exc:
            raise DeepmorningError(
                f"cannot write the run to {self.uri}: {first_line(exc)}"
            ) from None
        self._last = time.monotonic()


def staging_dir(uri: str) -> Path:
    """The local working copy of ``uri``: one directory per URI, named after its last part."""
    base = Path(os.environ.get(STAGING_ENV) or Path(tempfile.gettempdir()) / "deepmorning-staging")
    digest = hashlib.sha1(uri.rstrip("/").encode()).hexdigest()[:12]
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "run"
    return base / digest / name
