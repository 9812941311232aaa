"""``hwmatch recommend``, ``hwmatch report`` and ``hwmatch verify``: matching requirements to hardware."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from hwmatch.cli.app import (
    Command,
    Document,
    Group,
    app,
    command,
    console,
    err_console,
    fail,
    open_existing,
    panel_of,
    renamed,
    reported,
    store_option,
)
from hwmatch.data.store import Store

if TYPE_CHECKING:  # the engine loads pandas, scikit-learn and OR-Tools, the models pydantic: the commands that
    # solve or print a recommendation load them, `hwmatch --help` does not (issue 14)
    from hwmatch.api import Choice, HWRecommendation, PredictedValue, VerificationCheck
    from hwmatch.execution.base import Executor


def _values(choice: Choice) -> str:
    return " ".join(f"{k}={v}" for k, v in choice.parameters.items())


def _number(x: float, digits: int) -> str:
    """``digits`` significant digits, but whole numbers below ten million in full (3266, not 3.27e+03)."""
    if digits <= math.log10(abs(x) or 1) < 7:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _predicted(choice: Choice, metric: str, times: int = 1) -> str:
    """``value`` over ``[lower, upper]`` (``times`` each: the throughput of every replica together)."""
    p = choice.predicted.get(metric)
    if p is None:
        return "-"
    if p.lower is not None and p.upper is not None:
        interval = f"\n[{_number(p.lower * times, 3)}, {_number(p.upper * times, 3)}]"
    else:  # a bound the data cannot give (too few trials for this level) is not printed as a number
        interval = "\n[unbounded]" if p.lower is None and p.upper is None else ""
    return f"{_number(p.value * times, 4)}{interval}"


def _requirement(rec: HWRecommendation, metric: str) -> str:
    """What the request asks of ``metric``: its bounds, and minimize or maximize when the objective names it."""
    asked = [f">= {c.min:g}" for c in rec.spec.constraints if c.metric == metric and c.min is not None]
    asked += [f"<= {c.max:g}" for c in rec.spec.constraints if c.metric == metric and c.max is not None]
    weight = rec.spec.objective.terms().get(metric)
    if weight is not None:
        asked.append("minimize" if weight > 0 else "maximize")
    return ", ".join(asked)


def print_recommendation(rec: HWRecommendation) -> None:
    """The answer as a person reads it: the choices, what each is predicted to measure, why, and the models.

    Two narrow tables instead of one wide one, so that an 80-column terminal
    wraps them between words: the choices (platform, replicas, cost, parameters)
    and the predictions (a row per metric the request names, a column per choice).
    """
    from hwmatch.api import interval_caption
    from hwmatch.optimize import THROUGHPUT_METRIC

    status = rec.status
    assert status is not None
    spec = rec.spec
    shown = [m for m in dict.fromkeys([c.metric for c in spec.constraints] + list(spec.objective.terms()))
             if m != "cost_per_hour"]  # cost has its own column
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    title = escape(f"{rec.metadata.name}: {status.phase}")
    if status.recommendation is None:
        console.print(f"[bold {'yellow' if status.phase == 'InsufficientData' else 'red'}]{title}[/]")
        console.print(status.infeasible.message if status.infeasible else (ready.message if ready else ""),
                      highlight=False, markup=False)
        return
    rows = [("best", status.recommendation)] + [(f"#{i + 2}", c) for i, c in enumerate(status.alternatives)]
    priced = any(c.cost_per_hour is not None for _, c in rows)  # no price on any platform: no empty column
    choices = Table(title=title, title_style="bold green", box=box.SIMPLE_HEAD, title_justify="left")
    for header in ["", "platform", "replicas", *(["cost/h"] if priced else []), "parameters"]:
        choices.add_column(header, justify="right" if header in ("replicas", "cost/h") else "left")
    for label, c in rows:
        cost = ["-" if c.cost_per_hour is None else f"{c.cost_per_hour:.4g}"] if priced else []
        choices.add_row(label, escape(c.platform), str(c.replicas), *cost, escape(_values(c)))
    console.print(choices)
    predicted = Table(box=box.SIMPLE_HEAD, caption=escape(f"predicted {interval_caption(spec, status)}"),
                      title="predicted", title_justify="left")
    predicted.add_column("metric", no_wrap=True)  # the other columns wrap, between words, to make room for it
    for header in ["required", *(label for label, _ in rows)]:
        predicted.add_column(header)
    for m in shown:
        predicted.add_row(escape(m), escape(_requirement(rec, m)), *(escape(_predicted(c, m)) for _, c in rows))
    if spec.throughput is not None:  # the load to serve: every replica together
        predicted.add_row(escape(THROUGHPUT_METRIC), f">= {spec.throughput.requests_per_second:g} with all replicas",
                          *(escape(_predicted(c, THROUGHPUT_METRIC, c.replicas)) for _, c in rows))
    console.print(predicted)
    outside = [f"{label} ({c.novelty:.2g}× the calibrated distance)" for label, c in rows
               if c.novelty is not None and c.novelty > 1]
    if outside:
        console.print("outside the sampled region, intervals widened by that factor: " + ", ".join(outside)
                      + "; `hwmatch verify` measures it", highlight=False)
    if ready is not None:
        console.print(f"why: {ready.message}", highlight=False, markup=False)
    if status.models:
        models = Table("metric", "model", "R² (held out)", "MAPE", "trials", title="models", box=None)
        for metric, s in status.models.items():
            models.add_row(escape(metric), s.family, "-" if s.r2 is None else f"{s.r2:.3f}",
                           "-" if s.mape is None else f"{s.mape:.3f}", str(s.trained_on_trials))
        console.print(models)
    if status.solver:
        console.print(f"solver: {status.solver.status} in {status.solver.wall_time_ms:.1f} ms, "
                      f"{status.solver.feasible_candidates}/{status.solver.candidates} candidates feasible")


def answer_all(db: Store, recommendations: Sequence[HWRecommendation], output: Document = Document.table
               ) -> list[HWRecommendation]:
    """Answer and print each recommendation; the answers are kept in the store."""
    from hwmatch.engine import answer_stored

    solved = []
    for rec in recommendations:
        with console.status(f"learning and solving {rec.metadata.name}…"):
            answered = answer_stored(db, rec)
        solved.append(answered)
        if output is Document.table:
            print_recommendation(answered)
    if output is not Document.table:
        print_documents(solved, output)
    return solved


def print_documents(recommendations: Sequence[HWRecommendation], output: Document) -> None:
    """``-o yaml`` or ``-o json``: the recommendations as written (spec and status), for scripts and kubectl users."""
    import yaml

    docs = [r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in recommendations]
    console.print(yaml.safe_dump_all(docs, sort_keys=False) if output is Document.yaml else json.dumps(docs, indent=2),
                  highlight=False, markup=False, soft_wrap=True)


def verify_all(db: Store, recommendations: Sequence[HWRecommendation], executor: Executor) -> list[HWRecommendation]:
    """``spec.verify`` of each answered recommendation that asks for it: the rounds, and the last one's checks."""
    from hwmatch.api import Choice
    from hwmatch.engine import verify_spec

    out = []
    for rec in recommendations:
        if rec.spec.verify is None or rec.status is None or rec.status.recommendation is None:
            out.append(rec)
            continue
        choice = rec.status.recommendation
        with console.status(f"verifying {rec.metadata.name}: {choice.platform} ×{rec.spec.verify.repetitions}…"):
            verified = verify_spec(db, rec, executor)
        out.append(verified)
        v = verified.status.verification if verified.status else None
        if v is None:
            continue
        for r in v.history[:-1]:
            tried = Choice(platform=r.platform, parameters=r.parameters, replicas=r.replicas)
            console.print(escape(f"{rec.metadata.name}: round {r.round}: {r.platform} {_values(tried)}: "
                                 f"{'requirements held' if r.met else 'a requirement broke'}; "
                                 f"{r.intervals_held} of {r.intervals} intervals held"), highlight=False)
        print_checks(verified, v.choice, v.checks, title=f"{rec.metadata.name}: verification round {v.round}, {v.phase}")
        console.print(("[green]" if v.phase == "Verified" else "[red]") + escape(v.message) + "[/]", highlight=False)
        if not _same_choice(v.choice, verified.status.recommendation if verified.status else None):
            print_recommendation(verified)  # re-solved with the runs: the answer now
    return out


def _same_choice(a: Choice, b: Choice | None) -> bool:
    return b is not None and (a.platform, a.parameters, a.replicas) == (b.platform, b.parameters, b.replicas)


@command()
def recommend(
    files: list[Path] = typer.Argument(..., help="Manifest files with HWRecommendations.", show_default=False),
    store: Path = store_option(),
    output: Document = typer.Option(Document.table, "-o", "--output", case_sensitive=False,
                                    help="table, or yaml or json: the recommendation as written."),
) -> None:
    """Solve the HWRecommendations in FILES against the stored trials and print the answers.

    A stored answer is shown again, without its file, by `hwmatch get recommendation NAME`.
    """
    from hwmatch.api import HWRecommendation, load_documents


    with reported():
        documents = load_documents(files)
    recs = [d.resource for d in documents if isinstance(d.resource, HWRecommendation)]
    if not recs:
        raise fail(f"{', '.join(map(str, files))}: no HWRecommendation to solve; add one (kind: HWRecommendation)")
    with reported(), open_existing(store) as db:
        solved = answer_all(db, recs, output)
    if any(r.status and r.status.phase == "Failed" for r in solved):
        raise typer.Exit(1)


get = typer.Typer(name="get", cls=Group, no_args_is_help=True,
                  help="Show stored resources without their files, as `kubectl get` shows a cluster's.")
app.add_typer(get, rich_help_panel=panel_of("get"))


@get.command("recommendation", cls=Command)
def get_recommendation(
    names: Optional[list[str]] = typer.Argument(None, help="Recommendations to show (default: every stored one)."),
    store: Path = store_option(),
    output: Document = typer.Option(Document.table, "-o", "--output", case_sensitive=False,
                                    help="table, or yaml or json: the recommendation as written."),
) -> None:
    """Show stored recommendations as `hwmatch recommend` printed them: nothing is solved again."""
    with reported(), open_existing(store, readonly=True) as db:
        stored = db.recommendations()
    recs = [r for r in stored if not names or r.metadata.name in names]
    missing = sorted(set(names or ()) - {r.metadata.name for r in recs})
    if missing or not recs:
        raise fail(f"no stored recommendation{' named ' + ', '.join(missing) if missing else ''} in {store} "
                   f"(stored: {', '.join(r.metadata.name for r in stored) or 'none'}); "
                   "solve one with `hwmatch recommend FILE` or `hwmatch run FILE`")
    if output is not Document.table:
        print_documents(recs, output)
        return
    for rec in recs:
        if rec.status is None:
            console.print(escape(f"{rec.metadata.name}: not solved yet"), highlight=False)
        else:
            print_recommendation(rec)


for _plural in ("recommendations", "hwrecommendation", "hwrecommendations"):  # as kubectl spells the kind
    get.command(_plural, cls=Command, hidden=True)(get_recommendation)


@command()
def report(
    store: Path = store_option(),
    out: Path = typer.Option(Path("hwmatch-report"), "--out", metavar="DIR",
                             help="Directory for index.html (one self-contained page)."),
    asset: Optional[str] = typer.Option(None, "--asset", metavar="NAME", help="Only this asset."),
    old_output: Optional[Path] = typer.Option(None, "-o", "--output", hidden=True),
) -> None:
    """Write an HTML report: the trials, the model scores, the recommendations and their Pareto fronts."""
    from hwmatch.report import Solved, write_report

    out = renamed("-o/--output DIR", "--out DIR", old_output, out)
    with reported():
        with open_existing(store, readonly=True) as db:
            recs = db.recommendations(asset=asset)
            frame = db.frame(asset=asset)
        solved = [Solved(r, r.status) for r in recs if r.status is not None]
        page = write_report(frame, solved, out)
    console.print(f"wrote {page} ({len(frame)} trials, {len(solved)} recommendation(s))", markup=False)


@command()
def verify(
    names: Optional[list[str]] = typer.Argument(None, help="Recommendations to verify (default: all solved ones)."),
    store: Path = store_option(),
    repetitions: int = typer.Option(3, "--repetitions", "-r", min=1, help="Runs of the recommended configuration."),
    old_n: Optional[int] = typer.Option(None, "-n", min=1, hidden=True),
) -> None:
    """Re-run each recommended configuration on its platform; print predicted against measured for every metric.

    Each metric is flagged when a run falls outside its predicted interval;
    the runs are stored as verification trials (training data). Exits 1 when
    a measured value breaks a constraint.
    """
    from hwmatch.engine import verify as verify_choice
    from hwmatch.execution import LocalExecutor

    repetitions = renamed("-n (repetitions)", "-r/--repetitions; -n is a namespace in hwmatch, as in kubectl",
                          old_n, repetitions)
    broken, missed = False, 0
    with reported(), open_existing(store) as db:
        recs = [r for r in db.recommendations() if not names or r.metadata.name in names]
        missing = sorted(set(names or ()) - {r.metadata.name for r in recs})
        if missing:
            raise fail(f"no solved recommendation named {', '.join(missing)}; run `hwmatch recommend FILE` first")
        for rec in recs:
            if rec.status is None or rec.status.recommendation is None:
                console.print(f"{rec.metadata.name}: {rec.status.phase if rec.status else 'unsolved'}; nothing to verify",
                              markup=False)
                continue
            best = rec.status.recommendation
            with console.status(f"running {rec.metadata.name}'s choice on {best.platform} ×{repetitions}…"):
                with reported():
                    done = verify_choice(db, rec, LocalExecutor(), repetitions)
            v = done.status.verification if done.status else None
            assert v is not None
            if v.reason == "RunFailed":
                err_console.print(escape(f"{rec.metadata.name}: {v.message}"), highlight=False)
                broken = True
                continue
            outside = print_checks(done, best, v.checks, title=f"{rec.metadata.name}: verification round {v.round}, "
                                                               f"{best.platform} ×{best.replicas} {_values(best)}")
            held = sum(c.inside is True for c in v.checks)
            console.print(f"{held} of {held + outside} predicted intervals held; the {repetitions} run(s) are stored "
                          "as verification trials and join the training data", highlight=False)
            missed += outside
            broken |= any(c.met is False for c in v.checks)
    if missed:
        console.print(f"[yellow]{missed} measured metric(s) outside the predicted interval: "
                      "the models are wrong there; re-solving learns from these runs[/]")
    if broken:
        raise typer.Exit(1)


def print_checks(rec: HWRecommendation, choice: Choice, checks: Sequence[VerificationCheck], title: str = "") -> int:
    """Predicted against measured, one row per metric; how many measured metrics fell outside their interval."""
    from hwmatch.api import interval_caption


    assert rec.status is not None
    table = Table("metric", "bound", escape("predicted [interval]"), "measured (each run)", "requirement",
                  "interval", title=escape(title or f"{rec.metadata.name}: {choice.platform} ×{choice.replicas} "
                                                    f"{_values(choice)}"),
                  caption=escape(f"predicted {interval_caption(rec.spec, rec.status)}"))
    for c in checks:
        table.add_row(escape(c.metric), _bound(c), escape(_prediction(c.predicted)),
                      ", ".join(f"{m:.4g}" for m in c.measured),
                      {True: "[green]✓ met[/]", False: "[red]✗ broken[/]", None: ""}[c.met],
                      {True: "[green]inside[/]", False: "[red]✗ outside[/]", None: "-"}[c.inside])
    console.print(table)
    return sum(c.inside is False for c in checks)


def _bound(check: VerificationCheck) -> str:
    if check.met is None:
        return ""
    bounds = [f">= {check.min:g}"] if check.min is not None else []
    bounds += [f"<= {check.max:g}"] if check.max is not None else []
    return " and ".join(bounds)


def _prediction(predicted: PredictedValue | None) -> str:
    if predicted is None:
        return "-"
    text = f"{predicted.value:.4g}"
    if predicted.lower is not None and predicted.upper is not None:
        text += f" [{predicted.lower:.4g}, {predicted.upper:.4g}]"
    return text
