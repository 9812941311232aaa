"""The Helm chart without a cluster: generated CRDs in sync, lint, and rendered manifests valid for Kubernetes 1.36.

The helm tests need the helm binary that hack/build.sh builds (`make cluster-build`);
they skip, saying so, where it is not built. The cluster test
(tests/cluster/test_helm_chart.py) installs the chart for real.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

from hwmatch.api.crd import KINDS, crd, render_chart
from hwmatch.controller import metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "hwmatch"
KUBE_VERSION = "1.36"


def helm_binary() -> Path:
    """The helm that hack/build.sh builds; skip the test (saying how to build it) where it is missing."""
    path = Path(subprocess.run(["bash", str(ROOT / "hack" / "build.sh"), "--print-helm"],
                               capture_output=True, text=True, check=True).stdout.strip())
    if not path.is_file():
        pytest.skip(f"helm is not built ({path} missing): run `make cluster-build` (hack/build.sh)")
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=check, timeout=120)


def render(*set_values: str, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """`helm template` of the chart with ``--set`` values; the non-empty documents."""
    args = ["template", "rel", str(CHART), "--namespace", "hwmatch-system", *extra]
    for v in set_values:
        args += ["--set", v]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def validate(docs: list[dict[str, Any]]) -> None:
    for d in docs:
        if d["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # not a Kubernetes kind: no schema in kubernetes-validate
        kubernetes_validate.validate(d, KUBE_VERSION, strict=True)


def operator_args(docs: list[dict[str, Any]]) -> list[str]:
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["hwmatch"]
    return container["args"]


# --- no helm needed ----------------------------------------------------------------------------


def test_chart_crds_are_generated_from_the_api() -> None:
    on_disk = {p.name: p.read_text() for p in (CHART / "templates" / "crds").glob("*.yaml")}
    assert on_disk == render_chart(), "charts/hwmatch/templates/crds is out of date with hwmatch.api: run `make chart`"
    assert not (CHART / "crds").exists(), "Helm never upgrades a chart's crds/: the CRDs are templates"


#: Every metric the operator exports, as PromQL names it (a histogram's series end in _bucket, _sum, _count).
EXPORTED = {name for m in vars(metrics).values() if hasattr(m, "_name") and hasattr(m, "_type")
            for name in ((m._name + "_total",) if m._type == "counter" else
                         (m._name, m._name + "_bucket", m._name + "_sum", m._name + "_count")
                         if m._type == "histogram" else (m._name,))}


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bhwmatch_[a-z_]+", expr))


def test_the_dashboard_shows_only_metrics_the_operator_exports() -> None:
    dashboard = json.loads((CHART / "dashboards" / "hwmatch.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*map(_metric_names, exprs))
    assert used and used <= EXPORTED, used - EXPORTED
    shown = {n.removesuffix("_bucket") for n in used}
    exported = {m._name + ("_total" if m._type == "counter" else "") for m in vars(metrics).values()
                if hasattr(m, "_name") and hasattr(m, "_type")}
    assert exported <= shown, f"not on the dashboard: {exported - shown}"


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2" and chart["appVersion"] == project["version"]


# --- helm --------------------------------------------------------------------------------------


def test_lint_strict() -> None:
    result = helm("lint", "--strict", str(CHART), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_values_render_valid_manifests() -> None:
    docs = render()
    validate(docs)
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", *["CustomResourceDefinition"] * 4,
        "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount",
    ]  # no ServiceMonitor: the API is not served (auto); no PrometheusRule, no dashboard: asked for; no PDB: 1 replica
    assert operator_args(docs) == ["operator", "--all-namespaces", "--promql-tenancy=cluster", "--scrape-interval=15",
                                  "--metrics-port=9090", "--liveness-port=8080", "--leader-elect",
                                  "--lease-name=rel-hwmatch", "--lease-namespace=hwmatch-system", "--lease-duration=15"]
    pod = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/hwmatch/hwmatch:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9090, "healthz": 8080}
    (sa,) = by_kind(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"] == "rel-hwmatch"
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "hwmatch" and labels["app.kubernetes.io/instance"] == "rel"
    bindings = {b["metadata"]["name"]: b for b in by_kind(docs, "ClusterRoleBinding")}
    assert bindings["rel-hwmatch-operator"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-hwmatch", "namespace": "hwmatch-system"}]


def test_other_values_render_valid_manifests() -> None:
    docs = render(
        "operator.watchNamespaces={team-a,team-b}", "operator.prometheusUrl=http://prom.monitoring:9090",
        "operator.verbose=true", "operator.extraArgs={--resync=60}",
        "serviceAccount.create=false", "serviceAccount.name=existing",
        "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kps",
        "nodeSelector.kubernetes\\.io/arch=arm64", "tolerations[0].key=dedicated", "tolerations[0].operator=Exists",
        "podAnnotations.team=ml", "image.tag=dev", "fullnameOverride=hwm",
        "operator.deniedNamespaces={monitoring,infra}", "operator.promqlTenancy=namespace",
    )
    validate(docs)
    assert operator_args(docs) == [
        "operator", "--namespace=team-a", "--namespace=team-b", "--deny-namespace=monitoring", "--deny-namespace=infra",
        "--prometheus-url=http://prom.monitoring:9090", "--promql-tenancy=namespace",
        "--scrape-interval=15", "--metrics-port=9090", "--liveness-port=8080", "--leader-elect", "--lease-name=hwm",
        "--lease-namespace=hwmatch-system", "--lease-duration=15", "--verbose", "--resync=60",
    ]
    assert not by_kind(docs, "ServiceAccount")
    role_bindings = [b for b in by_kind(docs, "RoleBinding") if b["roleRef"]["kind"] == "ClusterRole"]  # not the Lease's
    assert sorted(b["metadata"]["namespace"] for b in role_bindings) == ["team-a", "team-b"]
    assert {b["roleRef"]["name"] for b in role_bindings} == {"hwm-operator"}
    assert [b["metadata"]["name"] for b in by_kind(docs, "ClusterRoleBinding")] == ["hwm-kopf"]
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps" and monitor["spec"]["endpoints"][0]["port"] == "metrics"
    pod = by_kind(docs, "Deployment")[0]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"team": "ml"}
    assert pod["spec"]["serviceAccountName"] == "existing"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/hwmatch/hwmatch:dev"


def test_service_monitor_when_the_cluster_serves_it() -> None:
    docs = render(extra=("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"))
    assert len(by_kind(docs, "ServiceMonitor")) == 1
    assert not by_kind(render("metrics.serviceMonitor.enabled=false",
                              extra=("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")), "ServiceMonitor")


def test_crds_are_templates_that_helm_upgrade_updates_and_uninstall_keeps() -> None:
    crds = {d["metadata"]["name"]: d for d in by_kind(render(), "CustomResourceDefinition")}
    for kind in KINDS:
        generated = crd(kind)
        rendered = crds[generated["metadata"]["name"]]
        assert rendered["spec"] == generated["spec"]  # the models' CRD, whatever the values
        assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert rendered["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"
    unkept = by_kind(render("crds.keep=false"), "CustomResourceDefinition")
    assert len(unkept) == 4 and not any("annotations" in d["metadata"] for d in unkept)
    assert not by_kind(render("crds.enabled=false"), "CustomResourceDefinition")  # someone else installs them


def test_the_chart_works_as_a_subchart_and_takes_an_image_digest() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    docs = render("global.imageRegistry=registry.example", "image.digest=" + digest, "image.tag=ignored")
    (container,) = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/hwmatch/hwmatch@{digest}"


def test_prometheus_rule_alerts_on_the_operators_metrics(tmp_path: Path) -> None:
    assert not by_kind(render(), "PrometheusRule")
    docs = render("prometheusRule.enabled=true", "prometheusRule.labels.release=kps", "prometheusRule.for=5m")
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"HwmatchSweepStalled", "HwmatchTrialsFailing", "HwmatchOperatorDown", "HwmatchNoLeader"}
    assert all(r["for"] == "5m" and r["annotations"]["summary"] for r in alerts.values())
    assert 'job="rel-hwmatch-metrics", namespace="hwmatch-system"' in alerts["HwmatchOperatorDown"]["expr"]
    assert alerts["HwmatchNoLeader"]["expr"].startswith("sum(hwmatch_leader{job=\"rel-hwmatch-metrics\"")
    used = set().union(*(_metric_names(r["expr"]) for r in alerts.values()))
    assert used and used <= EXPORTED, used - EXPORTED
    # Prometheus's own checker parses every expression and template of the rules.
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run([promtool(), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS: 4 rules found" in checked.stdout, checked.stdout + checked.stderr
    refused = helm("template", "rel", str(CHART), "--set", "prometheusRule.enabled=true",
                   "--set", "metrics.service.enabled=false", check=False)
    assert refused.returncode != 0 and "prometheusRule needs metrics.service.enabled" in refused.stderr


def test_grafana_dashboard_is_a_config_map_the_sidecar_loads() -> None:
    assert not by_kind(render(), "ConfigMap")
    docs = render("grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring")
    validate(docs)
    (config_map,) = by_kind(docs, "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["hwmatch.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "hwmatch.json").read_text())


def promtool() -> str:
    """Prometheus's promtool (Debian's prometheus package); skip where it is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("operator.prometheusUrl=prometheus:9090", "/operator/prometheusUrl"),
        ("image.digest=latest", "/image/digest"),
        ("crds.enable=true", "'enable' not allowed"),
        ("prometheusRule.failingTrialsRatio=2", "/prometheusRule/failingTrialsRatio"),
        ("operator.watchNamespace=a", "'watchNamespace' not allowed"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("operator.scrapeInterval=0", "/operator/scrapeInterval"),
        ("serviceAccount.create=false", "serviceAccount.name is required"),
        ("operator.promqlTenancy=tenant", "/operator/promqlTenancy"),
        ("operator.deniedNamespaces={Kube_System}", "/operator/deniedNamespaces/0"),
        ("operator.watchNamespaces={kube-system}", "operator.watchNamespaces: kube-system is denied"),
        ("admissionPolicy.allowedImages={ghcr.io/a\\,b'}", "/admissionPolicy/allowedImages/0"),
        ("admissionPolicy.reservedNodeKeys={a b}", "/admissionPolicy/reservedNodeKeys/0"),
        ("admissionPolicy.validationActions={Deny,Warn}", "/admissionPolicy/validationActions"),
        ("admissionPolicy.validationActions={Block}", "/admissionPolicy/validationActions/0"),
        ("admissionPolicy.enable=true", "'enable' not allowed"),
        ("replicaCount=0", "/replicaCount"),
        ("leaderElection.leaseDuration=1", "/leaderElection/leaseDuration"),
        ("admissionPolicy.namespaceSelector.matchLabels.team=true", "/admissionPolicy/namespaceSelector/matchLabels/team"),
    ],
)
def test_bad_values_are_refused_naming_the_value(value: str, message: str) -> None:
    result = helm("template", "rel", str(CHART), "--set", value, check=False)
    assert result.returncode != 0 and message in result.stderr


def test_rendered_flags_are_the_operator_cli() -> None:
    """Every flag the chart passes parses with `hwmatch operator` itself (no operator is started)."""
    from hwmatch.cli import app

    group = typer.main.get_command(app)
    command = getattr(group, "commands", {}).get("operator")
    if command is None:
        pytest.skip("`hwmatch operator` is not registered in this tree")
    renders = [
        (render(), 15.0, [], "cluster"),  # values.yaml's operator.scrapeInterval
        (render("operator.watchNamespaces={a,b}", "operator.prometheusUrl=http://p:9090",
                "operator.verbose=true", "operator.scrapeInterval=30", "operator.deniedNamespaces={c}",
                "operator.promqlTenancy=namespace"), 30.0, ["c"], "namespace"),
    ]
    for docs, scrape_interval, denied, tenancy in renders:
        args = operator_args(docs)
        ctx = command.make_context("operator", args[1:])
        assert ctx.params["metrics_port"] == 9090 and ctx.params["liveness_port"] == 8080
        assert ctx.params["scrape_interval"] == scrape_interval
        assert ctx.params["deny_namespace"] == denied and ctx.params["promql_tenancy"] == tenancy


def test_two_replicas_elect_a_leader_through_a_lease_of_their_namespace() -> None:
    """replicaCount: 2 runs two operators, of which the Lease's holder reconciles: the Lease's RBAC is a Role in the
    release's namespace (never leases cluster-wide: kube-node-lease holds the nodes' heartbeats), the Deployment
    rolls, and a PodDisruptionBudget lets a drain take one replica at a time."""
    docs = render("replicaCount=2")
    validate(docs)
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert {"--leader-elect", "--lease-name=rel-hwmatch", "--lease-namespace=hwmatch-system"} <= set(operator_args(docs))
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HWMATCH_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    (role,) = by_kind(docs, "Role")
    assert role["metadata"]["namespace"] == "hwmatch-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["rel-hwmatch"],
         "verbs": ["get", "update"]}]
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"] and binding["subjects"][0]["name"] == "rel-hwmatch"
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": deployment["spec"]["selector"]}
    # Without leader election: one replica, the old pod stopped before the new one starts, and no Lease.
    single = render("leaderElection.enabled=false")
    assert by_kind(single, "Deployment")[0]["spec"]["strategy"] == {"type": "Recreate"}
    assert not by_kind(single, "Role") and "--leader-elect" not in operator_args(single)
    refused = helm("template", "rel", str(CHART), "--set", "replicaCount=2", "--set", "leaderElection.enabled=false",
                   check=False)
    assert refused.returncode != 0 and "replicaCount above 1 needs leaderElection.enabled" in refused.stderr


# --- the optional ValidatingAdmissionPolicy ------------------------------------------------------

ADMISSION_KINDS = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]


def admission(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The policies and bindings, by kind and name."""
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs if d["kind"] in ADMISSION_KINDS}


def test_admission_policy_is_off_by_default() -> None:
    assert admission(render()) == {}


def test_admission_policy_renders_valid_policies_and_bindings() -> None:
    docs = render("admissionPolicy.enabled=true")
    validate(docs)
    found = admission(docs)
    assert sorted(found) == [
        "ValidatingAdmissionPolicy/rel-hwmatch-asset-images", "ValidatingAdmissionPolicy/rel-hwmatch-sweep-placement",
        "ValidatingAdmissionPolicyBinding/rel-hwmatch-asset-images",
        "ValidatingAdmissionPolicyBinding/rel-hwmatch-sweep-placement",
    ]
    images = found["ValidatingAdmissionPolicy/rel-hwmatch-asset-images"]["spec"]
    assert images["matchConstraints"]["resourceRules"] == [{
        "apiGroups": ["hwmatch.dev"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
        "resources": ["aiassets"]}]
    assert images["failurePolicy"] == "Fail"
    # only a changed spec is judged: the operator's finalizer patches of older objects must pass
    assert images["matchConditions"] == [
        {"name": "spec-changed", "expression": "request.operation == 'CREATE' || object.spec != oldObject.spec"}]
    assert images["variables"] == [{"name": "allowed", "expression": '["ghcr.io/hwmatch/"]'}]
    (rule,) = images["validations"]
    assert rule["expression"] == (
        "!has(object.spec.image) || variables.allowed.exists(p, (p.endsWith('/') || p.endsWith(':') || "
        "p.endsWith('@')) ? object.spec.image.startsWith(p) : object.spec.image == p)")
    assert rule["reason"] == "Forbidden" and "admissionPolicy.allowedImages" in rule["messageExpression"]
    placement = found["ValidatingAdmissionPolicy/rel-hwmatch-sweep-placement"]["spec"]
    assert placement["matchConstraints"]["resourceRules"][0]["resources"] == ["benchmarksweeps"]
    variables = {v["name"]: v["expression"] for v in placement["variables"]}
    assert variables == {
        "reserved": '["node-role.kubernetes.io/control-plane","node-role.kubernetes.io/master"]',
        # a toleration without a key tolerates every taint, the control plane's too
        "tolerating": "object.spec.platforms.filter(p, has(p.tolerations) && p.tolerations.exists(t, "
                      "!has(t.key) || t.key == '' || t.key in variables.reserved)).map(p, p.name)",
        "selecting": "object.spec.platforms.filter(p, has(p.nodeSelector) && "
                     "variables.reserved.exists(k, k in p.nodeSelector)).map(p, p.name)",
    }
    assert [v["expression"] for v in placement["validations"]] == [
        "size(variables.tolerating) == 0", "size(variables.selecting) == 0"]
    for v in placement["validations"]:
        assert v["messageExpression"].startswith("'spec.platforms[].") and v["message"].startswith("spec.platforms[].")
    for name in ("asset-images", "sweep-placement"):
        binding = found[f"ValidatingAdmissionPolicyBinding/rel-hwmatch-{name}"]["spec"]
        assert binding == {"policyName": f"rel-hwmatch-{name}", "validationActions": ["Deny"],
                           "matchResources": {"namespaceSelector": {}}}


def test_admission_policy_values() -> None:
    docs = render("admissionPolicy.enabled=true", "admissionPolicy.allowedImages={registry.example/ml/,docker.io/library/python:3.11}",
                  "admissionPolicy.reservedNodeKeys={dedicated}", "admissionPolicy.validationActions={Warn,Audit}",
                  extra=("--set-string", "admissionPolicy.namespaceSelector.matchLabels.hwmatch\\.dev/tenant=true"))
    validate(docs)
    found = admission(docs)
    images = found["ValidatingAdmissionPolicy/rel-hwmatch-asset-images"]["spec"]
    assert images["variables"][0]["expression"] == '["registry.example/ml/","docker.io/library/python:3.11"]'
    placement = found["ValidatingAdmissionPolicy/rel-hwmatch-sweep-placement"]["spec"]
    assert placement["variables"][0] == {"name": "reserved", "expression": '["dedicated"]'}
    binding = found["ValidatingAdmissionPolicyBinding/rel-hwmatch-sweep-placement"]["spec"]
    assert binding["validationActions"] == ["Warn", "Audit"]
    assert binding["matchResources"] == {"namespaceSelector": {"matchLabels": {"hwmatch.dev/tenant": "true"}}}
    # no images listed: images are not restricted, and only the placement policy is installed
    unrestricted = admission(render("admissionPolicy.enabled=true", "admissionPolicy.allowedImages=null"))
    assert sorted(unrestricted) == ["ValidatingAdmissionPolicy/rel-hwmatch-sweep-placement",
                                    "ValidatingAdmissionPolicyBinding/rel-hwmatch-sweep-placement"]
