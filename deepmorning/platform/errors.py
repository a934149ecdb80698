"""User-facing errors and the one-line error contract.

Anything a user can get wrong (a flag value, a path, an address, a config file) raises
:class:`DeepmorningError` with one sentence naming the problem. The CLI prints it as a single
``error: ...`` line on stderr and exits with status 2; it never shows a traceback unless
``--debug`` is given.

Failures that are not the user's doing (a Ray task or actor raising, a worker killed, a node
lost) are summarised by :func:`summarize` into one line naming what failed (the task or actor,
the exception type and the first line of its message); the CLI writes the full text, remote
tracebacks included, to ``error.log`` in the run directory (see :func:`write_error_log`).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import traceback
from pathlib import Path

ERROR_LOG = "error.log"


class DeepmorningError(Exception):
    """A problem the user can fix, reported as one line without a traceback."""

    exit_code = 2


def first_line(exc: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (or its type name when empty)."""
    text = exc if isinstance(exc, str) else str(exc)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "" if isinstance(exc, str) else type(exc).__name__
    line = lines[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """``Type: first line`` (just ``Type`` for an empty message)."""
    message = first_line(str(exc))
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _ray_exceptions():
    try:
        import ray.exceptions as rex
    except ImportError:  # pragma: no cover - ray is a dependency
        return None
    return rex


def find_ray_error(exc: BaseException) -> BaseException | None:
    """The first Ray error in ``exc``'s chain (``raise … from``, ``during handling …``)."""
    rex = _ray_exceptions()
    if rex is None:
        return None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, rex.RayError):
            return current
        current = current.__cause__ or current.__context__
    return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROCTITLE = re.compile(r"ray::([\w.<>-]+)\(")


def _short(qualname: str) -> str:
    """``make.<locals>.Server.ping`` -> ``Server.ping``: the name a reader recognises."""
    return qualname.rsplit("<locals>.", 1)[-1]


def _task_name(err: BaseException) -> str:
    """``actor ParameterServer.apply`` or ``task run_child``, from Ray's ``ray::NAME()`` header."""
    header = _ANSI.sub("", str(err).lstrip().split("\n", 1)[0])
    match = _PROCTITLE.search(header)
    if not match:
        return "a Ray task"
    name = _short(match.group(1))
    return f"actor {name}" if "actor_id=" in header or "." in name else f"task {name}"


def _actor_error_line(err: BaseException) -> str:
    """``actor NAME died: REASON (Type)`` from Ray's multi-line explanation."""
    text = _ANSI.sub("", str(getattr(err, "error_msg", "") or err))
    match = re.search(r"class_name:\s*(\S+)", text)
    actor_id = getattr(err, "actor_id", None)
    who = (f"actor {_short(match.group(1))}" if match else
           f"actor {actor_id[:12]}" if actor_id else "a Ray actor")
    because = re.search(r"The actor is dead because (.+?)(?:\.\s|\.$|$)", text, re.M)
    reason = because.group(1) if because else first_line(text).rstrip(".")
    return f"{who} died: {reason} ({type(err).__name__})"


def summarize(exc: BaseException) -> str:
    """One line saying what failed: which task or actor, the exception type and first line."""
    rex = _ray_exceptions()
    err = find_ray_error(exc)
    if rex is None or err is None:
        return describe_exception(exc)
    if isinstance(err, rex.RayTaskError):
        cause = getattr(err, "cause", None)
        while isinstance(cause, rex.RayTaskError) and getattr(cause, "cause", None) is not None:
            cause = cause.cause  # a task that failed because a task it waited on failed
        if isinstance(cause, rex.RayActorError):
            return f"{_task_name(err)} failed: {_actor_error_line(cause)}"
        what = describe_exception(cause) if isinstance(cause, BaseException) else first_line(err)
        return f"{_task_name(err)} failed: {what}"
    if isinstance(err, rex.RayActorError):
        return _actor_error_line(err)
    return describe_exception(err)


def full_text(exc: BaseException) -> str:
    """The whole story: the local traceback chain and, for Ray errors, the remote tracebacks."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def write_error_log(exc: BaseException, run_path: str | os.PathLike | None,
                    command: str = "") -> str:
    """Append the full text of ``exc`` to ``RUN/error.log`` (a temp file without a run).

    Returns where it went. Never raises: a log that cannot be written must not hide the error.
    """
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    text = f"=== {stamp} {command}\n{full_text(exc)}\n"
    if run_path is not None:
        try:
            from deepmorning.platform import rundir

            return rundir.append_text(run_path, ERROR_LOG, text)
        except Exception:  # noqa: BLE001 - fall back to a temporary file
            pass
    try:
        fd, path = tempfile.mkstemp(prefix="deepmorning-error-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return path
    except OSError:
        return "(nowhere: the log could not be written)"


def log_location(path: str | os.PathLike) -> str:
    """``path`` as shown to the user: relative to the working directory when under it."""
    text = str(path)
    if "://" in text:
        return text
    try:
        return str(Path(text).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return text
