"""The Tune study runner with real Tune runs of the toy model (``tests/tune_toy.py``).

The CLI tests start ``deepmorning tune`` as a user would, from an empty directory with the
default relative ``runs/`` output; the scheduler/searcher tests call the runner in-process on
the session's local Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import ray.cloudpickle
import tune_toy
from conftest import REPO, published_node_groups, run_cli, run_main

from deepmorning.platform.errors import DeepmorningError
from deepmorning.tuning import progress, registry, report, runner, space, trial

ray.cloudpickle.register_pickle_by_value(tune_toy)  # in-process runs: workers need no import


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"  # Ray writes ~/.ray: never into the real home
    home.mkdir(exist_ok=True)
    path = os.pathsep.join([str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "HOME": str(home), "COLUMNS": "160", "PYTHONPATH": path,
           registry.MODULES_ENV: "tune_toy", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def _one_run(cwd: Path) -> Path:
    (run,) = (cwd / "runs").iterdir()
    return run


# -- pure pieces: no Ray ----------------------------------------------------------------------
def test_set_values_are_checked_against_the_space():
    sets = space.parse_sets(["lr=0.01", "steps=8", "slope=2", "fail=true"])
    out = space.apply_sets(space.scaled(tune_toy.MODEL, "quick"), sets, "toy")
    assert out["lr"] == 0.01 and out["steps"] == 8 and out["slope"] == 2.0 and out["fail"] is True
    bad = {"lr=2": "must lie in", "lr=fast": "takes a number", "steps=3": "not one of the options",
           "epochs=2.5": "takes an integer", "fail=1": "true or false", "seed=1": "--seed",
           "width=3": "unknown key"}
    for item, message in bad.items():
        with pytest.raises(DeepmorningError, match=message):
            space.apply_sets(dict(tune_toy.SPACE), space.parse_sets([item]), "toy")


def test_grid_crosses_every_choice_and_a_study_holds_searched_keys_alike():
    cfg = runner.resolve(runner.TuneRequest(model="toy", search="grid", num_samples=3))
    assert cfg["trials"] == 2 * 3  # steps in {2, 8}, three passes
    study = tune_toy.STUDIES["lr"]
    shared, arms, held = space.study_arms(tune_toy.MODEL, study, scale="paper", sets={},
                                          max_epochs=None)
    assert arms == {"small": {"lr": 0.003}, "large": {"lr": 0.2}}
    assert shared["steps"] == 4 and shared["epochs"] == 6 and held == {}
    with pytest.raises(DeepmorningError, match="erase the comparison"):
        space.study_arms(tune_toy.MODEL, study, scale="quick",
                         sets=space.parse_sets(["lr=0.1"]), max_epochs=None)


def test_claim_table_and_verdict_from_a_hand_made_frame():
    study = tune_toy.STUDIES["lr"]
    claim = pd.DataFrame({"arm": ["small", "small", "large", "large", "large"],
                          "seed": [0, 1, 0, 1, 2],
                          "status": ["TERMINATED"] * 4 + ["ERROR"],
                          "loss": [3.0, 2.0, 0.5, 0.3, None], "weight": [0.1, 0.2, 2.9, 3.0, None]})
    rows = report.arm_rows(claim, study)
    assert rows == [{"arm": "small", "seeds": 2, "loss": "2.5 ± 0.71", "weight": "0.15 ± 0.071"},
                    {"arm": "large", "seeds": 2, "loss": "0.4 ± 0.14", "weight": "2.95 ± 0.071"}]
    outcome = report.verdict(study, claim)  # paired by seed: 3.0 − 0.5, 2.0 − 0.3
    held, sentence = outcome
    label = "small − large (loss, lower is better)"
    assert held is True and sentence.startswith(f"{label} = +2.1 ± 0.4")
    worse = claim.assign(loss=[0.1, 0.2, 0.5, 0.3, None])
    assert report.verdict(study, worse)[0] is False
    held, sentence = report.verdict(study, claim[claim.arm == "small"])
    assert held is None and "no finished trial for arm(s) large" in sentence
    md = report.claim_markdown("toy", study, rows, True, "large wins", {"seeds": 2},
                               outcome.comparisons)
    assert "| small | 2 | 2.5 ± 0.71 | 0.15 ± 0.071 |" in md and "**held**" in md
    assert f"| {label} | +2.1 ± 0.4 | 2/2 | > 0 in every seed | holds |" in md


def test_a_space_with_nothing_searched_runs_seeds():
    cfg = runner.resolve(runner.TuneRequest(model="toy", num_samples=3, seed=5,
                                            sets=("lr=0.1", "steps=2")))
    assert (cfg["trials"], cfg["num_samples"], cfg["seeds"]) == (3, 1, [5, 6, 7])
    assert runner.param_space(cfg, tune_toy.MODEL)["seed"] == {"grid_search": [5, 6, 7]}
    cfg = runner.resolve(runner.TuneRequest(model="toy", num_samples=3, seed=5))
    assert cfg["seeds"] is None and runner.param_space(cfg, tune_toy.MODEL)["seed"] == 5


@pytest.mark.parametrize("flags, message", [
    ({"study": "nope"}, "unknown study 'nope' for toy"),
    ({"study": "lr", "scheduler": "asha"}, "--scheduler: a claim study"),
    ({"seeds": 3}, "--seeds belongs to a claim study"),
    ({"scheduler": "pbt", "search": "optuna"}, "use --search random"),
    ({"scheduler": "pbt", "num_samples": 1}, "needs a population"),
])
def test_conflicting_flags_are_refused_before_ray(flags, message):
    req = runner.TuneRequest(model="toy", given=frozenset(flags), **flags)
    with pytest.raises(DeepmorningError, match=message):
        runner.prepare(req)


def test_progress_figures_count_trials_and_estimate_the_time_left():
    line = progress.TuneProgress("toy", "loss", "min", epochs=4, run_name="r")
    line.total, line._started = 4, time.monotonic() - 10
    t = SimpleNamespace
    trials = [t(status="TERMINATED", last_result={"epoch": 2},  # stopped early: counts in full
                metric_analysis={"loss": {"min": 0.5}}),
              t(status="RUNNING", last_result={"epoch": 2}, metric_analysis={"loss": {"min": 0.2}}),
              t(status="PENDING", last_result={}, metric_analysis={})]
    line._work_at_start = 2  # 4 more epochs done in the 10 s since
    f = line.figures(trials)
    assert (f["done"], f["running"], f["total"], f["best"]) == (1, 1, 4, 0.2)
    assert f["eta"] == pytest.approx((16 - 6) * 10 / 4, rel=0.05)


# -- the CLI -------------------------------------------------------------------------------------
def test_tune_list_shows_models_metrics_and_studies(tmp_path):
    res = run_cli("tune", "list", env=_env(tmp_path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if " toy " in line)
    assert "loss (min)" in row and " lr " in row


@pytest.mark.parametrize("args, message", [
    (["--set", "width=3"], "--set width: unknown key for toy"),
    (["--set", "lr=fast"], "'lr' takes a number"),
    (["--set", "steps=3"], "not one of the options of 'steps': 2, 8"),
])
def test_bad_input_is_one_line_before_ray_starts(tmp_path, args, message):
    env = _env(tmp_path, RAY_TMPDIR=str(tmp_path / "raytmp"))
    res = run_cli("tune", "toy", *args, env=env, cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "raytmp").exists()  # Ray never started


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> tuple[Path, str]:
    """``deepmorning tune toy --num-samples 3`` from an empty directory (relative runs/)."""
    cwd = tmp_path_factory.mktemp("newcomer")
    res = run_cli("tune", "toy", "--num-samples", "3", env=_env(cwd), cwd=cwd)
    assert res.returncode == 0, res.stderr
    return _one_run(cwd), res.stdout


def test_a_run_from_relative_runs_writes_every_file(toy_run):
    run, stdout = toy_run
    assert run.is_absolute() and run.parent.name == "runs"
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["model"], cfg["trials"], cfg["epochs"]) == ("toy", 3, 3)
    results = pd.read_csv(run / "results.csv")
    assert len(results) == 3 and set(results.status) == {"TERMINATED"}
    assert {"trial_id", "loss", "epoch", "config/lr", "config/steps", "config/seed"} <= \
        set(results.columns)
    assert results["config/lr"].nunique() == 3 and (results.epoch == 3).all()
    epochs = pd.read_csv(run / "epochs.csv")
    assert sorted(epochs.groupby("trial_id").epoch.apply(list).tolist()) == [[1, 2, 3]] * 3
    best = json.loads((run / "best.json").read_text())
    assert best["value"] == pytest.approx(results.loss.min())
    assert best["config"]["lr"] == pytest.approx(results.loc[results.loss.idxmin(), "config/lr"])
    checkpoint = Path(best["checkpoint"])
    assert checkpoint.is_absolute() and run / "tune" in checkpoint.parents
    assert trial.load_state(checkpoint)["epoch"] == 3
    assert (run / "tune" / "tuner.pkl").is_file()
    assert len(list((run / "tune").glob("trial_*"))) == 3
    assert len(list((run / "tune").glob("trial_*/events.out.tfevents.*"))) == 3  # TensorBoard
    for png in ("curves.png", "toy-best.png"):
        assert (run / png).stat().st_size > 5000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["trials"] == 3 and summary["best_value"] == pytest.approx(best["value"])
    written = [p for p in run.iterdir() if p.is_file() and p.name != "run.json"]
    assert max(written, key=lambda p: p.stat().st_mtime_ns).name == "summary.json"
    assert "best trials of 3" in stdout and best["trial_id"] in stdout
    assert "Number of trials" not in stdout  # Tune's own tables are silenced


def test_results_show_and_plot_read_a_tune_run(toy_run, tmp_path):
    run, _ = toy_run
    res = run_cli("results", "show", str(run), env=_env(tmp_path))
    assert res.returncode == 0, res.stderr
    out = res.stdout.replace("\n", " ")
    assert "tune/toy" in out and "results.csv (3 rows" in out and "best_value" in out
    (run / "curves.png").unlink()
    res = run_cli("results", "plot", str(run), env=_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert (run / "curves.png").stat().st_size > 5000


def test_a_claim_study_writes_claim_tables(ray_local, tmp_path, monkeypatch, capsys):
    """In this process, on the session's Ray (a fresh interpreter with a Ray of its own is
    what ``toy_run`` tests; the command's flags map to the request as in ``cli.tune``)."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    runner.run(runner.TuneRequest(model="toy", study="lr", seeds=2,
                                  given=frozenset({"study", "seeds"})))
    res = SimpleNamespace(stdout=capsys.readouterr().out)
    run = _one_run(tmp_path)
    claim = pd.read_csv(run / "claim.csv")
    pairs = sorted(zip(claim.arm, claim.seed, strict=True))
    assert pairs == [("large", 0), ("large", 1), ("small", 0), ("small", 1)]
    assert {"loss", "weight", "status"} <= set(claim.columns)
    results = pd.read_csv(run / "results.csv")
    assert set(results.groupby("arm")["config/lr"].first().items()) == {("small", 0.003),
                                                                        ("large", 0.2)}
    assert (results["config/steps"] == 4).all()  # the study's base
    md = (run / "claim.md").read_text()
    large = claim[claim.arm == "large"].loss
    assert f"| large | 2 | {large.mean():.4g} ± {large.std():.2g} |" in md
    assert "toy study: no paper" in md and "The claim **held** at this scale" in md
    summary = json.loads((run / "summary.json").read_text())
    assert summary["claim"]["held"] is True
    for png in ("claim.png", "curves.png", "toy-small.png", "toy-large.png"):
        assert (run / png).is_file(), png
    assert "HELD at this scale" in res.stdout.replace("\n", " ")


def _experiment_state(run_root: Path) -> list[tuple[str, str, int]]:
    """(trial id, status, last reported epoch) from Tune's saved experiment state."""
    states = sorted(run_root.glob("runs/*/tune/experiment_state-*.json"))
    if not states:
        return []
    try:
        data = json.loads(states[-1].read_text())
    except (json.JSONDecodeError, OSError):  # being replaced right now
        return []
    out = []
    for trial_json, runtime_json in data["trial_data"]:
        t, rt = json.loads(trial_json), json.loads(runtime_json)
        out.append((t["trial_id"], t["status"], int(rt["last_result"].get("epoch", 0))))
    return out


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (the killed run's driver, Ray, workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_kill_minus_9_then_resume_keeps_finished_trials_and_continues_the_rest(tmp_path):
    log = tmp_path / "epochs.log"
    env = _env(tmp_path, TUNE_TOY_LOG=str(log), TUNE_GLOBAL_CHECKPOINT_S="0.5")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepmorning", "tune", "toy", "--num-samples", "4",
         "--max-epochs", "4", "--set", "sleep=0.7"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline, state = time.time() + 300, []
    try:
        while time.time() < deadline:
            state = _experiment_state(tmp_path)
            done = [s for s in state if s[1] == "TERMINATED"]
            midway = [s for s in state if s[1] != "TERMINATED" and 2 <= s[2] < 4]
            if done and midway:
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed midway:\n"
                            f"{proc.stderr.read()}")
            time.sleep(0.1)
        else:
            pytest.fail(f"no finished and half-done trials together within 300 s: {state}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray, at once
        proc.wait()
    # Ray's workers live in their own process groups: they notice the dead driver and exit
    # after their current epoch. Wait for that, or their last lines would read as resumed work.
    deadline = time.time() + 120
    while _processes_with(str(log)) and time.time() < deadline:
        time.sleep(0.5)
    assert not _processes_with(str(log)), "the killed run's processes did not exit"
    run = _one_run(tmp_path)
    assert not (run / "summary.json").exists()
    with log.open("a") as fh:
        fh.write("resume\n")

    res = run_cli("tune", "toy", "--resume", f"runs/{run.name}", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "(resumed)" in res.stdout.replace("\n", "")
    after = log.read_text().split("resume\n", 1)[1].split()
    trained = {}
    for trial_id, epoch in zip(after[::2], after[1::2], strict=True):
        trained.setdefault(trial_id, []).append(int(epoch))
    continued = 0
    for trial_id, status, epoch in state:
        if status == "TERMINATED":
            assert trial_id not in trained, f"finished trial {trial_id} ran again"
            continue
        # the rest of its epochs, from its last checkpoint Tune had recorded: the snapshot we
        # read can name a result whose checkpoint the saved state does not hold yet (Tune saves
        # its experiment state on its own clock), so a trial may redo its last reported epoch
        first = trained[trial_id][0]
        assert trained[trial_id] == list(range(first, 5)) and first <= epoch + 1, \
            (trial_id, epoch, trained)
        continued += first > 1
    assert continued, f"no unfinished trial continued from a checkpoint: {state} {trained}"
    results = pd.read_csv(run / "results.csv")
    assert len(results) == 4 and set(results.status) == {"TERMINATED"} and \
        (results.epoch == 4).all()
    assert json.loads((run / "summary.json").read_text())["trials"] == 4


# -- schedulers and searchers, in-process ---------------------------------------------------------
def _run(tmp_path: Path, **flags) -> tuple[dict, Path]:
    out = tmp_path / "run"
    req = runner.TuneRequest(model="toy", output=out, quiet=True,
                             given=frozenset(k for k in flags if k != "sets"), **flags)
    return runner.run(req), out


def test_asha_stops_bad_trials_early(ray_local, tmp_path):
    summary, run = _run(tmp_path, scheduler="asha", num_samples=8, max_epochs=4)
    results = pd.read_csv(run / "results.csv")
    assert len(results) == 8 and summary["stopped_early"] >= 1
    stopped = results[results.stopped_early]
    assert (stopped.epoch < 4).all()
    best = results.loc[results.loss.idxmin()]
    assert not best.stopped_early and best.epoch == 4
    # a stopped trial was worse, when it stopped, than the best trial at the same epoch
    epochs = pd.read_csv(run / "epochs.csv")
    best_curve = epochs[epochs.trial_id == best.trial_id].set_index("epoch").loss
    for row in stopped.itertuples():
        assert row.loss > best_curve[row.epoch]


def test_pbt_runs_a_population(ray_local, tmp_path):
    summary, run = _run(tmp_path, scheduler="pbt", num_samples=3, max_epochs=4)
    results = pd.read_csv(run / "results.csv")
    assert len(results) == 3 and (results.epoch == 4).all() and summary["errored"] == 0
    assert "PopulationBasedTraining" in (run / "tune" / "tuner.pkl").read_bytes().decode("latin1")
    # PBT's exploit copies a better trial's checkpoint and mutates its config: the restored
    # trial must train with the mutated lr, not the one saved in the optimizer's state
    rows = [json.loads(line) for f in (run / "tune").glob("*/result.json")
            for line in f.read_text().splitlines() if line.strip()]
    assert rows and all(r["lr_used"] == pytest.approx(r["config"]["lr"]) for r in rows)
    first_lr = {}
    for r in rows:
        first_lr.setdefault(r["trial_id"], r["config"]["lr"])
    assert any(r["config"]["lr"] != first_lr[r["trial_id"]] for r in rows), "PBT never perturbed"


def test_optuna_searches_the_space(ray_local, tmp_path):
    summary, run = _run(tmp_path, search="optuna", num_samples=4)
    results = pd.read_csv(run / "results.csv")
    assert len(results) == 4 and results["config/lr"].nunique() == 4
    assert results["config/lr"].between(1e-3, 0.3).all()
    assert list((run / "tune").glob("searcher-state-*.pkl"))
    assert summary["best_value"] == pytest.approx(results.loss.min())


def test_failed_trials_are_reported_and_the_run_stays_resumable(ray_local, tmp_path):
    with pytest.raises(DeepmorningError, match="no trial finished with a value of loss"):
        _run(tmp_path, num_samples=2, sets=("fail=true",))
    run = tmp_path / "run"
    results = pd.read_csv(run / "results.csv")
    assert list(results.status) == ["ERROR", "ERROR"]
    assert results.error.str.contains("toy failure on purpose").all()
    assert not (run / "summary.json").exists()  # unfinished: --resume restarts failed trials


def test_a_run_at_a_uri_lands_there_and_reads_back(ray_local, tmp_path, monkeypatch, capsys):
    """``--output file://…``: Tune's experiment and every run file end up at the URI (a bucket
    on a cluster), and ``results show`` reads the run from there. The CLI in this process, on
    the session's Ray."""
    uri = (tmp_path / "bucket" / "study").as_uri()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    runner.run(runner.TuneRequest(model="toy", num_samples=1, output=uri,
                                  given=frozenset({"num_samples", "output"})))
    res = SimpleNamespace(stdout=capsys.readouterr().out)
    assert uri in res.stdout.replace("\n", "")
    remote = tmp_path / "bucket" / "study"
    for name in ("config.json", "results.csv", "best.json", "curves.png", "summary.json"):
        assert (remote / name).is_file(), name
    assert list((remote / "tune").glob("trial_*/checkpoint_*"))
    assert not (tmp_path / "file:").exists() and not (tmp_path / "runs").exists()
    shown = run_main(capsys, "results", "show", uri)
    assert shown.returncode == 0, shown.stderr
    assert "curves.png" in shown.stdout


def test_gpu_trials_wait_for_the_autoscalers_gpu_nodes_instead_of_being_refused(ray_local):
    """``--gpus-per-trial 0.5`` on a cluster whose GPU workers start at 0 (every shipped
    config): the check that NAS uses, with the node types the autoscaler publishes."""
    from deepmorning.platform.runtime import describe

    cfg = runner.resolve(runner.TuneRequest(model="toy", gpus_per_trial=0.5))
    with pytest.raises(DeepmorningError, match="no GPU"):
        runner.check_resources(cfg, describe())  # no GPU now, none the autoscaler can add
    with published_node_groups(**{"gpu-group": {"CPU": 8, "GPU": 1}}):
        note = runner.check_resources(cfg, describe())
        assert note is not None and "'gpu-group'" in note and "\n" not in note
        with pytest.raises(DeepmorningError, match="16 CPU"):
            runner.check_resources({**cfg, "cpus_per_trial": 16.0}, describe())


def test_a_resume_at_a_uri_downloads_the_run_once(ray_local, tmp_path, monkeypatch, capsys):
    """``tune toy --resume file://…`` opens the run directory once (issue 20: three times, three
    full downloads from a bucket); flags given with it are named as ignored. The run here was
    stopped before its first trial, so the resume ends at the Tune experiment check."""
    from deepmorning import cli
    from deepmorning.platform import remote
    from deepmorning.platform.rundir import RunDir

    monkeypatch.setenv(remote.STAGING_ENV, str(tmp_path / "staging"))
    uri = (tmp_path / "bucket" / "study").as_uri()
    cfg = runner.resolve(runner.TuneRequest(model="toy"))
    RunDir.create(uri, runner.GROUP, runner.run_name(cfg), cfg)
    # resumed on another machine: no staging copy, so opening the run downloads it
    shutil.rmtree(tmp_path / "staging")
    downloads, opens = [], []
    download, refresh = remote.Mirror.download, remote.Mirror.refresh

    def counted(mirror: remote.Mirror) -> None:
        downloads.append(mirror.uri)
        download(mirror)

    def counted_open(mirror: remote.Mirror) -> None:
        opens.append(mirror.uri)
        refresh(mirror)

    monkeypatch.setattr(remote.Mirror, "download", counted)
    monkeypatch.setattr(remote.Mirror, "refresh", counted_open)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.main(["tune", "toy", "--resume", uri, "--num-samples", "3", "--set", "lr=0.01"])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert opens == [uri] and downloads == [uri]
    assert "ignoring --num-samples, --set\n" in err and "no Tune experiment state to resume" in err


def test_readme_study_line_runs_from_an_empty_directory(tmp_path):
    """The README's `deepmorning tune basics --study batchnorm`, as printed: default relative
    runs/, a claim table that held and its files."""
    env = {**os.environ, "HOME": str(tmp_path / "home"), "COLUMNS": "160"}
    env.pop("RAY_ADDRESS", None)
    env.pop(registry.MODULES_ENV, None)
    (tmp_path / "home").mkdir()
    readme = (REPO / "README.md").read_text()
    assert "deepmorning tune basics --study batchnorm " in readme
    res = run_cli("tune", "basics", "--study", "batchnorm", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    run = _one_run(tmp_path)
    claim = pd.read_csv(run / "claim.csv")
    assert sorted(claim.arm.unique()) == ["bn", "plain"] and len(claim) == 6
    assert "**held**" in (run / "claim.md").read_text()
    assert (run / "claim.png").is_file() and (run / "summary.json").is_file()


def test_load_optimizer_keeps_the_configs_hyperparameters_and_the_saved_moments():
    import torch

    from deepmorning.tuning import trial

    w, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(1))
    old = torch.optim.Adam([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1,
                           weight_decay=0.01)
    (w.sum() + b.sum()).backward()
    old.step()
    new = torch.optim.Adam([{"params": [w]}, {"params": [b], "lr": 0.05}], lr=0.01,
                           weight_decay=0.0)
    trial.load_optimizer(new, old.state_dict())
    assert [g["lr"] for g in new.param_groups] == [0.01, 0.05]
    assert [g["weight_decay"] for g in new.param_groups] == [0.0, 0.0]
    assert torch.equal(new.state[w]["exp_avg"], old.state[w]["exp_avg"])
    assert int(new.state[w]["step"]) == 1


def test_every_model_restores_its_optimizers_through_load_optimizer():
    """A plain ``opt.load_state_dict`` on restore brings back the saved lr and undoes PBT."""
    import re

    import deepmorning.tuning as tuning

    offenders = [f"{path.name}: {m.group(0)}" for path in Path(tuning.__file__).parent.glob("*.py")
                 if path.name != "trial.py"
                 for m in re.finditer(r"\w*opt\w*\.load_state_dict\([^)]*\)", path.read_text())]
    assert offenders == []


def test_claim_png_plots_the_studys_metric_not_the_models(tmp_path):
    """basics/batchnorm is judged on steps_to_target (min) while the model's metric is val_acc."""
    from deepmorning.platform.rundir import RunDir
    from deepmorning.tuning import plots as tune_plots

    cfg = {"model": "basics", "study": "batchnorm", "metric": "val_acc", "mode": "max",
           "study_metric": "steps_to_target", "study_mode": "min"}
    run = RunDir.create(tmp_path / "run", "tune", "basics-batchnorm", cfg)
    run.append_rows("epochs.csv", [{"trial_id": t, "epoch": 1, "val_acc": 0.9, "arm": a, "seed": 0}
                                   for t, a in (("a", "bn"), ("b", "plain"))])
    run.append_rows("results.csv", [{"trial_id": "a", "val_acc": 0.9}])
    run.append_rows("claim.csv", [{"arm": a, "seed": 0, "trial_id": t, "status": "TERMINATED",
                                   "steps_to_target": s}
                                  for t, a, s in (("a", "bn", 300), ("b", "plain", 900))])
    written = tune_plots.plot_run(RunDir.open(tmp_path / "run"))
    assert run.path / "claim.png" in written
