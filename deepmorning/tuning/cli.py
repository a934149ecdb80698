"""``deepmorning tune``: Ray Tune studies of the papers' supervised models."""

from __future__ import annotations

import click
from click.core import ParameterSource

from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.tracking import MLFLOW_HELP

EPILOG = """\b
  deepmorning tune list                                  # models, metrics, studies
  deepmorning tune srcnn                                 # 4 trials; quick fixes every key: 4 seeds
  deepmorning tune srcnn --scheduler asha --num-samples 16 --set KEY=VALUE
  deepmorning tune srcnn --study NAME                    # a claim study: arms x 3 seeds
  deepmorning tune srcnn --resume runs/tune-srcnn-...    # continue a killed run
  deepmorning tune srcnn --mlflow http://127.0.0.1:5000  # also log to an MLflow server
"""


@click.command("tune", epilog=EPILOG)
@click.argument("model")
@click.option("--study", default=None, metavar="NAME",
              help="Run the named claim study: its arms × seeds, claim.csv and claim.md.")
@click.option("--seeds", type=int, default=None, metavar="K",
              help="Seeds per arm of a study (default: the study's, at least 3).")
@click.option("--num-samples", type=int, default=None, metavar="N",
              help="Trials to sample (default 4; with --search grid: passes over the grid, 1).")
@click.option("--scheduler", type=click.Choice(["fifo", "asha", "pbt"]), default="fifo",
              show_default=True, help="Tune's trial scheduler.")
@click.option("--search", type=click.Choice(["random", "grid", "optuna"]), default="random",
              show_default=True, help="Tune's searcher (grid: every choice crossed).")
@click.option("--max-epochs", type=int, default=None, metavar="E",
              help="Epochs per trial (default: the space's at the scale).")
@click.option("--cpus-per-trial", type=float, default=1.0, show_default=True)
@click.option("--gpus-per-trial", type=float, default=0.0, show_default=True,
              help="GPUs per trial; fractions share a GPU (0.5: two trials per GPU).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Fix one key of the space (repeatable), e.g. --set lr=1e-3.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the trials and the searcher (a study's seeds are SEED..SEED+K-1).")
@click.option("--scale", type=click.Choice(["quick", "paper"]), default="quick",
              show_default=True, help="quick: minutes on a laptop CPU; paper: the paper's sizes.")
@click.option("--output", type=click.Path(), default=None,
              help="Run directory, a path or a URI (s3://, gs://, file://; default: "
                   "runs/tune-MODEL[-STUDY]-TIMESTAMP).")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue an unfinished run: finished trials are kept, the rest continue.")
@click.option("--mlflow", is_flag=False, flag_value="", default=None, metavar="[URI]",
              help=MLFLOW_HELP + " A run for the study, a child run per trial.")
@click.pass_context
def tune(ctx: click.Context, model: str, **flags) -> None:
    """Tune MODEL (or a claim study of it) with Ray Tune; MODEL 'list' lists the models.

    Writes a run directory: config.json, results.csv (a row per trial), best.json,
    curves.png, the model's pictures, claim.csv and claim.md for a study, Tune's experiment
    folder (tune/) and summary.json.
    """
    given = frozenset(name for name in flags
                      if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT)
    if model == "list":
        if given:
            raise DeepmorningError("'deepmorning tune list' takes no options")
        list_models()
        return
    from deepmorning.platform import runtime
    from deepmorning.tuning.runner import TuneRequest, prepare, run

    settings = ctx.obj
    req = TuneRequest(model=model, given=given, address=settings.address if settings else None,
                      debug=bool(settings and settings.debug), **flags)
    prepared = prepare(req)  # every check that needs no Ray, before Ray starts
    try:
        run(req, prepared)
    finally:
        runtime.shutdown()


def list_models() -> None:
    from deepmorning.platform.console import console, print_table
    from deepmorning.tuning import registry

    rows = []
    for name in registry.names():
        model = registry.get(name)
        rows.append({"model": name, "metric": f"{model.metric} ({model.mode})",
                     "studies": ", ".join(model.studies) or "-",
                     "description": model.description})
    if not rows:
        console.print("no Tune models are registered")
        return
    print_table("Tune models", rows)
    console.print("run one: deepmorning tune MODEL; a claim study: deepmorning tune MODEL "
                  "--study NAME")
