"""``hwmatch validate`` and ``hwmatch crds``: manifests and their CustomResourceDefinitions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from hwmatch.cli.app import command, console, err_console, renamed, reported


@command()
def validate(
    files: list[Path] = typer.Argument(..., help="Manifest files (multi-document YAML).", show_default=False),
) -> None:
    """Check manifests against the hwmatch.dev/v1alpha1 schemas; exit non-zero on any problem."""
    from hwmatch.api import HwmatchError, ManifestError, load_documents

    try:
        documents = load_documents(files)
    except ManifestError as exc:
        for problem in exc.problems:
            err_console.print(f"[red]✗[/] {escape(str(problem))}", highlight=False, soft_wrap=True)
        err_console.print(f"{len(exc.problems)} problem(s) found.")
        raise typer.Exit(1) from None
    except HwmatchError:
        with reported():
            raise
    table = Table("file", "document", "kind", "name", box=None)
    for d in documents:
        table.add_row(escape(d.file), str(d.index), escape(d.resource.kind), escape(d.resource.metadata.name))
    console.print(table)
    console.print(f"[green]✓[/] {len(documents)} resource(s) valid.")


@command()
def crds(
    out: Path = typer.Option(Path("crds"), "--out", metavar="DIR", help="Directory to write the CRD YAML files into."),
    check: bool = typer.Option(False, "--check", help="Only check that the files are up to date; exit 1 if not."),
    chart: bool = typer.Option(False, "--chart", help="Write them as the Helm chart's templates (crds.enabled, "
                               "crds.keep), e.g. into charts/hwmatch/templates/crds."),
    old_output: Optional[Path] = typer.Option(None, "-o", "--output", hidden=True),
) -> None:
    """Generate the CustomResourceDefinitions from the API models."""
    from hwmatch.api.crd import render_all, render_chart, write_all

    output = renamed("-o/--output DIR", "--out DIR", old_output, out)
    if check:
        wanted = render_chart() if chart else render_all()
        stale = [n for n, text in wanted.items() if not (output / n).exists() or (output / n).read_text() != text]
        if stale:
            err_console.print(f"out of date: {', '.join(stale)}; run `hwmatch crds --out {output}`")
            raise typer.Exit(1)
        console.print(f"[green]✓[/] {output} is up to date.")
        return
    for path in write_all(output, chart=chart):
        console.print(f"wrote {path}")
