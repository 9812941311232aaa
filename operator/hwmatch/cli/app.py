"""The ``hwmatch`` Typer application that every command module registers on, and what they share.

Every command reports errors the same way: :func:`fail` prints one line and
exits 1; :func:`reported` turns any :class:`~hwmatch.api.HwmatchError` raised
inside it into such a line (each problem of a manifest on its own line), so
no error of hwmatch's ever reaches a person as a traceback. Store options and
opening an existing store are here too, so command modules never import each other for them.
"""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

import hwmatch
from hwmatch.api.errors import HwmatchError
from hwmatch.data.store import DEFAULT_PATH, Store

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: ``hwmatch --help`` lists the commands in this order, under these headings: the everyday ones first.
PANELS = {
    "Start here": ("run", "trials", "recommend", "get", "verify", "report"),
    "Data": ("import", "export", "evaluate"),
    "Manifests and Kubernetes": ("validate", "crds", "operator", "telemetry"),
}


def _plain_help(params: list[Any]) -> list[Any]:
    """Help without Python placeholders: a flag shows no ``<bool>``, an argument its name (``FILES...``)."""
    for p in params:
        if isinstance(p, TyperOption) and (p.is_flag or p.count) and p.metavar is None:
            p.metavar = ""
        elif isinstance(p, TyperArgument) and p.metavar is None and p.name:
            p.metavar = p.name.upper() + ("..." if p.nargs != 1 else "")
            if hasattr(p, "display_type_rich"):  # typer >= 0.20 would add <list[Path]>: the name says enough
                setattr(p, "display_type_rich", lambda ctx: None)  # noqa: B010  (an instance's own method)
    return params


class Command(TyperCommand):
    """A command whose help reads ``hwmatch run [OPTIONS] FILES...``: no ``{files}``, no ``<bool>``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_help(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument):
                name = p.metavar or (p.name or "").upper()
                pieces.append(name if p.required else f"[{name}]")
        return pieces


class Group(TyperGroup):
    """``hwmatch`` itself: its commands in the order and under the headings of :data:`PANELS`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_help(super().get_params(ctx))

    def list_commands(self, ctx: Any) -> list[str]:
        order = [n for names in PANELS.values() for n in names]
        return sorted(super().list_commands(ctx), key=lambda n: order.index(n) if n in order else len(order))


app = typer.Typer(
    name="hwmatch",
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def command(name: str | None = None) -> Callable[[F], F]:
    """``@command()`` registers a command on :data:`app`: the help style of :class:`Command`, its heading in PANELS."""

    def register(function: F) -> F:
        return app.command(name, cls=Command, rich_help_panel=panel_of(name or function.__name__))(function)

    return register


def panel_of(name: str) -> str | None:
    """The heading of ``hwmatch --help`` that lists the command ``name``."""
    return next((p for p, names in PANELS.items() if name in names), None)


console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"hwmatch {hwmatch.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Find the right hardware, and the right settings, for an AI asset: benchmark, learn, match.

    Start here: `hwmatch run examples/local-demo.yaml` (sweep, learn, recommend), then `hwmatch trials` and `hwmatch report`.

    Every command and its flags: docs/cli.md.
    """


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
    except HwmatchError as exc:
        from hwmatch.api.manifest import ManifestError  # loaded already when one was raised

        if not isinstance(exc, ManifestError):
            raise fail(str(exc)) from None
        for problem in exc.problems:
            err_console.print(f"[red]✗[/] {_escape(str(problem))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)  # messages quote regexes and intervals: [...] is not markup


class Listing(str, Enum):
    """``-o`` of a listing (``hwmatch trials``), as kubectl's: a table fit to the terminal, every column, or data."""

    table = "table"
    wide = "wide"
    csv = "csv"
    json = "json"
    yaml = "yaml"


class Document(str, Enum):
    """``-o`` of a resource (``recommend``, ``get``): the table a person reads, or the resource as written."""

    table = "table"
    yaml = "yaml"
    json = "json"


class Figures(str, Enum):
    """``-o`` of a command that prints figures (``evaluate``): tables for a person, or JSON."""

    table = "table"
    json = "json"


def renamed(old: str, new: str, value: T | None, current: T) -> T:
    """A flag's old spelling, still accepted (a hidden option): its value, with a warning that names the new one."""
    if value is None or value is False:
        return current
    err_console.print(Text.assemble(("warning:", "yellow"), f" {old} is now {new}; the old spelling will go"),
                      highlight=False, soft_wrap=True)
    return value


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
