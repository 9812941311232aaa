"""``onnx-mlp-server``: the network of ``onnx-mlp`` behind HTTP, for serving trials (docs/serving.md).

A small model server of the standard library (``ThreadingHTTPServer``,
HTTP/1.1 keep-alive, one thread per connection) in front of one ONNX Runtime
session:

- ``POST /v1/predict`` with ``{"instances": [[64 pixel values], ...]}``
  answers ``{"predictions": [digit, ...]}``;
- ``GET /healthz`` answers 200 once the model is built (the server listens
  only then);
- ``GET /metrics``: ``hwmatch_request_duration_seconds``, a prometheus-client
  histogram of each predict request from the kernel's arrival stamp of its
  first bytes (:class:`StampedReader`) to its response flushed, and ``hwmatch_batch_size``, the size of the batches run.

Requests reach the session through one batcher thread (a model instance runs
one batch at a time, as in Triton): it takes the first waiting request, adds
more until ``max_batch`` instances or ``max_wait_ms`` after the first, runs
them as one batch and answers each. ``max_batch: 1`` runs every request alone
and never waits. The time a request waits for the batcher is in the
histogram, so the server side sees its own queueing.
"""

from __future__ import annotations

import io
import json
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np

from hwmatch.api import Parameter, Range
from hwmatch.api.asset import Scalar

#: Latency buckets (seconds): steps of at most 1.5x from 0.25 ms to 10 s, finest where a 1-core
#: Python server answers (sub-millisecond to tens of milliseconds), so that client and server
#: percentiles can be compared within one bucket.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.006, 0.008, 0.012, 0.016,
                   0.024, 0.032, 0.048, 0.064, 0.096, 0.128, 0.192, 0.256, 0.384, 0.512, 0.768, 1.0, 1.5, 2.5, 5.0, 10.0)
LATENCY_METRIC = "hwmatch_request_duration_seconds"
PREDICT_PATH = "/v1/predict"
READINESS_PATH = "/healthz"
METRICS_PATH = "/metrics"
#: The environment variable a serving trial sets to ``spec.serving.port``.
PORT_VARIABLE = "HWMATCH_SERVING_PORT"
#: The port when neither --port nor $HWMATCH_SERVING_PORT says.
DEFAULT_PORT = 8080


#: Linux's SO_TIMESTAMPNS (also its control message type): the kernel stamps each received segment.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class StampedReader(io.RawIOBase):
    """A connection's reads, remembering when the kernel received the last bytes read (``stamp``, Unix seconds).

    The latency a client sees starts when its request reaches the server's
    socket, not when a thread of the server gets round to it: on a busy CPU
    the thread's wake-up, and the wait for the GIL, can take milliseconds.
    ``recvmsg`` with ``SO_TIMESTAMPNS`` gives the arrival time, so the
    histogram sees that wait too. Where the kernel gives no stamp, ``stamp``
    is the time of the read.
    """

    def __init__(self, connection: socket.socket) -> None:
        super().__init__()
        self._connection = connection
        connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.stamp = time.time()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n, ancillary, _, _ = self._connection.recvmsg_into([buffer], socket.CMSG_SPACE(16))
        self.stamp = time.time()
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = struct.unpack("qq", data[:16])
                self.stamp = seconds + nanoseconds / 1e9
        return n


@dataclass
class _Pending:
    """One request waiting for the batcher: its rows, and the slot its answer lands in."""

    rows: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    labels: list[int] | None = None
    error: str | None = None


class Batcher:
    """Runs the session from one thread, on batches of waiting requests (see the module docstring)."""

    def __init__(self, session: Any, max_batch: int, max_wait_s: float, observe_batch: Callable[[float], None]) -> None:
        self._session, self._max_batch, self._max_wait_s = session, max_batch, max_wait_s
        self._observe_batch = observe_batch
        self._queue: queue.Queue[_Pending] = queue.Queue()
        threading.Thread(target=self._loop, name="batcher", daemon=True).start()

    def predict(self, rows: np.ndarray) -> list[int]:
        pending = _Pending(rows)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise RuntimeError(pending.error)
        assert pending.labels is not None
        return pending.labels

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            size = len(batch[0].rows)
            deadline = time.monotonic() + self._max_wait_s
            while size < self._max_batch:
                left = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                size += len(item.rows)
            try:
                (probabilities,) = self._session.run(None, {"input": np.concatenate([p.rows for p in batch])})
                labels = probabilities.argmax(axis=1).tolist()
                self._observe_batch(size)
                at = 0
                for p in batch:
                    p.labels, at = labels[at:at + len(p.rows)], at + len(p.rows)
            except Exception as exc:  # the requests of this batch fail; the server goes on
                for p in batch:
                    p.error = f"{type(exc).__name__}: {exc}"
            for p in batch:
                p.done.set()


def make_server(params: Mapping[str, Scalar], host: str, port: int) -> ThreadingHTTPServer:
    """Build the model of ``params``, then bind ``host:port``: the server is ready once this returns."""
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.exposition import generate_latest

    from hwmatch.harness.assets.onnx_mlp import build_model

    model = build_model(params)
    width = model.split.x_test.shape[1]
    registry = CollectorRegistry()
    latency = Histogram(LATENCY_METRIC, "Predict request latency, from its arrival at the socket to the response flushed.",
                        buckets=LATENCY_BUCKETS, registry=registry)
    errors = Counter("hwmatch_request_errors", "Predict requests answered with an error status.", registry=registry)
    batches = Histogram("hwmatch_batch_size", "Instances per batch run by the session.",
                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=registry)
    batcher = Batcher(model.session, int(params["max_batch"]), float(params["max_wait_ms"]) / 1e3, batches.observe)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a load generator reuses its connections
        disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add 40 ms

        def setup(self) -> None:
            super().setup()
            self._reader = StampedReader(self.connection)
            self.rfile = io.BufferedReader(self._reader, 1 << 16)

        def parse_request(self) -> bool:
            self._t0 = self._reader.stamp  # when the request line's bytes reached the socket
            return super().parse_request()

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: one line per request would cost more than the inference."""

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def do_GET(self) -> None:
            if self.path == READINESS_PATH:
                self._send(200, b"ok\n", "text/plain")
            elif self.path == METRICS_PATH:
                self._send(200, generate_latest(registry), "text/plain; version=0.0.4")
            else:
                self._send(404, b"not found\n", "text/plain")

        def do_POST(self) -> None:
            if self.path != PREDICT_PATH:
                self._send(404, b"not found\n", "text/plain")
                return
            try:
                document = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                rows = np.asarray(document["instances"], dtype=np.float32)
                if rows.ndim != 2 or rows.shape[1] != width:
                    raise ValueError(f"instances must be rows of {width} numbers, got shape {rows.shape}")
            except (ValueError, KeyError, TypeError) as exc:
                errors.inc()
                self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                latency.observe(time.time() - self._t0)
                return
            try:
                labels = batcher.predict(rows)
            except RuntimeError as exc:
                errors.inc()
                self._send(500, json.dumps({"error": str(exc)}).encode(), "application/json")
            else:
                self._send(200, json.dumps({"predictions": labels}).encode(), "application/json")
            latency.observe(time.time() - self._t0)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # an open-loop burst of new connections must not be refused

    return Server((host, port), Handler)


class OnnxMlpServer:
    """The built-in serving asset: its space, defaults and metrics, as :class:`~hwmatch.harness.Asset` declares them."""

    name: ClassVar[str] = "onnx-mlp-server"
    description: ClassVar[str] = ("The onnx-mlp network behind HTTP (micro-batching, Prometheus histogram): "
                                  "latency and throughput under an open-loop load")
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(name="threads", type="int", range=Range(min=1, max=8), description="ONNX Runtime intra-op threads."),
        Parameter(name="precision", type="categorical", values=["fp32", "int8"],
                  description="fp32, or int8 weights by onnxruntime.quantization.quantize_dynamic."),
        Parameter(name="hidden", type="int", values=[16, 32, 64, 128, 256], description="Hidden layer width."),
        Parameter(name="max_batch", type="int", values=[1, 2, 4, 8, 16, 32],
                  description="Most instances the batcher runs together (1: no batching)."),
        Parameter(name="max_wait_ms", type="float", range=Range(min=0, max=50),
                  description="Longest wait for more requests after the first of a batch."),
    )
    defaults: ClassVar[Mapping[str, Scalar]] = {"threads": 1, "precision": "fp32", "hidden": 64, "max_batch": 1,
                                                "max_wait_ms": 0.0}

    @staticmethod
    def build(params: Mapping[str, Scalar], host: str, port: int) -> ThreadingHTTPServer:
        return make_server(params, host, port)

    @staticmethod
    def request_body() -> str:
        """A valid predict request: the first test image of the digits split (what the examples send)."""
        from hwmatch.harness.assets.digits import load_split

        return json.dumps({"instances": load_split().x_test[:1].astype(int).tolist()}, separators=(",", ":"))

