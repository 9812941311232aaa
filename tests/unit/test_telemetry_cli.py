"""`hwmatch telemetry` without a server: the PromQL it would run, and its refusals."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hwmatch.cli import app

ASSET = """\
apiVersion: hwmatch.dev/v1alpha1
kind: AIAsset
metadata: {name: gpu-model}
spec:
  command: [hwmatch-bench, run, sklearn-forest]
  metrics:
    - {name: latency_p99_ms}
    - {name: gpu_energy_j, source: prometheus, preset: dcgm-energy}
    - {name: node_energy_j, source: prometheus, preset: rapl-energy}
    - {name: cpu_s, source: prometheus, query: 'sum(increase(cpu{pod="{pod}"}[{window}]))'}
"""


def run(tmp_path: Path, *args: str, asset: str = ASSET):
    path = tmp_path / "asset.yaml"
    path.write_text(asset)
    return CliRunner().invoke(app, ["telemetry", str(path), *args])


def test_without_prometheus_it_prints_the_promql(tmp_path: Path) -> None:
    result = run(tmp_path, "-n", "bench", "--pod", "t-1", "--start", "1700000000",
                 "--end", "2023-11-14T22:13:50+00:00", "--scrape-interval", "30")
    assert result.exit_code == 0, result.output
    assert 'cpu_s: sum(increase(cpu{pod="t-1"}[30s]))' in result.output
    assert 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{exported_namespace="bench",exported_pod="t-1"}[30s]' in result.output
    assert "node_energy_j: metric 'node_energy_j' uses {node_selector} but the trial's node is not known" in \
        " ".join(result.output.split())


def test_unknown_placeholder_and_bad_times_are_refused(tmp_path: Path) -> None:
    bad = ASSET.replace("{window}", "{range}")
    result = run(tmp_path, "-n", "n", "--pod", "p", "--start", "0", "--end", "10", asset=bad)
    assert result.exit_code == 1 and "{range}" in result.output and "'cpu_s'" in result.output
    result = run(tmp_path, "-n", "n", "--pod", "p", "--start", "yesterday", "--end", "10")
    assert result.exit_code == 1 and "--start 'yesterday'" in result.output
    result = run(tmp_path, "-n", "n", "--pod", "p", "--start", "20", "--end", "10")
    assert result.exit_code == 1 and "at or after start" in result.output
