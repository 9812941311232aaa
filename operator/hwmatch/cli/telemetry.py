"""``hwmatch telemetry``: an asset's Prometheus metrics for one pod and window, to check presets and queries."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape
from rich.table import Table

from hwmatch.api.errors import HwmatchError, InputError
from hwmatch.cli.app import command, console, fail, renamed
from hwmatch.controller.config import DEFAULT_SCRAPE_INTERVAL

if TYPE_CHECKING:  # the models and the Prometheus client load when the command runs (issue 14)
    from hwmatch.api import AIAsset


def _time(text: str, flag: str) -> float:
    """Unix seconds or an ISO 8601 time (a time without zone is local time)."""
    try:
        value = float(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            raise fail(f"{flag} {text!r} is neither Unix seconds nor an ISO 8601 time (2026-01-31T12:00:00Z)") from None
    if not math.isfinite(value):
        raise fail(f"{flag} must be a finite time, got {text!r}")
    return value


def _asset(files: list[Path], name: Optional[str]) -> AIAsset:
    from hwmatch.api import AIAsset, ManifestError, load_files

    try:
        assets = [r for r in load_files(files) if isinstance(r, AIAsset)]
    except ManifestError as exc:
        raise fail("; ".join(map(str, exc.problems))) from None
    except HwmatchError as exc:
        raise fail(str(exc)) from None
    if name is not None:
        assets = [a for a in assets if a.metadata.name == name]
    if len(assets) != 1:
        known = ", ".join(a.metadata.name for a in assets) or "none"
        raise fail(f"the files must hold exactly one AIAsset{' named ' + repr(name) if name else ''} "
                          f"(found: {known}); choose one with --asset NAME")
    return assets[0]


@command("telemetry")
def telemetry_command(
    files: list[Path] = typer.Argument(..., help="Manifest files holding the AIAsset.", show_default=False),
    namespace: str = typer.Option(..., "--namespace", "-n", metavar="NS", help="Namespace of the trial's pod."),
    pod: str = typer.Option(..., "--pod", metavar="NAME", help="Name of the trial's pod."),
    start: str = typer.Option(..., "--start", metavar="TIME", help="Window start: Unix seconds or ISO 8601."),
    end: str = typer.Option(..., "--end", metavar="TIME", help="Window end: Unix seconds or ISO 8601."),
    node: Optional[str] = typer.Option(None, "--node", metavar="NAME",
                                       help="Node the pod ran on (node-level metrics such as rapl-energy)."),
    asset_name: Optional[str] = typer.Option(None, "--asset", metavar="NAME", help="The AIAsset, when the files hold several."),
    scrape_interval: float = typer.Option(DEFAULT_SCRAPE_INTERVAL, "--scrape-interval", metavar="SECONDS",
                                          help="Prometheus's scrape interval: the window is rounded up to it."),
    old_resolution: Optional[float] = typer.Option(None, "--resolution", hidden=True),
    prometheus_url: Optional[str] = typer.Option(
        None, "--prometheus-url", envvar="HWMATCH_PROMETHEUS_URL",
        help="Prometheus to ask; without it only the PromQL is printed."),
    timeout: float = typer.Option(10.0, "--timeout", metavar="SECONDS", min=0.1,
                                  help="Deadline for each query's whole answer."),
) -> None:
    """Evaluate the asset's `source: prometheus` metrics for a pod and window (or print their PromQL).

    Exit status 1 when a metric has no value, so it can gate a script.
    """
    from hwmatch.telemetry import PRESETS, MissingContext, PrometheusClient, QueryContext, render_metric, trial_metrics, validate_metrics

    resolution = renamed("--resolution", "--scrape-interval (as in `hwmatch operator`)", old_resolution, scrape_interval)
    asset = _asset(files, asset_name)
    metrics = [m for m in asset.spec.metrics if m.source == "prometheus"]
    if not metrics:
        raise fail(f"AIAsset {asset.metadata.name!r} has no metric with source: prometheus")
    try:
        validate_metrics(metrics)
        context = QueryContext(namespace=namespace, pod=pod, start=_time(start, "--start"), end=_time(end, "--end"),
                               node=node, resolution=resolution)
    except InputError as exc:
        raise fail(str(exc)) from None
    if prometheus_url is None:
        for m in metrics:
            try:
                console.print(f"[bold]{escape(m.name)}[/]: {escape(render_metric(m, context))}", highlight=False,
                              soft_wrap=True)
            except MissingContext as exc:
                console.print(f"[bold]{escape(m.name)}[/]: [yellow]{escape(str(exc))}[/]", highlight=False,
                              soft_wrap=True)
        return
    try:
        found = trial_metrics(PrometheusClient(prometheus_url, timeout=timeout), metrics, namespace, pod, context.start, context.end,
                              node=node, resolution=resolution)
    except HwmatchError as exc:  # unreachable, a bad template, a malformed answer
        raise fail(str(exc)) from None
    table = Table("metric", "value", "unit", "why missing", box=None)
    for m in metrics:
        value = found.get(m.name)
        unit = m.unit or (PRESETS[m.preset].unit if m.preset else "")
        table.add_row(escape(m.name), "-" if value is None else f"{value:.6g}", escape(unit),
                      escape(found.missing.get(m.name, "")))
    console.print(table)
    if found.missing:
        raise typer.Exit(1)
