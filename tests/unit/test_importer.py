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
