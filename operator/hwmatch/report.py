"""The report a person opens and shares: one self-contained HTML page (plots inline as SVG, no network).

Per recommendation, the page leads with the answer in words — what to run,
why (the binding requirements), at what confidence — then compares the
platforms (the best configuration of each), plots the Pareto front with every
interval and every bound, shows cost against replicas for a throughput
target, predicted against measured for every verification round, and the
models' quality. The trials table at the end is filterable and paged. The
page prints well (no scripts are needed to read it; the filter is a small
inline script) and carries no Python repr: numbers are formatted for people,
with the unit a metric's name gives.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

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

#: Trials shown per page of the trials table (the filter searches all of them).
PAGE_ROWS = 50
#: Units by the end of a metric's name (hwmatch's naming convention: ``latency_p99_ms``, ``peak_rss_mb``).
UNITS = (("_per_hour", "/h"), ("_per_s", "/s"), ("_ms", "ms"), ("_us", "µs"), ("_mb", "MB"), ("_gb", "GB"),
         ("_j", "J"), ("_w", "W"), ("_watts", "W"), ("_s", "s"))
#: One colour per platform, in the order platforms first appear (matplotlib's tab10, colour-blind friendly enough).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@dataclass
class Solved:
    """A recommendation request and the answer written into its status."""

    request: HWRecommendation
    status: HWRecommendationStatus


def write_report(frame: pd.DataFrame, solved: list[Solved], out_dir: str | Path) -> Path:
    """Write ``index.html`` (self-contained) into ``out_dir``; return the page's path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"cannot write the report into {out}: it is a file; --out names a directory "
                         "(index.html goes into it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        page = out / "index.html"
        page.write_text(render(frame, solved), encoding="utf-8")
        return page
    except OSError as exc:
        raise InputError(f"cannot write the report into {out}: {exc.strerror or exc}; "
                         "pass --out with a writable directory") from None


def render(frame: pd.DataFrame, solved: Sequence[Solved]) -> str:
    """The whole page as text."""
    colours = _colours(frame, solved)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hwmatch report</title>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style></head><body>",
             f"<header><h1>hwmatch report</h1><p class='muted'>{len(frame):,} trials · {len(solved)} "
             f"recommendation(s) · written {when}</p>"]
    if solved:
        parts.append("<nav>" + " · ".join(f"<a href='#{_id(s.request)}'>{_e(s.request.metadata.name)}</a>"
                                          for s in solved) + " · <a href='#trials'>trials</a></nav>")
    parts.append(_verifications_summary(solved) + "</header>")
    for item in solved:
        parts.append(_recommendation(item, colours))
    parts.append(_trials(frame, colours))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


# -- one recommendation ------------------------------------------------------------------------


def _recommendation(item: Solved, colours: dict[str, str]) -> str:
    rec, status = item.request, item.status
    spec = rec.spec
    phase = status.phase or "Pending"
    parts = [f"<section id='{_id(rec)}'><h2>{_e(rec.metadata.name)} <span class='badge {phase.lower()}'>"
             f"{_e(phase)}</span></h2>"]
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    best = status.recommendation
    summary = ["<div class='summary'>"]
    if best is not None:
        summary.append(f"<p class='answer'>Run <b>{_e(best.platform)}</b> × <b>{best.replicas}</b> "
                       f"{'replica' if best.replicas == 1 else 'replicas'} with <b>{_e(_params(best))}</b>"
                       + (f" at {_num(best.cost_per_hour)} per hour" if best.cost_per_hour is not None else "")
                       + ".</p>")
    elif status.insufficient is not None:
        summary.append(f"<p class='answer bad'>No answer yet: {_e(status.insufficient.message)}</p>")
    elif status.infeasible is not None:
        summary.append(f"<p class='answer bad'>No configuration meets the requirements: "
                       f"{_e(status.infeasible.message)}</p>")
    if ready is not None and ready.message:
        summary.append(f"<p><b>Why:</b> {_e(ready.message)}</p>")
    asked, goal = _requirements(rec)
    summary.append(f"<p><b>Asked:</b> {_e(asked or 'no requirement')}, to hold together with confidence "
                   f"{joint_confidence(spec, status):g}; {_e(goal)}.</p>")
    if status.verification is not None:
        v = status.verification
        summary.append(f"<p class='{'ok' if v.reason == 'RequirementsMet' else 'bad'}'><b>Measured:</b> "
                       f"{_e(v.message)}</p>")
    summary.append("</div>")
    parts.extend(summary)
    caption = f"predicted {interval_caption(spec, status)}"
    shown = _shown_metrics(rec, status)
    compared = _per_platform(best, status.alternatives) if best is not None else []
    if best is not None:
        parts.append(_choices_table("The choice", [best], shown, caption, colours))
        if len(compared) > 1:
            parts.append(_choices_table("Platforms compared: the best configuration of each", compared, shown, caption,
                                        colours, chosen=best))
    pareto = _pareto_svg(item, colours)
    if pareto:
        parts.append(f"<figure>{pareto}<figcaption>Candidates on the Pareto front of every goal, the alternatives "
                     "and the choice (★), with their intervals; dashed lines are the requirements' bounds. "
                     f"{_e(caption)}.</figcaption></figure>")
    if spec.throughput is not None:
        replicas = _replicas_svg(item, colours)
        if replicas:
            parts.append(f"<figure>{replicas}<figcaption>Cost per hour against the replicas each candidate needs "
                         f"for {_num(spec.throughput.requests_per_second)} requests/s.</figcaption></figure>")
    others = [c for c in status.alternatives if all(c is not o for o in compared)]
    if others:
        parts.append(_choices_table("Other alternatives", others, shown, caption, colours))
    if status.verification is not None:
        parts.append(_verification(status))
    if status.models:
        rows = "".join(
            f"<tr><td>{_e(m)}</td><td>{_e(s.family)}</td><td class='n'>{_fixed(s.r2, 3)}</td>"
            f"<td class='n'>{_percent(s.mape)}</td><td class='n'>{s.trained_on_trials:,}</td></tr>"
            for m, s in status.models.items())
        parts.append("<h3>Models</h3><table><caption>held-out scores: R² (1 is perfect, below 0 worse than the mean) "
                     "and mean absolute percentage error, over grouped cross-validation folds</caption><tr>"
                     "<th>metric</th><th>model</th><th>R²</th><th>MAPE</th><th>trials</th></tr>" + rows + "</table>")
    if status.solver:
        s = status.solver
        parts.append(f"<p class='muted'>Solver: {_e(s.status)} in {_num(s.wall_time_ms)} ms, "
                     f"{s.feasible_candidates:,} of {s.candidates:,} candidates feasible.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _requirements(rec: HWRecommendation) -> tuple[str, str]:
    """The requirements in words, and the objective in words."""
    spec = rec.spec
    out = [f"{c.metric} {_bound(c.min, c.max)}" for c in spec.constraints]
    if spec.throughput is not None:
        out.append(f"serve {_num(spec.throughput.requests_per_second)} requests/s "
                   f"(at most {spec.throughput.max_replicas} replicas)")
    if spec.budget is not None:
        out.append(f"cost at most {_num(spec.budget.max_cost_per_hour)} per hour")
    terms = spec.objective.terms()
    if spec.objective.minimize:
        goal = f"minimize {spec.objective.minimize}"
    elif spec.objective.maximize:
        goal = f"maximize {spec.objective.maximize}"
    else:
        goal = "minimize " + " + ".join(f"{w:g}·{m}" for m, w in terms.items()) + " (normalised)"
    return "; ".join(out), goal


def _shown_metrics(rec: HWRecommendation, status: HWRecommendationStatus) -> list[str]:
    """Constrained metrics first, then the objective's, then the rest a choice predicts (derived last)."""
    spec = rec.spec
    first = [c.metric for c in spec.constraints] + list(spec.objective.terms())
    predicted = status.recommendation.predicted if status.recommendation else {}
    rest = [m for m in predicted if m not in first and m not in ("replicas", "cost_per_hour")]
    return [m for m in dict.fromkeys(first + rest) if m not in ("replicas", "cost_per_hour")]


def _per_platform(best: Choice, alternatives: Iterable[Choice]) -> list[Choice]:
    """The choice, then the best alternative of each other platform (alternatives are listed best first)."""
    out = [best]
    for c in alternatives:
        if c.platform not in {o.platform for o in out}:
            out.append(c)
    return out


def _choices_table(title: str, choices: Sequence[Choice], metrics: Sequence[str], caption: str,
                   colours: dict[str, str], chosen: Choice | None = None) -> str:
    head = "".join(f"<th>{_e(m)}{_unit_label(m)}</th>" for m in metrics)
    rows = []
    for c in choices:
        mark = " class='chosen'" if chosen is not None and c is chosen else ""
        cells = "".join(f"<td class='n'>{_predicted(c.predicted.get(m))}</td>" for m in metrics)
        rows.append(f"<tr{mark}><td>{_swatch(colours, c.platform)}{_e(c.platform)}</td><td class='n'>{c.replicas}</td>"
                    f"<td>{_e(_params(c))}</td><td class='n'>{_num(c.cost_per_hour)}</td>{cells}</tr>")
    return (f"<h3>{_e(title)}</h3><div class='scroll'><table><caption>{_e(caption)}</caption><tr><th>platform</th>"
            f"<th>replicas</th><th>parameters</th><th>cost/h</th>{head}</tr>{''.join(rows)}</table></div>")


def _verification(status: HWRecommendationStatus) -> str:
    """The rounds of measuring the choice (``hwmatch verify``, ``spec.verify``) and the last round's checks."""
    v = status.verification
    assert v is not None
    held, compared = sum(r.intervals_held for r in v.history), sum(r.intervals for r in v.history)
    rows = "".join(
        f"<tr><td class='n'>{r.round}</td><td>{_e(r.platform)}</td><td class='n'>{r.replicas}</td>"
        f"<td>{_e(', '.join(f'{k}={x}' for k, x in r.parameters.items()))}</td>"
        f"<td class='{'ok' if r.met else '' if r.met is None else 'bad'}'>"
        f"{'met' if r.met else 'running' if r.met is None else 'broken'}</td>"
        f"<td class='n'>{r.intervals_held} of {r.intervals}</td></tr>" for r in v.history)
    checks = "".join(
        f"<tr><td>{_e(c.metric)}{_unit_label(c.metric)}</td><td>{_e(_bound(c.min, c.max))}</td>"
        f"<td class='n'>{_predicted(c.predicted)}</td><td class='n'>{', '.join(_num(m) for m in c.measured)}</td>"
        f"<td class='{'' if c.met is None else 'ok' if c.met else 'bad'}'>"
        f"{'' if c.met is None else 'met' if c.met else 'broken'}</td>"
        f"<td class='{'' if c.inside is None else 'ok' if c.inside else 'bad'}'>"
        f"{'–' if c.inside is None else 'inside' if c.inside else 'outside'}</td></tr>" for c in v.checks)
    return (f"<h3>Verified by measurement: {_e(v.phase)} ({_e(v.reason)})</h3><p>Over {len(v.history)} round(s), "
            f"{held} of {compared} predicted intervals held the measured values.</p>"
            "<table><tr><th>round</th><th>platform</th><th>replicas</th><th>parameters</th><th>requirements</th>"
            f"<th>intervals held</th></tr>{rows}</table>"
            + (f"<div class='scroll'><table><caption>round {v.round}: predicted when chosen against measured"
               "</caption><tr><th>metric</th><th>bound</th><th>predicted [interval]</th><th>measured (each run)</th>"
               f"<th>requirement</th><th>interval</th></tr>{checks}</table></div>" if checks else ""))


def _verifications_summary(solved: Sequence[Solved]) -> str:
    verified = [s.status.verification for s in solved if s.status.verification is not None]
    if not verified:
        return ""
    held = sum(r.intervals_held for v in verified for r in v.history)
    compared = sum(r.intervals for v in verified for r in v.history)
    rounds = sum(len(v.history) for v in verified)
    return (f"<p>Verifications so far: {rounds} round(s) over {len(verified)} recommendation(s); "
            f"{held} of {compared} predicted intervals held the measured values.</p>")


# -- plots (inline SVG) -----------------------------------------------------------------------


def _pareto_svg(solved: Solved, colours: dict[str, str]) -> str | None:
    """The objective's metric against the first other metric every plotted choice predicts, with intervals."""
    status = solved.status
    choices = [*status.pareto_front, *status.alternatives, *([status.recommendation] if status.recommendation else [])]
    if not choices:
        return None
    common = set.intersection(*(set(c.predicted) for c in choices))
    spec = solved.request.spec
    x = next(iter(spec.objective.terms()))
    candidates = [c.metric for c in spec.constraints] + sorted(common)
    y = next((m for m in candidates if m in common and m != x), None)
    if x not in common or y is None:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    groups = (("Pareto front (every goal)", status.pareto_front, "o", 28),
              ("alternatives", status.alternatives, "s", 28))
    for label, group, marker, size in groups:
        for platform in dict.fromkeys(c.platform for c in group):
            members = [c for c in group if c.platform == platform]
            _points(ax, members, x, y, colours[platform], marker, size, f"{platform}: {label}")
    best = status.recommendation
    if best is not None:
        _points(ax, [best], x, y, colours[best.platform], "*", 260, f"chosen: {best.platform} ×{best.replicas}",
                edge="black")
    for c in spec.constraints:
        for bound in (c.min, c.max):
            if bound is None:
                continue
            if c.metric == y:
                ax.axhline(bound, color="#c44e52", linestyle="--", linewidth=1)
                ax.annotate(f"{y} {'≥' if bound == c.min else '≤'} {_num(bound)}", (1, bound),
                            xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7, color="#c44e52")
            if c.metric == x:
                ax.axvline(bound, color="#c44e52", linestyle="--", linewidth=1)
    ax.set_xlabel(f"{x}{_unit_label(x, plain=True)} (predicted)")
    ax.set_ylabel(f"{y}{_unit_label(y, plain=True)} (predicted)")
    ax.set_title(f"{solved.request.metadata.name}: {x} against {y}")
    return _svg(fig, ax)


def _points(ax: plt.Axes, choices: Sequence[Choice], x: str, y: str, colour: str, marker: str, size: float,
            label: str, edge: str | None = None) -> None:
    xs = [c.predicted[x].value for c in choices]
    ys = [c.predicted[y].value for c in choices]
    ax.errorbar(xs, ys, xerr=_errors(choices, x), yerr=_errors(choices, y), fmt="none", ecolor=colour, alpha=0.35,
                linewidth=1, zorder=1)
    ax.scatter(xs, ys, marker=marker, s=size, color=colour, edgecolor=edge, label=label, zorder=3 if edge else 2)


def _errors(choices: Sequence[Choice], metric: str) -> list[list[float]]:
    """Lower and upper error lengths per point for matplotlib; 0 where a bound is unknown."""
    low, high = [], []
    for c in choices:
        p = c.predicted[metric]
        low.append(p.value - p.lower if p.lower is not None else 0.0)
        high.append(p.upper - p.value if p.upper is not None else 0.0)
    return [low, high]


def _replicas_svg(solved: Solved, colours: dict[str, str]) -> str | None:
    status = solved.status
    choices = [c for c in [*status.pareto_front, *status.alternatives,
                           *([status.recommendation] if status.recommendation else [])] if c.cost_per_hour is not None]
    if not choices:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for platform in dict.fromkeys(c.platform for c in choices):
        members = [c for c in choices if c.platform == platform]
        ax.scatter([c.replicas for c in members], [float(c.cost_per_hour or 0.0) for c in members],
                   color=colours[platform], label=platform, s=30)
    best = status.recommendation
    if best is not None and best.cost_per_hour is not None:
        ax.scatter([best.replicas], [best.cost_per_hour], marker="*", s=260, color=colours[best.platform],
                   edgecolor="black", label="chosen", zorder=3)
    ax.set_xlabel("replicas")
    ax.set_ylabel("cost per hour")
    ax.set_title("Cost against replicas")
    return _svg(fig, ax)


def _svg(fig: plt.Figure, ax: plt.Axes) -> str:
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # the XML prologue and doctype do not belong inside HTML


# -- the trials table ---------------------------------------------------------------------------


def _trials(frame: pd.DataFrame, colours: dict[str, str]) -> str:
    head = [c for c in ["platform", "sweep", "status", "reason", "repetition"] if c in frame.columns]
    params = [c for c in frame.columns if c.startswith(PARAM)]
    metrics = [c for c in frame.columns if c.startswith(METRIC)]
    columns = head + params + metrics
    header = "".join(f"<th>{_e(strip(c) if c in params + metrics else c)}{_unit_label(strip(c)) if c in metrics else ''}"
                     "</th>" for c in columns)
    rows = []
    for record in frame[columns].itertuples(index=False, name=None):
        cells = []
        for column, value in zip(columns, record):
            if column == "platform":
                cells.append(f"<td>{_swatch(colours, str(value))}{_e(value)}</td>")
            elif column in metrics:
                cells.append(f"<td class='n'>{_num(value)}</td>")
            else:
                cells.append(f"<td>{_e('' if _missing(value) else value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<section id='trials'><h2>Trials ({len(frame):,})</h2><p class='noprint'><input id='filter' "
            "type='search' placeholder='filter: platform, status, a value…' aria-label='filter the trials'> "
            "<span id='pager'></span></p><div class='scroll'><table id='trials-table'><thead><tr>"
            f"{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


# -- formatting ---------------------------------------------------------------------------------


def _num(value: object) -> str:
    """A number as people read it: 4 significant digits, thousands separators, no exponent in everyday ranges."""
    if _missing(value):
        return "–"
    v = float(value)  # type: ignore[arg-type]
    if v == 0:
        return "0"
    magnitude = abs(v)
    if magnitude >= 1e15 or magnitude < 1e-4:
        return f"{v:.3e}"
    if magnitude >= 1000:
        return f"{v:,.0f}"
    text = f"{v:.{max(0, 3 - math.floor(math.log10(magnitude)))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _fixed(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _predicted(p: PredictedValue | None) -> str:
    if p is None:
        return "–"
    text = _num(p.value)
    if p.lower is not None and p.upper is not None:
        text += f" <span class='muted'>[{_num(p.lower)}, {_num(p.upper)}]</span>"
    return text


def _bound(low: float | None, high: float | None) -> str:
    return " and ".join(([] if low is None else [f"≥ {_num(low)}"]) + ([] if high is None else [f"≤ {_num(high)}"]))


def _params(choice: Choice) -> str:
    return ", ".join(f"{k}={v}" for k, v in choice.parameters.items()) or "no parameters"


def _unit(metric: str) -> str:
    return next((unit for suffix, unit in UNITS if metric.endswith(suffix)), "")


def _unit_label(metric: str, plain: bool = False) -> str:
    unit = _unit(metric)
    if not unit:
        return ""
    return f" ({unit})" if plain else f" <span class='unit'>({_e(unit)})</span>"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _e(value: object) -> str:
    return html.escape(str(value))


def _id(rec: HWRecommendation) -> str:
    return "rec-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in rec.metadata.name)


def _colours(frame: pd.DataFrame, solved: Sequence[Solved]) -> dict[str, str]:
    """One colour per platform, the same in every table and plot of the page."""
    names: list[str] = [str(p) for p in frame["platform"].unique()] if "platform" in frame.columns else []
    for s in solved:
        st = s.status
        names += [c.platform for c in [*st.pareto_front, *st.alternatives, *([st.recommendation] if st.recommendation
                                                                             else [])]]
    unique = list(dict.fromkeys(names))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(unique)}


def _swatch(colours: dict[str, str], platform: str) -> str:
    return f"<span class='swatch' style='background:{colours.get(platform, '#999')}'></span>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;padding:1.5em 2em;max-width:1200px;
color:#1d1d1f;line-height:1.45}
h1{margin:0}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{margin-top:1.6em}
nav{margin:.6em 0}a{color:#1f5fbf}.muted{color:#666}.unit{color:#777;font-weight:normal}
.summary{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:.6em 1.2em}
.answer{font-size:1.15em}.ok{color:#1a7f37}.bad{color:#b42318}
.badge{font-size:.6em;vertical-align:middle;padding:.15em .6em;border-radius:1em;background:#ddd}
.badge.ready{background:#d1f2da;color:#0f5323}.badge.infeasible,.badge.failed{background:#fde2e1;color:#8a1c12}
.badge.insufficientdata,.badge.pending{background:#fff3cd;color:#6b4e00}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}caption{caption-side:bottom;text-align:left;color:#666;
font-size:12px;padding-top:.3em}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.chosen td{background:#fff8e6}.scroll{overflow-x:auto;max-width:100%}
.swatch{display:inline-block;width:.7em;height:.7em;border-radius:2px;margin-right:.35em}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:12px}
input[type=search]{padding:4px 8px;width:22em;max-width:100%}
@media print{.noprint{display:none}tbody tr{display:table-row!important}body{padding:0}}
"""

#: The trials table's filter and pager: plain DOM, no library, nothing fetched.
_SCRIPT = """
(function(){
  var table=document.getElementById('trials-table'); if(!table){return;}
  var rows=Array.prototype.slice.call(table.tBodies[0].rows), input=document.getElementById('filter'),
      pager=document.getElementById('pager'), size=%d, page=0, shown=rows;
  function draw(){
    var pages=Math.max(1,Math.ceil(shown.length/size)); page=Math.min(page,pages-1);
    rows.forEach(function(r){r.style.display='none';});
    shown.slice(page*size,(page+1)*size).forEach(function(r){r.style.display='';});
    pager.textContent='';
    var info=document.createElement('span');
    info.textContent=shown.length+' of '+rows.length+' trials, page '+(page+1)+' of '+pages+' ';
    pager.appendChild(info);
    [['previous',-1],['next',1]].forEach(function(b){
      var button=document.createElement('button'); button.textContent=b[0];
      button.disabled=(b[1]<0&&page===0)||(b[1]>0&&page>=pages-1);
      button.onclick=function(){page+=b[1];draw();}; pager.appendChild(button);
    });
  }
  input.addEventListener('input',function(){
    var q=input.value.toLowerCase();
    shown=rows.filter(function(r){return r.textContent.toLowerCase().indexOf(q)>=0;}); page=0; draw();
  });
  draw();
})();
""" % PAGE_ROWS
