"""The load generator's own overhead: the latency vegeta measures against an endpoint that answers at once.

An HTTP server that does nothing (the standard library's, keep-alive,
TCP_NODELAY, a fixed 2-byte answer) runs pinned to cpu 0, as a serving
trial's server is; vegeta attacks it from cpu 1 at the rates the serving
test and the example use. Whatever latency vegeta reports there is the floor
of every serving measurement: its own scheduling, the loopback, and the
trivial server's parsing.

The baseline, in the same run against the same server: one keep-alive
connection from this Python process (pinned to cpu 1), one request at a
time, timed with ``perf_counter_ns`` — the round trip without a load
generator. The ratio says how much vegeta adds at each rate.

Run: ``.venv/bin/python bench/loadgen_overhead.py [--duration 3] [--rates 5,40,250,50,400,1500]``.
Needs vegeta (``bash hack/vegeta.sh``) and CPUs 0 and 1.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwmatch.api.asset import ServingRequest
from hwmatch.harness.loadgen import attack_argv, parse_report, report_argv, write_targets

ROOT = Path(__file__).resolve().parents[1]
# The endpoint: answers every request at once. Run as its own process, pinned to cpu 0.
SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def baseline_ms(port: int, n: int) -> np.ndarray:
    """Round trips of one keep-alive connection, one request at a time (ms)."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    out = np.empty(n)
    for i in range(n + 50):
        t0 = time.perf_counter_ns()
        connection.request("POST", "/", body=b"{}", headers={"Content-Type": "application/json"})
        connection.getresponse().read()
        if i >= 50:  # the first ones warm the connection and the server's thread
            out[i - 50] = (time.perf_counter_ns() - t0) / 1e6
    connection.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per rate")
    parser.add_argument("--rates", default="5,40,250,50,400,1500", help="requests/s, comma-separated")
    args = parser.parse_args()
    built = subprocess.run(["bash", str(ROOT / "hack/vegeta.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        print(f"vegeta is not available (hack/vegeta.sh exited {built.returncode}): {built.stderr.strip()}")
        return 1
    vegeta = built.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        os.sched_setaffinity(0, {1})
        base = baseline_ms(port, 2000)
        print(f"endpoint: a no-op HTTP server on cpu 0; load from cpu 1; {args.duration:g} s per rate")
        print(f"baseline (one keep-alive connection, closed loop, {base.size} requests): "
              f"p50 {np.percentile(base, 50):.3f} ms, p99 {np.percentile(base, 99):.3f} ms")
        print(f"{'rate/s':>7} {'achieved/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'p50/base':>8} {'p99/base':>8} {'errors':>6}")
        with tempfile.TemporaryDirectory() as tmp:
            targets = write_targets(Path(tmp), f"http://127.0.0.1:{port}/",
                                    ServingRequest(path="/", body="{}"))
            for rate in (float(r) for r in args.rates.split(",")):
                results = Path(tmp) / "results.bin"
                subprocess.run(attack_argv(vegeta, targets, rate, args.duration, 5.0, results), check=True)
                report = parse_report(subprocess.run(report_argv(vegeta, results), check=True, capture_output=True,
                                                     text=True).stdout)
                m = report.metrics()
                print(f"{rate:7g} {report.throughput:10.1f} {m['latency_p50_ms']:8.3f} {m['latency_p90_ms']:8.3f} "
                      f"{m['latency_p99_ms']:8.3f} {m['latency_max_ms']:8.3f} "
                      f"{m['latency_p50_ms'] / np.percentile(base, 50):8.2f} "
                      f"{m['latency_p99_ms'] / np.percentile(base, 99):8.2f} {m['error_rate']:6.3f}")
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
