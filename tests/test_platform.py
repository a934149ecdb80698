"""Foundation: CLI groups, one-line errors, embedded and remote Ray, run directories."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO, free_port, run_cli

from deepmorning.platform import results
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir, open_or_create

GROUPS = ["info", "nas", "rl", "tune", "job", "cluster", "results"]


def assert_one_line_error(res, *fragments: str) -> None:
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_the_seven_groups():
    res = run_cli("--help")
    assert res.returncode == 0
    listed = re.findall(r"^  (\w+)\s", res.stdout.split("Commands:")[1], re.M)
    assert listed == GROUPS


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_has_help(group):
    res = run_cli(group, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout


def test_python_dash_m_and_version_agree():
    res = run_cli("--version")
    assert res.returncode == 0 and "deepmorning" in res.stdout


def test_unknown_flag_is_one_line_error():
    res = run_cli("--no-such-flag")
    assert_one_line_error(res, "--no-such-flag")


def test_unknown_command_is_one_line_error():
    res = run_cli("results", "frobnicate")
    assert_one_line_error(res, "frobnicate")


def test_info_on_embedded_ray():
    res = run_cli("info")
    assert res.returncode == 0, res.stderr
    assert "embedded" in res.stdout
    assert re.search(r"ray\s+│\s+2\.60", res.stdout)
    # the dashboard row itself: served, and on loopback (not the node IP, not 0.0.0.0)
    assert re.search(r"^│ dashboard\s+│ http://127\.0\.0\.1:\d+\s+│$", res.stdout, re.M), res.stdout


def test_info_against_a_head_node(ray_head):
    res = run_cli("--address", ray_head.address, "info")
    assert res.returncode == 0, res.stderr
    assert "cluster" in res.stdout
    assert ray_head.dashboard_url in res.stdout


def test_info_reads_ray_address_env(ray_head):
    res = run_cli("info", env={"RAY_ADDRESS": ray_head.address})
    assert res.returncode == 0, res.stderr
    assert ray_head.dashboard_url in res.stdout


def test_unreachable_address_is_one_line_error():
    port = free_port()
    res = run_cli("--address", f"127.0.0.1:{port}", "info", timeout=60)
    assert_one_line_error(res, f"127.0.0.1:{port}")


@pytest.mark.parametrize("address", ["not-an-address", "http://127.0.0.1:8265"])
def test_malformed_address_is_one_line_error(address):
    assert_one_line_error(run_cli("--address", address, "info"), "--address")


def test_results_of_missing_dir_is_one_line_error(tmp_path):
    assert_one_line_error(run_cli("results", "show", str(tmp_path / "nope")), "does not exist")


# -- run directories -------------------------------------------------------------------------

def test_run_dir_round_trip(tmp_path):
    run = RunDir.create(tmp_path / "r", "nas", "search", {"lr": 6e-4, "layers": [1, 2]})
    run.append_rows("history.csv", [{"id": 0, "arch": {"a": 1}, "reward": 0.5}])
    run.append_rows("history.csv", [{"id": 1, "arch": {"a": 2}, "reward": 0.7}])
    assert run.config == {"lr": 6e-4, "layers": [1, 2]}
    df = run.read_table("history.csv")
    assert list(df["id"]) == [0, 1] and json.loads(df["arch"][1]) == {"a": 2}
    assert not run.is_finished() and run.info["status"] == "running"
    run.finish({"best": 0.7})
    assert run.is_finished() and run.summary == {"best": 0.7}
    assert RunDir.open(run.path).info["status"] == "finished"
    assert run.checkpoints.is_dir()


def test_run_dir_columns_are_fixed_by_first_row(tmp_path):
    run = RunDir.create(tmp_path / "r", "nas", "x", {})
    run.append_rows("t.csv", [{"a": 1}])
    with pytest.raises(ValueError):
        run.append_rows("t.csv", [{"a": 1, "b": 2}])


def test_finished_run_is_never_overwritten(tmp_path):
    run = RunDir.create(tmp_path / "r", "nas", "x", {"v": 1})
    run.finish({"done": True})
    with pytest.raises(DeepmorningError, match="finished"):
        open_or_create(group="nas", name="x", config={"v": 2}, output=run.path, resume=None)
    with pytest.raises(DeepmorningError, match="nothing to resume"):
        open_or_create(group="nas", name="x", config={}, output=None, resume=run.path)
    assert run.config == {"v": 1}


def test_unfinished_run_needs_resume(tmp_path):
    run = RunDir.create(tmp_path / "r", "nas", "x", {"v": 1})
    with pytest.raises(DeepmorningError, match="--resume"):
        open_or_create(group="nas", name="x", config={}, output=run.path, resume=None)
    again, resumed = open_or_create(group="nas", name="x", config={}, output=None,
                                    resume=run.path)
    assert resumed and again.config == {"v": 1}
    with pytest.raises(DeepmorningError, match="not a 'rl' run"):
        RunDir.resume(run.path, group="rl")


def test_non_run_directory_is_refused(tmp_path):
    (tmp_path / "stuff.txt").write_text("mine")
    with pytest.raises(DeepmorningError, match="not empty"):
        RunDir.create(tmp_path, "nas", "x", {})


def test_results_show_prints_summary_and_table(tmp_path, capsys):
    run = RunDir.create(tmp_path / "r", "nas", "search", {})
    run.append_rows("history.csv", [{"child": i, "reward": i / 10} for i in range(20)])
    run.finish({"best_reward": 0.9})
    results.show(run.path, rows=3)
    out = capsys.readouterr().out
    assert "best_reward" in out and "0.9" in out
    assert "20 rows" in out and "0.2" in out and "0.5" not in out


def test_readme_and_ci_run_the_same_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    block = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert block, "README has no marked test command"
    assert "README.md" in ci and "test-command" in ci  # .ci/run executes that very block
