"""The operator's access to the API server: hwmatch objects, Jobs and pods, as the plain dicts the API returns.

A thin layer over the ``kubernetes`` client so that reconcilers read and
write wire-format objects (camelCase dicts) and the model classes of
:mod:`hwmatch.api` parse them; "not found" is None and "already exists"
returns the existing object, the two answers a level-triggered reconciler
treats as normal.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from typing import Any, Iterable, Mapping, cast
from urllib.parse import urlsplit

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from hwmatch.api import GROUP, VERSION
from hwmatch.controller import metrics

ASSETS, SWEEPS, TRIALS, RECOMMENDATIONS = "aiassets", "benchmarksweeps", "benchmarktrials", "hwrecommendations"
#: Kept-alive connections to the API server: passes run side by side, each with requests in flight
#: (:data:`hwmatch.controller.trials.CONCURRENT_REQUESTS`); beyond the pool, every request would open a TLS connection.
CONNECTIONS = 64
_JSON_PATCH = "application/json-patch+json"
_MERGE_PATCH = "application/merge-patch+json"


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """Credentials for the API server: ``kubeconfig`` if given, in-cluster in a pod, else $KUBECONFIG / ~/.kube/config."""
    cfg = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = CONNECTIONS
    return cfg


#: A path's last segments: ``<resource>[/<name>[/<subresource>]]`` after ``namespaces/<ns>/`` or the version.
_PATH = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)/(?:namespaces/[^/]+/)?(?P<resource>[^/?]+)(?P<name>/[^/?]+)?"
                   r"(?P<sub>/[^/?]+)?")


def request_verb(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of a request as the API server names them (``list``, ``create``, ``patch``; ``jobs``,
    ``benchmarktrials/status``), for :data:`~hwmatch.controller.metrics.KUBE_REQUESTS`."""
    path = urlsplit(url)
    match = _PATH.match(path.path)
    if match is None:
        return method.lower(), ""
    resource = match["resource"] + (match["sub"] or "")
    if method == "GET":
        verb = "watch" if "watch=true" in path.query else ("get" if match["name"] else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
    return verb, resource


class CountingApiClient(client.ApiClient):
    """The ``kubernetes`` client, each request counted by verb and resource (``hwmatch_kube_requests_total``)."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        metrics.KUBE_REQUESTS.labels(*request_verb(method, url)).inc()
        return super().call_api(method, url, *args, **kwargs)


def _selector(labels: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items())


#: Names per set-based selector (``key in (a,b,...)``): a list request's URL stays a few kilobytes.
NAMES_PER_LIST = 100


def _selectors(labels: Mapping[str, str], key: str | None, names: Iterable[str] | None) -> builtins.list[str]:
    """The label selectors of one listing: ``labels`` alone, or with ``key in (...)`` over ``names``, in chunks."""
    base = _selector(labels)
    if key is None or names is None:
        return [base]
    chosen = sorted(set(names))
    return [",".join(filter(None, (base, f"{key} in ({','.join(chosen[i:i + NAMES_PER_LIST])})")))
            for i in range(0, len(chosen), NAMES_PER_LIST)]


class Kube:
    """Reads and writes of the operator, each one API call."""

    def __init__(self, api_client: client.ApiClient):
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    # -- hwmatch objects ---------------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _object(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                                                    _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, plural: str, namespace: str, labels: Mapping[str, str] | None = None, *,
             exists: Iterable[str] = ()) -> builtins.list[dict[str, Any]]:
        """The objects with ``labels`` (and every label of ``exists``, whatever its value)."""
        selector = ",".join(filter(None, (_selector(labels), *exists)))
        return _items(self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural,
                                                                label_selector=selector, _preload_content=False))

    def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``body``; when an object of that name exists already, return it instead."""
        try:
            return _object(self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, dict(body),
                                                                       _preload_content=False))
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = self.get(plural, namespace, body["metadata"]["name"])
        if existing is None:  # created and deleted in between: let the next pass try again
            raise RuntimeError(f"{plural}/{body['metadata']['name']} exists and does not; retry")
        return existing

    def replace_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Set the whole status (fields absent from ``status`` are removed): for objects with one writer."""
        return _object(self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, [{"op": "add", "path": "/status", "value": dict(status)}],
            _content_type=_JSON_PATCH, _preload_content=False))

    def merge_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``status`` into the status (other fields are kept): for objects whose status has several writers."""
        return _object(self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": dict(status)}, _content_type=_MERGE_PATCH,
            _preload_content=False))

    def annotate(self, plural: str, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, {"metadata": {"annotations": dict(annotations)}},
            _content_type=_MERGE_PATCH)

    # -- Jobs and pods ------------------------------------------------------------------------

    def jobs(self, namespace: str, labels: Mapping[str, str], *, key: str | None = None,
             names: Iterable[str] | None = None) -> builtins.list[dict[str, Any]]:
        """The Jobs with ``labels``; with ``key`` and ``names``, only those whose label ``key`` is one of ``names``
        (no request when there are none)."""
        return [item for selector in _selectors(labels, key, names)
                for item in _items(self.batch.list_namespaced_job(namespace, label_selector=selector,
                                                                  _preload_content=False))]

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> bool:
        """Create the Job; False when one of that name exists already (a previous pass created it)."""
        try:
            self.batch.create_namespaced_job(namespace, cast(Any, dict(manifest)))  # the client takes a dict body
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job and, in the background, its pods (which stops them)."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def create_object(self, namespace: str, manifest: Mapping[str, Any]) -> bool:
        """Create a Pod or a Service (a serving trial's server); False when one of that name exists already."""
        body = cast(Any, dict(manifest))
        try:
            if manifest["kind"] == "Pod":
                self.core.create_namespaced_pod(namespace, body)
            else:
                self.core.create_namespaced_service(namespace, body)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def delete_server(self, namespace: str, name: str) -> None:
        """Delete a serving trial's server pod and its Service (both named ``name``); gone already is fine."""
        for delete in (self.core.delete_namespaced_pod, self.core.delete_namespaced_service):
            try:
                delete(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def services(self, namespace: str, labels: Mapping[str, str]) -> builtins.list[dict[str, Any]]:
        return _items(self.core.list_namespaced_service(namespace, label_selector=_selector(labels),
                                                        _preload_content=False))

    def pods(self, namespace: str, labels: Mapping[str, str], *, key: str | None = None,
             names: Iterable[str] | None = None) -> builtins.list[dict[str, Any]]:
        """The pods with ``labels`` (and ``key`` in ``names``, as :meth:`jobs`)."""
        return [item for selector in _selectors(labels, key, names)
                for item in _items(self.core.list_namespaced_pod(namespace, label_selector=selector,
                                                                 _preload_content=False))]


def _items(response: Any) -> builtins.list[dict[str, Any]]:
    """The ``items`` of a list response as the API sent them (camelCase dicts, times as RFC 3339 text), without
    their ``metadata.managedFields``.

    Jobs and pods are read on every pass of every sweep: building the client's
    model objects and turning them back into dicts took about half of a pass
    at 1,000 trials (``bench/kube_lists.py``), for the dicts the wire holds.
    The server-side-apply bookkeeping of ``managedFields``, which nothing here
    reads, was 5.5 of a trial object's 9.3 KiB as dicts: it is dropped as each
    object is decoded, so a list of 10,000 trials never holds it (issue 17).
    """
    return builtins.list(_object(response).get("items") or [])


def _object(response: Any) -> dict[str, Any]:
    """A response's JSON body as dicts, each object's ``metadata.managedFields`` left out as it is decoded.

    The operator keeps what it reads and writes (a sweep's trial objects, between passes and while it
    creates them all): the server-side-apply bookkeeping, which nothing here reads, would be most of it.
    """
    return cast(dict[str, Any], json.loads(response.data, object_hook=_without_managed_fields))


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """An object's ``metadata`` (it has a ``resourceVersion``) without ``managedFields``; any other dict as it is."""
    if "managedFields" in obj and "resourceVersion" in obj:
        del obj["managedFields"]
    return obj
