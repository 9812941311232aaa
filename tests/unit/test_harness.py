"""The measurement library, parameter handling, result document and CLI of the harness, without ML libraries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from hwmatch.api import AIAssetSpec, MetricSpec, Parameter, Range
from hwmatch.api.asset import Scalar
from hwmatch.harness import BUILTIN, HARNESS_METRICS, Asset, Measurer, ParameterError, cli, resolve
from hwmatch.harness.assets import UnknownAsset, get
from hwmatch.harness.assets.solver import JobShop
from hwmatch.harness.host import compact_ranges, host_info
from hwmatch.harness.params import parse_assignments, parse_env
from hwmatch.harness.result import TERMINATION_LOG_LIMIT, fit_termination_log, termination_log_path, write_termination_log


class FakeClock:
    """A nanosecond clock that only moves when a workload says so."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def stepping(clock: FakeClock, durations_ms: list[float]):
    """A workload whose n-th call lasts ``durations_ms[n]`` on ``clock``; it records its calls."""
    calls: list[int] = []

    def workload() -> None:
        clock.now += int(durations_ms[len(calls)] * 1e6)
        calls.append(1)

    workload.calls = calls  # type: ignore[attr-defined]
    return workload


# --- measurement -------------------------------------------------------------------------------

def test_percentiles_mean_std_and_throughput_on_a_known_workload() -> None:
    clock = FakeClock()
    durations = [float(ms) for ms in range(1, 101)]  # 1 ms, 2 ms, ... 100 ms
    rng = np.random.default_rng(3)
    timing = Measurer(warmup=0, samples=100, time_budget_s=1e6, clock=clock).measure(
        stepping(clock, list(rng.permutation(durations)))
    )
    m = timing.metrics(batch_size=8)
    assert timing.samples == 100
    assert m["latency_p50_ms"] == pytest.approx(50.5)
    assert m["latency_p90_ms"] == pytest.approx(90.1)
    assert m["latency_p95_ms"] == pytest.approx(95.05)
    assert m["latency_p99_ms"] == pytest.approx(99.01)
    assert m["latency_mean_ms"] == pytest.approx(50.5)
    assert m["latency_std_ms"] == pytest.approx(np.std(durations, ddof=1))
    assert m["throughput_per_s"] == pytest.approx(8 / 0.0505)


def test_warmup_calls_are_not_timed() -> None:
    clock = FakeClock()
    workload = stepping(clock, [1000.0, 1000.0] + [2.0] * 10)
    timing = Measurer(warmup=2, samples=10, time_budget_s=1e6, clock=clock).measure(workload)
    assert len(workload.calls) == 12
    assert timing.warmup == 2 and timing.samples == 10
    assert timing.metrics(1)["latency_p99_ms"] == pytest.approx(2.0)


def test_stops_on_sample_count_before_the_budget() -> None:
    clock = FakeClock()
    timing = Measurer(warmup=0, samples=7, time_budget_s=10.0, clock=clock).measure(stepping(clock, [1.0] * 100))
    assert timing.samples == 7


def test_stops_on_time_budget_before_the_sample_count() -> None:
    clock = FakeClock()
    # 100 ms calls, 350 ms budget: the call that crosses the budget is the last (100, 200, 300, 400 ms).
    timing = Measurer(warmup=0, samples=1000, time_budget_s=0.35, clock=clock).measure(stepping(clock, [100.0] * 100))
    assert timing.samples == 4


def test_always_takes_one_sample_even_past_the_budget() -> None:
    clock = FakeClock()
    timing = Measurer(warmup=0, samples=10, time_budget_s=0.001, clock=clock).measure(stepping(clock, [50.0] * 10))
    assert timing.samples == 1
    assert timing.metrics(1)["latency_std_ms"] == 0.0


@pytest.mark.parametrize(("kwargs", "field"), [({"warmup": -1}, "warmup"), ({"samples": 0}, "samples"),
                                                ({"time_budget_s": 0}, "time_budget_s")])
def test_measurer_rejects_bad_limits_naming_them(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Measurer(**kwargs)


def test_timed_window_is_in_unix_time() -> None:
    timing = Measurer(warmup=0, samples=3).measure(lambda: None)
    assert 1.6e9 < timing.started <= timing.finished


# --- parameters --------------------------------------------------------------------------------

SPACE = (
    Parameter(name="batch_size", type="int", values=[1, 8, 64]),
    Parameter(name="depth", type="int", range=Range(min=2, max=32)),
    Parameter(name="rate", type="float", range=Range(min=0.1, max=10, log=True)),
    Parameter(name="mode", type="categorical", values=["fast", "exact"]),
)
DEFAULTS: dict[str, Scalar] = {"batch_size": 1, "depth": 4, "rate": 1.0, "mode": "fast"}


def test_flags_override_env_override_defaults_with_types_restored() -> None:
    env = parse_env('{"batch_size": 8, "depth": 10.0, "mode": "exact"}')
    flags = parse_assignments(["batch_size=64", "rate=2.5"])
    params = resolve(SPACE, DEFAULTS, env, flags)
    assert params == {"batch_size": 64, "depth": 10, "rate": 2.5, "mode": "exact"}
    assert isinstance(params["depth"], int) and isinstance(params["batch_size"], int)


def test_unknown_parameter_is_named_with_the_known_ones() -> None:
    with pytest.raises(ParameterError, match=r"unknown parameter 'depht'.*batch_size, depth, rate, mode"):
        resolve(SPACE, DEFAULTS, {"depht": 3})


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"depth": "64"}, r"'depth': 64 is outside its space \(int in \[2, 32\]\)"),
        ({"depth": "4.5"}, r"'depth'"),
        ({"batch_size": 16}, r"'batch_size'.*one of 1, 8, 64"),
        ({"mode": "slow"}, r"'mode'.*one of fast, exact"),
        ({"rate": "abc"}, r"'rate' is float, got 'abc'"),
        ({"rate": True}, r"'rate' is float, got a boolean"),
    ],
)
def test_values_outside_the_space_name_the_parameter_and_its_space(layer: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        resolve(SPACE, DEFAULTS, layer)


def test_a_parameter_without_value_or_default_is_named() -> None:
    with pytest.raises(ParameterError, match=r"no value for 'mode' and no default; pass --param mode=VALUE"):
        resolve(SPACE, {k: v for k, v in DEFAULTS.items() if k != "mode"})


@pytest.mark.parametrize(("text", "message"), [("{oops", "not valid JSON"), ("[1, 2]", "must be a JSON object")])
def test_bad_hwmatch_params_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_env(text)


def test_malformed_assignment_shows_the_form_to_use() -> None:
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_assignments(["batch_size"])


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_defaults_lie_in_their_spaces_and_metrics_follow_the_contract(name: str) -> None:
    cls = BUILTIN[name]
    assert resolve(cls.parameters, cls.defaults) == dict(cls.defaults)
    names = [m.name for m in cls.metric_specs()]
    assert len(names) == len(set(names))
    assert all(m.goal in ("minimize", "maximize") for m in cls.metric_specs())
    assert {"latency_p50_ms", "latency_p99_ms", "throughput_per_s", "peak_rss_mb", "wall_time_s"} <= set(names)


# --- result document ---------------------------------------------------------------------------

def _document(host_size: int = 0) -> dict:
    return {
        "metrics": {f"metric_{i}": 1 / 3 + i for i in range(40)},
        "samples": 200, "warmup": 5, "started": 1795877860.7117796, "finished": 1795877865.9239194,
        "asset": "x", "parameters": {"batch_size": 64},
        "host": {"hostname": "h" * host_size, "cpu_model": "AMD EPYC"},
    }


def test_small_result_goes_to_the_termination_log_whole() -> None:
    doc = _document()
    assert json.loads(fit_termination_log(doc)) == doc


def test_large_result_drops_host_then_rounds_under_the_kubelet_limit() -> None:
    text = fit_termination_log(_document(host_size=5000))
    assert text is not None and len(text.encode()) < TERMINATION_LOG_LIMIT
    assert "host" not in json.loads(text)
    many = _document()
    many["metrics"] = {f"metric_with_a_long_name_{i}": 1 / 3 + i for i in range(110)}
    rounded = json.loads(fit_termination_log(many))
    assert rounded["metrics"]["metric_with_a_long_name_1"] == pytest.approx(1.333)
    assert rounded["started"] == pytest.approx(1795877860.712)  # the time window keeps its millisecond


def test_termination_log_path_prefers_the_environment(tmp_path: Path) -> None:
    assert termination_log_path({"HWMATCH_TERMINATION_LOG": str(tmp_path / "t")}) == tmp_path / "t"


def test_unwritable_termination_log_warns_and_does_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert write_termination_log(_document(), tmp_path) is False  # a directory cannot be written as a file
    assert "cannot write termination log" in capsys.readouterr().err
    assert write_termination_log(_document(), None) is False


# --- host --------------------------------------------------------------------------------------

def test_affinity_is_written_as_cpu_ranges() -> None:
    assert compact_ranges([5, 0, 1, 2, 8, 9]) == "0-2,5,8-9"
    assert compact_ranges([]) == ""
    info = host_info()
    assert set(info) == {"hostname", "cpu_model", "cpu_count", "affinity", "machine"}
    assert info["cpu_count"] >= 1


# --- the job-shop instance ---------------------------------------------------------------------

def test_job_shop_instance_is_a_function_of_its_size() -> None:
    shop = JobShop.generate(5)
    assert shop == JobShop.generate(5) and shop != JobShop.generate(6)
    assert len(shop.jobs) == 5
    assert all(sorted(m for m, _ in job) == list(range(5)) for job in shop.jobs)
    assert shop.horizon == sum(d for job in shop.jobs for _, d in job)


# --- the command line, with a user asset given as module:Class ---------------------------------

class CountingAsset(Asset):
    """A workload that counts its calls: the harness without any ML library."""

    name = "counting"
    description = "counts"
    parameters = (Parameter(name="batch_size", type="int", range=Range(min=1, max=100)),)
    metrics = (MetricSpec(name="accuracy", goal="maximize"),)
    defaults = {"batch_size": 4}
    samples = 20

    def setup(self, params: Mapping[str, Scalar]) -> None:
        self._batch = int(params["batch_size"])
        self.calls = 0

    @property
    def batch_size(self) -> int:
        return self._batch

    def run_batch(self) -> None:
        self.calls += 1

    def quality(self) -> dict[str, float]:
        return {"accuracy": 1.0}


class BrokenAsset(CountingAsset):
    name = "broken"

    def run_batch(self) -> None:
        raise RuntimeError("the model fell over")


ME = __name__


def test_cli_runs_a_user_asset_and_prints_the_contract(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("HWMATCH_TERMINATION_LOG", str(log))
    monkeypatch.setenv("HWMATCH_PARAMS", '{"batch_size": 10}')
    assert cli.main(["run", f"{ME}:CountingAsset", "--warmup", "3", "--samples", "12", "-p", "batch_size=16"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    doc = json.loads(line)
    assert set(doc) == {"metrics", "samples", "warmup", "started", "finished", "asset", "parameters", "host"}
    assert (doc["samples"], doc["warmup"], doc["asset"], doc["parameters"]) == (12, 3, "counting", {"batch_size": 16})
    assert {m.name for m in HARNESS_METRICS} | {"accuracy"} == set(doc["metrics"])
    assert json.loads(log.read_text()) == doc


def test_cli_asset_defaults_for_measurement(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HWMATCH_PARAMS", raising=False)
    monkeypatch.delenv("HWMATCH_TERMINATION_LOG", raising=False)
    assert cli.main(["run", f"{ME}:CountingAsset"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (doc["samples"], doc["warmup"]) == (CountingAsset.samples, Asset.warmup)


def test_cli_usage_errors_exit_2_naming_the_problem(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HWMATCH_PARAMS", raising=False)
    assert cli.main(["run", "no-such-asset"]) == 2
    assert "unknown asset 'no-such-asset'" in capsys.readouterr().err
    assert cli.main(["run", f"{ME}:CountingAsset", "-p", "batch_size=1000"]) == 2
    assert "'batch_size': 1000 is outside its space (int in [1, 100])" in capsys.readouterr().err
    monkeypatch.setenv("HWMATCH_PARAMS", "not json")
    assert cli.main(["run", f"{ME}:CountingAsset"]) == 2
    assert "HWMATCH_PARAMS is not valid JSON" in capsys.readouterr().err


def test_cli_asset_crash_propagates_and_leaves_the_reason_in_the_termination_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("HWMATCH_TERMINATION_LOG", str(log))
    with pytest.raises(RuntimeError, match="fell over"):
        cli.main(["run", f"{ME}:BrokenAsset"])
    assert json.loads(log.read_text())["error"] == "RuntimeError: the model fell over"


def test_module_reference_must_name_an_asset_class() -> None:
    with pytest.raises(UnknownAsset, match="not a subclass"):
        get(f"{ME}:FakeClock")
    with pytest.raises(UnknownAsset, match="cannot load"):
        get(f"{ME}:Nothing")


def test_list_json_matches_the_manifest_models(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["list", "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in listed] == list(BUILTIN)
    for entry in listed:
        spec = {"command": entry["command"], "parameters": entry["parameters"], "metrics": entry["metrics"]}
        AIAssetSpec.model_validate(spec)  # a ready AIAsset spec, in manifest field names
