"""``deepmorning nas``: the architecture search and the final training of its best model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from deepmorning.platform import console, runtime
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import (
    SUMMARY_FILE,
    RunDir,
    default_output,
    open_or_create,
    warn_ignored_on_resume,
)
from deepmorning.platform.storage import check_shared_output
from deepmorning.platform.tracking import MLFLOW_HELP

# flag name -> path in the config dict
OVERRIDES: dict[str, tuple[str, ...]] = {
    "dataset": ("dataset",),
    "data_limit": ("data_limit",),
    "max_children": ("max_children",),
    "child_epochs": ("child", "epochs"),
    "strategy": ("strategy",),
    "seed": ("seed",),
    "param_servers": ("param_servers",),
    "controllers": ("controllers",),
    "children_per_controller": ("children_per_controller",),
    "gpus_per_child": ("gpus_per_child",),
    "cpus_per_child": ("cpus_per_child",),
    "apply_every": ("apply_every",),
    "server_processes": ("server_processes",),
    "replica_processes": ("replica_processes",),
    "baseline_decay": ("controller", "baseline_decay"),
    "entropy_weight": ("controller", "entropy_weight"),
    "trainer": ("child", "trainer"),
}


@click.group()
def nas() -> None:
    """Neural Architecture Search with RL (Zoph & Le, ICLR 2017) on Ray.

    An LSTM controller samples CNN architectures and learns from the children's validation
    accuracy with REINFORCE, in the paper's layout: S parameter-server shards, K controller
    replicas, m children each, children trained in parallel as Ray tasks.
    """


@nas.command("search")
@click.option("--preset", default="quick", show_default=True,
              help="'quick' (digits, a few minutes on a laptop) or 'paper' (Sec. 4.1 values).")
@click.option("--space", "search_space", type=click.Choice(["cnn", "rnn"]), default="cnn",
              show_default=True,
              help="'cnn' (conv layers, Sec. 3.1-3.3) or 'rnn' (recurrent cells, Sec. 3.4).")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="JSON/YAML file overriding preset values (same keys as config.json).")
@click.option("--dataset", help="cnn: digits | strokes | cifar10:PATH | mnist:PATH; "
              "rnn: pydoc | ptb:PATH")
@click.option("--data-limit", type=click.IntRange(min=1), help="Cap training examples.")
@click.option("--max-children", type=click.IntRange(min=1), help="Architectures to train.")
@click.option("--child-epochs", type=click.IntRange(min=1), help="Epochs per child.")
@click.option("--strategy", type=click.Choice(["rl", "random"]),
              help="'rl' (the controller) or 'random' (the paper's control).")
@click.option("--seed", type=int)
@click.option("--param-servers", "-S", type=click.IntRange(min=1), help="Shards S (paper 20).")
@click.option("--controllers", "-K", type=click.IntRange(min=1), help="Replicas K (paper 100).")
@click.option("--children-per-controller", "-m", type=click.IntRange(min=1),
              help="Children per replica m (paper 8).")
@click.option("--gpus-per-child", type=click.FloatRange(min=0), help="Fractions allowed.")
@click.option("--cpus-per-child", type=click.FloatRange(min=0))
@click.option("--apply-every", type=click.IntRange(min=1),
              help="Servers apply an update after this many gradients (paper PTB: 10).")
@click.option("--server-processes", type=click.IntRange(min=0),
              help="Processes hosting the S shards (default 0: min(S, 4)).")
@click.option("--replica-processes", type=click.IntRange(min=0),
              help="Processes hosting the K replicas, one thread each (default 0: min(K, 4)).")
@click.option("--predict-strides", is_flag=True, default=None,
              help="Let the controller pick strides from {1,2,3} (the paper's variant).")
@click.option("--baseline-decay", type=click.FloatRange(min=0, max=1, max_open=True))
@click.option("--entropy-weight", type=click.FloatRange(min=0))
@click.option("--trainer",
              help="How children are trained: torch (default), or table[:PATH][@SECONDS] to "
                   "look each one up in a tabular benchmark (the shipped table, or PATH; the "
                   "search space becomes the table's), optionally taking SECONDS. Testing: "
                   "synthetic | sleep:S | fail:N.")
@click.option("--cluster-config", type=click.Path(path_type=Path),
              help="Ray launcher YAML or KubeRay manifest: node types the autoscaler can add "
                   "(default: what the running cluster publishes).")
@click.option("--output", type=click.Path(),
              help="Run directory to create: a path, or a URI (s3://, gs://, file://).")
@click.option("--resume", type=click.Path(), help="Continue an unfinished run (path or URI).")
@click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value="", default=None,
              metavar="[URI]", help=MLFLOW_HELP)
@click.pass_obj
def search_cmd(settings, preset: str, search_space: str, config_file: Path | None,
               predict_strides: bool | None, cluster_config: Path | None,
               output: str | None, resume: str | None, mlflow_uri: str | None,
               **flags: Any) -> None:
    """Search CNN architectures or recurrent cells; writes history.csv, best.json, summary.json
    and plots."""
    from deepmorning.nas.config import NASConfig, load_config, use_table_space

    given = {k: v for k, v in flags.items() if v is not None}
    if resume is not None:
        run = RunDir.resume(resume, group="nas")
        stored = run.config
        ctx = click.get_current_context()
        warn_ignored_on_resume(
            [p.opts[0] for p in ctx.command.params if isinstance(p, click.Option)
             and ctx.get_parameter_source(p.name) is not ParameterSource.DEFAULT],
            honoured={"--max-children", "--mlflow", "--cluster-config"})
        if "max_children" in given:
            stored["max_children"] = given["max_children"]
            run.write_json("config.json", stored)
        cfg = NASConfig.from_dict(stored)
        resumed = True
    else:
        cfg_dict = load_config(preset, config_file, search_space).to_dict()
        for key, value in given.items():
            _set(cfg_dict, OVERRIDES[key], value)
        if predict_strides:
            cfg_dict["space"]["strides"] = [1, 2, 3]
        cfg = NASConfig.from_dict(use_table_space(cfg_dict))
        run, resumed = None, False
    from deepmorning.nas.search import load_data, search
    from deepmorning.platform.tracking import prepare_mlflow

    if output is not None and resume is None:
        RunDir.ensure_new(output)  # like a bad dataset below: fail before Ray starts
    mlflow_plan = prepare_mlflow(mlflow_uri, "nas", run)
    from deepmorning.platform import capacity

    node_types = capacity.node_types_from_file(cluster_config) if cluster_config else None
    data = load_data(cfg)
    conn = runtime.connect(settings.address)
    try:
        note = check_resources(cfg, conn, node_types)
        if note:
            console.console.print(note)
        if run is None:
            target = output or default_output("nas", f"search-{cfg.strategy}")
            check_shared_output(target, len(conn.nodes))
            run, resumed = open_or_create(group="nas", name=f"search-{cfg.strategy}",
                                          config=cfg.to_dict(), output=target, resume=None)
        if mlflow_plan is not None:
            mlflow_plan.start(run, cfg.to_dict())  # a resumed run's own MLflow run: reopened
        console.console.print(
            f"NAS {'resuming' if resumed else 'starting'}: {run.location}  "
            f"(S={cfg.param_servers} K={cfg.controllers} m={cfg.children_per_controller}, "
            f"{cfg.max_children} {cfg.search_space} children, {cfg.strategy})"
        )
        if conn.dashboard_url:
            console.console.print(f"Ray dashboard: {conn.dashboard_url}")
        search(cfg, run, resumed, data)
    finally:
        runtime.shutdown()


def _set(cfg: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        cfg = cfg[key]
    cfg[path[-1]] = value


def check_resources(cfg, conn: runtime.Connection, node_types=None) -> str | None:
    """Refuse children no node can run, now or once the autoscaler adds one (one line).

    ``node_types``: the autoscaler's node types from ``--cluster-config``; by default those the
    running cluster publishes. Returns a note when the children wait for the autoscaler.
    """
    from deepmorning.platform import capacity

    need = {"CPU": cfg.cpus_per_child, "GPU": cfg.gpus_per_child}
    return capacity.check_cluster(need, conn, "child", node_types=node_types,
                                  less="--gpus-per-child 0", cluster_config_flag=True)


@nas.command("train")
@click.argument("search_dir", type=click.Path())
@click.option("--epochs", type=click.IntRange(min=1),
              help="Training epochs (default: 4x the search's child epochs).")
@click.option("--output", type=click.Path(),
              help="Run directory (default: SEARCH_DIR/final).")
@click.pass_obj
def train_cmd(settings, search_dir: str, epochs: int | None, output: str | None) -> None:
    """Retrain the best architecture of a search for longer and report test accuracy."""
    from deepmorning.nas.final import train_best

    source = RunDir.open(search_dir)
    if source.info["group"] != "nas" or not (source.path / "best.json").is_file():
        raise DeepmorningError(f"{search_dir} is not a finished NAS search (no best.json)")
    conn = runtime.connect(settings.address)
    try:
        gpus = 1 if conn.total_gpus > 0 else 0
        console.console.print(
            "device: one GPU (the final training fails rather than run on the CPU if torch "
            "cannot use it)" if gpus else "device: CPU (the Ray cluster has no GPU)")
        train_best(source, epochs=epochs, output=output, gpus=gpus)
    finally:
        runtime.shutdown()


@nas.group("table")
def table_group() -> None:
    """Tabular benchmarks: every architecture of a small space trained once, looked up later."""


@table_group.command("build")
@click.option("--space", "space_name", default=None,
              help="Table space: cnn2 (2,048 architectures, the shipped table) or tiny (16, for "
                   "tests).  [default: cnn2]")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Training seeds per architecture (with --resume: raise it to add seeds).  "
                   "[default: 2]")
@click.option("--in-flight", type=click.IntRange(min=1), default=None,
              help="Children queued on Ray at once (default: the cluster's CPUs).")
@click.option("--output", type=click.Path(), help="Run directory to create (path or URI).")
@click.option("--resume", type=click.Path(), help="Continue an unfinished build.")
@click.pass_obj
def table_build_cmd(settings, space_name: str | None, seeds: int | None, in_flight: int | None,
                    output: str | None, resume: str | None) -> None:
    """Train every architecture of a table space with a few seeds, over Ray; resumable."""
    from deepmorning.nas import table as T

    if resume is not None:
        if space_name is not None:
            console.warn("--space is ignored with --resume: the build's stored space is used")
        run = RunDir.open(resume)
        cfg = run.config
        if "table_space" not in cfg:
            raise DeepmorningError(f"{run.location} is not a table build")
        if run.is_finished() and seeds is not None and seeds > cfg["seeds"]:
            # a finished table grows by seeds: it is an unfinished build again
            (run.path / SUMMARY_FILE).unlink()
            run.sync()
        run = RunDir.resume(resume, group="nas")
        if seeds is not None and seeds != cfg["seeds"]:
            if seeds < cfg["seeds"]:
                raise DeepmorningError(f"--seeds {seeds} is below the build's {cfg['seeds']}")
            cfg["seeds"] = seeds
            run.write_json("config.json", cfg)
        spec = T.get_spec(cfg["table_space"])
    else:
        spec = T.get_spec(space_name or T.DEFAULT_SPEC)
        cfg = {"table_space": spec.name, "seeds": seeds or 2, "spec": spec.to_dict()}
        target = output or default_output("nas", f"table-{spec.name}")
        RunDir.ensure_new(target)
        run = None
    conn = runtime.connect(settings.address)
    try:
        if run is None:
            check_shared_output(target, len(conn.nodes))
            run, _ = open_or_create(group="nas", name=f"table-{spec.name}", config=cfg,
                                    output=target, resume=None)
        n = len(T.enumerate_architectures(spec.space, spec.layers))
        console.console.print(
            f"table {spec.name}: {n} architectures x {cfg['seeds']} seeds -> {run.location} "
            f"({'resumed, ' + str(len(T.done_keys(run))) + ' rows kept' if resume else 'new'})")
        if conn.dashboard_url:
            console.console.print(f"Ray dashboard: {conn.dashboard_url}")
        summary = T.build(run, spec, cfg["seeds"], in_flight or max(1, int(conn.total_cpus)))
        T.plot_distribution(run)
        run.finish(summary)
        console.print_kv(f"table {spec.name}", {k: v for k, v in summary.items()
                                                if not isinstance(v, dict)}
                         | summary["val_acc_quantiles"])
    finally:
        runtime.shutdown()


@nas.command("compare")
@click.option("--strategies", default="rl,random,evolution", show_default=True,
              help="Comma-separated: rl (the paper's controller settings), rl-quick (the quick "
                   "preset's lr 0.01 and baseline decay 0.9), random, evolution (regularized "
                   "evolution, Real et al. 2019).")
@click.option("--seeds", type=click.IntRange(min=1), default=20, show_default=True,
              help="Seeds 0..N-1, the same for every strategy (paired).")
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Architectures each strategy samples per seed.")
@click.option("--table", "table", default=None,
              help="A table.json.gz or a `nas table build` run directory (an unfinished "
                   "build's rows so far count).  [default: the shipped table]")
@click.option("--children-per-controller", "-m", type=click.IntRange(min=1), default=8,
              show_default=True, help="Children per controller update (paper 8).")
@click.option("--controller-lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The rl strategy's Adam learning rate.  [default: the paper's 0.0006]")
@click.option("--baseline-decay", type=click.FloatRange(min=0, max=1, max_open=True),
              default=None, help="The rl strategy's baseline decay.  [default: 0.99]")
@click.option("--population", type=click.IntRange(min=1), default=100, show_default=True,
              help="Evolution's population P (Real et al. 2019).")
@click.option("--sample-size", type=click.IntRange(min=1), default=25, show_default=True,
              help="Evolution's sample S (Real et al. 2019).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes running seeds at once (the results do not depend on it).")
@click.option("--output", type=click.Path(), help="Run directory to create (path or URI).")
def compare_cmd(strategies: str, seeds: int, samples: int, table: str | None,
                children_per_controller: int, controller_lr: float | None,
                baseline_decay: float | None, population: int, sample_size: int,
                workers: int, output: str | None) -> None:
    """Compare search strategies on a tabular benchmark, paired by seed (no training, no Ray):
    writes rows.csv, topk.png, regret.png and summary.json, and prints the paired table."""
    import dataclasses

    from deepmorning.nas import strategies as ST
    from deepmorning.nas.config import ControllerConfig
    from deepmorning.nas.table import usable_table

    names = ST.parse_strategies(strategies)
    path, spec, counts = usable_table(table)
    controller = ControllerConfig()
    if controller_lr is not None:
        controller = dataclasses.replace(controller, lr=controller_lr)
    if baseline_decay is not None:
        controller = dataclasses.replace(controller, baseline_decay=baseline_decay)
    settings = ST.Settings(samples=samples, children_per_batch=children_per_controller,
                           controller=controller, population=population,
                           sample_size=sample_size)
    config = {"table": path, "table_space": spec.name, "table_rows": counts["rows"],
              "partial_table": counts["missing_rows"] > 0, "strategies": names,
              "seeds": list(range(seeds)), "settings": dataclasses.asdict(settings)}
    target = output or default_output("nas", "compare")
    run, _ = open_or_create(group="nas", name="compare", config=config, output=target,
                            resume=None)
    note = (f", partial: {counts['missing_rows']} of {counts['architectures'] * counts['seeds']}"
            " rows missing" if counts["missing_rows"] else "")
    console.console.print(
        f"NAS compare on table {spec.name} ({counts['architectures']} architectures, "
        f"{counts['rows']} rows{note}): {', '.join(names)} x {seeds} seeds x {samples} "
        f"architectures -> {run.location}")
    summary = ST.run_compare(run, path, names, list(range(seeds)), settings, workers)
    run.finish(summary)
    ST.print_summary(summary)
    console.console.print(f"run directory: {run.location}")
