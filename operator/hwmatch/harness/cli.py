"""``hwmatch-bench``: the entry point inside a trial's process or container.

Exit codes: 0 with the result as the last JSON line on stdout; 2 for a usage
error (unknown asset or parameter, a value outside the space), with a message
naming it; 1 when the asset itself fails, with its traceback on stderr.
argparse, not Typer: this runs once per trial, so it starts light.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from hwmatch.api import Parameter
from hwmatch.api.asset import Scalar
from hwmatch.harness import assets
from hwmatch.harness.assets.onnx_server import DEFAULT_PORT, PORT_VARIABLE
from hwmatch.harness.loadgen import BODY_VARIABLE
from hwmatch.harness.measure import Measurer
from hwmatch.harness.params import ENV_VAR, ParameterError, parse_assignments, parse_env, resolve
from hwmatch.harness.result import termination_log_path, to_json, write_termination_log
from hwmatch.harness.trial import run_trial

USAGE_ERROR = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwmatch-bench", description="Run and measure one benchmark trial of an asset; print one JSON result line."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one trial and print its JSON result",
                         description=f"Parameters come from ${ENV_VAR} (a JSON object) and --param flags (flags win).")
    run.add_argument("asset", help="a built-in asset (see 'hwmatch-bench list') or package.module:AssetClass")
    run.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="a parameter value (repeatable)")
    run.add_argument("--warmup", type=_non_negative_int, metavar="N", help="untimed iterations first (default: the asset's)")
    run.add_argument("--samples", type=_positive_int, metavar="N", help="timed iterations at most (default: the asset's)")
    run.add_argument("--time-budget", type=_positive_float, metavar="SECONDS",
                     help="stop the timed iterations after this long, even before --samples (default: the asset's)")
    serve = sub.add_parser("serve", help="run a built-in model server until stopped (a serving asset's command)",
                           description=f"Parameters come from ${ENV_VAR} (a JSON object) and --param flags (flags win).")
    serve.add_argument("server", choices=sorted(assets.SERVERS), help="a built-in model server")
    serve.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="a parameter value (repeatable)")
    serve.add_argument("--port", type=_port, default=os.environ.get(PORT_VARIABLE, str(DEFAULT_PORT)), metavar="PORT",
                       help=f"port to listen on (default: ${PORT_VARIABLE}, else {DEFAULT_PORT})")
    serve.add_argument("--host", default="0.0.0.0", metavar="ADDRESS", help="address to listen on (default: all)")
    load = sub.add_parser("load", help="load a server at one constant rate with vegeta (a serving trial's load Job)",
                          description="Warm-up, a pause, then the measured open-loop attack; prints one JSON result "
                                      f"and writes it to the termination log. The request body comes from ${BODY_VARIABLE}.")
    load.add_argument("--url", required=True, help="the request's URL")
    load.add_argument("--ready-url", required=True, help="the server's readiness URL, polled until 200 first")
    load.add_argument("--rate", type=_positive_float, required=True, help="requests per second, open loop")
    load.add_argument("--duration", type=_positive_float, required=True, metavar="SECONDS", help="the measured phase")
    load.add_argument("--warmup", type=float, default=0.0, metavar="SECONDS", help="load before it, not recorded")
    load.add_argument("--pause", type=float, default=0.0, metavar="SECONDS",
                      help="between warm-up and measurement (a Prometheus scrape falls in it)")
    load.add_argument("--timeout", type=_positive_float, default=5.0, metavar="SECONDS", help="per request")
    load.add_argument("--ready-timeout", type=_positive_float, default=30.0, metavar="SECONDS")
    load.add_argument("--method", default="POST", choices=("GET", "POST", "PUT"))
    load.add_argument("--content-type", default="application/json")
    listing = sub.add_parser("list", help="show the built-in assets, their parameter spaces and metrics")
    # -o is a format, as in every hwmatch command (docs/cli.md); --json is the older spelling
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table",
                         help="table, or json: machine-readable, in AIAsset manifest field names")
    listing.add_argument("--json", action="store_const", const="json", dest="output", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print(_listing_json() if args.output == "json" else _listing_text())
        return 0
    if args.command == "serve":
        return _serve(args)
    if args.command == "load":
        return _load(args)
    try:
        cls = assets.get(args.asset)
        params = resolve(cls.parameters, cls.defaults, parse_env(os.environ.get(ENV_VAR)), parse_assignments(args.param))
    except (assets.UnknownAsset, ParameterError) as exc:
        print(f"hwmatch-bench: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    measurer = Measurer(
        warmup=cls.warmup if args.warmup is None else args.warmup,
        samples=args.samples or cls.samples,
        time_budget_s=args.time_budget or cls.time_budget_s,
    )
    log = termination_log_path()
    try:
        document = run_trial(cls(), params, measurer)
    except Exception as exc:
        # The pod's termination message says why; the traceback goes to stderr as the exception propagates.
        write_termination_log({"error": f"{type(exc).__name__}: {exc}"[:2000], "asset": cls.name, "parameters": params}, log)
        raise
    print(to_json(document), flush=True)
    write_termination_log(document, log)
    return 0


def _load(args: argparse.Namespace) -> int:
    """A serving trial's load Job: the client side, as a harness result (the operator reads it like a batch trial's)."""
    import tempfile
    from pathlib import Path

    from hwmatch.api.asset import ServingRequest
    from hwmatch.harness.loadgen import LoadError, LoadPlan, run_load

    request = ServingRequest(method=args.method, path="/", content_type=args.content_type,
                             body=os.environ.get(BODY_VARIABLE))
    plan = LoadPlan(url=args.url, ready_url=args.ready_url, request=request, rate=args.rate,
                    duration_s=args.duration, warmup_s=args.warmup, pause_s=args.pause, timeout_s=args.timeout,
                    ready_timeout_s=args.ready_timeout)
    log = termination_log_path()
    try:
        with tempfile.TemporaryDirectory(prefix="hwmatch-load-") as scratch:
            document = run_load(plan, Path(scratch))
    except (LoadError, ValueError) as exc:
        print(f"hwmatch-bench: error: {exc}", file=sys.stderr)
        write_termination_log({"error": str(exc)[:2000]}, log)
        return 1
    print(to_json(document), flush=True)
    write_termination_log(document, log)
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Build the server (the model first: it listens only once it can answer), then serve until a signal."""
    server_cls = assets.SERVERS[args.server]
    try:
        params = resolve(server_cls.parameters, server_cls.defaults, parse_env(os.environ.get(ENV_VAR)),
                         parse_assignments(args.param))
    except ParameterError as exc:
        print(f"hwmatch-bench: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        server = server_cls.build(params, args.host, args.port)
    except OSError as exc:
        print(f"hwmatch-bench: error: cannot listen on {args.host}:{args.port}: {exc.strerror}; "
              f"choose another --port (or ${PORT_VARIABLE})", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped by the trial: exit cleanly, closing the socket
    print(f"hwmatch-bench: {args.server} serving on {args.host}:{args.port} with {json.dumps(params)}",
          file=sys.stderr, flush=True)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port in 1..65535, got {value}")
    return value


def _listing_text() -> str:
    lines: list[str] = []
    for name, cls in assets.BUILTIN.items():
        lines += [f"{name}: {cls.description}", *_parameter_lines(cls.parameters, cls.defaults)]
        own = ", ".join(f"{m.name} ({m.goal})" for m in cls.metrics)
        lines += [f"  metrics: {own}; and every harness metric ({', '.join(m.name for m in assets.HARNESS_METRICS)})", ""]
    for name, server in assets.SERVERS.items():
        lines += [f"{name} (hwmatch-bench serve {name}; an asset with spec.serving): {server.description}",
                  *_parameter_lines(server.parameters, server.defaults),
                  f"  metrics of a serving trial: {', '.join(m.name for m in assets.SERVING_METRICS)}", ""]
    return "\n".join(lines).rstrip()


def _parameter_lines(parameters: Sequence[Parameter], defaults: Mapping[str, Scalar]) -> list[str]:
    width = max(len(p.name) for p in parameters)
    space_width = max(len(p.describe_space()) for p in parameters)
    return ["  parameters:", *(f"    {p.name:<{width}}  {p.describe_space():<{space_width}}  default {defaults[p.name]}"
                               for p in parameters)]


def _listing_json() -> str:
    return json.dumps(
        [
            {
                "name": name,
                "description": cls.description,
                "command": ["hwmatch-bench", "run", name],
                "parameters": [p.to_wire() for p in cls.parameters],
                "metrics": [m.to_wire() for m in cls.metric_specs()],
                "defaults": dict(cls.defaults),
            }
            for name, cls in assets.BUILTIN.items()
        ],
        indent=2,
    )
