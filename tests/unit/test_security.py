"""The operator's security settings (issue 13): namespaces where no trial runs, and what a user's PromQL may read.

The chart's side (flags, the ValidatingAdmissionPolicy) is in tests/unit/test_chart.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hwmatch.api import AIAsset, BenchmarkTrialStatus
from hwmatch.api.asset import MetricSpec
from hwmatch.api.errors import InputError
from hwmatch.controller.config import SYSTEM_NAMESPACES, OperatorConfig, namespace_refusal
from hwmatch.controller.telemetry import TrialTelemetry
from hwmatch.telemetry import QueryContext, Sample
from hwmatch.telemetry.promql import namespace_confinement, unconfined_selectors

NS = "team-a"
CTX = QueryContext(namespace=NS, pod="trial-1", start=1000.0, end=1030.0, node="node-1", resolution=15)


# --- namespaces where no trial runs ------------------------------------------------------------


def test_the_system_namespaces_are_always_denied() -> None:
    config = OperatorConfig(all_namespaces=True)
    assert config.denied_namespaces == SYSTEM_NAMESPACES == ("kube-system", "kube-public", "kube-node-lease")
    # a list of one's own adds to them: it never lets kube-system in
    config = OperatorConfig(all_namespaces=True, denied_namespaces=("monitoring", "kube-system"))
    assert config.denied_namespaces == (*SYSTEM_NAMESPACES, "monitoring")
    assert OperatorConfig(all_namespaces=True, denied_namespaces=()).denied_namespaces == SYSTEM_NAMESPACES


def test_namespace_refusal_names_the_namespace_why_and_the_fix() -> None:
    config = OperatorConfig(all_namespaces=True, denied_namespaces=("monitoring",))
    assert namespace_refusal(config, "team-a") is None
    assert namespace_refusal(config, "default") is None
    for ns in SYSTEM_NAMESPACES:
        message = namespace_refusal(config, ns)
        assert message is not None and f"namespace {ns}" in message and "system namespaces" in message
        assert "a namespace of your own" in message and "remove it" not in message
    message = namespace_refusal(config, "monitoring")
    assert message is not None and "--deny-namespace" in message and "operator.deniedNamespaces" in message
    assert "remove it from --deny-namespace" in message


def test_watching_a_denied_namespace_is_refused_at_start() -> None:
    with pytest.raises(InputError, match="--namespace kube-system: the operator never runs trials there"):
        OperatorConfig(namespaces=("team-a", "kube-system"))
    with pytest.raises(InputError, match="--namespace monitoring"):
        OperatorConfig(namespaces=("monitoring",), denied_namespaces=("monitoring",))
    assert OperatorConfig(namespaces=("team-a",)).namespaces == ("team-a",)


@pytest.mark.parametrize("name", ["Kube-System", "", "a_b", "-x", "x" * 64])
def test_a_denied_namespace_must_be_a_namespace_name(name: str) -> None:
    with pytest.raises(InputError, match="--deny-namespace .* must be a DNS-1123 label"):
        OperatorConfig(all_namespaces=True, denied_namespaces=(name,))


def test_promql_tenancy_is_one_of_the_two_words() -> None:
    assert OperatorConfig(all_namespaces=True).promql_tenancy == "cluster"
    assert OperatorConfig(all_namespaces=True, promql_tenancy="namespace").promql_tenancy == "namespace"
    with pytest.raises(InputError, match="--promql-tenancy must be one of cluster, namespace, not 'tenant'"):
        OperatorConfig(all_namespaces=True, promql_tenancy="tenant")  # type: ignore[arg-type]


def test_the_cli_flags_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import hwmatch.controller.runner
    from hwmatch.cli import app

    seen: list[OperatorConfig] = []
    monkeypatch.setattr(hwmatch.controller.runner, "run", seen.append)
    result = CliRunner().invoke(app, ["operator", "-A", "--deny-namespace", "monitoring", "--deny-namespace=infra",
                                      "--promql-tenancy=namespace"])
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.denied_namespaces == (*SYSTEM_NAMESPACES, "monitoring", "infra")
    assert config.promql_tenancy == "namespace"
    result = CliRunner().invoke(app, ["operator", "-A", "--promql-tenancy=tenant"])
    assert result.exit_code == 2 and "'tenant' is not one of" in " ".join(result.output.replace("│", " ").split())
    result = CliRunner().invoke(app, ["operator", "-n", "kube-system"])
    assert result.exit_code == 1 and "never runs trials there" in result.output


# --- PromQL tenancy: every vector selector carries the trial's namespace --------------------------


@pytest.mark.parametrize(
    "query",
    [
        'sum(increase(container_cpu_usage_seconds_total{namespace="team-a",pod="p",container!=""}[45s]))',
        'x{pod="p", namespace="team-a"}',  # anywhere among the matchers
        'x{namespace="team-a",}',
        "x{namespace=`team-a`}",
        "x{namespace='team-a'}",
        'x{"namespace"="team-a"}',  # a quoted label name (Prometheus 3)
        '{"x.y", namespace="team-a"}',  # a quoted metric name
        '{__name__=~"dcgm_.*", namespace="team-a"}',
        'x{namespace="team-a", namespace=~".*"}',  # matchers are ANDed: a second one only narrows
        '(x{namespace="team-a"}) or (x{exported_namespace="team-a"})',
        'kepler_pod_cpu_joules_total{pod_namespace="team-a"}',
        'sum by (namespace, pod) (rate(x{namespace="team-a"}[5m]))',
        'sum(rate(x{namespace="team-a"}[5m])) without (instance)',
        'a{namespace="team-a"} * on(pod) group_left(node) b{namespace="team-a"}',
        'a{namespace="team-a"} and on() vector(1)',
        'job:x:rate5m{namespace="team-a"}[1h:5m]',
        'max_over_time(rate(x{namespace="team-a"}[5m])[1h:])',
        'x{namespace="team-a"} @ start() offset -5m',
        'SUM(x{namespace="team-a"}) / NaN + Inf * 1e3 - 0x1F',
        'label_replace(x{namespace="team-a"}, "dst", "$1", "src", "(.*)")',
        'count_values("value", x{namespace="team-a"}) > bool 2',
        'x{namespace="team-a"}  # or y: a comment is not a selector',
        'x{label="a}b or y", namespace="team-a"}',  # braces and words inside strings are text
    ],
)
def test_queries_confined_to_the_namespace_pass(query: str) -> None:
    assert unconfined_selectors(query, NS) == []


@pytest.mark.parametrize(
    ("query", "culprit"),
    [
        ("up", "selector up has"),
        ("max_over_time(up[45s]) * 0 + 12", "selector up has"),
        ('x{namespace="team-a"} or y', "selector y has"),  # one confined selector is not enough
        ('sum(x{namespace="team-a"}) OR rate(y[5m])', "selector y has"),
        ('x{namespace="team-a"} or y{job="team-a"}', 'selector y{job="team-a"} has'),  # not a namespace label
        ('x{namespace="team-a"} or {__name__="y"}', 'selector {__name__="y"} has'),
        ('{"y.z"}', 'selector {"y.z"} has'),
        ('x{namespace=~"team-a|team-b"}', "selector x{namespace=~"),  # a regular expression is not the namespace
        ('x{namespace=~"team-a"}', "selector x{namespace=~"),
        ('x{namespace!="team-a"}', "selector x{namespace!="),
        ('x{namespace="team-b"}', 'selector x{namespace="team-b"} has'),
        ('x{namespace="t\\x65am-a"}', "selector x{namespace="),  # escapes are not decoded: refused
        ('x{namespace="team-a"} * on(pod) group_left y', "selector y has"),  # group_left needs no label list
        ('x{namespace="team-a"} / job:y:rate5m', "selector job:y:rate5m has"),
        ('info(x{namespace="team-a"}, {k8s_cluster_name=~".+"})', "selector {k8s_cluster_name"),
        ('x{namespace="team-a"} unless absent(y{pod="p"})', 'selector y{pod="p"} has'),
        ('x{namespace="team-a" or job="y"}', "cannot be checked"),  # only ANDed matchers are read
        ('sum by (y{job="a"}) (x{namespace="team-a"})', "cannot be checked"),  # not a label list
        ('x{namespace="team-a"}}', "cannot be checked"),
        ('x{namespace="team-a"', "cannot be checked"),
        ('x{namespace="team-a"} or y{a="', "cannot be checked"),  # an unterminated string
        ('x{namespace="team-a"} $ y', "cannot be checked"),
    ],
)
def test_queries_that_could_read_other_namespaces_are_refused(query: str, culprit: str) -> None:
    problems = unconfined_selectors(query, NS)
    assert problems and any(culprit in p for p in problems), problems
    assert all("namespace=\"{namespace}\" matcher" in p or "cannot be checked" in p for p in problems)


def test_presets_and_the_pod_selector_are_confined_and_the_node_selector_is_not() -> None:
    for preset in ("dcgm-energy", "dcgm-power", "kepler-energy", "rapl-energy"):  # the operator's own templates
        assert namespace_confinement(MetricSpec(name="m", source="prometheus", preset=preset), CTX) is None
    pod = MetricSpec(name="m", source="prometheus", query="sum(avg_over_time(x{pod_selector}[{window}]))")
    assert namespace_confinement(pod, CTX) is None  # both variants: namespace= and exported_namespace=
    own = MetricSpec(name="m", source="prometheus", query='sum(x{namespace="{namespace}",pod="{pod}"})')
    assert namespace_confinement(own, CTX) is None
    node = MetricSpec(name="m", source="prometheus", query="sum(increase(node_x{node_selector}[{window}]))")
    why = namespace_confinement(node, CTX)
    assert why is not None and why.startswith("refused (--promql-tenancy=namespace")
    assert 'selector node_x{instance=~"node-1(:[0-9]+)?"} has no namespace="{namespace}" matcher' in why
    assert "give every vector selector" in why


def test_the_check_is_on_the_text_sent_for_this_trial() -> None:
    """A namespace written out instead of the placeholder is the same query for this trial, and refused for another."""
    literal = MetricSpec(name="m", source="prometheus", query='sum(x{namespace="team-a"})')
    assert namespace_confinement(literal, CTX) is None
    other = QueryContext(namespace="team-b", pod="trial-1", start=1000.0, end=1030.0)
    assert namespace_confinement(literal, other) is not None


# --- in the operator: a refused metric is never queried, and is reported missing ------------------


class RecordingPrometheus:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def query(self, expr: str, time: float | None = None) -> list[Sample]:
        self.queries.append(expr)
        return [Sample({}, time or 0.0, 2.0)]


def _asset(*metrics: dict) -> AIAsset:
    return AIAsset.model_validate({
        "apiVersion": "hwmatch.dev/v1alpha1", "kind": "AIAsset", "metadata": {"name": "a", "namespace": NS},
        "spec": {"image": "img", "command": ["run"], "parameters": [{"name": "x", "type": "int", "values": [1]}],
                 "metrics": [{"name": "latency_ms", "goal": "minimize"}, *metrics]},
    })


def _ended(at: datetime) -> BenchmarkTrialStatus:
    return BenchmarkTrialStatus(phase="Succeeded", metrics={"latency_ms": 3.0}, start_time=at - timedelta(seconds=20),
                                completion_time=at, host={"executor": "kubernetes", "pod": "p-1", "node": "node-1"})


END = datetime(2026, 1, 1, tzinfo=timezone.utc)
LATER = END + timedelta(minutes=5)
CPU = {"name": "cpu_s", "source": "prometheus", "query": 'sum(increase(cpu{namespace="{namespace}",pod="{pod}"}[{window}]))'}
LEAK = {"name": "leak", "source": "prometheus", "query": 'sum(cpu{namespace="{namespace}"}) or sum(cpu)'}
ENERGY = {"name": "energy_j", "source": "prometheus", "preset": "rapl-energy"}


def test_namespace_tenancy_queries_only_confined_metrics_and_names_the_refused() -> None:
    client = RecordingPrometheus()
    telemetry = TrialTelemetry(client, scrape_interval=15.0, tenancy="namespace")  # type: ignore[arg-type]
    status = telemetry(_asset(CPU, LEAK, ENERGY), NS, _ended(END), LATER)
    assert status is not None and status.phase == "Succeeded"
    assert status.metrics == {"latency_ms": 3.0, "cpu_s": 2.0, "energy_j": 2.0}
    assert len(client.queries) == 2 and not any("or sum(cpu)" in q for q in client.queries)  # the leak never sent
    (condition,) = status.conditions
    assert (condition.type, condition.status, condition.reason) == ("Telemetry", "False", "QueryRefused")
    assert "leak: refused (--promql-tenancy=namespace" in status.message and "selector cpu has no" in status.message


def test_namespace_tenancy_with_only_refused_metrics_sends_nothing() -> None:
    client = RecordingPrometheus()
    telemetry = TrialTelemetry(client, scrape_interval=15.0, tenancy="namespace")  # type: ignore[arg-type]
    status = telemetry(_asset(LEAK), NS, _ended(END), LATER)
    assert status is not None and not client.queries and status.metrics == {"latency_ms": 3.0}
    assert status.conditions[0].reason == "QueryRefused" and "leak: refused" in status.message


def test_cluster_tenancy_sends_every_query_as_before() -> None:
    client = RecordingPrometheus()
    status = TrialTelemetry(client, scrape_interval=15.0)(_asset(CPU, LEAK), NS, _ended(END), LATER)  # type: ignore[arg-type]
    assert status is not None and status.metrics == {"latency_ms": 3.0, "cpu_s": 2.0, "leak": 2.0}
    assert status.conditions[0].reason == "Collected"
