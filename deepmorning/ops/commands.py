"""``deepmorning info`` and ``deepmorning results``: the commands over the platform library."""

from __future__ import annotations

import click

from deepmorning.platform import console, runtime
from deepmorning.platform import results as results_mod


@click.command()
@click.pass_obj
def info(settings) -> None:
    """Ray version, how this process connected, nodes (CPUs/GPUs/memory) and the dashboard URL."""
    conn = runtime.connect(settings.address)
    try:
        console.print_kv(
            "deepmorning",
            {
                "ray": conn.ray_version,
                "connection": conn.mode,
                "gcs address": conn.address,
                "dashboard": conn.dashboard_url or "(not running: install ray[default])",
                "nodes": len(conn.nodes),
                "cpus": conn.total_cpus,
                "gpus": conn.total_gpus,
            },
        )
        console.print_table(
            "nodes",
            [{**n, "memory_gib": round(n["memory_gib"], 1)} for n in conn.nodes],
            ["node_id", "ip", "head", "cpus", "gpus", "memory_gib"],
        )
    finally:
        runtime.shutdown()


@click.group()
def results() -> None:
    """Show and (re)plot what a run wrote to its run directory (a path or a URI)."""


@results.command("show")
@click.argument("run_dir", type=click.Path())
@click.option("--rows", default=10, show_default=True, help="Rows of each table to show.")
def results_show(run_dir: str, rows: int) -> None:
    """Print a run's summary and the head of its tables."""
    results_mod.show(run_dir, rows=rows)


@results.command("plot")
@click.argument("run_dir", type=click.Path())
def results_plot(run_dir: str) -> None:
    """(Re)draw a run's PNG plots from its tables."""
    paths = results_mod.plot(run_dir)
    for path in paths:
        click.echo(str(path))

