"""trial_metrics against a REAL Prometheus scraping an exporter whose counters grow at known rates.

The exporter computes every counter from the clock at scrape time (energy =
power × seconds since it started), named and labelled like DCGM exporter,
Kepler 0.10 and node_exporter's RAPL collector. Prometheus scrapes it every
second; each preset must then give power × window within one scrape's worth.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from typer.testing import CliRunner

from hwmatch.api.asset import MetricSpec
from hwmatch.telemetry import PrometheusClient, PrometheusQueryError, PrometheusUnreachable, trial_metrics
from tests.fixtures.prometheus import free_port

pytestmark = pytest.mark.integration

NS = "bench"
POD = "trial-direct"  # DCGM labels as with honorLabels: true
EXPORTED_POD = "trial-relabelled"  # DCGM labels renamed exported_* (no honorLabels)
GPU_W, EXPORTED_GPU_W, PACKAGE_W, CORE_W, NODE_W = 50.0, 80.0, 20.0, 15.0, 30.0
RESOLUTION = 1.0  # the scrape interval


class PowerExporter:
    """A prometheus_client collector: counters at fixed power since ``t0``, evaluated when scraped."""

    def __init__(self) -> None:
        self.t0 = time.time()

    def collect(self) -> Iterator:
        s = time.time() - self.t0
        # DCGM's counter has no _total suffix; a gauge family exposes the name unchanged (PromQL ignores the type).
        energy = GaugeMetricFamily("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "GPU energy (mJ)",
                                   labels=["gpu", "namespace", "pod", "exported_namespace", "exported_pod"])
        energy.add_metric(["0", NS, POD, "", ""], GPU_W * 1000 * s)
        energy.add_metric(["1", "gpu-operator", "dcgm-exporter-abc", NS, EXPORTED_POD], EXPORTED_GPU_W * 1000 * s)
        energy.add_metric(["2", NS, "someone-else", "", ""], 999_000 * s)
        yield energy
        power = GaugeMetricFamily("DCGM_FI_DEV_POWER_USAGE", "GPU power (W)",
                                  labels=["gpu", "namespace", "pod", "exported_namespace", "exported_pod"])
        power.add_metric(["0", NS, POD, "", ""], GPU_W)
        power.add_metric(["1", "gpu-operator", "dcgm-exporter-abc", NS, EXPORTED_POD], EXPORTED_GPU_W)
        yield power
        kepler = CounterMetricFamily("kepler_pod_cpu_joules", "pod CPU energy (J)",
                                     labels=["pod_name", "pod_namespace", "zone"])
        kepler.add_metric([POD, NS, "package"], PACKAGE_W * s)
        kepler.add_metric([POD, NS, "core"], CORE_W * s)  # inside package: must not be added
        yield kepler
        rapl = CounterMetricFamily("node_rapl_package_joules", "node package energy (J)", labels=["index", "path"])
        rapl.add_metric(["0", "/sys/class/powercap/intel-rapl:0"], NODE_W * s)
        yield rapl


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(PowerExporter())
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def metrics(*presets: str) -> list[MetricSpec]:
    return [MetricSpec(name=p.replace("-", "_"), source="prometheus", preset=p) for p in presets] + [
        MetricSpec(name="latency_p99_ms")
    ]


def test_presets_give_the_known_energy_and_power(prometheus_server, exporter: str, tmp_path) -> None:
    prom = prometheus_server(targets=[exporter], scrape_interval="1s")
    first = prom.wait_for("DCGM_FI_DEV_POWER_USAGE")
    start = float(first[0]["value"][0]) + 1.0  # the window lies wholly after the first scrape
    window = 6.0
    end = start + window
    last_scrape = f'timestamp(DCGM_FI_DEV_POWER_USAGE{{pod="{POD}"}})'
    while time.time() < end or float(prom.query(last_scrape)[0]["value"][1]) <= end:
        time.sleep(0.25)  # until Prometheus has scraped after the window's end
    client = PrometheusClient(prom.url, timeout=5)

    direct = trial_metrics(client, metrics("dcgm-energy", "dcgm-power", "kepler-energy", "rapl-energy"),
                           NS, POD, start, end, node="127.0.0.1", resolution=RESOLUTION)
    print(f"window {window:g}s: {dict(direct)}")
    assert direct.missing == {}
    tolerance = 1.5 * RESOLUTION  # a scrape's worth at each end of the window, at most
    assert direct["dcgm_energy"] == pytest.approx(GPU_W * window, abs=GPU_W * tolerance)
    assert direct["dcgm_power"] == pytest.approx(GPU_W)
    assert direct["kepler_energy"] == pytest.approx(PACKAGE_W * window, abs=PACKAGE_W * tolerance)
    # node level, found through instance="127.0.0.1:<port>"
    assert direct["rapl_energy"] == pytest.approx(NODE_W * window, abs=NODE_W * tolerance)

    relabelled = trial_metrics(client, metrics("dcgm-energy", "dcgm-power"), NS, EXPORTED_POD, start, end,
                               resolution=RESOLUTION)
    assert relabelled["dcgm_energy"] == pytest.approx(EXPORTED_GPU_W * window, abs=EXPORTED_GPU_W * tolerance)
    assert relabelled["dcgm_power"] == pytest.approx(EXPORTED_GPU_W)

    # a user query with placeholders: mean power from the energy counter, in W
    user = [MetricSpec(name="gpu_w", source="prometheus",
                       query="sum(rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{pod_selector}[{window}])) / 1000")]
    assert trial_metrics(client, user, NS, POD, start, end, resolution=RESOLUTION)["gpu_w"] == pytest.approx(
        GPU_W, rel=0.05)

    absent = trial_metrics(client, metrics("dcgm-energy"), NS, "no-such-pod", start, end, resolution=RESOLUTION)
    assert absent == {} and "no data for pod bench/no-such-pod" in absent.missing["dcgm_energy"]

    from hwmatch.cli import app

    asset = tmp_path / "asset.yaml"
    asset.write_text("apiVersion: hwmatch.dev/v1alpha1\nkind: AIAsset\nmetadata: {name: a}\n"
                     "spec:\n  command: [x]\n  metrics:\n"
                     "    - {name: gpu_w, source: prometheus, preset: dcgm-power}\n")
    cli = CliRunner().invoke(app, ["telemetry", str(asset), "-n", NS, "--pod", EXPORTED_POD, "--start", str(start),
                                   "--end", str(end), "--scrape-interval", "1", "--prometheus-url", prom.url])
    assert cli.exit_code == 0, cli.output
    assert cli.output.split()[-3:] == ["gpu_w", "80", "W"]

    series = client.query_range(f'DCGM_FI_DEV_POWER_USAGE{{pod="{POD}"}}', start, end, RESOLUTION)
    assert len(series) == 1 and len(series[0].points) == 7 and {v for _, v in series[0].points} == {GPU_W}


def test_real_errors(prometheus_server) -> None:
    prom = prometheus_server(targets=[])
    with pytest.raises(PrometheusQueryError) as err:
        PrometheusClient(prom.url).query("sum(rate(x[5m])")
    assert "parse error" in str(err.value) and "sum(rate(x[5m])" in str(err.value)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusUnreachable, match=f"{url}.*--prometheus-url"):
        PrometheusClient(url, timeout=2).query("up")
