"""``AIAsset``: what to run, its parameter space, and the metrics it reports."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from hwmatch.api.base import (
    API_VERSION,
    DURATION_PATTERN,
    IDENTIFIER_PATTERN,
    ApiModel,
    ObjectMeta,
    ObjectRef,
    SpecModel,
    StatusBase,
    check_label_name,
    parse_duration,
)

ParameterType = Literal["int", "float", "categorical"]
Scalar = int | float | str | bool
MetricGoal = Literal["minimize", "maximize"]
MetricSource = Literal["harness", "prometheus"]
#: Named PromQL templates for common power/energy exporters (see hwmatch.telemetry).
METRIC_PRESETS = ("dcgm-energy", "dcgm-power", "kepler-energy", "rapl-energy")


#: Continuous ranges get this many grid points (``planning.space`` uses the same number).
DEFAULT_GRID_RESOLUTION = 5
#: At most this many values in one parameter's space (values, or a range's steps): it is listed when planned.
MAX_PARAMETER_VALUES = 100_000


class Range(ApiModel):
    """A numeric interval of a parameter; discretised by ``step`` or sampled continuously."""

    min: float = Field(description="Lower bound, inclusive.")
    max: float = Field(description="Upper bound, inclusive.")
    step: float | None = Field(default=None, gt=0, description="Grid spacing (linear ranges only).")
    log: bool = Field(default=False, description="Sample on a logarithmic scale (needs min > 0).")

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "message": "range.min must be <= range.max"},
                {"rule": "!self.log || self.min > 0", "message": "a log range needs min > 0"},
                {"rule": "!self.log || !has(self.step)", "message": "step cannot be combined with log: true"},
            ]
        }
    }

    @model_validator(mode="after")
    def _bounds(self) -> "Range":
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must be <= max ({self.max:g}); swap them or fix the bound")
        if self.log and self.min <= 0:
            raise ValueError(f"log: true needs min > 0 (got min={self.min:g}); use a positive lower bound or log: false")
        if self.log and self.step is not None:
            raise ValueError("step cannot be combined with log: true; drop one of them")
        if self.step is not None and (self.max - self.min) / self.step + 1 > MAX_PARAMETER_VALUES:
            raise ValueError(f"range [{self.min:g}, {self.max:g}] with step {self.step:g} has "
                             f"{(self.max - self.min) / self.step + 1:.3g} values; at most {MAX_PARAMETER_VALUES} "
                             "are allowed: use a larger step, or no step (continuous)")
        return self


class Parameter(ApiModel):
    """One tunable input of the asset: exactly one of ``values`` or ``range``."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, max_length=63, description="Parameter name as the asset reads it.")
    type: ParameterType = Field(description="int, float or categorical.")
    values: list[Scalar] | None = Field(default=None, min_length=1, max_length=1000, description="The allowed values.")
    range: Range | None = Field(default=None, description="A numeric interval (int or float parameters).")
    description: str | None = Field(default=None, description="What the parameter does, for people.")

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            # `values` holds mixed scalars, which CEL cannot see (untyped), so "exactly one of" is an
            # OpenAPI oneOf of required fields rather than a CEL rule.
            "oneOf": [{"required": ["values"]}, {"required": ["range"]}],
            "x-kubernetes-validations": [
                {"rule": "self.type != 'categorical' || !has(self.range)", "message": "a categorical parameter takes values, not range"},
            ],
        }
    }

    @model_validator(mode="after")
    def _one_of(self) -> "Parameter":
        if (self.values is None) == (self.range is None):
            raise ValueError(f"parameter {self.name!r}: set exactly one of 'values' or 'range'")
        if self.type == "categorical" and self.range is not None:
            raise ValueError(f"parameter {self.name!r}: a categorical parameter takes 'values', not 'range'")
        if self.values is not None and self.type != "categorical":
            bad = [v for v in self.values if isinstance(v, (str, bool)) or (self.type == "int" and not float(v).is_integer())]
            if bad:
                raise ValueError(
                    f"parameter {self.name!r} of type {self.type} has non-{self.type} values {bad}; "
                    "fix the values or use type: categorical"
                )
            if self.type == "int":
                self.__dict__["values"] = [int(v) for v in self.values]
        if self.values is not None and len(set(map(str, self.values))) != len(self.values):
            raise ValueError(f"parameter {self.name!r} lists a value twice")
        if self.type == "int" and self.range is not None:
            if not (float(self.range.min).is_integer() and float(self.range.max).is_integer()):
                raise ValueError(f"parameter {self.name!r} of type int needs integer range bounds")
        return self

    def contains(self, value: Scalar) -> bool:
        """Whether ``value`` lies in this parameter's space."""
        if self.values is not None:
            if self.type == "categorical":
                return str(value) in {str(v) for v in self.values}
            return isinstance(value, (int, float)) and not isinstance(value, bool) and any(
                math.isclose(float(value), float(v)) for v in self.values
            )
        assert self.range is not None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        return self.range.min <= float(value) <= self.range.max

    def grid_size(self, resolution: int = DEFAULT_GRID_RESOLUTION) -> int:
        """How many grid points this parameter has (an upper bound: the planner drops duplicates)."""
        if self.values is not None:
            return len(self.values)
        assert self.range is not None
        r = self.range
        if r.step is not None:
            return int((r.max - r.min) / r.step + 1e-9) + 1
        if self.type == "int":
            return int(min(r.max - r.min + 1, resolution))
        return resolution

    def describe_space(self) -> str:
        if self.values is not None:
            return "one of " + ", ".join(map(str, self.values))
        assert self.range is not None
        return f"{self.type} in [{self.range.min:g}, {self.range.max:g}]" + (" (log)" if self.range.log else "")


#: The placeholders a PromQL template may use (``telemetry.promql.PLACEHOLDERS`` describes each).
PROMQL_PLACEHOLDERS = ("namespace", "pod", "node", "window", "window_seconds", "duration_seconds",
                       "pod_selector", "node_selector")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MetricSpec(ApiModel):
    """A metric the asset reports (``harness``) or that is read from Prometheus."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, max_length=63, description="Metric name, e.g. latency_p99_ms.")
    source: MetricSource = Field(default="harness", description="harness (the trial's JSON result) or prometheus.")
    goal: MetricGoal | None = Field(default=None, description="minimize or maximize, when the metric has a direction.")
    unit: str | None = Field(default=None, description="Unit of the values, for people (ms, J, W, 1/s).")
    query: str | None = Field(default=None, description="PromQL template (source: prometheus).")
    preset: Literal["dcgm-energy", "dcgm-power", "kepler-energy", "rapl-energy"] | None = Field(
        default=None, description="A named PromQL template (source: prometheus)."
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.source != 'prometheus' || (has(self.query) != has(self.preset))",
                    "message": "a prometheus metric needs exactly one of query or preset",
                },
                {
                    "rule": "self.source == 'prometheus' || (!has(self.query) && !has(self.preset))",
                    "message": "query and preset apply only to source: prometheus",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _source(self) -> "MetricSpec":
        if self.source == "prometheus" and (self.query is None) == (self.preset is None):
            raise ValueError(f"metric {self.name!r} with source: prometheus needs exactly one of 'query' or 'preset'")
        if self.source == "harness" and (self.query is not None or self.preset is not None):
            raise ValueError(f"metric {self.name!r}: 'query' and 'preset' apply only to source: prometheus")
        if self.query is not None:
            unknown = sorted(set(_PLACEHOLDER.findall(self.query)) - set(PROMQL_PLACEHOLDERS))
            if unknown:
                raise ValueError(f"metric {self.name!r}: unknown placeholder(s) "
                                 f"{', '.join('{' + u + '}' for u in unknown)} in query; "
                                 f"known: {', '.join('{' + k + '}' for k in PROMQL_PLACEHOLDERS)}")
        return self


#: A serving trial's offered rate (requests/s), a metric: a replica is never sized beyond the rate it was measured at.
OFFERED_RATE_METRIC = "offered_rate_per_s"
#: The units a server's latency histogram may be kept in, and their size in milliseconds.
LATENCY_UNITS_MS = {"seconds": 1000.0, "milliseconds": 1.0, "microseconds": 0.001}
_PATH = r"^/[^\s]*$"


class ServingRequest(ApiModel):
    """The one request the load generator sends, again and again, at the trial's rate."""

    method: Literal["GET", "POST", "PUT"] = Field(default="POST", description="HTTP method.")
    path: str = Field(pattern=_PATH, max_length=2048, description="Path (and query) on the server, e.g. /v1/predict.")
    content_type: str = Field(default="application/json", max_length=255, description="Content-Type of the body.")
    body: str | None = Field(default=None, max_length=1 << 20, description="The request body, sent as written.")


class ServingLoad(ApiModel):
    """How a serving trial loads the server: one constant, open-loop rate per trial, read from a parameter.

    The rate is a parameter of the asset, not a list here: the planner then
    makes one trial — one row of the dataset — per rate, and the surrogates
    learn latency as a function of the load, like any other parameter.
    """

    rate_parameter: str = Field(
        default="requests_per_second", pattern=IDENTIFIER_PATTERN, max_length=63,
        description="The parameter (in spec.parameters) whose value is a trial's offered rate, in requests per second; "
                    "the server does not receive it.",
    )
    duration: str = Field(default="10s", pattern=DURATION_PATTERN, description="Measured phase of a trial, e.g. 10s.")
    warmup: str = Field(default="2s", pattern=DURATION_PATTERN,
                        description="Load at the same rate before the measured phase, not recorded.")
    request_timeout: str = Field(default="5s", pattern=DURATION_PATTERN,
                                 description="A response slower than this counts as an error.")
    image: str | None = Field(
        default=None, max_length=1024,
        description="In a cluster: the load Job's image, one with hwmatch-bench and vegeta (hwmatch's benchmark "
                    "image). Default: spec.image, right for the built-in server; set it for a server image of your own.")

    @property
    def duration_seconds(self) -> float:
        return parse_duration(self.duration)

    @property
    def warmup_seconds(self) -> float:
        return parse_duration(self.warmup)

    @property
    def request_timeout_seconds(self) -> float:
        return parse_duration(self.request_timeout)

    @model_validator(mode="after")
    def _positive(self) -> "ServingLoad":
        for name in ("duration", "request_timeout"):
            if parse_duration(getattr(self, name)) <= 0:
                raise ValueError(f"load.{to_camel(name)} must be longer than 0, got {getattr(self, name)!r}")
        return self


class ServingSpec(ApiModel):
    """A model server: a trial starts it with the parameters, loads it at one rate, and measures it from both sides."""

    port: int = Field(ge=1, le=65535, description="The port the server listens on (also given as $HWMATCH_SERVING_PORT).")
    readiness_path: str = Field(default="/healthz", pattern=_PATH, max_length=2048,
                                description="Answers 200 once the server can serve.")
    readiness_timeout: str = Field(default="2m", pattern=DURATION_PATTERN, description="Longest wait for readiness.")
    metrics_path: str = Field(default="/metrics", pattern=_PATH, max_length=2048,
                              description="Where Prometheus scrapes the server.")
    latency_histogram: str | None = Field(
        default=None, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=255,
        description="The server's request latency histogram (a Prometheus histogram's name, without _bucket): "
                    "server-side percentiles come from it.",
    )
    latency_unit: Literal["seconds", "milliseconds", "microseconds"] = Field(
        default="seconds", description="The unit of the histogram's le buckets.")
    request: ServingRequest
    load: ServingLoad = Field(default_factory=ServingLoad)
    host_network: bool = Field(
        default=False,
        description="In a cluster: run the server and its load generator in the node's network namespace "
                    "(hostNetwork; the port is then reserved on the node, one server per node at a time). For "
                    "clusters whose pod network the nodes cannot reach (no route from the kubelet's probes or "
                    "Prometheus to pod IPs); elsewhere leave it false and the server gets a pod IP.",
    )

    @property
    def readiness_timeout_seconds(self) -> float:
        return parse_duration(self.readiness_timeout)


class InstanceFeature(ApiModel):
    """An input that describes the problem instance (not chosen by the user), e.g. a data size."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, max_length=63,
                      description="Feature name, as the asset reads it from HWMATCH_INSTANCE.")
    description: str | None = Field(default=None, description="What the feature measures, for people.")
    values: list[str] | None = Field(
        default=None, min_length=1, max_length=1000,
        description="A categorical feature's names (a model, a scenario): trials, sweeps and recommendations give "
        "the index of the name in this list (0, 1, ...), as instance values are numbers.",
    )


class AIAssetSpec(SpecModel):
    """What to run for one trial, the parameters it takes, and the metrics it reports."""

    image: str | None = Field(default=None, description="Container image of the benchmark (cluster runs).")
    command: list[str] = Field(min_length=1, description="Entry point; it reads HWMATCH_PARAMS and prints one JSON result.")
    args: list[str] = Field(default_factory=list, description="Arguments after the command.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for every trial.")
    parameters: list[Parameter] = Field(default_factory=list, max_length=64,
                                        description="The tunable inputs: the space a sweep samples.")
    metrics: list[MetricSpec] = Field(min_length=1, max_length=64, description="What each trial measures.")
    instance_features: list[InstanceFeature] = Field(
        default_factory=list, max_length=64,
        description="Inputs that describe the problem instance (not chosen), which sweeps and requests give values for.")
    serving: ServingSpec | None = Field(
        default=None, description="A model server benchmarked under load (docs/serving.md); without it, a batch trial.")
    prior_from: list[ObjectRef] = Field(
        default_factory=list, max_length=16,
        description="Other assets whose trials inform this one's platform effects (relative speed, memory, power) "
        "for platforms with few or no trials of this asset (docs/transfer.md): their trials in the local store, or "
        "their BenchmarkTrials in the recommendation's namespace.")

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.parameters.all(p, self.parameters.exists_one(q, q.name == p.name))",
                 "message": "parameter names must be unique"},
                {"rule": "self.metrics.all(m, self.metrics.exists_one(q, q.name == m.name))",
                 "message": "metric names must be unique"},
            ]
        }
    }

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"env variable name(s) {bad} are not valid: letters, digits and '_', not starting "
                             "with a digit (a C identifier)")
        return value

    @field_validator("parameters")
    @classmethod
    def _unique_params(cls, value: list[Parameter]) -> list[Parameter]:
        _check_unique([p.name for p in value], "parameter")
        return value

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, value: list[MetricSpec]) -> list[MetricSpec]:
        _check_unique([m.name for m in value], "metric")
        return value

    @model_validator(mode="after")
    def _rate_parameter(self) -> "AIAssetSpec":
        if self.serving is None:
            return self
        name = self.serving.load.rate_parameter
        field = "spec.serving.load.rateParameter"
        found = next((p for p in self.parameters if p.name == name), None)
        if found is None:
            raise ValueError(f"{field}: {name!r} is not in spec.parameters; add the offered rates as a parameter, "
                             f"e.g. {{name: {name}, type: int, values: [20, 100, 200]}}")
        lowest = found.range.min if found.range is not None else min(
            (float(v) for v in found.values or [] if not isinstance(v, (str, bool))), default=0.0)
        if found.type == "categorical" or lowest <= 0:
            raise ValueError(f"{field}: parameter {name!r} must be an int or float parameter of positive rates "
                             f"(requests per second); it is {found.type} in {found.describe_space()}")
        return self

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{what} name {n!r} appears twice; names must be unique")
        seen.add(n)


class AIAssetStatus(StatusBase):
    """Whether the asset can run, and how many of its trials have ended (written by the operator)."""

    trials: int | None = Field(default=None, description="Finished trials recorded for this asset.")


class AIAsset(ApiModel):
    """An AI asset to benchmark: what to run, its parameter space and the metrics it reports."""

    api_version: Literal["hwmatch.dev/v1alpha1"] = API_VERSION
    kind: Literal["AIAsset"] = "AIAsset"
    metadata: ObjectMeta
    spec: AIAssetSpec
    status: AIAssetStatus | None = None

    @model_validator(mode="after")
    def _label_name(self) -> "AIAsset":
        check_label_name(self.metadata, "AIAsset")
        return self
