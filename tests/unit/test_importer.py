"""Importing benchmark tables: mappings validate with field paths, tables become trials in the frame schema."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml

from hwmatch.api import ManifestError
from hwmatch.data.frame import ID_COLUMNS
from hwmatch.data.importer import COST_PER_RUN, TableError, import_tables, load_mapping, parse_mapping, save
from hwmatch.data.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "import"
DATASETS = ROOT.parent / "shared" / "datasets"

MAPPING = {
    "asset": "toy-kernel",
    "platform": {"fromFile": r"^kernel_(?P<platform>[a-z0-9]+)\.(csv|parquet)$"},
    "parameters": [
        {"name": "bits", "column": "var_0", "type": "int"},
        {"name": "engine", "column": ["ENGINE", "engine"], "type": "categorical"},
    ],
    "instance": [{"name": "size"}],
    "metrics": [
        {"name": "time_s", "column": ["time", "time(sec)"], "goal": "minimize"},
        {"name": "power_w", "column": "power", "goal": "minimize", "missing": [0]},
    ],
    "joins": [{"match": r"_quality\.csv$", "keys": ["bits"], "metrics": [{"name": "quality", "goal": "maximize"}]}],
    "platforms": {"pc": {"pricePerRun": 7, "features": {"cores": 8}}, "vm": {"costPerHour": 0.5, "features": {"cores": 2}}},
}


def write_tables(tmp_path: Path) -> list[Path]:
    pc = pd.DataFrame({"var_0": [4, 8, 8, 16], "ENGINE": ["a", "b", "b", "a"], "size": [1.0, 2.0, 2.0, 1.0],
                       "time": [1.0, 2.0, 4.0, 3.0], "power": [5.0, 0.0, 6.0, 7.0]})
    vm = pd.DataFrame({"var_0": [4, 16], "engine": ["a", "a"], "size": [1.0, 1.0],
                       "time(sec)": [0.5, 1.5], "power": [1.0, 2.0]})
    quality = pd.DataFrame({"var_0": [4, 8, 32], "quality": [1.0, 2.0, 5.0]})
    paths = [tmp_path / "kernel_pc.csv", tmp_path / "kernel_vm.parquet", tmp_path / "kernel_quality.csv"]
    pc.to_csv(paths[0], index=False)
    vm.to_parquet(paths[1])
    quality.to_csv(paths[2], index=False)
    return paths


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_mappings_validate(path: Path) -> None:
    mapping = load_mapping(path)
    assert mapping.asset and mapping.metrics


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        (lambda m: m["metrics"][1].update(goal="maximise"), "metrics[1].goal", "minimize"),
        (lambda m: m["platform"].update(column="DEVICE"), "platform", "exactly one"),
        (lambda m: m["platform"].update(fromFile="kernel_(.*)"), "platform.fromFile", "(?P<platform>"),
        (lambda m: m["parameters"][0].update(type="integer"), "parameters[0].type", "categorical"),
        (lambda m: m["platforms"]["pc"].update(costPerHuor=1), "platforms.pc.costPerHuor", "allowed here"),
        (lambda m: m["joins"][0].update(keys=["nope"]), "<document>", "joins[0].keys"),
        (lambda m: m.update(asset="Toy_Kernel"), "asset", "DNS-1123"),
        (lambda m: m["metrics"].append({"name": "time_s"}), "<document>", "used twice"),
    ],
)
def test_bad_mapping_names_the_field(change, where: str, words: str) -> None:
    doc = yaml.safe_load(yaml.safe_dump(MAPPING))
    change(doc)
    with pytest.raises(ManifestError) as exc:
        parse_mapping(doc, "m.yaml")
    text = str(exc.value)
    assert f": {where}: " in text and words in text, text


def test_unreadable_mapping(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("asset: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_mapping(tmp_path / "m.yaml")


def test_import_synthetic_tables(tmp_path: Path) -> None:
    imported = import_tables(parse_mapping(MAPPING), write_tables(tmp_path))
    frame = imported.frame
    assert list(frame.columns[: len(ID_COLUMNS)]) == ID_COLUMNS
    assert sorted(frame["platform"].unique()) == ["pc", "vm"]
    # 4 + 2 measured rows, plus the quality row (bits=32) without a timed row on each platform
    assert len(frame) == 8
    assert frame["trial_id"].is_unique
    pc = frame[frame["platform"] == "pc"]
    repeated = pc[pc["param.bits"] == 8].sort_values("repetition")
    assert list(repeated["repetition"]) == [0, 1] and list(repeated["metric.time_s"]) == [2.0, 4.0]
    assert np.isnan(repeated["metric.power_w"].iloc[0])  # 0 means "not measured"
    assert set(pc["metric.quality"].dropna()) == {1.0, 2.0, 5.0}
    quality_only = frame[frame["param.bits"] == 32]
    assert len(quality_only) == 2 and quality_only["metric.time_s"].isna().all()
    vm = frame[frame["platform"] == "vm"]
    assert list(vm["metric.time_s"].dropna()) == [0.5, 1.5]  # the other spelling of the column
    assert (vm["cost_per_hour"] == 0.5).all() and pc["cost_per_hour"].isna().all()
    assert (pc[f"metric.{COST_PER_RUN}"] == 7).all() and vm[f"metric.{COST_PER_RUN}"].isna().all()
    assert set(frame["feature.cores"]) == {8, 2}

    spec = imported.asset.spec
    assert spec.parameter("bits").values == [4, 8, 16, 32]
    assert spec.parameter("engine").values == ["a", "b"]
    assert [f.name for f in spec.instance_features] == ["size"]
    assert {m.name: m.goal for m in spec.metrics} == {
        "time_s": "minimize", "power_w": "minimize", "quality": "maximize", COST_PER_RUN: "minimize"}
    assert [(p.name, p.cost_per_hour) for p in imported.platforms] == [("pc", None), ("vm", 0.5)]

    again = import_tables(parse_mapping(MAPPING), list(reversed(write_tables(tmp_path))))
    pd.testing.assert_frame_equal(frame, again.frame)


def test_many_distinct_values_give_a_range(tmp_path: Path) -> None:
    table = pd.DataFrame({"n": np.arange(1, 101), "t": np.linspace(1, 2, 100)})
    table.to_csv(tmp_path / "run_pc.csv", index=False)
    mapping = parse_mapping({"asset": "a", "platform": {"fromFile": r"run_(?P<platform>\w+)\.csv"},
                             "parameters": [{"name": "n", "type": "int"}], "metrics": [{"name": "t", "goal": "minimize"}]})
    parameter = import_tables(mapping, [tmp_path / "run_pc.csv"]).asset.spec.parameter("n")
    assert parameter.values is None and (parameter.range.min, parameter.range.max, parameter.range.step) == (1, 100, 1)


def test_table_errors_name_file_and_column(tmp_path: Path) -> None:
    paths = write_tables(tmp_path)
    doc = yaml.safe_load(yaml.safe_dump(MAPPING))
    doc["metrics"][0]["column"] = "runtime"
    with pytest.raises(TableError, match=r"kernel_pc\.csv: metrics 'time_s' reads column 'runtime'"):
        import_tables(parse_mapping(doc), paths)
    (tmp_path / "other.csv").write_text("var_0,time\n1,2\n")
    with pytest.raises(TableError, match="does not match platform.fromFile"):
        import_tables(parse_mapping(MAPPING), [*paths, tmp_path / "other.csv"])
    (tmp_path / "kernel_x.txt").write_text("")
    with pytest.raises(TableError, match="use .csv or .parquet"):
        import_tables(parse_mapping(MAPPING), [tmp_path / "kernel_x.txt"])


def test_save_into_the_store_round_trips(tmp_path: Path) -> None:
    imported = import_tables(parse_mapping(MAPPING), write_tables(tmp_path))
    with Store(tmp_path / "s.db") as store:
        assert save(imported, store) == len(imported.frame)
        assert save(imported, store) == len(imported.frame)  # re-import replaces, never duplicates
        stored = store.frame("toy-kernel")
        assert store.asset("toy-kernel") == imported.asset
    key = ["trial_id"]
    expected = imported.frame.sort_values(key).reset_index(drop=True)
    got = stored.sort_values(key).reset_index(drop=True)[expected.columns]
    assert len(got) == len(expected)
    for col in expected.columns:
        if col.startswith(("metric.", "cost")):
            np.testing.assert_allclose(got[col].astype(float), expected[col].astype(float), equal_nan=True)
        elif col != "reason":
            assert got[col].astype(str).tolist() == expected[col].astype(str).tolist(), col


REAL = [
    ("hada-anticipate.yaml", "hada/anticipate_*.csv", {"pc": 10000, "leonardo": 2900, "mbp19": 3000}),
    ("hada-saxpy.yaml", "hada/saxpy_*.csv", None),
    ("edge-imagenet.yaml", "edge-ai/imagenet_*.csv", None),
    ("edge-bodypose.yaml", "edge-ai/bodypose-estimation_*.csv", None),
]


@pytest.mark.parametrize(("mapping", "pattern", "rows"), REAL, ids=[r[0] for r in REAL])
def test_real_tables(mapping: str, pattern: str, rows: dict[str, int] | None) -> None:
    files = sorted(DATASETS.glob(pattern))
    if not files:
        pytest.skip(f"public datasets not present at {DATASETS} (see its README)")
    imported = import_tables(load_mapping(EXAMPLES / mapping), files)
    frame = imported.frame
    assert frame["trial_id"].is_unique
    if rows is not None:
        assert frame.groupby("platform").size().to_dict() == rows
        # pc spells the columns sol/time/memory, the others sol(keuro)/time(sec)/memPeak(MB): all read
        assert frame[["metric.sol_keur", "metric.time_s", "metric.memory_mb"]].notna().all().all()
    for metric in imported.asset.spec.metrics:
        assert frame[f"metric.{metric.name}"].notna().any(), metric.name
    for parameter in imported.asset.spec.parameters:
        assert frame[f"param.{parameter.name}"].map(parameter.contains).all(), parameter.name


#: Rows of the import whose memory is bounded, and the bound on its peak RSS above the interpreter's floor.
#: The import adds ~50 MiB at this size (bench/import_memory.py; ~0.5 KiB a row at 1M rows); one BenchmarkTrial
#: object per row held at once, as before the import streamed its trials into the store, added ~370 MiB.
BOUNDED_ROWS = 50_000
BOUNDED_GROWTH_MIB = 150


def _bench(name: str) -> ModuleType:
    """A script of bench/ as a module (registered, so its dataclasses resolve their module)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_memory_is_bounded(tmp_path: Path) -> None:
    bench = _bench("import_memory")
    csv, mapping = bench.write_table(tmp_path, BOUNDED_ROWS)
    floor = bench.peak_of(bench.floor_argv())
    peak = bench.peak_of(bench.import_argv(csv, mapping, tmp_path / "s.db"))
    assert peak.mib - floor.mib < BOUNDED_GROWTH_MIB, (
        f"hwmatch import of {BOUNDED_ROWS} rows peaked {peak.mib - floor.mib:.0f} MiB above the floor "
        f"({floor.mib:.0f} MiB); something holds an object per row")
    with Store(tmp_path / "s.db") as store:
        assert sum(n for by_status in store.counts("import-generated").values() for n in by_status.values()) == BOUNDED_ROWS


# -- long tables, numbers as published, names --------------------------------------------------------------

LONG = {
    "asset": "long",
    "numbers": {"thousands": ","},
    "where": [{"column": "Division", "keep": ["closed"]}],
    "platform": {"column": "System", "rename": {"Big Box (8x, liquid)": "big-box"}, "normalize": True},
    "parameters": [{"name": "n", "column": "Accelerators", "type": "int"}],
    "instance": [{"name": "model", "column": "Model", "type": "categorical", "rename": {"ResNet": "resnet50"},
                  "normalize": True}],
    "pivot": {"column": "Units", "value": "Result", "by": ["ID"]},
    "metrics": [
        {"name": "throughput", "goal": "maximize", "units": {"samples/s": 1, "queries/s": 1}},
        {"name": "energy_mj", "goal": "minimize", "units": {"mJ per stream": 1, "J per stream": 1000}},
    ],
}
LONG_TABLE = """\
ID,Division,System,Accelerators,Model,Units,Result
a1,closed,Small Node,1,ResNet,samples/s,"4,115.42"
a1,closed,Small Node,1,ResNet,J per stream,0.5
a2,closed,SMALL node ,1,resnet-50,samples/s,4000
a2,closed,SMALL node ,1,resnet-50,mJ per stream,480
b1,closed,"Big Box (8x, liquid)",8,BERT-99,queries/s,"12,000"
b1,open,"Big Box (8x, liquid)",8,BERT-99,queries/s,99
"""


def write_long(tmp_path: Path, text: str = LONG_TABLE, doc: dict | None = None) -> tuple[object, list[Path]]:
    (tmp_path / "long.csv").write_text(text)
    return parse_mapping(yaml.safe_load(yaml.safe_dump(doc or LONG))), [tmp_path / "long.csv"]


def test_long_table_is_pivoted_by_unit(tmp_path: Path) -> None:
    imported = import_tables(*write_long(tmp_path))
    frame = imported.frame.set_index(["platform", "repetition"])
    assert sorted(frame.index) == [("big-box", 0), ("small-node", 0), ("small-node", 1)]
    # one submission (by: ID) is one trial: its throughput and its energy, J converted to mJ
    assert frame.loc[("small-node", 0), ["metric.throughput", "metric.energy_mj"]].tolist() == [4115.42, 500.0]
    assert frame.loc[("small-node", 1), ["metric.throughput", "metric.energy_mj"]].tolist() == [4000.0, 480.0]
    assert frame.loc[("big-box", 0), "metric.throughput"] == 12000.0  # the open-division row is left out
    assert np.isnan(frame.loc[("big-box", 0), "metric.energy_mj"])
    # ResNet (renamed) and resnet-50 (normalised) are one name; the trials hold its index in the asset's values
    assert imported.asset.spec.instance_features[0].values == ["bert99", "resnet50"]
    assert frame.loc[("small-node", 0), "instance.model"] == 1.0 and frame.loc[("big-box", 0), "instance.model"] == 0.0
    assert imported.left_out == ["long.csv: where[0] ('Division' keep ['closed']) left out 1 of 6 row(s)"]
    assert imported.skipped == []


def test_long_table_without_by_pairs_the_kth_rows(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(LONG))
    doc["pivot"].pop("by")
    frame = import_tables(*write_long(tmp_path, doc=doc)).frame
    small = frame[frame["platform"] == "small-node"].sort_values("repetition")
    assert small["metric.throughput"].tolist() == [4115.42, 4000.0] and small["metric.energy_mj"].tolist() == [500, 480]


def test_an_unknown_unit_is_an_error_naming_file_row_and_value_or_is_skipped_and_counted(tmp_path: Path) -> None:
    text = LONG_TABLE + "a1,closed,Small Node,1,ResNet,Watts,700\n"
    with pytest.raises(TableError, match=r"long\.csv: row 8: 'Units' is 'Watts', which no metric lists in its units"):
        import_tables(*write_long(tmp_path, text))
    doc = yaml.safe_load(yaml.safe_dump(LONG))
    doc["pivot"]["unknown"] = "skip"
    imported = import_tables(*write_long(tmp_path, text, doc))
    assert "long.csv: 1 row(s) whose 'Units' no metric lists ('Watts') left out (pivot.unknown: skip)" in imported.left_out
    assert len(imported.frame) == 3


def test_an_unreadable_number_is_reported_not_dropped(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(LONG))
    doc.pop("numbers")  # the table groups thousands, the mapping does not say so
    imported = import_tables(*write_long(tmp_path, doc=doc))
    assert imported.skipped == [
        "long.csv: metric 'throughput' (column 'Result'): 2 non-numeric cell(s) (the first, row 2: '4,115.42'; if the "
        "tables group thousands or write a decimal comma, say so in numbers: {thousands: ..., decimal: ...}) skipped "
        "(stored as missing)"]
    # digits must come in groups of three: a table read with the wrong separators does not give wrong numbers
    imported = import_tables(*write_long(tmp_path, LONG_TABLE.replace('"4,115.42"', '"41,15"')))
    assert "1 non-numeric cell(s) (the first, row 2: '41,15'" in imported.skipped[0]
    assert imported.frame["metric.throughput"].notna().sum() == 2


@pytest.mark.parametrize(("numbers", "cells", "values"), [
    ({"thousands": ","}, ["1,024", "-2,048.5", "3.5", "12"], [1024, -2048.5, 3.5, 12]),
    ({"thousands": ".", "decimal": ","}, ["1.024", "2.048,5", "3,5", "12"], [1024, 2048.5, 3.5, 12]),
    ({"thousands": " "}, ["1 024", "2\u00a0048.5", "3.5", "12"], [1024, 2048.5, 3.5, 12]),
    ({"decimal": ","}, ["1024", "2048,5", "3,5", "1.5"], [1024, 2048.5, 3.5, np.nan]),  # a point is unreadable here
])
def test_numbers_as_tables_write_them(tmp_path: Path, numbers: dict, cells: list[str], values: list[float]) -> None:
    pd.DataFrame({"t": cells}).to_csv(tmp_path / "run_pc.csv", index=False)
    mapping = parse_mapping({"asset": "a", "platform": {"fromFile": r"run_(?P<platform>\w+)\.csv"}, "numbers": numbers,
                             "metrics": [{"name": "t", "goal": "minimize"}]})
    imported = import_tables(mapping, [tmp_path / "run_pc.csv"])
    np.testing.assert_allclose(imported.frame["metric.t"], values)
    assert len(imported.skipped) == int(np.isnan(values).sum())


def test_unreadable_parameters_and_instance_features_are_errors_with_the_fix(tmp_path: Path) -> None:
    pd.DataFrame({"n": ["1,024", "2"], "size": ["1", "2"], "t": [1.0, 2.0]}).to_csv(tmp_path / "run_pc.csv", index=False)
    doc = {"asset": "a", "platform": {"fromFile": r"run_(?P<platform>\w+)\.csv"},
           "parameters": [{"name": "n", "type": "int"}], "instance": [{"name": "size"}],
           "metrics": [{"name": "t", "goal": "minimize"}]}
    with pytest.raises(TableError, match=r"run_pc\.csv: parameter 'n' \(column 'n'\) must be numeric, but 1 cell\(s\) "
                                         r"are not \(the first, row 2: '1,024'\); if the tables group thousands"):
        import_tables(parse_mapping(doc), [tmp_path / "run_pc.csv"])
    frame = import_tables(parse_mapping({**doc, "numbers": {"thousands": ","}}), [tmp_path / "run_pc.csv"]).frame
    assert frame["param.n"].tolist() == [1024, 2]


def test_categorical_instance_values_fix_the_codes(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(LONG))
    doc["instance"][0]["values"] = ["resnet50", "bert99"]
    imported = import_tables(*write_long(tmp_path, doc=doc))
    assert imported.asset.spec.instance_features[0].values == ["resnet50", "bert99"]
    assert sorted(imported.frame["instance.model"]) == [0.0, 0.0, 1.0]
    doc["instance"][0]["values"] = ["resnet50"]
    with pytest.raises(TableError, match=r"long\.csv: row 6: instance feature 'model' is 'bert99', which its values "
                                         r"\['resnet50'\] do not list"):
        import_tables(*write_long(tmp_path, doc=doc))


def test_platform_names(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(LONG))
    doc["platform"] = {"column": "System"}
    with pytest.raises(TableError, match=r"not DNS-1123 labels; give them names in platform.rename, or set "
                                         r"platform.normalize: true"):
        import_tables(*write_long(tmp_path, doc=doc))
    with pytest.raises(TableError, match=r"long\.csv: row 3: platform '\(\?\)' \(column 'System'\) normalises to "
                                         r"nothing; give it a name in platform.rename"):
        import_tables(*write_long(tmp_path, LONG_TABLE.replace("J per stream", "(?)", 1).replace(
            "a1,closed,Small Node,1,ResNet,(?)", "a1,closed,(?),1,ResNet,J per stream")))


def test_row_filters(tmp_path: Path) -> None:
    doc = yaml.safe_load(yaml.safe_dump(LONG))
    doc["where"] = [{"column": "System", "matches": "(?i)small"}, {"column": "ID", "drop": ["a2"]}]
    imported = import_tables(*write_long(tmp_path, doc=doc))
    assert len(imported.frame) == 1 and imported.left_out == [
        "long.csv: where[0] ('System' matches '(?i)small') left out 2 of 6 row(s)",
        "long.csv: where[1] ('ID' drop ['a2']) left out 2 of 4 row(s)"]
    doc["where"] = [{"column": "Division", "keep": ["preview"]}]
    with pytest.raises(TableError, match=r"the row filters \(where\) leave no row in any table"):
        import_tables(*write_long(tmp_path, doc=doc))
    doc["where"] = [{"column": "Category", "keep": ["edge"]}]
    with pytest.raises(TableError, match=r"long\.csv: where\[0\] reads column 'Category', which the table lacks"):
        import_tables(*write_long(tmp_path, doc=doc))


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        (lambda m: m.pop("pivot"), "<document>", "metrics[0].units reads a long table; add pivot"),
        (lambda m: m["metrics"][0].update(column="Result"), "<document>", "give units, and no column or factor"),
        (lambda m: m["metrics"][1]["units"].update({"samples/s": 1}), "<document>", "unit 'samples/s' is listed by"),
        (lambda m: m["metrics"][1]["units"].update({"W": 0}), "metrics[1].units", "positive finite"),
        (lambda m: m["parameters"][0].update(normalize=True), "parameters[0]", "give the column type: categorical"),
        (lambda m: m["instance"][0].update(type="numeric"), "instance[0]", "give the column type: categorical"),
        (lambda m: m.update(numbers={"thousands": ".", "decimal": "."}), "numbers", "must differ"),
        (lambda m: m["where"][0].update(drop=["open"]), "where[0]", "exactly one of 'keep', 'drop' or 'matches'"),
        (lambda m: m["platform"].update(normalize=False, rename={"Big Box": "Big Box"}), "platform", "DNS-1123"),
        (lambda m: m["pivot"].update(unknown="ignore"), "pivot.unknown", "'error' or 'skip'"),
    ],
)
def test_bad_long_mapping_names_the_field(change, where: str, words: str) -> None:
    doc = yaml.safe_load(yaml.safe_dump(LONG))
    change(doc)
    with pytest.raises(ManifestError) as exc:
        parse_mapping(doc, "m.yaml")
    text = str(exc.value)
    assert f": {where}: " in text and words in text, text


def test_the_long_example_is_what_its_script_writes(tmp_path: Path) -> None:
    script = importlib.util.spec_from_file_location("long_format", EXAMPLES / "long-format.py")
    assert script is not None and script.loader is not None
    module = importlib.util.module_from_spec(script)
    script.loader.exec_module(module)
    module.write(tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text() == (EXAMPLES / "long-format.csv").read_text()


@pytest.mark.timeout(300)
def test_the_long_example_imports_and_evaluates(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hwmatch.cli import app

    runner = CliRunner()
    table, mapping = str(EXAMPLES / "long-format.csv"), str(EXAMPLES / "long-format.yaml")
    result = runner.invoke(app, ["import", table, "-m", mapping, "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    assert "441 trials" in result.output and "instance scenario: 0=offline, 1=server, 2=singlestream" in result.output
    assert "warning" not in result.output  # every Result cell was read
    with Store(tmp_path / "s.db") as store:
        frame = store.frame("inference-long")
    assert sorted(frame["platform"].unique()) == ["acme-tower-t8", "borealis-edge-node-e2", "cirrus-c7", "dorado-d4",
                                                  "ember-workstation-w1"]
    assert frame["param.software"].unique().tolist() == ["tensorflux", "openrt"]
    assert frame["metric.throughput"].max() > 10_000  # "32,115.42": thousands separators read
    borealis = frame[frame["platform"] == "borealis-edge-node-e2"]["metric.latency_ms"].dropna()
    assert 1 < borealis.median() < 100  # its latency is written in µs: converted to ms
    result = runner.invoke(app, ["evaluate", table, "-m", mapping, "--budget", "10%,20%", "--queries", "40", "--no-hada"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "inference-long: recommendation quality" in result.output and "40 queries" in result.output, result.output
    models = result.output[result.output.index("surrogates on unseen configurations"):]
    assert all(m in models for m in ("throughput", "latency_ms", "power_w", "energy_mj")), result.output
    assert len([line for line in models.splitlines() if line.strip().startswith(("10%", "20%"))]) == 4  # × 2 strategies
