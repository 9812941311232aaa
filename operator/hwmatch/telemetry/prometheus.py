"""A small client of the Prometheus HTTP API (``/api/v1/query`` and ``/api/v1/query_range``).

Only what hwmatch needs: instant and range queries, their answers parsed into
plain objects, and errors a person can act on. An unreachable server is a
:class:`PrometheusUnreachable` that names the URL and the ``--prometheus-url``
flag (usually a wrong URL, or Prometheus not running yet: worth retrying);
a query Prometheus refuses is a :class:`PrometheusQueryError` with
Prometheus's own message and the query (a bad template: not worth retrying).

``timeout`` is a total deadline for one query, not a limit on each read: a
server that answers one byte every few seconds is cut off at the deadline
(the request runs in a daemon thread that stops reading once it has passed).
"""

from __future__ import annotations

import json
import math
import threading
import time as clock
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwmatch.api.errors import InputError, TemporaryError

if TYPE_CHECKING:  # requests takes 30 ms to load: only a command that asks Prometheus pays for it
    import requests

URL_FLAG = "--prometheus-url"


class PrometheusError(TemporaryError):
    """Any failure to get an answer from Prometheus."""


class PrometheusUnreachable(PrometheusError):
    """No answer from the server at all (connection refused, DNS, timeout, 5xx from a proxy)."""

    def __init__(self, url: str, cause: str) -> None:
        self.url = url
        super().__init__(
            f"Prometheus at {url} is unreachable ({cause}); check the server is running and the "
            f"{URL_FLAG} flag (the chart's operator.prometheusUrl value) points at it"
        )


class PrometheusQueryError(PrometheusError):
    """Prometheus answered but refused or failed the query (``status: error``)."""

    def __init__(self, query: str, error_type: str, message: str) -> None:
        self.query = query
        self.error_type = error_type
        self.message = message
        super().__init__(f"Prometheus rejected the query ({error_type}: {message}); query: {query}")


@dataclass(frozen=True)
class Sample:
    """One value of an instant query: a series' labels (or none, for a scalar), its time and value."""

    labels: dict[str, str]
    timestamp: float
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: labels and ``(timestamp, value)`` points in time order."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def parse_value(pair: list[Any]) -> tuple[float, float]:
    """``[1700000000.5, "42"]`` → ``(1700000000.5, 42.0)``; Prometheus sends values as strings (NaN, +Inf too)."""
    return float(pair[0]), float(pair[1])


def parse_instant(data: dict[str, Any]) -> list[Sample]:
    """The ``data`` of an instant query's answer as samples: a vector's elements, or one unlabelled scalar."""
    kind = data.get("resultType")
    result: Any = data.get("result")
    if kind == "vector":
        return [Sample(dict(item.get("metric", {})), *parse_value(item["value"])) for item in result]
    if kind == "scalar":
        return [Sample({}, *parse_value(result))]
    if kind == "matrix":
        raise InputError("the query returns a range vector (matrix); an instant query needs an instant vector or a scalar, "
                         "e.g. wrap the range selector in increase(), rate() or avg_over_time()")
    raise InputError(f"unexpected resultType {kind!r} in Prometheus's answer")


def parse_range(data: dict[str, Any]) -> list[Series]:
    """The ``data`` of a range query's answer (a matrix) as series."""
    if data.get("resultType") != "matrix":
        raise InputError(f"a range query answers a matrix, got resultType {data.get('resultType')!r}")
    return [
        Series(dict(item.get("metric", {})), [parse_value(p) for p in item.get("values", [])])
        for item in data["result"]
    ]


class PrometheusClient:
    """Instant and range PromQL queries against one Prometheus server.

    ``url`` is the server's base URL (``http://prometheus.monitoring:9090``, a
    path prefix such as ``/prometheus`` included when there is one). One
    ``requests.Session`` is kept so repeated queries reuse the connection.
    """

    def __init__(self, url: str, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        if not url or "://" not in url:
            raise InputError(f"Prometheus URL {url!r} needs a scheme, e.g. http://prometheus:9090 (flag {URL_FLAG})")
        if not timeout > 0:
            raise InputError(f"timeout must be > 0 seconds, got {timeout}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        if session is None:
            import requests

            session = requests.Session()
        self._session = session

    def __repr__(self) -> str:
        return f"PrometheusClient({self.url!r}, timeout={self.timeout})"

    def query(self, expr: str, time: float | None = None) -> list[Sample]:
        """Evaluate ``expr`` at ``time`` (Unix seconds; now when omitted)."""
        params = {"query": expr}
        if time is not None:
            params["time"] = _fmt_time(time)
        return parse_instant(self._get("query", params, expr))

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """Evaluate ``expr`` every ``step`` seconds from ``start`` to ``end`` (Unix seconds)."""
        if not step > 0:
            raise InputError(f"step must be > 0 seconds, got {step}")
        if end < start:
            raise InputError(f"end ({end}) is before start ({start})")
        params = {"query": expr, "start": _fmt_time(start), "end": _fmt_time(end), "step": _fmt_time(step)}
        return parse_range(self._get("query_range", params, expr))

    def _post(self, url: str, params: dict[str, str]) -> tuple[requests.Response, bytes]:
        """The response and its whole body, within ``timeout`` seconds in all (else :class:`PrometheusUnreachable`)."""
        deadline = clock.monotonic() + self.timeout
        outcome: dict[str, Any] = {}

        def fetch() -> None:
            try:
                # POST form encoding keeps long queries out of URL length limits (the API accepts both).
                response = self._session.post(url, data=params, timeout=self.timeout, stream=True)
                chunks = []
                for chunk in response.iter_content(65536):
                    chunks.append(chunk)
                    if clock.monotonic() > deadline:
                        response.close()
                        return
                outcome["answer"] = (response, b"".join(chunks))
            except BaseException as exc:  # handed to the caller
                outcome["error"] = exc

        worker = threading.Thread(target=fetch, name="hwmatch-prometheus", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if "answer" in outcome:
            return outcome["answer"]
        error = outcome.get("error")
        import requests

        if error is None or isinstance(error, requests.Timeout):
            raise PrometheusUnreachable(self.url, f"no complete answer within {self.timeout:g}s") from None
        if isinstance(error, requests.RequestException):
            raise PrometheusUnreachable(self.url, type(error).__name__ + ": " + _first_line(error)) from None
        raise error

    def _get(self, endpoint: str, params: dict[str, str], expr: str) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{endpoint}"
        response, content = self._post(url, params)
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            # 400 bad_data (parse errors), 422 execution errors, 503 timeouts: Prometheus's own words.
            raise PrometheusQueryError(expr, str(body.get("errorType", "error")), str(body.get("error", "")))
        if response.status_code >= 500 or not isinstance(body, dict):
            raise PrometheusUnreachable(
                self.url, f"HTTP {response.status_code} from {url} is not a Prometheus API answer (a wrong host or "
                          f"path prefix, or a proxy in between): {content[:200].decode(errors='replace')!r}"
            )
        if response.status_code >= 400 or body.get("status") != "success":
            raise PrometheusQueryError(expr, f"HTTP {response.status_code}", content[:500].decode(errors="replace"))
        return body["data"]


def _fmt_time(t: float) -> str:
    if not math.isfinite(t):
        raise InputError(f"time must be finite Unix seconds, got {t}")
    return f"{t:.3f}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no detail"
