"""``hwmatch import`` and ``hwmatch evaluate``: published benchmark tables as trials, and recommendation quality on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from hwmatch.cli.app import Figures, command, console, err_console, fail, renamed, reported, store_option
from hwmatch.data.store import Store

if TYPE_CHECKING:  # the importer loads pandas, the evaluation scikit-learn and OR-Tools: only their commands pay
    from hwmatch.data.importer import Imported
    from hwmatch.evaluation.run import Result
    from hwmatch.evaluation.transfer import TransferResult


def _load(tables: list[Path], mapping: Path) -> Imported:
    from hwmatch.data.importer import import_tables, load_mapping

    try:
        with reported():
            return import_tables(load_mapping(mapping), tables)
    except OSError as exc:
        raise fail(str(exc)) from None


@command("import")
def import_(
    tables: list[Path] = typer.Argument(..., help="CSV or Parquet files of benchmark results.", show_default=False),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="YAML mapping: platform, parameters, metrics, prices."),
    store: Path = store_option(),
) -> None:
    """Bring existing benchmark results into the store as trials of an asset (its space read from the data)."""
    from hwmatch.data.frame import METRIC, columns
    from hwmatch.data.importer import save

    imported = _load(tables, mapping)
    with reported(), Store(store) as db:
        written = save(imported, db)
    for note in imported.skipped:
        err_console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for note in imported.left_out:
        err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    frame = imported.frame
    table = Table("platform", "trials", "cost/h", *(escape(c.split(".", 1)[1]) for c in columns(frame, METRIC)),
                  box=None)
    for platform, rows in frame.groupby("platform", sort=True):
        cost = rows["cost_per_hour"].iloc[0]
        table.add_row(escape(str(platform)), str(len(rows)), "-" if cost != cost else f"{cost:g}",
                      *(str(int(rows[c].notna().sum())) for c in columns(frame, METRIC)))
    console.print(table)
    space = ", ".join(f"{p.name} ({p.describe_space()[:40]})" for p in imported.asset.spec.parameters)
    console.print(f"asset [bold]{escape(imported.asset.metadata.name)}[/]: {escape(space)}")
    for feature in imported.asset.spec.instance_features:
        if feature.values is not None:  # trials hold the index of the name: show which is which
            codes = ", ".join(f"{i}={name}" for i, name in enumerate(feature.values))
            console.print(f"instance {escape(feature.name)}: {escape(codes)}", highlight=False, soft_wrap=True)
    console.print(f"[green]✓[/] {written} trials in {escape(str(store))} (sweep {escape(imported.mapping.sweep)})")


def parse_shares(text: str, option: str = "--budget", low: float = 0.0, high: float = 1.0,
                 example: str = "5%,10%,20% or 0.05,0.1") -> list[float]:
    """``"5%,10%,0.2"`` -> ``[0.05, 0.1, 0.2]``; each share in ``(low, high]``."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            value = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        except ValueError:
            raise fail(f"{option}: {part!r} is not a share; write e.g. {example}") from None
        if not low < value <= high:
            raise fail(f"{option}: {part!r} must be in ({low:g}, {high:g}]; write e.g. {example}")
        out.append(value)
    if not out:
        raise fail(f"{option}: give at least one value, e.g. {example}")
    return out


@command()
def evaluate(
    files: Optional[list[Path]] = typer.Argument(None, help="Benchmark tables (or give each with --table).",
                                                 show_default=False),
    tables: Optional[list[Path]] = typer.Option(None, "--table", "-t", metavar="PATH",
                                                help="A benchmark table (repeatable)."),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="YAML mapping of the tables."),
    budget: str = typer.Option("5%,10%,20%", "--budget", help="Shares of each platform's configurations to train on."),
    queries: int = typer.Option(200, "--queries", "-q", min=1, help="Random requirement queries."),
    confidence: str = typer.Option("0.95", "--confidence",
                                   help="Constraints hold at this level; several (0.8,0.9,0.95) trace the trade-off."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the queries and the samples."),
    strategies: Optional[str] = typer.Option(None, "--strategies", show_default="random,adaptive",
                                             help="Sampling strategies to compare."),
    hada: bool = typer.Option(True, "--hada/--no-hada", help="Include the HADA-like decision-tree baseline."),
    output: Figures = typer.Option(Figures.table, "-o", "--output", case_sensitive=False,
                                   help="table, or json: every figure."),
    verify_budget: int = typer.Option(0, "--verify-budget", min=0,
                                      help="Closed loop: measured runs (replayed from the table) each query may spend "
                                           "verifying its answer before answering."),
    as_json: bool = typer.Option(False, "--json", help="The same as -o json (the spelling scripts rely on)."),
    target_platforms: Optional[list[str]] = typer.Option(
        None, "--target-platform", metavar="PLATFORM",
        help="Transfer: hold this platform out (repeatable) and train on the others plus --target-trials of it."),
    target_trials: str = typer.Option("0,5,10,20", "--target-trials", metavar="K,...",
                                      help="Transfer: trials of the target platform to train on, e.g. 0,5,10,20."),
    prior: Optional[list[Path]] = typer.Option(
        None, "--prior", metavar="PATH",
        help="Transfer: another asset's table (repeatable), prior knowledge of the platforms; read by --prior-mapping."),
    prior_mapping: Optional[Path] = typer.Option(None, "--prior-mapping", metavar="PATH",
                                                 help="YAML mapping of the --prior tables."),
    old_n: Optional[int] = typer.Option(None, "-n", min=1, hidden=True),
) -> None:
    """Score recommendations against a published table: feasible rate, regret, false "no solution", model fit."""
    from threadpoolctl import threadpool_limits

    from hwmatch.evaluation.run import STRATEGIES, Evaluation

    queries = renamed("-n (queries)", "-q/--queries; -n is a namespace in hwmatch, as in kubectl", old_n, queries)

    chosen = STRATEGIES if strategies is None else tuple(s.strip() for s in strategies.split(",") if s.strip())
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown or not chosen:
        raise fail(f"--strategies: unknown {unknown or chosen}; choose from {', '.join(STRATEGIES)}")
    shares = parse_shares(budget)
    levels = parse_shares(confidence, "--confidence", 0.5, 0.999, "0.95 or 0.8,0.9,0.95")
    given = [*(files or []), *(tables or [])]
    if not given:
        raise fail("no tables: give them as arguments or with --table")
    if (prior or prior_mapping) and not target_platforms:
        raise fail("--prior and --prior-mapping inform a transfer: give --target-platform PLATFORM too")
    imported = _load(given, mapping)
    if target_platforms:
        return _transfer(imported, target_platforms, target_trials, prior or [], prior_mapping, shares, levels, queries,
                         seed, output is Figures.json or as_json, verify_budget)
    with threadpool_limits(1), reported():  # many small fits: threads only contend
        results = Evaluation(imported, queries, levels, seed, verify_budget).run(shares, chosen, hada)
    if output is Figures.json or as_json:
        doc = {"asset": imported.asset.metadata.name, "queries": queries, "confidences": levels, "seed": seed,
               "verify_budget": verify_budget,
               "results": [r.as_dict() for r in results]}
        typer.echo(json.dumps(finite(doc), indent=2))
        return
    console.print(results_table(imported.asset.metadata.name, results))
    console.print(models_table(results))


def parse_counts(text: str, option: str = "--target-trials") -> list[int]:
    """``"0,5,10"`` -> ``[0, 5, 10]``: distinct whole numbers of trials, at least 0."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if not part.isdigit():
            raise fail(f"{option}: {part!r} is not a number of trials; write e.g. 0,5,10,20")
        out.append(int(part))
    if not out:
        raise fail(f"{option}: give at least one number of trials, e.g. 0,5,10,20")
    return list(dict.fromkeys(out))


def _transfer(imported: Imported, targets: list[str], trials: str, prior: list[Path], prior_mapping: Path | None,
              shares: list[float], levels: list[float], queries: int, seed: int, as_json: bool,
              verify_budget: int) -> None:
    """``evaluate --target-platform``: the transfer figures (:mod:`hwmatch.evaluation.transfer`)."""
    from threadpoolctl import threadpool_limits

    from hwmatch.evaluation.transfer import TransferEvaluation

    ks = parse_counts(trials)
    if verify_budget:
        raise fail("--verify-budget is not available with --target-platform (the transfer scores open-loop answers)")
    if len(levels) > 1:
        raise fail(f"--confidence: give one level with --target-platform (got {', '.join(f'{c:g}' for c in levels)})")
    if prior and prior_mapping is None:
        raise fail("--prior: give the mapping of those tables with --prior-mapping PATH")
    if prior_mapping is not None and not prior:
        raise fail("--prior-mapping: give the prior asset's tables with --prior PATH")
    prior_frame = _load(prior, prior_mapping).frame if prior and prior_mapping is not None else None
    results: list[TransferResult] = []
    notes: list[str] = []
    with threadpool_limits(1), reported():
        for share in shares:
            for target in targets:
                ev = TransferEvaluation(imported, target, queries, levels[0], seed, share, prior_frame)
                results.extend(ev.run(ks))
                notes.extend(ev.notes)
    for note in notes:
        err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if as_json:
        doc = {"asset": imported.asset.metadata.name, "target_platforms": targets, "target_trials": ks,
               "budgets": shares, "confidence": levels[0], "queries": queries, "seed": seed,
               "prior": [str(p) for p in prior], "results": [r.as_dict() for r in results], "notes": notes}
        typer.echo(json.dumps(finite(doc), indent=2))
        return
    console.print(transfer_table(imported.asset.metadata.name, results, levels[0]))


def transfer_table(title: str, results: list[TransferResult], confidence: float) -> Table:
    """One row per target, k and method: each metric's Spearman / MAPE / coverage, then the recommendations."""
    from hwmatch.evaluation.transfer import metric_names

    metrics = metric_names(results)
    table = Table(title=f"{title}: transfer to a held-out platform (coverage at {confidence:g})", box=None,
                  pad_edge=False, collapse_padding=True,
                  caption="per metric: Spearman / MAPE / coverage on the platform's unseen configurations")
    for name in ("platform", "k", "model", *metrics, "feasible", "clear", "regret"):
        table.add_column(name, justify="left" if name in ("platform", "model") else "right", no_wrap=True)
    for r in results:
        cells = []
        for m in metrics:
            got = r.metrics.get(m)
            cells.append("-" if got is None else f"{_num(got['spearman'])}/{_pct(got['mape'])}/{_pct(got['coverage'])}")
        s = r.summary
        table.add_row(r.target, str(r.k), r.method, *cells, _pct(s.feasible_rate), _pct(s.clear_false_infeasible_rate),
                      _num(s.regret_median_pct, "%"))
    return table


#: Columns of the figures table (short: it must fit an 80-column terminal).
COLUMNS = ("budget", "sampling", "model", "conf", "trials", "feasible", "raw", "false-inf", "clear", "no-sol", "regret",
           "p90", "cov@choice", "cov@random", "runs", "R² min")


def results_table(title: str, results: list[Result]) -> Table:
    """The figures as a rich table (one row per budget, strategy and method); regret is the median.

    ``clear`` is the false-infeasible rate over the clearly solvable queries
    (met by more than the run-to-run noise); the caption counts them.
    ``feasible`` compares with the table's printed resolution, ``raw``
    exactly; ``cov@choice``/``cov@random``: true values on the right side of
    every predicted bound at the chosen / a random candidate; ``runs``: mean
    replayed verification runs per query (closed loop, ``--verify-budget``).
    """
    first = results[0].summary if results else None
    caption = (f"{first.queries} queries: {first.solvable} solvable, {first.clear} clearly (beyond run-to-run noise)"
               if first else None)
    table = Table(title=f"{title}: recommendation quality", caption=caption, box=None, pad_edge=False,
                  collapse_padding=True)
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("sampling", "model") else "right", no_wrap=True)
    for r in results:
        s = r.summary
        r2 = [m["r2"] for m in r.models.values()]
        table.add_row(
            f"{r.budget:.0%}", r.strategy, r.method, "-" if r.confidence is None else f"{r.confidence:g}", str(r.trials),
            _pct(s.feasible_rate), _pct(s.feasible_raw_rate), _pct(s.false_infeasible_rate),
            _pct(s.clear_false_infeasible_rate), _pct(s.no_solution_rate), _num(s.regret_median_pct, "%"),
            _num(s.regret_p90_pct, "%"), _pct(s.coverage_chosen), _pct(s.coverage_random),
            f"{s.verification_runs_mean:.2f}", f"{min(r2):.2f}" if r2 else "-",
        )
    return table


def models_table(results: list[Result]) -> Table:
    """Each metric's R² and MAPE on the configurations not sampled, per budget, strategy and method."""
    metrics = list(dict.fromkeys(m for r in results for m in r.models))
    table = Table(title="surrogates on unseen configurations: R² / MAPE", box=None, pad_edge=False,
                  collapse_padding=True)
    for name in ("budget", "sampling", "model", *metrics):
        table.add_column(name, justify="left" if name in ("sampling", "model") else "right", no_wrap=True)
    fits = {(r.budget, r.strategy, r.method): r for r in results}  # one fit answers every confidence
    for r in fits.values():
        cells = [f"{r.models[m]['r2']:.2f}/{r.models[m]['mape']:.0%}" if m in r.models else "-" for m in metrics]
        table.add_row(f"{r.budget:.0%}", r.strategy, r.method, *cells)
    return table


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.1%}"


def _num(value: float, unit: str = "") -> str:
    return "-" if value != value else f"{value:.2f}{unit}"


def finite(value: Any) -> Any:
    """NaN (an undefined rate, e.g. no answered query) as null: JSON has no NaN."""
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
