"""The ``hwmatch`` Typer application that every command module registers on, and what they share.

Every command reports errors the same way: :func:`fail` prints one line and
exits 1; :func:`reported` turns any :class:`~hwmatch.api.HwmatchError` raised
inside it into such a line (each problem of a manifest on its own line), so
no error of hwmatch's ever reaches a person as a traceback. Store options and
opening an existing store are here too, so command modules never import each other for them.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.text import Text

from hwmatch import __version__
from hwmatch.api import HwmatchError, ManifestError
from hwmatch.data.store import DEFAULT_PATH, Store

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
    """Print an error for a person and return the exit to raise.

    ``message`` is plain text, never markup: it quotes names, values, regexes and file names that
    may hold ``[...]``, printed as they are.
    """
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Run a command's work; an error of hwmatch's becomes its message and exit status 1."""
    try:
        yield
    except ManifestError as exc:
        for problem in exc.problems:
            err_console.print(f"[red]✗[/] {_escape(str(problem))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except HwmatchError as exc:
        raise fail(str(exc)) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)  # messages quote regexes and intervals: [...] is not markup


def store_option() -> Any:
    return typer.Option(DEFAULT_PATH, "--store", envvar="HWMATCH_STORE", help="The SQLite store of trials.")


def open_existing(path: Path, readonly: bool = False) -> Store:
    """The store at ``path``; a clear error instead of creating an empty one by mistake.

    ``readonly`` opens it for reading only (``trials``, ``export``, ``report``), so a store on a
    read-only file system can still be read.
    """
    if not path.exists():
        raise fail(f"no store at {path}; run `hwmatch run FILE` first, or pass --store PATH")
    with reported():
        return Store(path, readonly=readonly)
