"""How the operator's client names its requests and splits a listing of many trials' Jobs into selectors."""

from __future__ import annotations

import pytest

from hwmatch.controller.kube import NAMES_PER_LIST, _selectors, request_verb

HOST = "https://127.0.0.1:6443"


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/apis/batch/v1/namespaces/ns/jobs?labelSelector=a%3Db", ("list", "jobs")),
    ("GET", "/api/v1/namespaces/ns/pods", ("list", "pods")),
    ("GET", "/apis/hwmatch.dev/v1alpha1/namespaces/ns/benchmarksweeps/s1", ("get", "benchmarksweeps")),
    ("PATCH", "/apis/hwmatch.dev/v1alpha1/namespaces/ns/benchmarktrials/t1/status", ("patch", "benchmarktrials/status")),
    ("POST", "/apis/batch/v1/namespaces/ns/jobs", ("create", "jobs")),
    ("DELETE", "/apis/batch/v1/namespaces/ns/jobs/t1", ("delete", "jobs")),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l?watch=true", ("watch", "leases")),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", ("update", "leases")),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", ("list", "customresourcedefinitions")),
    ("GET", "/version", ("get", "")),
])
def test_a_request_is_named_by_verb_and_resource_as_the_api_server_names_it(method, path, expected) -> None:
    assert request_verb(method, HOST + path) == expected


def test_a_listing_of_named_trials_is_one_selector_per_chunk_and_none_for_no_names() -> None:
    names = [f"t-{i:04d}" for i in range(2 * NAMES_PER_LIST + 1)]
    selectors = _selectors({"hwmatch.dev/sweep": "s"}, "hwmatch.dev/trial", reversed(names))
    assert len(selectors) == 3
    listed = [n for s in selectors for n in s.split(" in (")[1].rstrip(")").split(",")]
    assert listed == names  # each name once, in order, across the chunks
    assert all(s.startswith("hwmatch.dev/sweep=s,hwmatch.dev/trial in (") for s in selectors)
    assert _selectors({"a": "b"}, "k", []) == []  # no names: no request at all
    assert _selectors({"a": "b"}, None, None) == ["a=b"]


def test_a_listing_drops_the_objects_managed_fields_and_nothing_else() -> None:
    """``managedFields`` of each object's metadata is left out as it is decoded; a key of that name elsewhere stays."""
    import json
    from types import SimpleNamespace

    from hwmatch.controller.kube import _items

    managed = [{"manager": "hwmatch", "fieldsV1": {"f:status": {"f:phase": {}}}}]
    item = {"metadata": {"name": "t1", "resourceVersion": "7", "labels": {"a": "b"}, "managedFields": managed},
            "status": {"host": {"managedFields": "a value of a trial's own"}}}
    listed = _items(SimpleNamespace(data=json.dumps({"items": [item], "metadata": {"resourceVersion": "9"}})))
    assert listed == [{"metadata": {"name": "t1", "resourceVersion": "7", "labels": {"a": "b"}},
                       "status": {"host": {"managedFields": "a value of a trial's own"}}}]
