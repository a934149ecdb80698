"""The one-line error contract, swept over every CLI command.

Bad input of any kind (an unknown option, a wrong type, a missing or malformed file, an
unreachable address) ends in exactly one ``error: ...`` line on stderr, a non-zero exit status
and no traceback. Most cases run the real ``deepmorning.cli.main`` in this process (a parse
error costs milliseconds); the few that reach Ray's client run as a fresh ``python -m
deepmorning``. Runtime failures (a Ray task raising, a killed actor, Ctrl-C) are checked on real
Ray: one line naming what failed, its full text in ``error.log`` of the run directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from conftest import default_sigint, free_port, run_cli, run_main

from deepmorning import cli as cli_mod
from deepmorning.platform import errors
from deepmorning.platform.rundir import RunDir


def assert_one_line(code: int, err: str, *fragments: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def leaf_commands() -> list[tuple[list[str], click.Command]]:
    """Every runnable command of the CLI, found by walking its (lazy) groups."""
    found: list[tuple[list[str], click.Command]] = []
    ctx = click.Context(cli_mod.cli)

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            found.append((path, cmd))

    walk(cli_mod.cli, [])
    return found


def _dummy_arguments(cmd: click.Command) -> list[str]:
    """Values for the required arguments, each one harmless (a path that does not exist)."""
    values = []
    for param in cmd.params:
        if isinstance(param, click.Argument) and param.required:
            values.append("/nonexistent/deepmorning-sweep")
    return values


_TYPED = (click.types.IntParamType, click.types.FloatParamType, click.Choice)


def bad_input_cases() -> list[tuple[str, list[str]]]:
    """(id, argv): an unknown option for every command, a wrong value for every typed option."""
    cases = []
    for path, cmd in leaf_commands():
        name = " ".join(path)
        cases.append((f"{name}: unknown option", [*path, "--no-such-option"]))
        for param in cmd.params:
            if isinstance(param, click.Option) and isinstance(param.type, _TYPED):
                argv = [*path, param.opts[0], "not-a-value", *_dummy_arguments(cmd)]
                cases.append((f"{name} {param.opts[0]}: wrong type", argv))
        if any(isinstance(p, click.Argument) and p.required for p in cmd.params):
            cases.append((f"{name}: missing argument", list(path)))
    return cases


@pytest.fixture(autouse=True)
def _no_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)


def test_the_sweep_covers_every_command():
    names = {" ".join(path) for path, _ in leaf_commands()}
    assert {"info", "nas search", "rl train", "job submit", "cluster up", "results show"} <= names
    assert len(bad_input_cases()) > 3 * len(names)


def test_every_command_rejects_bad_input_in_one_line(capsys):
    for case, argv in bad_input_cases():
        code, _, err = run_main(capsys, *argv)
        try:
            assert_one_line(code, err)
        except AssertionError as exc:
            raise AssertionError(f"{case}: {' '.join(argv)}\n{err}") from exc


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    """Run directories that are wrong in different ways."""
    finished = RunDir.create(tmp_path / "finished", "nas", "search", {"v": 1})
    finished.finish({"best": 1.0})
    unfinished = RunDir.create(tmp_path / "unfinished", "rl", "dqn", {"algo": "dqn"})
    corrupt = RunDir.create(tmp_path / "corrupt", "nas", "search", {})
    (corrupt.path / "run.json").write_text("{not json")
    alien = RunDir.create(tmp_path / "alien", "mystery", "x", {})
    (tmp_path / "plain").mkdir()
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "cfg.yaml").write_text("child: {epochs: 1}\n")
    return {"finished": finished.path, "unfinished": unfinished.path, "corrupt": corrupt.path,
            "alien": alien.path, "plain": tmp_path / "plain", "tmp": tmp_path}


# (argv, fragment of the error line); {name} is replaced by a path from the `runs` fixture.
TARGETED = [
    (["results", "show", "{tmp}/nope"], "does not exist"),
    (["results", "show", "{plain}"], "not a deepmorning run directory"),
    (["results", "show", "{corrupt}"], "not valid JSON"),
    (["results", "plot", "{alien}"], "no plotter"),
    (["results", "plot", "{plain}"], "not a deepmorning run directory"),
    (["nas", "search", "--preset", "huge"], "unknown preset"),
    (["nas", "search", "--config", "{tmp}/missing.json"], "does not exist"),
    (["nas", "search", "--config", "{tmp}/bad.yaml"], "malformed"),
    (["nas", "search", "--config", "{tmp}/list.json"], "mapping"),
    (["nas", "search", "--output", "{finished}"], "finished run"),
    (["nas", "search", "--output", "{unfinished}"], "--resume"),
    (["nas", "search", "--resume", "{tmp}/nope"], "does not exist"),
    (["nas", "search", "--resume", "{finished}"], "nothing to resume"),
    (["nas", "search", "--resume", "{unfinished}"], "not a 'nas' run"),
    (["nas", "train", "{tmp}/nope"], "does not exist"),
    (["nas", "train", "{unfinished}"], "not a finished NAS search"),
    (["rl", "train", "ppo", "--env", "CartPole-v1"], "unknown algorithm"),
    (["rl", "train", "dqn"], "--env"),
    (["rl", "train", "dqn", "--env", "CartPole-v1", "--set", "novalue"], "KEY=VALUE"),
    (["rl", "train", "dqn", "--env", "CartPole-v1", "--eval-every", "-1"], "--eval-every"),
    (["rl", "train", "dqn", "--resume", "{finished}"], "not a 'rl' run"),
    (["rl", "evaluate", "{tmp}/nope"], "does not exist"),
    (["rl", "evaluate", "{finished}"], "not an rl run"),
    (["rl", "evaluate", "{unfinished}"], "not an rl run"),
    (["job", "submit", "--address", "http://127.0.0.1:1"], "Missing argument"),
    (["job", "submit", "--address", "http://127.0.0.1:1", "--", "deepmorning"], "give the"),
    (["job", "list", "--address", "ray://127.0.0.1:10001"], "Ray Client address"),
    (["job", "list", "--address", "ftp://127.0.0.1:1"], "dashboard URL"),
    (["job", "status", "--address", "http://127.0.0.1:{port}", "raysubmit_x"], "cannot reach"),
    (["job", "submit", "--working-dir", "{tmp}/nope", "--", "info"], "does not exist"),
    (["cluster", "validate", "{tmp}/nope.yaml"], "failed validation"),
    (["cluster", "validate", "{tmp}/cfg.yaml", "{tmp}/list.json"], "2 of 2"),
    (["cluster", "validate", "{tmp}/bad.yaml"], "failed validation"),
    (["cluster", "up", "no-such-cluster"], "no cluster config"),
    (["cluster", "up", "{tmp}/bad.yaml"], "not valid YAML"),
    (["cluster", "down", "kuberay/raycluster"], "kubectl apply"),
    (["cluster", "dashboard", "{tmp}/cfg.yaml"], "{tmp}/cfg.yaml"),
    (["cluster", "attach", "{tmp}/list.json"], "mapping"),
    (["info", "--no-such-flag"], "--no-such-flag"),
]

# Cases that reach runtime.connect run in a fresh process: in this one a test session's Ray may
# be up, and connect() would attach to it.
ADDRESSES = [
    (["--address", "not-an-address", "info"], "--address"),
    (["--address", "127.0.0.1:{port}", "info"], "cannot reach"),
    (["--address", "ray://127.0.0.1:{port}", "cluster", "selftest"], "cannot reach"),
    (["--address", "127.0.0.1:{port}", "rl", "train", "dqn", "--env", "CartPole-v1",
      "--output", "{tmp}/rl"], "cannot reach"),
]


@pytest.mark.parametrize(("argv", "fragment"), TARGETED, ids=[" ".join(a) for a, _ in TARGETED])
def test_targeted_bad_input_is_one_line(capsys, runs, argv, fragment):
    values = {k: str(v) for k, v in runs.items()} | {"port": str(free_port())}
    argv = [a.format(**values) for a in argv]
    code, _, err = run_main(capsys, *argv)
    assert_one_line(code, err, fragment.format(**values))


@pytest.mark.parametrize(("argv", "fragment"), ADDRESSES, ids=[" ".join(a) for a, _ in ADDRESSES])
def test_bad_or_unreachable_addresses_are_one_line(tmp_path, argv, fragment):
    values = {"tmp": str(tmp_path), "port": str(free_port())}
    res = run_cli(*[a.format(**values) for a in argv], timeout=120)
    assert_one_line(res.returncode, res.stderr, fragment.format(**values))
    assert not (tmp_path / "rl").exists()  # nothing was created for a run that cannot start


AREAS = [["nas", "search"], ["rl", "train", "dqn", "--env", "CartPole-v1"], ["tune", "srcnn"]]


@pytest.mark.parametrize("argv", AREAS, ids=[a[0] for a in AREAS])
def test_an_output_that_cannot_be_created_is_one_line_before_ray_starts(tmp_path, argv):
    """``--output /proc/x`` or a path under a file: the run directory's own check says so in one
    line (status 2) in every area, before Ray starts; no error log is written anywhere."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    output = blocker / "run"
    (tmp_path / "tmp").mkdir()
    res = run_cli(*argv, "--output", str(output), cwd=tmp_path,
                  env={"RAY_TMPDIR": str(tmp_path / "raytmp"), "TMPDIR": str(tmp_path / "tmp")},
                  timeout=120)
    assert_one_line(res.returncode, res.stderr,
                    f"cannot create output directory {output}: {blocker} is not a directory")
    assert res.returncode == 2
    assert not (tmp_path / "raytmp").exists()  # Ray never started
    assert not list((tmp_path / "tmp").glob("deepmorning-error-*"))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_a_run_directory_under_proc_is_refused_in_one_line():
    with pytest.raises(errors.DeepmorningError,
                       match="^cannot create output directory /proc/x: No such file"):
        RunDir.ensure_new("/proc/x")


# -- runtime failures on real Ray ---------------------------------------------------------------
def test_ray_failures_are_summarised_in_one_line(ray_local, tmp_path):
    import ray

    @ray.remote(max_retries=0)
    def train_child(n: int) -> None:
        raise ValueError(f"child {n} diverged\nloss was nan at step 3")

    @ray.remote(max_retries=0)
    def silent() -> None:
        raise IndexError()

    @ray.remote
    class Server:
        def ping(self) -> int:
            return os.getpid()

    caught = {}
    for key, ref in (("task", train_child.remote(7)), ("silent", silent.remote())):
        with pytest.raises(Exception) as info:
            ray.get(ref)
        caught[key] = info.value
    server = Server.remote()
    ray.get(server.ping.remote())
    ray.kill(server)
    # ray.kill is asynchronous: a call that reaches the actor before the kill does still
    # answers (seen in CI order, not alone). The kill must land within the deadline.
    deadline = time.monotonic() + 30
    while "actor" not in caught:
        try:
            ray.get(server.ping.remote())
        except ray.exceptions.RayActorError as exc:
            caught["actor"] = exc
        else:
            assert time.monotonic() < deadline, "ray.kill did not kill the actor"
            time.sleep(0.2)

    expected = "task train_child failed: ValueError: child 7 diverged"
    assert errors.summarize(caught["task"]) == expected
    assert errors.summarize(caught["silent"]) == "task silent failed: IndexError"
    line = errors.summarize(caught["actor"])
    assert line.startswith("actor Server died: it was killed by `ray.kill`"), line
    wrapped = RuntimeError("training stopped")  # a library re-raising keeps the Ray error inside
    wrapped.__cause__ = caught["task"]
    assert errors.summarize(wrapped) == errors.summarize(caught["task"])

    from deepmorning.nas.search import child_error

    assert child_error(caught["silent"]) == "task silent failed: IndexError"
    assert child_error(IndexError()) == "IndexError"  # no message: no IndexError of our own

    run = RunDir.create(tmp_path / "run", "nas", "search", {})
    log = errors.write_error_log(caught["task"], run.path, "nas search")
    assert Path(log) == run.path / errors.ERROR_LOG
    text = Path(log).read_text()
    assert "loss was nan at step 3" in text and "train_child" in text  # the remote traceback


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _find_descendant(proc: subprocess.Popen, title: str, seconds: float = 120) -> int:
    """The pid of the process below ``proc`` whose title starts with ``title``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [p for p in _descendants(proc.pid) if _cmdline(p).startswith(title)]
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the search ended before {title} was found:\n{proc.stderr.read()}")
        time.sleep(0.5)
    titles = sorted({_cmdline(p)[:40] for p in _descendants(proc.pid)})
    pytest.fail(f"no {title} process within {seconds}s among {titles}")


def _start_search(argv: list[str], cwd: Path) -> subprocess.Popen:
    home = cwd / "home"  # an embedded Ray writes ~/.ray/auth_token: never the real home
    home.mkdir(exist_ok=True)
    env = {**os.environ, "COLUMNS": "160", "HOME": str(home)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "deepmorning", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # it is sent Ctrl-C


def _rows(run: Path) -> int:
    history = run / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def _wait_rows(proc: subprocess.Popen, run: Path, rows: int, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while _rows(run) < rows:
        if proc.poll() is not None:
            pytest.fail(f"the search ended early:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {rows} children within {seconds}s")
        time.sleep(0.3)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds Ray workers in /proc")
def test_ctrl_c_ends_in_one_line_and_its_resume_command_survives_a_killed_server(tmp_path):
    """Ctrl-C says what was kept and the command that continues; that command works, and a
    parameter server killed under it is restarted from its saved state (NAS II): the run
    finishes with every child slot filled once."""
    run = tmp_path / "run"
    search = ["nas", "search", "--trainer", "sleep:0.5", "--max-children", "400", "-S", "1",
              "-K", "1", "-m", "2", "--output", str(run)]
    proc = _start_search(search, tmp_path)
    _wait_rows(proc, run, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    line = assert_one_line(proc.returncode, err, "interrupted; finished work is kept in")
    assert proc.returncode == 130
    assert "--resume" in line
    kept = _rows(run)
    assert kept >= 1 and not (run / "summary.json").exists()

    resume = line.split("continue with: ", 1)[1].split()
    assert resume[:3] == ["deepmorning", "nas", "search"]
    total = kept + 6  # only --max-children may change on a resume
    proc = _start_search([*resume[1:], "--max-children", str(total)], tmp_path)
    _wait_rows(proc, run, kept + 2)
    os.kill(_find_descendant(proc, "ray::ParameterServer"), signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    history = (run / "history.csv").read_text().splitlines()[1:]
    ids = sorted(int(row.split(",")[0]) for row in history)
    assert ids == list(range(total))
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
