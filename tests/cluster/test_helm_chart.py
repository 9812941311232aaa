"""`helm install` of charts/hwmatch into the REAL local API server, and what its RBAC allows.

The operator's service account is checked with `kubectl auth can-i --as` (the
API server's own authorizer answers): it may do exactly what the operator does
(trials as Jobs, statuses, events, what kopf watches) and nothing unrelated
(secrets, pods' exec and logs, deleting the user's objects, cluster administration). The
operator pod itself is not expected to run (no image on these nodes): the
operator is tested running in tests/cluster/test_operator.py. The optional
ValidatingAdmissionPolicy (admissionPolicy.enabled) is judged by the same API
server: a sweep with a control-plane toleration, or an asset with an image not
allowed, is refused in the namespaces the binding selects, and only there.
The CRDs are the chart's templates: installed, updated by `helm upgrade` (a
field added) and kept by `helm uninstall`; the other installs leave them to
crds/ (``crds.enabled=false``), as one cluster holds one set.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwmatch.api.crd import KINDS, chart_template, crd
from tests.unit.test_chart import CHART, ROOT, helm_binary

pytestmark = pytest.mark.cluster

CRD_NAMES = sorted(f"{k.plural}.hwmatch.dev" for k in KINDS)
#: The session's CRDs come from crds/ (the crds_installed fixture): a second owner of them would be refused.
NO_CRDS = ("--set", "crds.enabled=false")

#: (verb, resource, subresource) the operator needs in a namespace it watches.
NAMESPACED_ALLOWED = [
    ("watch", "aiassets.hwmatch.dev", ""),
    ("patch", "aiassets.hwmatch.dev", "status"),
    ("list", "benchmarksweeps.hwmatch.dev", ""),
    ("patch", "benchmarksweeps.hwmatch.dev", ""),  # kopf takes the finalizer of earlier versions off
    ("patch", "benchmarksweeps.hwmatch.dev", "status"),
    ("create", "benchmarktrials.hwmatch.dev", ""),
    ("patch", "benchmarktrials.hwmatch.dev", "status"),
    ("update", "benchmarksweeps.hwmatch.dev", "finalizers"),
    ("update", "hwrecommendations.hwmatch.dev", "finalizers"),  # it owns its verification trials
    ("get", "hwrecommendations.hwmatch.dev", ""),
    ("patch", "hwrecommendations.hwmatch.dev", "status"),
    ("create", "jobs.batch", ""),
    ("delete", "jobs.batch", ""),
    ("watch", "jobs.batch", ""),
    ("list", "pods", ""),
    ("create", "pods", ""),  # a serving trial's server pod and Service (docs/serving.md)
    ("delete", "pods", ""),
    ("create", "services", ""),
    ("delete", "services", ""),
    ("create", "events", ""),
    ("patch", "events", ""),
]
#: Unrelated things it must never do.
NAMESPACED_DENIED = [
    ("get", "secrets", ""),
    ("delete", "secrets", ""),
    ("create", "pods", "exec"),
    ("get", "pods", "log"),  # a failed trial's log tail is in its termination message
    ("delete", "benchmarksweeps.hwmatch.dev", ""),
    ("delete", "hwrecommendations.hwmatch.dev", ""),
    ("create", "aiassets.hwmatch.dev", ""),
    ("patch", "jobs.batch", ""),
    ("create", "deployments.apps", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("get", "configmaps", ""),
]
CLUSTER_ALLOWED = [("list", "customresourcedefinitions.apiextensions.k8s.io"), ("watch", "namespaces")]
CLUSTER_DENIED = [
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "namespaces"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("list", "nodes"),
]


@pytest.fixture(scope="module")
def helm_cmd(k8s_cluster) -> Iterator:
    """Run helm against the local cluster (its kubeconfig, kubectl-compatible)."""
    binary = helm_binary()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(binary), "--kubeconfig", k8s_cluster.kubeconfig, *args],
                                capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    yield run


def kubectl_can_i(cluster, sa: str, verb: str, resource: str, subresource: str = "",
                  namespace: str | None = None) -> bool:
    """`kubectl auth can-i --as=<service account>`: what a person would type to check."""
    args = ["auth", "can-i", verb, resource, f"--as={sa}"]
    if subresource:
        args.append(f"--subresource={subresource}")
    args += ["-n", namespace] if namespace else []
    result = cluster.kubectl(*args, check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def can_i(cluster, sa: str, verb: str, resource: str, subresource: str = "", namespace: str | None = None) -> bool:
    """The same question as a SubjectAccessReview through the API (one request, not one kubectl process)."""
    from kubernetes import client

    plural, _, group = resource.partition(".")
    ns = sa.split(":")[2]
    review = client.AuthorizationV1Api(cluster.api_client).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {
            "user": sa, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": plural, "subresource": subresource,
                                   "namespace": namespace or ""},
        },
    })
    return bool(review.status.allowed)


def assert_rbac(cluster, sa: str, allowed_in: list[str], denied_in: list[str]) -> None:
    ns = allowed_in[0]
    assert kubectl_can_i(cluster, sa, "create", "jobs.batch", namespace=ns)
    assert kubectl_can_i(cluster, sa, "patch", "benchmarksweeps.hwmatch.dev", "status", namespace=ns)
    assert kubectl_can_i(cluster, sa, "create", "events", namespace=ns)
    assert not kubectl_can_i(cluster, sa, "delete", "secrets", namespace=ns)
    problems = []
    for ns in allowed_in:
        problems += [f"cannot {v} {r}/{s} in {ns}" for v, r, s in NAMESPACED_ALLOWED
                     if not can_i(cluster, sa, v, r, s, ns)]
        problems += [f"may {v} {r}/{s} in {ns}" for v, r, s in NAMESPACED_DENIED if can_i(cluster, sa, v, r, s, ns)]
    for ns in denied_in:
        problems += [f"may {v} {r}/{s} in unwatched {ns}" for v, r, s in NAMESPACED_ALLOWED
                     if can_i(cluster, sa, v, r, s, ns)]
    problems += [f"cannot {v} {r}" for v, r in CLUSTER_ALLOWED if not can_i(cluster, sa, v, r)]
    problems += [f"may {v} {r}" for v, r in CLUSTER_DENIED if can_i(cluster, sa, v, r)]
    assert not problems, f"{sa}: " + "; ".join(problems)


def release_objects(cluster, release: str, namespace: str) -> dict[str, list[str]]:
    selector = f"app.kubernetes.io/instance={release}"
    found = {}
    for kind, ns_args in (("deployments,serviceaccounts,services,rolebindings", ["-A"]),
                          ("clusterroles,clusterrolebindings", [])):
        out = cluster.kubectl("get", kind, *ns_args, "-l", selector, "-o", "json").stdout
        for item in json.loads(out)["items"]:
            found.setdefault(item["kind"], []).append(item["metadata"]["name"])
    return found


def test_install_all_namespaces(crds_installed, k8s_namespace: str, helm_cmd) -> None:
    k8s_cluster = crds_installed
    release = "hwm-all"
    other = k8s_cluster.create_namespace("hwm-other")
    try:
        helm_cmd("install", release, str(CHART), "--namespace", k8s_namespace, *NO_CRDS,
                 "--set", "operator.prometheusUrl=http://prometheus.monitoring:9090")
        crds = json.loads(k8s_cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
        assert set(CRD_NAMES) <= {c["metadata"]["name"] for c in crds}
        objects = release_objects(k8s_cluster, release, k8s_namespace)
        assert objects == {
            "Deployment": ["hwm-all-hwmatch"], "ServiceAccount": ["hwm-all-hwmatch"],
            "Service": ["hwm-all-hwmatch-metrics"],
            "ClusterRole": ["hwm-all-hwmatch-kopf", "hwm-all-hwmatch-operator"],
            "ClusterRoleBinding": ["hwm-all-hwmatch-kopf", "hwm-all-hwmatch-operator"],
            "RoleBinding": ["hwm-all-hwmatch-leader-election"],  # the Lease, in the release's namespace
        }
        deployment = json.loads(k8s_cluster.kubectl("get", "deployment", "hwm-all-hwmatch", "-n", k8s_namespace,
                                                    "-o", "json").stdout)
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--all-namespaces" in args and "--prometheus-url=http://prometheus.monitoring:9090" in args
        sa = f"system:serviceaccount:{k8s_namespace}:hwm-all-hwmatch"
        assert_rbac(k8s_cluster, sa, allowed_in=[k8s_namespace, other], denied_in=[])

        status = helm_cmd("status", release, "--namespace", k8s_namespace).stdout
        assert "STATUS: deployed" in status
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, "--wait")
        assert release_objects(k8s_cluster, release, k8s_namespace) == {}
        assert not can_i(k8s_cluster, sa, "create", "jobs.batch", namespace=other)
        # Helm leaves CRDs (and so the users' objects) in place on uninstall.
        crds = json.loads(k8s_cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
        assert set(CRD_NAMES) <= {c["metadata"]["name"] for c in crds}
    finally:
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, check=False)
        k8s_cluster.core.delete_namespace(other)


def test_install_watching_some_namespaces(crds_installed, k8s_namespace: str, helm_cmd) -> None:
    k8s_cluster = crds_installed
    release = "hwm-some"
    watched = k8s_cluster.create_namespace("hwm-watched")
    unwatched = k8s_cluster.create_namespace("hwm-unwatched")
    try:
        helm_cmd("install", release, str(CHART), "--namespace", k8s_namespace, *NO_CRDS,
                 "--set", f"operator.watchNamespaces={{{watched}}}")
        objects = release_objects(k8s_cluster, release, k8s_namespace)
        assert sorted(objects["RoleBinding"]) == ["hwm-some-hwmatch-leader-election", "hwm-some-hwmatch-operator"]
        assert objects["ClusterRoleBinding"] == ["hwm-some-hwmatch-kopf"]  # no cluster-wide operator rights
        sa = f"system:serviceaccount:{k8s_namespace}:hwm-some-hwmatch"
        assert_rbac(k8s_cluster, sa, allowed_in=[watched], denied_in=[unwatched, k8s_namespace])
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, "--wait")
        assert release_objects(k8s_cluster, release, k8s_namespace) == {}
    finally:
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, check=False)
        for ns in (watched, unwatched):
            k8s_cluster.core.delete_namespace(ns)


def _create(cluster, plural: str, namespace: str, body: dict) -> str | None:
    """Create a hwmatch object; None when admitted, else the API server's refusal."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CustomObjectsApi(cluster.api_client)
    try:
        api.create_namespaced_custom_object("hwmatch.dev", "v1alpha1", namespace, plural, body)
    except ApiException as exc:
        assert exc.status in {403, 422}, exc.body
        return str(json.loads(exc.body)["message"])
    return None


def test_admission_policy_refuses_control_plane_sweeps_and_foreign_images(crds_installed, k8s_namespace: str,
                                                                           helm_cmd) -> None:
    """The chart's ValidatingAdmissionPolicy, judged by the API server itself, in the namespaces it selects only."""
    k8s_cluster = crds_installed
    release = "hwm-vap"
    bound = k8s_cluster.create_namespace("hwm-bound")
    free = k8s_cluster.create_namespace("hwm-free")

    def asset(name: str, image: str) -> dict:
        return {"apiVersion": "hwmatch.dev/v1alpha1", "kind": "AIAsset", "metadata": {"name": name},
                "spec": {"image": image, "command": ["hwmatch-bench"], "metrics": [{"name": "latency_ms", "goal": "minimize"}],
                         "parameters": [{"name": "x", "type": "int", "values": [1]}]}}

    def sweep(name: str, **platform: object) -> dict:
        return {"apiVersion": "hwmatch.dev/v1alpha1", "kind": "BenchmarkSweep", "metadata": {"name": name},
                "spec": {"assetRef": {"name": "ok"}, "platforms": [
                    {"name": "pool", "nodeSelector": {"pool": "cpu"}},
                    {"name": "sneaky", **platform}]}}

    control_plane = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
    try:
        helm_cmd("install", release, str(CHART), "--namespace", k8s_namespace, *NO_CRDS,
                 "--set", "admissionPolicy.enabled=true",
                 "--set", "admissionPolicy.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=" + bound)
        # The API server picks a new policy up within a second or so: ask until it refuses.
        deadline = time.monotonic() + 60
        while (refused := _create(k8s_cluster, "benchmarksweeps", bound, sweep("cp", tolerations=control_plane))) is None:
            k8s_cluster.kubectl("delete", "benchmarksweep", "cp", "-n", bound, check=False)
            assert time.monotonic() < deadline, "the policy was never enforced"
            time.sleep(1)
        assert "ValidatingAdmissionPolicy 'hwm-vap-hwmatch-sweep-placement'" in refused
        assert "spec.platforms[].tolerations: platform sneaky tolerates a reserved taint" in refused
        everything = _create(k8s_cluster, "benchmarksweeps", bound, sweep("all", tolerations=[{"operator": "Exists"}]))
        assert everything is not None and "toleration without key" in everything
        selected = _create(k8s_cluster, "benchmarksweeps", bound,
                           sweep("m", nodeSelector={"node-role.kubernetes.io/master": ""}))
        assert selected is not None and "spec.platforms[].nodeSelector: platform sneaky selects" in selected
        assert _create(k8s_cluster, "benchmarksweeps", bound, sweep("fine", tolerations=[
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])) is None
        foreign = _create(k8s_cluster, "aiassets", bound, asset("foreign", "docker.io/library/python:3.11"))
        assert foreign is not None and "spec.image: docker.io/library/python:3.11 is not allowed" in foreign
        lookalike = _create(k8s_cluster, "aiassets", bound, asset("lookalike", "ghcr.io/hwmatch-evil/x:1"))
        assert lookalike is not None and "admissionPolicy.allowedImages" in lookalike
        assert _create(k8s_cluster, "aiassets", bound, asset("ok", "ghcr.io/hwmatch/benchmark:0.1.0")) is None
        # An admitted object's metadata may still change (kopf's finalizer and annotations): only the spec is judged.
        k8s_cluster.kubectl("annotate", "aiasset", "ok", "-n", bound, "hwmatch.dev/touched=yes")
        # Outside the namespace selector the policy does not apply.
        assert _create(k8s_cluster, "benchmarksweeps", free, sweep("cp", tolerations=control_plane)) is None
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, "--wait")
        out = k8s_cluster.kubectl("get", "validatingadmissionpolicies", "-l", f"app.kubernetes.io/instance={release}",
                                  "-o", "name").stdout
        assert out.strip() == ""
    finally:
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, check=False)
        for ns in (bound, free):
            k8s_cluster.core.delete_namespace(ns)


def _crd(cluster, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)


def test_helm_upgrade_updates_the_crds_and_uninstall_keeps_them(crds_installed, k8s_namespace: str, helm_cmd,
                                                                 tmp_path: Path) -> None:
    """The CRDs as templates: adopted from a kubectl install, a field added by `helm upgrade`, kept on uninstall."""
    cluster, release = crds_installed, "hwm-crds"
    # The CRDs exist, applied with kubectl (as before this chart templated them): adopt them (docs/helm.md, Upgrade).
    for name in CRD_NAMES:
        cluster.kubectl("label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        cluster.kubectl("annotate", "crd", name, f"meta.helm.sh/release-name={release}",
                        f"meta.helm.sh/release-namespace={k8s_namespace}", "--overwrite")
    chart = tmp_path / "hwmatch"
    shutil.copytree(CHART, chart)
    trials = "benchmarktrials.hwmatch.dev"
    try:
        helm_cmd("install", release, str(chart), "--namespace", k8s_namespace)
        installed = _crd(cluster, trials)
        assert installed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert installed["metadata"]["labels"]["app.kubernetes.io/instance"] == release
        # The next chart version adds a status field to BenchmarkTrial: helm upgrade must put it in the API server.
        kind = next(k for k in KINDS if k.plural == "benchmarktrials")
        doc = crd(kind)
        status = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        status["properties"]["upgradeProbe"] = {"type": "string", "description": "A field the upgrade adds."}
        (chart / "templates" / "crds" / f"hwmatch.dev_{kind.plural}.yaml").write_text(chart_template(doc))
        helm_cmd("upgrade", release, str(chart), "--namespace", k8s_namespace)
        upgraded = _crd(cluster, trials)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert upgraded["properties"]["status"]["properties"]["upgradeProbe"]["type"] == "string"
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, "--wait")
        kept = {c["metadata"]["name"] for c in json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]}
        assert set(CRD_NAMES) <= kept  # helm.sh/resource-policy: keep, so the users' objects stay
    finally:
        helm_cmd("uninstall", release, "--namespace", k8s_namespace, check=False)
        # Back to the session's CRDs as crds/ has them (labels and annotations too: no release owns them).
        cluster.kubectl("replace", "-f", str(ROOT / "crds"))
