"""The report a person looks at: a Pareto-front plot (PNG) and one HTML page.

The page holds the recommendation (or why there is none), the model scores,
the alternatives and the trials table, so a reader can check every figure
against what was measured.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hwmatch.api import (  # noqa: E402
    Choice,
    HWRecommendation,
    HWRecommendationStatus,
    PredictedValue,
    interval_caption,
    joint_confidence,
)
from hwmatch.api.errors import InputError  # noqa: E402
from hwmatch.data.frame import METRIC, PARAM, strip  # noqa: E402


@dataclass
class Solved:
    """A recommendation request and the answer written into its status."""

    request: HWRecommendation
    status: HWRecommendationStatus


def _axes(solved: Solved) -> tuple[str, str] | None:
    """The objective's metric against the first other metric every plotted choice predicts."""
    choices = _choices(solved.status)
    if not choices:
        return None
    common = set.intersection(*(set(c.predicted) for c in choices))
    x = next(iter(solved.request.spec.objective.terms()))
    if x not in common:
        return None
    preferred = [c.metric for c in solved.request.spec.constraints] + sorted(common)
    y = next((m for m in preferred if m in common and m != x), None)
    return (x, y) if y else None


def _choices(status: HWRecommendationStatus) -> list[Choice]:
    out = list(status.pareto_front) + list(status.alternatives)
    if status.recommendation:
        out.append(status.recommendation)
    return out


def pareto_plot(solved: Solved, path: Path) -> Path | None:
    """Scatter of the Pareto front and alternatives, the recommendation starred; None if nothing to plot."""
    axes = _axes(solved)
    if axes is None:
        return None
    x, y = axes
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    # The front is non-dominated over every goal, not only these two axes: points, not a line.
    front = solved.status.pareto_front
    if front:
        ax.scatter([c.predicted[x].value for c in front], [c.predicted[y].value for c in front],
                   color="#4c72b0", label="Pareto front (all goals)", zorder=2)
    for c in solved.status.alternatives:
        ax.scatter(c.predicted[x].value, c.predicted[y].value, color="#999999", zorder=1)
    if solved.status.alternatives:
        ax.scatter([], [], color="#999999", label="alternatives")
    best = solved.status.recommendation
    if best:
        ax.scatter(best.predicted[x].value, best.predicted[y].value, marker="*", s=260, color="#dd8452",
                   edgecolor="black", zorder=3, label=f"recommended: {best.platform} ×{best.replicas}")
    for constraint in solved.request.spec.constraints:
        line = {y: ax.axhline, x: ax.axvline}.get(constraint.metric)
        if line is None:
            continue
        for bound in (constraint.min, constraint.max):
            if bound is not None:
                line(bound, color="#c44e52", linestyle="--", linewidth=1)
    return _finish(fig, ax, f"{x} (predicted)", f"{y} (predicted)", f"{solved.request.metadata.name}: {x} vs {y}", path)


def trials_plot(frame: pd.DataFrame, path: Path, x: str, y: str) -> Path | None:
    """Measured trials, one colour per platform: what the models learned from."""
    cx, cy = METRIC + x, METRIC + y
    if frame.empty or cx not in frame or cy not in frame:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for platform, group in frame.groupby("platform"):
        ax.scatter(group[cx], group[cy], label=str(platform), alpha=0.75)
    return _finish(fig, ax, f"{x} (measured)", f"{y} (measured)", "Trials", path)


def _finish(fig: plt.Figure, ax: plt.Axes, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _choice_rows(choices: list[Choice]) -> str:
    rows = []
    for c in choices:
        params = ", ".join(f"{k}={v}" for k, v in c.parameters.items())
        predicted = ", ".join(
            f"{k}={v.value:.4g}" + (f" [{v.lower:.4g}, {v.upper:.4g}]" if v.lower is not None and v.upper is not None else "")
            for k, v in c.predicted.items()
        )
        cost = f"{c.cost_per_hour:.4g}" if c.cost_per_hour is not None else ""
        rows.append(f"<tr><td>{html.escape(c.platform)}</td><td>{c.replicas}</td><td>{html.escape(params)}</td>"
                    f"<td>{cost}</td><td>{html.escape(predicted)}</td></tr>")
    return "\n".join(rows)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.ok{color:#2a7d2a}.bad{color:#b22}img{max-width:100%;border:1px solid #eee}"""


def write_report(frame: pd.DataFrame, solved: list[Solved], out_dir: str | Path) -> Path:
    """Write ``index.html`` and its PNG plots into ``out_dir``; return the page's path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"cannot write the report into {out}: it is a file; -o names a directory "
                         "(index.html and the plots go into it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _write_report(frame, solved, out)
    except OSError as exc:
        raise InputError(f"cannot write the report into {out}: {exc.strerror or exc}; "
                         "pass -o with a writable directory") from None


def _verification(status: HWRecommendationStatus) -> str:
    """The rounds of measuring the choice (``hwmatch verify``, ``spec.verify``) and the last round's checks."""
    v = status.verification
    assert v is not None
    held, compared = sum(r.intervals_held for r in v.history), sum(r.intervals for r in v.history)
    rows = "".join(
        f"<tr><td>{r.round}</td><td>{html.escape(r.platform)}</td><td>{r.replicas}</td>"
        f"<td>{html.escape(', '.join(f'{k}={x}' for k, x in r.parameters.items()))}</td>"
        f"<td class='{'ok' if r.met else 'bad'}'>{'met' if r.met else 'running' if r.met is None else 'broken'}</td>"
        f"<td>{r.intervals_held} of {r.intervals}</td></tr>" for r in v.history)
    checks = "".join(
        f"<tr><td>{html.escape(c.metric)}</td><td>{_bound(c.min, c.max)}</td><td>{_interval(c.predicted)}</td>"
        f"<td>{html.escape(', '.join(f'{m:.4g}' for m in c.measured))}</td>"
        f"<td class='{'' if c.met is None else 'ok' if c.met else 'bad'}'>"
        f"{'' if c.met is None else 'met' if c.met else 'broken'}</td>"
        f"<td class='{'' if c.inside is None else 'ok' if c.inside else 'bad'}'>"
        f"{'-' if c.inside is None else 'inside' if c.inside else 'outside'}</td></tr>" for c in v.checks)
    return (f"<h3 class='{'ok' if v.reason == 'RequirementsMet' else 'bad'}'>Verified by measurement: "
            f"{html.escape(v.phase)} ({html.escape(v.reason)})</h3><p>{html.escape(v.message)}. Over all "
            f"{len(v.history)} round(s), {held} of {compared} predicted intervals held the measured values.</p>"
            "<table><tr><th>round</th><th>platform</th><th>replicas</th><th>parameters</th><th>requirements</th>"
            f"<th>intervals held</th></tr>{rows}</table>"
            + (f"<table><caption>round {v.round}: predicted when chosen against measured</caption><tr><th>metric</th>"
               "<th>bound</th><th>predicted [interval]</th><th>measured (each run)</th><th>requirement</th>"
               f"<th>interval</th></tr>{checks}</table>" if checks else ""))


def _bound(low: float | None, high: float | None) -> str:
    return " and ".join(([] if low is None else [f"≥ {low:g}"]) + ([] if high is None else [f"≤ {high:g}"]))


def _interval(p: PredictedValue | None) -> str:
    if p is None:
        return "-"
    return f"{p.value:.4g}" + (f" [{p.lower:.4g}, {p.upper:.4g}]" if p.lower is not None and p.upper is not None else "")


def _write_report(frame: pd.DataFrame, solved: list[Solved], out: Path) -> Path:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>hwmatch report</title><style>{_CSS}</style></head><body>",
             "<h1>hwmatch report</h1>"]
    verified = [item.status.verification for item in solved if item.status.verification]
    if verified:
        held = sum(r.intervals_held for v in verified for r in v.history)
        compared = sum(r.intervals for v in verified for r in v.history)
        rounds = sum(len(v.history) for v in verified)
        parts.append(f"<p>Verifications so far: {rounds} round(s) over {len(verified)} recommendation(s); "
                     f"{held} of {compared} predicted intervals held the measured values.</p>")
    metrics = [strip(c) for c in frame.columns if c.startswith(METRIC)]
    if len(metrics) >= 2:
        pair = ("latency_p99_ms", "accuracy") if {"latency_p99_ms", "accuracy"} <= set(metrics) else tuple(metrics[:2])
        if trials_plot(frame, out / "trials.png", *pair):
            parts.append("<img src='trials.png' alt='measured trials'>")
    for item in solved:
        name = item.request.metadata.name
        status = item.status
        parts.append(f"<h2>{html.escape(name)} <small>({html.escape(status.phase or '')})</small></h2>")
        spec = item.request.spec
        reqs = [f"{c.metric} {'≥ ' + format(c.min, 'g') if c.min is not None else ''}"
                f"{' and ' if c.min is not None and c.max is not None else ''}"
                f"{'≤ ' + format(c.max, 'g') if c.max is not None else ''}" for c in spec.constraints]
        parts.append(f"<p>Requirements: {html.escape('; '.join(reqs) or 'none')}, to hold together with confidence "
                     f"{joint_confidence(spec, status):g}; "
                     f"objective: {html.escape(str(spec.objective.terms()))}"
                     + (f"; throughput {spec.throughput.requests_per_second:g} req/s" if spec.throughput else "")
                     + (f"; budget {spec.budget.max_cost_per_hour:g}/h" if spec.budget else "") + "</p>")
        if status.recommendation:
            parts.append("<h3 class='ok'>Recommended</h3>")
        if status.infeasible:
            parts.append(f"<p class='bad'>No configuration meets the requirements: {html.escape(status.infeasible.message)}</p>")
        if status.insufficient:
            parts.append(f"<p class='bad'>No answer yet: {html.escape(status.insufficient.message)}</p>")
        header = (f"<table><caption>predicted {html.escape(interval_caption(spec, status))}</caption>"
                  "<tr><th>platform</th><th>replicas</th><th>parameters</th><th>cost/h</th><th>predicted [interval]</th></tr>")
        if status.recommendation:
            parts.append(header + _choice_rows([status.recommendation]) + "</table>")
        png = out / f"pareto-{name}.png"
        if pareto_plot(item, png):
            parts.append(f"<img src='{png.name}' alt='Pareto front of {html.escape(name)}'>")
        if status.alternatives:
            parts.append("<h3>Alternatives</h3>" + header + _choice_rows(status.alternatives) + "</table>")
        if status.models:
            rows = "".join(
                f"<tr><td>{html.escape(m)}</td><td>{html.escape(s.family)}</td>"
                f"<td>{'' if s.r2 is None else format(s.r2, '.3f')}</td>"
                f"<td>{'' if s.mape is None else format(s.mape, '.3f')}</td><td>{s.trained_on_trials}</td></tr>"
                for m, s in status.models.items()
            )
            parts.append("<h3>Models (held-out folds)</h3><table><tr><th>metric</th><th>family</th><th>R²</th>"
                         f"<th>MAPE</th><th>trials</th></tr>{rows}</table>")
        if status.verification:
            parts.append(_verification(status))
        if status.solver:
            parts.append(f"<p>Solver: {html.escape(status.solver.status)} in {status.solver.wall_time_ms:.1f} ms over "
                         f"{status.solver.candidates} candidates ({status.solver.feasible_candidates} feasible).</p>")
    shown = [c for c in ["trial_id", "sweep", "platform", "repetition", "status", "reason"] if c in frame.columns]
    shown += [c for c in frame.columns if c.startswith(PARAM) or c.startswith(METRIC)]
    parts.append(f"<h2>Trials ({len(frame)})</h2>")
    parts.append(frame[shown].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0))
    parts.append("</body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts))
    return page
