"""Placeholder commands for areas whose work has not landed yet.

Their ``--help`` says which issue brings them; invoking them exits non-zero with one line.
"""

from __future__ import annotations

import click

from deepmorning.platform.errors import DeepmorningError


def pending_group(name: str, summary: str, issue: str) -> click.Command:
    @click.command(
        name=name,
        help=f"{summary}\n\nNot available yet: {issue}.",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command() -> None:
        raise DeepmorningError(f"'deepmorning {name}' is not available yet ({issue})")

    return command
