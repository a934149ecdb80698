"""The study runner behind ``deepmorning tune MODEL``: any registered model through a Tuner.

1. :func:`resolve` checks the request and builds the run's config (model, scale, ``--set``,
   scheduler, searcher, seeds) before Ray starts, so bad input is one line at once;
2. :func:`run` opens the run directory (``--output``/``--resume``), connects to Ray, refuses a
   multi-node run on a head-only disk, and runs Tune's own pieces: a ``Tuner`` with the FIFO,
   ASHA or PBT scheduler and the random/grid (``BasicVariantGenerator``) or Optuna searcher;
   Tune's experiment folder is ``RUN/tune``, so ``--resume`` is ``Tuner.restore`` (unfinished
   trials continue from their latest checkpoint, errored ones restart, finished ones are kept);
3. :func:`write_outputs` writes results.csv, epochs.csv, best.json, curves.png, the model's
   pictures from the best checkpoint, and for a claim study claim.csv, claim.md, claim.png and
   per-arm pictures; summary.json comes last and marks the run finished.

A claim study (``--study NAME``) is the grid arms × seeds (``--seeds K``), every trial run to
its last epoch with the FIFO scheduler: stopping arms early would bias the comparison.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmorning.platform import rundir
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.tracking import MLflow, prepare_mlflow, stored_mlflow
from deepmorning.tuning import registry, space

GROUP = "tune"
EXPERIMENT = "tune"  # Tune's experiment folder inside the run directory
SCHEDULERS = ("fifo", "asha", "pbt")
SEARCHERS = ("random", "grid", "optuna")
DEFAULT_SAMPLES = 4
RESULTS, EPOCHS, BEST, CLAIM_CSV, CLAIM_MD = (
    "results.csv", "epochs.csv", "best.json", "claim.csv", "claim.md")
ASHA_REDUCTION = 2  # successive halving: keep the better half at each rung
PBT_INTERVALS = 4  # PBT perturbs a trial this many times over its epochs
KEEP = 2  # best checkpoints kept per trial (and, always, the latest)
PBT_KEEP = 4  # checkpoints kept per trial under PBT: others may still exploit older ones
#: Times Tune restarts a failed trial from its latest checkpoint (``FailureConfig.max_failures``)
#: before recording it as errored. A lost node (its trial actor dead with it) is the failure this
#: is for: the trial goes on elsewhere from its last epoch (tests/test_multinode.py). Tune counts
#: an exception of the trainable the same way, so a trainable that raises is tried 1 + 2 times.
TRIAL_RETRIES = 2


@dataclass
class TuneRequest:
    """What the user asked for (the flags of ``deepmorning tune MODEL``)."""

    model: str
    study: str | None = None
    seeds: int | None = None
    num_samples: int | None = None
    scheduler: str = "fifo"
    search: str = "random"
    max_epochs: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    sets: tuple[str, ...] = ()
    seed: int = 0
    scale: str = "quick"
    output: str | Path | None = None
    resume: str | Path | None = None
    address: str | None = None
    quiet: bool = False
    debug: bool = False  # Tune's own error logs and the trials' output on the terminal
    mlflow: str | None = None  # --mlflow: a tracking URI, '' for MLflow's default, None: off
    given: frozenset[str] = field(default_factory=frozenset)  # flags the user typed


# -- configuration ---------------------------------------------------------------------------
def resolve(req: TuneRequest) -> dict[str, Any]:
    """Check the request against the model and return the run's config (JSON-friendly)."""
    model = registry.get(req.model)
    _check_flags(req)
    sets = space.parse_sets(req.sets)
    cfg: dict[str, Any] = {
        "model": model.name, "paper": model.paper, "metric": model.metric, "mode": model.mode,
        "scale": req.scale, "seed": int(req.seed), "max_epochs": req.max_epochs,
        "cpus_per_trial": float(req.cpus_per_trial), "gpus_per_trial": float(req.gpus_per_trial),
        "sets": {k: raw for k, (_, raw) in sets.items()},
    }
    if req.study is not None:
        return cfg | _resolve_study(req, model, sets)
    return cfg | _resolve_search(req, model, sets)


def _check_flags(req: TuneRequest) -> None:
    if req.scheduler not in SCHEDULERS:
        raise DeepmorningError(f"--scheduler must be one of {', '.join(SCHEDULERS)}")
    if req.search not in SEARCHERS:
        raise DeepmorningError(f"--search must be one of {', '.join(SEARCHERS)}")
    if req.scale not in space.SCALES:
        raise DeepmorningError(f"--scale must be one of {', '.join(space.SCALES)}")
    if req.cpus_per_trial <= 0:
        raise DeepmorningError("--cpus-per-trial must be positive")
    if req.gpus_per_trial < 0:
        raise DeepmorningError("--gpus-per-trial must be >= 0")
    if req.num_samples is not None and req.num_samples < 1:
        raise DeepmorningError("--num-samples must be at least 1")
    if req.seeds is not None and req.study is None:
        raise DeepmorningError("--seeds belongs to a claim study: give --study NAME too")
    if req.seeds is not None and req.seeds < 1:
        raise DeepmorningError("--seeds must be at least 1")


def _resolve_study(req: TuneRequest, model: registry.TuneModel,
                   sets: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    study = model.study(req.study or "")
    clash = sorted({"scheduler", "search", "num_samples"} & req.given)
    if clash:
        flags = ", ".join("--" + c.replace("_", "-") for c in clash)
        raise DeepmorningError(f"{flags}: a claim study runs every arm × seed to its last epoch "
                               "(FIFO, a grid); leave these out")
    shared, arms, held = space.study_arms(model, study, scale=req.scale, sets=sets,
                                          max_epochs=req.max_epochs)
    k = int(req.seeds if req.seeds is not None else study.seeds)
    seeds = [int(req.seed) + i for i in range(k)]
    return {
        "study": study.name, "claim": study.claim, "study_metric": study.metric,
        "study_mode": study.mode, "scheduler": "fifo", "search": "grid", "num_samples": 1,
        "seeds": seeds, "arms": arms, "held_at_centre": held,
        "space": space.describe_space(shared), "epochs": int(shared["epochs"]),
        "trials": len(arms) * len(seeds),
    }


def _resolve_search(req: TuneRequest, model: registry.TuneModel,
                    sets: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    param = space.run_space(model, scale=req.scale, sets=sets, max_epochs=req.max_epochs,
                            seed=req.seed, grid=req.search == "grid")
    searched = space.searched(param)
    samples = req.num_samples or (1 if req.search == "grid" else DEFAULT_SAMPLES)
    if isinstance(param["epochs"], (dict, space.Domain)):
        raise DeepmorningError(f"{model.name}: 'epochs' must be a fixed number to tune")
    if req.search == "optuna":
        _require_optuna()
        if any(space.is_grid(v) for v in param.values()):
            raise DeepmorningError("--search optuna cannot take a grid_search in the space; "
                                   "use --search grid or random")
        if not searched:
            raise DeepmorningError(f"--search optuna: nothing left to search in {model.name} "
                                   "(every key is fixed)")
    if req.scheduler == "pbt":
        if req.search != "random":
            raise DeepmorningError("--scheduler pbt mutates trials itself: use --search random")
        if not pbt_mutations(param):
            raise DeepmorningError(f"--scheduler pbt: {model.name} has no searched key to "
                                   "mutate (every key is fixed)")
        if samples < 2:
            raise DeepmorningError("--scheduler pbt needs a population: --num-samples >= 2")
    # Nothing left to search (a quick scale may fix every key): the trials are seeds instead
    # of N copies of one trial.
    seeds = [int(req.seed) + i for i in range(samples)] if not searched and samples > 1 \
        else None
    return {
        "study": None, "scheduler": req.scheduler, "search": req.search,
        "num_samples": 1 if seeds else samples, "seeds": seeds,
        "searched": searched + (["seed"] if seeds else []), "space": space.describe_space(param),
        "epochs": int(param["epochs"]), "trials": samples * space.grid_size(param),
    }


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError as exc:
        raise DeepmorningError("--search optuna needs Optuna: pip install 'deepmorning[optuna]'"
                               ) from exc


def param_space(cfg: Mapping[str, Any], model: registry.TuneModel) -> dict[str, Any]:
    """The Tuner's param_space, rebuilt from the stored config."""
    sets = space.parse_sets(f"{k}={v}" for k, v in cfg["sets"].items())
    if cfg.get("study"):
        study = model.study(cfg["study"])
        shared, arms, _ = space.study_arms(model, study, scale=cfg["scale"], sets=sets,
                                           max_epochs=cfg["max_epochs"])
        return space.study_space(shared, arms, cfg["seeds"])
    param = space.run_space(model, scale=cfg["scale"], sets=sets, max_epochs=cfg["max_epochs"],
                            seed=cfg["seed"], grid=cfg["search"] == "grid")
    if cfg.get("seeds"):
        from ray import tune

        param["seed"] = tune.grid_search(list(cfg["seeds"]))
    return param


# -- Tune's pieces ---------------------------------------------------------------------------
def pbt_mutations(param: Mapping[str, Any]) -> dict[str, Any]:
    """PBT resamples the searched keys: ranges and choices (grids stay as the grid made them)."""
    return {k: v for k, v in param.items()
            if space.is_searched(v) and not space.is_grid(v)}


def make_scheduler(cfg: Mapping[str, Any], param: Mapping[str, Any]) -> Any:
    """FIFO; ASHA (Li et al. 2020) halving at epochs 1, 2, 4, …; PBT (Jaderberg et al. 2017)
    perturbing every ``epochs / 4`` epochs. Both count time in the trainable's ``epoch``."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    epochs = int(cfg["epochs"])
    if cfg["scheduler"] == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=1,
                             reduction_factor=ASHA_REDUCTION)
    if cfg["scheduler"] == "pbt":
        return PopulationBasedTraining(
            time_attr="epoch", perturbation_interval=max(1, epochs // PBT_INTERVALS),
            hyperparam_mutations=pbt_mutations(param))
    return FIFOScheduler()


def make_searcher(cfg: Mapping[str, Any]) -> Any:
    if cfg["search"] == "optuna":
        _require_optuna()
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=cfg["seed"])
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=cfg["seed"])


def trial_dirname(trial: Any) -> str:
    """``RUN/tune/trial_<id>``: short names instead of Tune's config-laden ones."""
    return f"trial_{trial.trial_id}"


def trainable(cfg: Mapping[str, Any], model: registry.TuneModel) -> Any:
    from ray import tune

    return tune.with_resources(model.trainable, {"cpu": cfg["cpus_per_trial"],
                                                 "gpu": cfg["gpus_per_trial"]})


def progress_callback(cfg: Mapping[str, Any], run: rundir.RunDir, quiet: bool) -> Any:
    from deepmorning.tuning.progress import TuneProgress

    label = f"{cfg['model']} · {cfg['study']}" if cfg.get("study") else cfg["model"]
    return TuneProgress(label, cfg["metric"], cfg["mode"], cfg["epochs"], run.path.name,
                        log_every=1e9 if quiet else 10.0)


def build_tuner(cfg: Mapping[str, Any], model: registry.TuneModel, run: rundir.RunDir,
                quiet: bool = False) -> Any:
    from ray import tune

    from deepmorning.tuning.progress import SilentReporter

    param = param_space(cfg, model)
    callbacks = [progress_callback(cfg, run, quiet)]
    mlflow = stored_mlflow(run.path)
    if mlflow is not None:  # the study's MLflow run is open: a child run per trial
        from deepmorning.tuning.mlflow_trials import MLflowTrials

        callbacks.append(MLflowTrials(mlflow["tracking_uri"], mlflow["run_id"],
                                      mlflow["experiment_id"]))
    return tune.Tuner(
        trainable(cfg, model),
        param_space=param,
        tune_config=tune.TuneConfig(
            metric=cfg["metric"], mode=cfg["mode"], num_samples=cfg["num_samples"],
            scheduler=make_scheduler(cfg, param), search_alg=make_searcher(cfg),
            trial_dirname_creator=trial_dirname,
            # a finished trial's worker takes the next trial: no new process, no second
            # import of torch, and a model module's per-process data cache is reused
            reuse_actors=True),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=storage(run), verbose=0,
            progress_reporter=SilentReporter(), callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(  # the best ones and, always, the latest
                num_to_keep=PBT_KEEP if cfg["scheduler"] == "pbt" else KEEP,
                checkpoint_score_attribute=cfg["metric"], checkpoint_score_order=cfg["mode"]),
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES)),
    )


def storage(run: rundir.RunDir) -> str:
    """Where Tune keeps the experiment: in the run directory, so at its URI for a run at a URI
    (trials on other nodes write their checkpoints there themselves)."""
    return run.location if run.mirror is not None else str(run.path)


def check_trusted(experiment: Path) -> None:
    """``Tuner.restore`` unpickles the experiment state: only from files this user owns and
    nobody else may write."""
    files = [experiment / "tuner.pkl", *experiment.glob("experiment_state-*.json")]
    for path in files:
        if not path.exists():
            continue
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise DeepmorningError(
                f"{path} is owned or writable by another user; --resume unpickles Tune's "
                "experiment state and only trusts the user's own files")


def restore_tuner(cfg: Mapping[str, Any], model: registry.TuneModel, run: rundir.RunDir) -> Any:
    from ray import tune

    experiment = f"{storage(run)}/{EXPERIMENT}"
    if not tune.Tuner.can_restore(experiment):
        raise DeepmorningError(f"{run.location} has no Tune experiment state to resume (the "
                               "run was stopped before its first trial started); start it again")
    if run.mirror is None:
        check_trusted(Path(experiment))
    return tune.Tuner.restore(experiment, trainable=trainable(cfg, model),
                              resume_unfinished=True, restart_errored=True)


# -- the run ---------------------------------------------------------------------------------
def prepare(req: TuneRequest) -> tuple[dict[str, Any], rundir.RunDir | None]:
    """Everything that can fail before Ray starts: the config, or the run to resume (opened
    here, once: for a run at a URI, that is its one download)."""
    if req.resume is not None:
        if req.output is not None:
            raise DeepmorningError("give either --output or --resume, not both")
        run = rundir.RunDir.resume(req.resume, group=GROUP)
        cfg = run.config
        if cfg.get("model") != req.model:
            raise DeepmorningError(f"{run.location} is a run of {cfg.get('model')}, not "
                                   f"{req.model}")
        registry.get(cfg["model"])
        rundir.warn_ignored_on_resume(
            ["--set" if name == "sets" else name for name in req.given], honoured={"mlflow"})
        return cfg, run
    cfg = resolve(req)
    if req.output is not None:
        rundir.RunDir.ensure_new(req.output)
    return cfg, None


def run_name(cfg: Mapping[str, Any]) -> str:
    return f"{cfg['model']}-{cfg['study']}" if cfg.get("study") else cfg["model"]


def run(req: TuneRequest, prepared: tuple[dict[str, Any], rundir.RunDir | None] | None = None
        ) -> dict[str, Any]:
    """Run (or resume) a Tune run or claim study; returns its summary. ``prepared``: what
    :func:`prepare` returned for ``req``, when the caller already ran it. Connects to Ray (the
    caller shuts it down)."""
    from deepmorning.platform import console, runtime
    from deepmorning.platform.storage import check_shared_output
    from deepmorning.tuning.progress import quiet_tune

    cfg, run_dir = prepared if prepared is not None else prepare(req)
    model = registry.get(cfg["model"])
    mlflow_plan = prepare_mlflow(req.mlflow, f"{GROUP}-{cfg['model']}", run_dir)
    if run_dir is not None and mlflow_plan is not None and mlflow_plan.run_id is None:
        raise DeepmorningError(f"--mlflow: {run_dir.location} was started without it, and Tune "
                               "resumes a study with the callbacks it started with")
    conn = runtime.connect(req.address, log_to_driver=req.debug)  # trials log to their files
    note = check_resources(cfg, conn)
    if note and not req.quiet:
        console.console.print(note)
    if run_dir is None:
        target = req.output or rundir.default_output(GROUP, run_name(cfg))
        check_shared_output(target, len(conn.nodes))
        run_dir, _ = rundir.open_or_create(group=GROUP, name=run_name(cfg), config=cfg,
                                           output=target, resume=None)
        if not any(run_dir.checkpoints.iterdir()):
            run_dir.checkpoints.rmdir()  # Tune keeps the checkpoints: RUN/tune/trial_*/
        if mlflow_plan is not None:
            mlflow_plan.start(run_dir, cfg)
        resumed = False
    else:
        check_shared_output(run_dir.location, len(conn.nodes))
        resumed = True
    quiet_tune(req.debug)
    if not req.quiet:
        what = f"study {cfg['study']} ({len(cfg['arms'])} arms × {len(cfg['seeds'])} seeds)" \
            if cfg.get("study") else f"{cfg['trials']} trials ({cfg['scheduler']}, " \
            f"{cfg['search']} search)"
        if not cfg.get("study") and cfg.get("seeds"):
            what = f"{cfg['trials']} seeds of one config (nothing is searched at this scale)"
        console.console.print(f"[bold]tune {cfg['model']}[/bold]: {what}, {cfg['epochs']} "
                              f"epochs, scale {cfg['scale']} -> {run_dir.location}"
                              + (" (resumed)" if resumed else ""))
        if conn.dashboard_url:
            console.console.print(f"Ray dashboard: {conn.dashboard_url}")
    started = time.monotonic()
    tuner = restore_tuner(cfg, model, run_dir) if resumed else build_tuner(cfg, model, run_dir,
                                                                          req.quiet)
    grid = tuner.fit()
    return write_outputs(run_dir, grid, cfg, model, time.monotonic() - started, req.quiet)


def check_resources(cfg: Mapping[str, Any], conn: Any) -> str | None:
    """A trial that fits on no node, now or once the autoscaler adds one, would wait forever:
    refuse it at once (one line). Returns a note when the trials wait for the autoscaler."""
    from deepmorning.platform import capacity

    need = {"CPU": cfg["cpus_per_trial"], "GPU": cfg["gpus_per_trial"]}
    less = "--gpus-per-trial 0" if cfg["gpus_per_trial"] > 0 else "--cpus-per-trial 1"
    return capacity.check_cluster(need, conn, "trial", less=less)


# -- outputs ---------------------------------------------------------------------------------
def trial_statuses(grid: Any) -> dict[str, str]:
    analysis = getattr(grid, "_experiment_analysis", None)
    return {t.trial_id: t.status for t in getattr(analysis, "trials", None) or []}


def write_table(run: rundir.RunDir, name: str, df: Any) -> Path:
    """Replace a whole CSV table atomically (results are final, not appended)."""
    path = run.path / name
    tmp = path.with_name(f".{name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def write_outputs(run: rundir.RunDir, grid: Any, cfg: Mapping[str, Any],
                  model: registry.TuneModel, wall_s: float, quiet: bool = False
                  ) -> dict[str, Any]:
    from deepmorning.platform import console
    from deepmorning.tuning import plots, report

    study = model.study(cfg["study"]) if cfg.get("study") else None
    statuses = trial_statuses(grid)
    unfinished = [t for t, s in statuses.items() if s not in ("TERMINATED", "ERROR")]
    results = report.table(report.trial_rows(grid, study is not None))
    write_table(run, RESULTS, results)
    write_table(run, EPOCHS, report.table(report.epoch_rows(grid, study is not None)))
    if unfinished:
        raise DeepmorningError(f"stopped with {len(unfinished)} unfinished trial(s); continue "
                               f"with --resume {run.location}")
    errored = results[results["status"] == "ERROR"] if not results.empty else results
    for row in errored.to_dict("records"):
        where = run.path / EXPERIMENT / f"trial_{row['trial_id']}" / "error.txt"
        console.warn(f"trial {row['trial_id']} failed: {row['error']} (see {where})")
    best = report.best_result(grid, cfg["metric"], cfg["mode"])
    if best is None:
        raise DeepmorningError(f"no trial finished with a value of {cfg['metric']} ({len(errored)}"
                               f" of {len(results)} failed); see {run.path / EXPERIMENT}; fix "
                               f"the cause and --resume {run.location} to restart them")
    best_rec = report.best_record(best, cfg["metric"], cfg["mode"])
    run.write_json(BEST, best_rec)
    summary: dict[str, Any] = {
        "model": cfg["model"], "study": cfg.get("study"), "scale": cfg["scale"],
        "metric": cfg["metric"], "mode": cfg["mode"], "trials": len(results),
        "errored": len(errored), "stopped_early": int(results["stopped_early"].sum()),
        "best_trial": best_rec["trial_id"], "best_value": best_rec["value"],
        "best_config": {k: v for k, v in best_rec["config"].items()
                        if k in cfg.get("searched", [])} or best_rec["config"],
        "best_checkpoint": best_rec["checkpoint"],
        "wall_s": round(wall_s, 2),
        "trial_time_s": round(float(results["time_total_s"].fillna(0).sum()), 2),
    }
    pictures: list[Path] = []
    claim_rows: list[dict[str, Any]] = []
    if study is not None:
        claim = report.claim_frame(results, study)
        write_table(run, CLAIM_CSV, claim)
        outcome = report.verdict(study, claim)
        held, sentence = outcome
        claim_rows = report.arm_rows(claim, study)
        context = {"scale": cfg["scale"], "seeds": len(cfg["seeds"]), "epochs": cfg["epochs"]}
        (run.path / CLAIM_MD).write_text(report.claim_markdown(
            cfg["model"], study, claim_rows, held, sentence, context, outcome.comparisons))
        summary["claim"] = {"held": held, "verdict": sentence, "paper": study.paper,
                            "arms": claim_rows,
                            "comparisons": [c.row() for c in outcome.comparisons]}
        pictures += arm_pictures(run, grid, study, model)
    pictures += draw_pictures(model.pictures, best_rec["config"],
                              report.best_checkpoint(best, cfg["metric"], cfg["mode"]),
                              run.path, "best")
    plotted = plots.plot_run(run)
    summary["plots"] = [p.name for p in plotted + pictures]
    run.finish(summary)
    mlflow = MLflow.open(run)
    if mlflow is not None:  # the study's run: its summary figures, tables, plots and claim
        mlflow.finish(run.path, summary)
    if not quiet:
        closing_table(run, results, cfg, claim_rows, summary)
    return summary


def draw_pictures(pictures: registry.Pictures | None, config: Mapping[str, Any],
                  checkpoint: Any, folder: Path, tag: str) -> list[Path]:
    """The model's pictures from a checkpoint; a failure is a warning, not a lost run."""
    from deepmorning.platform import console

    if pictures is None or checkpoint is None:
        return []
    try:
        with checkpoint.as_directory() as path:
            return [Path(p) for p in pictures(dict(config), Path(path), folder, tag)]
    except Exception as exc:  # noqa: BLE001 - the tables are written; say what failed
        console.warn(f"the {tag} pictures could not be drawn: {type(exc).__name__}: {exc}")
        return []


def arm_pictures(run: rundir.RunDir, grid: Any, study: registry.Study,
                 model: registry.TuneModel) -> list[Path]:
    """Pictures of the best seed of each arm (the study's own, else the model's)."""
    from deepmorning.tuning import report

    draw = study.pictures or model.pictures
    if draw is None:
        return []
    written: list[Path] = []
    for arm in study.arms:
        arm_results = [r for r in grid if (r.config or {}).get("arm") == arm]
        best = report.best_result(arm_results, study.metric, study.mode)
        if best is not None:
            checkpoint = report.best_checkpoint(best, study.metric, study.mode)
            written += draw_pictures(draw, best.config, checkpoint, run.path, arm)
    return written


def closing_table(run: rundir.RunDir, results: Any, cfg: Mapping[str, Any],
                  claim_rows: list[dict[str, Any]], summary: Mapping[str, Any]) -> None:
    from deepmorning.platform import console
    from deepmorning.tuning import report

    top = report.top_rows(results, cfg["metric"], cfg["mode"], cfg.get("searched", []))
    title = "trials" if cfg.get("study") else f"best trials of {len(results)}"
    console.print_table(title, top)
    if claim_rows:
        console.print_table(f"claim: {cfg['study']} (mean ± std over seeds)", claim_rows)
        claim = summary["claim"]
        word = {True: "HELD", False: "DID NOT HOLD", None: "NOT DECIDED"}[claim["held"]]
        console.console.print(f"[bold]{word}[/bold] at this scale: {claim['verdict']}")
        console.console.print(f"paper: {claim['paper']}")
    value = summary["best_value"]
    console.console.print(
        f"best {cfg['metric']} {value:.4g} (trial {summary['best_trial']}); "
        f"{summary['errored']} failed, {summary['stopped_early']} stopped early; "
        f"{summary['wall_s']:.0f} s -> {run.location}" if math.isfinite(value) else run.location)
