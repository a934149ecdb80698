"""The one ``deepmorning`` command line.

Groups are loaded lazily (``--help`` imports neither torch nor RLlib). Every user mistake ends
as one ``error: ...`` line on stderr with exit status 2; a runtime failure (a Ray task or actor
raising, a worker killed) as one line naming what failed, exit status 1, with its full text in
``error.log`` of the run directory; Ctrl-C says what was kept and how to continue (status 130).
``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from dataclasses import dataclass

import click

from deepmorning import __version__
from deepmorning.platform import errors, rundir
from deepmorning.platform.errors import DeepmorningError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: name -> (import path of the click command, one-line help shown by ``deepmorning --help``)
GROUPS: dict[str, tuple[str, str]] = {
    "info": ("deepmorning.ops.commands:info", "Show Ray version, connection, nodes and dashboard."),
    "nas": ("deepmorning.nas.cli:nas", "Neural Architecture Search with RL (Zoph & Le 2017)."),
    "rl": ("deepmorning.rl.cli:rl", "DQN and DDPG as custom RLlib algorithms."),
    "tune": ("deepmorning.tuning.cli:tune", "Ray Tune studies of the papers' supervised models."),
    "job": ("deepmorning.ops.jobs:job", "Submit and follow jobs on a Ray cluster."),
    "cluster": ("deepmorning.ops.clusters:cluster", "Validate, start and stop Ray clusters."),
    "results": ("deepmorning.ops.commands:results", "Show and plot run directories."),
}


@dataclass
class Settings:
    """Global options, reachable from every command as ``ctx.obj``."""

    address: str | None
    debug: bool


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(GROUPS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in GROUPS:
            return None
        module, _, attr = GROUPS[name][0].partition(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in GROUPS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    metavar="HOST:PORT",
    help="Ray cluster to use (GCS address, or 'auto'); also read from RAY_ADDRESS. "
    "Absent: an embedded local Ray on 127.0.0.1.",
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="deepmorning")
@click.pass_context
def cli(ctx: click.Context, address: str | None, debug: bool) -> None:
    """deepmorning: reproduce the reading group's papers on Ray, from a laptop to a GPU cluster.

    \b
    Quick start:
      deepmorning info                       # Ray, nodes, dashboard
      deepmorning nas search --preset quick  # the NAS search on the embedded Ray
      deepmorning results show runs/<dir>    # what a run wrote
    """
    ctx.obj = Settings(address=address or None, debug=debug)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


_RESUME: dict[str, str | None] = {"command": None}


def _note_resume_command(run: rundir.RunDir) -> None:
    """Remember the command line continuing ``run``, when the running command has --resume."""
    _RESUME["command"] = None
    ctx = click.get_current_context(silent=True)
    if ctx is None or not any(p.name == "resume" for p in ctx.command.params):
        return
    args = [shlex.quote(str(ctx.params[p.name])) for p in ctx.command.params
            if isinstance(p, click.Argument) and ctx.params.get(p.name) is not None]
    _RESUME["command"] = " ".join([ctx.command_path, *args, "--resume",
                                   shlex.quote(run.location)])


rundir.ACTIVATE_HOOKS.append(_note_resume_command)


def _interrupted() -> str:
    """The Ctrl-C line: what was kept and the command that continues it."""
    run = rundir.active_run()
    if run is None:
        return "interrupted"
    resume = _RESUME["command"]
    how = f"; continue with: {resume}" if resume else ""
    return f"interrupted; finished work is kept in {errors.log_location(run.location)}{how}"


def _mirror_log(run: rundir.RunDir | None, log: str) -> str:
    """A run at a URI gets its error.log too; return where the log can be read."""
    if run is None or run.mirror is None or not log.startswith(str(run.path)):
        return log
    try:
        run.sync()
    except Exception:  # noqa: BLE001 - the local copy still holds it
        return log
    return str(run.join(errors.ERROR_LOG))


def _runtime_failure(exc: BaseException, args: list[str]) -> str:
    """One line for a failure that is not the user's: what failed and where its full text is."""
    run = rundir.active_run()
    log = errors.write_error_log(exc, run.path if run else None, " ".join(args))
    log = _mirror_log(run, log)
    return f"{errors.summarize(exc)} (full text in {errors.log_location(log)})"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn failures into one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DEEPMORNING_DEBUG") == "1"
    try:
        rv = cli.main(args=args, prog_name="deepmorning", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        _fail(f"{where}{errors.first_line(exc.format_message())}")
    except click.ClickException as exc:  # e.g. a missing file for click.Path(exists=True)
        _fail(errors.first_line(exc.format_message()))
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C (KeyboardInterrupt) into Abort; a declined prompt is a bare Abort.
        _fail(_interrupted() if isinstance(exc.__cause__, KeyboardInterrupt) else "aborted", 130)
    except KeyboardInterrupt:  # Ctrl-C outside click's own invocation
        _fail(_interrupted(), 130)
    except DeepmorningError as exc:
        if debug:
            raise
        message = str(exc).strip()
        if len(message.splitlines()) > 1:  # never more than one line, the rest goes to the log
            run = rundir.active_run()
            log = errors.write_error_log(exc, run.path if run else None, " ".join(args))
            log = _mirror_log(run, log)
            message = f"{errors.first_line(message)} (full text in {errors.log_location(log)})"
        _fail(message or type(exc).__name__, exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug:
            raise
        _fail(_runtime_failure(exc, args), 1)
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)
