"""The ``hwmatch`` Typer application that every command module registers on."""

from __future__ import annotations

import typer
from rich.console import Console

from hwmatch import __version__

app = typer.Typer(
    name="hwmatch",
    help="Find the right hardware, and the right settings, for an AI asset: benchmark, learn, match.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"hwmatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Find the right hardware, and the right settings, for an AI asset: benchmark, learn, match."""


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error for a person and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)
