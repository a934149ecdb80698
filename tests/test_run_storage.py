"""Run directories at URIs: file:// and pyarrow's in-process filesystems, written and read back.

The run at the URI is the only copy that counts: every test drops the local working copy
(``DEEPMORNING_STAGING``) before reading, so what it reads came from the URI.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from conftest import run_cli
from test_tracking import read_scalars

from deepmorning.platform import remote, results
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir, open_or_create
from deepmorning.platform.tracking import TENSORBOARD_DIR


@pytest.fixture(autouse=True)
def staging(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "staging"
    monkeypatch.setenv(remote.STAGING_ENV, str(path))
    return path


def _mock() -> pafs.FileSystem:
    return pafs._MockFileSystem()


def _fsspec_memory() -> pafs.FileSystem:
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    memory = fsspec.filesystem("memory")
    memory.store.clear()
    memory.pseudo_dirs.clear()
    memory.pseudo_dirs.append("")
    return PyFileSystem(FSSpecHandler(memory))


@pytest.fixture(params=[_mock, _fsspec_memory], ids=["arrow-mock", "fsspec-memory"])
def memfs(request) -> Iterator[pafs.FileSystem]:
    """An in-process filesystem reached as mem://…"""
    filesystem = request.param()
    remote.register("mem", filesystem)
    yield filesystem
    remote.unregister("mem")


def _read(filesystem: pafs.FileSystem, path: str) -> str:
    with filesystem.open_input_stream(path) as fh:
        return fh.read().decode()


def test_a_run_at_a_uri_lives_there(memfs, staging, capsys):
    uri = "mem://bucket/runs/nas-1"
    run = RunDir.create(uri, "nas", "search", {"lr": 0.1})
    assert run.location == uri and staging in run.path.parents
    run.append_rows("history.csv", [{"child": i, "reward": i / 10} for i in range(5)])
    run.finish({"best_reward": 0.4})
    assert json.loads(_read(memfs, "bucket/runs/nas-1/summary.json")) == {"best_reward": 0.4}
    assert _read(memfs, "bucket/runs/nas-1/history.csv").count("\n") == 6
    assert json.loads(_read(memfs, "bucket/runs/nas-1/run.json"))["status"] == "finished"

    shutil.rmtree(staging)  # only the URI is left
    again = RunDir.open(uri)
    assert again.config == {"lr": 0.1} and len(again.read_table("history.csv")) == 5
    results.show(uri, rows=2)
    out = capsys.readouterr().out
    assert uri in out and "best_reward" in out and "5 rows" in out
    with pytest.raises(DeepmorningError, match="already holds a finished run"):
        RunDir.create(uri, "nas", "search", {})


def test_resume_from_a_uri_continues_the_run_and_mirrors_deletions(memfs, staging):
    uri = "mem://bucket/runs/rl-1"
    run = RunDir.create(uri, "rl", "dqn", {"algo": "dqn"})
    (run.checkpoints / "iter_000001").mkdir()
    (run.checkpoints / "iter_000001" / "state.pkl").write_bytes(b"one")
    run.sync()
    assert _read(memfs, "bucket/runs/rl-1/checkpoints/iter_000001/state.pkl") == "one"
    with pytest.raises(DeepmorningError, match="--resume mem://bucket/runs/rl-1"):
        open_or_create(group="rl", name="dqn", config={}, output=uri, resume=None)

    shutil.rmtree(staging)
    resumed, was_resumed = open_or_create(group="rl", name="dqn", config={}, output=None,
                                          resume=uri)
    assert was_resumed and resumed.config == {"algo": "dqn"}
    assert (resumed.checkpoints / "iter_000001" / "state.pkl").read_bytes() == b"one"
    shutil.rmtree(resumed.checkpoints / "iter_000001")  # RL keeps the newest checkpoints only
    resumed.append_rows("progress.csv", [{"iteration": 2}])
    resumed.finish({"done": True})
    info = memfs.get_file_info("bucket/runs/rl-1/checkpoints/iter_000001/state.pkl")
    assert info.type == pafs.FileType.NotFound
    assert "iteration" in _read(memfs, "bucket/runs/rl-1/progress.csv")


def test_a_missing_or_foreign_uri_is_one_line(memfs):
    with pytest.raises(DeepmorningError, match="does not exist"):
        RunDir.open("mem://bucket/nothing-here")
    memfs.create_dir("bucket/other", recursive=True)
    with memfs.open_output_stream("bucket/other/notes.txt") as fh:
        fh.write(b"mine")
    with pytest.raises(DeepmorningError, match="not a deepmorning run directory"):
        RunDir.open("mem://bucket/other")
    with pytest.raises(DeepmorningError, match="not empty"):
        RunDir.create("mem://bucket/other", "nas", "x", {})
    with pytest.raises(DeepmorningError, match="cannot use nosuchscheme://x/y as run storage"):
        RunDir.create("nosuchscheme://x/y", "nas", "x", {})


def test_a_file_uri_is_the_directory_it_names(tmp_path, staging, monkeypatch):
    """Not ./file:/…: the run lands at the path of the URI."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "bucket" / "run"
    run = RunDir.create(f"file://{target}", "nas", "search", {"v": 1})
    run.finish({"ok": 1})
    assert json.loads((target / "summary.json").read_text()) == {"ok": 1}
    assert not (tmp_path / "file:").exists()


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"  # an embedded Ray writes ~/.ray/auth_token: never the real home
    home.mkdir(exist_ok=True)
    return home


def test_nas_search_writes_resumes_and_shows_from_a_file_uri(tmp_path, staging):
    """The CLI end to end: a NAS search at file://, stopped half way, resumed, shown, plotted."""
    target = tmp_path / "bucket" / "nas"
    uri = f"file://{target}"
    env = {remote.STAGING_ENV: str(staging), "HOME": str(_home(tmp_path))}
    base = ["nas", "search", "--trainer", "synthetic", "-S", "1", "-K", "1", "-m", "2"]
    first = run_cli(*base, "--max-children", "2", "--output", uri, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert uri in first.stdout
    for name in ("run.json", "config.json", "history.csv", "summary.json", "rewards.png",
                 "checkpoints/journal.jsonl", "checkpoints/ps-0.pt"):
        assert (target / name).is_file(), name
    assert not (tmp_path / "file:").exists()

    # An unfinished run at the URI (as a killed search leaves it): resume it from there.
    (target / "summary.json").unlink()
    run_json = json.loads((target / "run.json").read_text())
    (target / "run.json").write_text(json.dumps({**run_json, "status": "running"}))
    shutil.rmtree(staging)
    again = run_cli("nas", "search", "--resume", uri, "--max-children", "4", env=env,
                    timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout
    summary = json.loads((target / "summary.json").read_text())
    assert summary["children"] == 4
    history = (target / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 4  # the first two children were kept, not trained again

    shutil.rmtree(staging)
    shown = run_cli("results", "show", uri, env=env)
    assert shown.returncode == 0 and uri in shown.stdout and "best_reward" in shown.stdout
    (target / "rewards.png").unlink()
    plotted = run_cli("results", "plot", uri, env=env)
    assert plotted.returncode == 0, plotted.stderr
    assert (target / "rewards.png").is_file()


def test_rl_run_at_a_file_uri_is_trained_shown_and_evaluated_from_there(tmp_path, staging):
    target = tmp_path / "bucket" / "dqn"
    uri = f"file://{target}"
    env = {remote.STAGING_ENV: str(staging), "HOME": str(_home(tmp_path))}
    res = run_cli("rl", "train", "dqn", "--env", "CartPole-v1", "--timesteps", "600",
                  "--checkpoint-every", "1", "--eval-episodes", "2", "--output", uri, env=env)
    assert res.returncode == 0, res.stderr
    assert (target / "summary.json").is_file() and (target / "progress.csv").is_file()
    assert [p.name for p in (target / "checkpoints").iterdir() if p.name.startswith("iter_")]
    assert not (tmp_path / "file:").exists()
    scalars = read_scalars(target / TENSORBOARD_DIR)  # TensorBoard files reached the URI too
    assert scalars["rl/episode_return_mean"] and "rl/final_eval_return_mean" in scalars
    shutil.rmtree(staging)
    shown = run_cli("results", "show", uri, env=env)
    assert shown.returncode == 0 and "progress.csv" in shown.stdout
    evaluated = run_cli("rl", "evaluate", uri, "--episodes", "2", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "over 2 episodes" in evaluated.stdout.replace("\n", " ")


def test_selftest_checks_that_a_uri_takes_a_file(tmp_path):
    from deepmorning.ops import selftest

    target = tmp_path / "bucket"
    selftest.check_output(f"file://{target}")
    assert target.is_dir() and list(target.iterdir()) == []  # the probe was deleted again
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DeepmorningError, match="cannot write to file://"):
        selftest.check_output(f"file://{blocker}/runs")


def test_a_nas_run_at_a_uri_keeps_every_recorded_event_through_a_kill(ray_local, tmp_path,
                                                                      staging):
    """Each journal event reaches the URI before the driver acts on it: a driver killed with
    the machine (its working copy gone too) loses no recorded child, and the resumed search
    fills every child id exactly once."""
    from test_nas_faults import Killed, _cfg, _die

    from deepmorning.nas.search import Search, journal_path

    cfg = _cfg(max_children=4, param_servers=1, controllers=1, children_per_controller=2,
               cpus_per_child=1)
    target = tmp_path / "bucket" / "nas"
    uri = f"file://{target}"
    run = RunDir.create(uri, "nas", "search", cfg.to_dict())
    search = Search(cfg, run, resumed=False)
    record, kinds = search._record, []

    def record_then_die(event):  # killed right after the driver recorded its 4th event
        record(event)
        kinds.append(event["e"])
        if len(kinds) == 4:
            raise Killed(event["e"])

    search._record = record_then_die
    with pytest.raises(Killed):
        search.run_search()
    _die(search)
    recorded = journal_path(run).read_text().splitlines()
    assert [json.loads(line)["e"] for line in recorded] == ["request", "sample", "child",
                                                            "child"]
    shutil.rmtree(staging)  # no final sync, and the machine's working copy is gone

    resumed = RunDir.resume(uri, group="nas")
    assert journal_path(resumed).read_text().splitlines() == recorded
    summary = Search(cfg, resumed, resumed=True).run_search()
    events = [json.loads(line) for line in (target / "checkpoints" / "journal.jsonl")
              .read_text().splitlines()]
    assert sorted(e["child_id"] for e in events if e["e"] == "child") == [0, 1, 2, 3]
    assert summary["children"] == 4


def test_resume_keeps_a_working_copy_newer_than_the_uri(memfs, staging):
    """A driver killed between two mirrorings leaves a working copy ahead of the URI: resuming
    on that machine keeps it (and mirrors it), instead of replacing it with the older copy.
    Once another machine has written the URI since, the URI's copy wins."""
    uri = "mem://bucket/runs/nas-2"
    run = RunDir.create(uri, "nas", "search", {"lr": 0.1})
    journal = run.checkpoints / "journal.jsonl"
    journal.write_text('{"e":"request"}\n')
    run.sync()
    with journal.open("a") as fh:  # recorded locally, not mirrored yet: then the kill
        fh.write('{"e":"sample"}\n')
    (run.checkpoints / "sampled").mkdir()
    (run.checkpoints / "sampled" / "0.pt").write_bytes(b"params")

    resumed = RunDir.resume(uri, group="nas")
    assert journal.read_text().splitlines() == ['{"e":"request"}', '{"e":"sample"}']
    assert (resumed.checkpoints / "sampled" / "0.pt").read_bytes() == b"params"
    assert _read(memfs, "bucket/runs/nas-2/checkpoints/journal.jsonl").count("\n") == 2

    with memfs.open_output_stream("bucket/runs/nas-2/checkpoints/journal.jsonl") as fh:
        fh.write(b'{"e":"request"}\n{"e":"sample"}\n{"e":"child"}\n')  # another machine
    again = RunDir.resume(uri, group="nas")
    assert len((again.checkpoints / "journal.jsonl").read_text().splitlines()) == 3
