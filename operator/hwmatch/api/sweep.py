"""``BenchmarkSweep`` (where and how much to benchmark) and the ``BenchmarkTrial`` objects it creates."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hwmatch.api.asset import Scalar
from hwmatch.api.base import (
    API_VERSION,
    DURATION_PATTERN,
    ApiModel,
    ObjectMeta,
    ObjectRef,
    SpecModel,
    StatusBase,
    check_dns_label,
    check_label_name,
    parse_duration,
)

#: At most this many parameter combinations per platform (``sampling.budget``).
MAX_BUDGET = 100_000
#: At most this many trials in one sweep's plan (combinations × platforms × instances × repetitions).
MAX_PLAN_TRIALS = 100_000
#: At most this many points in a grid sweep's full grid (it is listed before a budget picks from it).
MAX_GRID_POINTS = 100_000

SamplingStrategy = Literal["grid", "random", "latin-hypercube", "adaptive"]
Quantity = int | float | str


class Toleration(ApiModel):
    """The pod this Toleration is attached to tolerates any taint that matches the triple <key,value,effect> using
    the matching operator <operator> (as in a Pod spec)."""

    key: str | None = Field(default=None, description=(
        "Key is the taint key that the toleration applies to. Empty means match all taint keys. If the key is empty, "
        "operator must be Exists; this combination means to match all values and all keys."))
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description=(
        "Operator represents a key's relationship to the value. Valid operators are Exists and Equal. Defaults to "
        "Equal. Exists is equivalent to wildcard for value, so that a pod can tolerate all taints of a particular "
        "category."))
    value: str | None = Field(default=None, description=(
        "Value is the taint value the toleration matches to. If the operator is Exists, the value should be empty, "
        "otherwise just a regular string."))
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(default=None, description=(
        "Effect indicates the taint effect to match. Empty means match all taint effects. When specified, allowed "
        "values are NoSchedule, PreferNoSchedule and NoExecute."))
    toleration_seconds: int | None = Field(default=None, description=(
        "TolerationSeconds represents the period of time the toleration (which must be of effect NoExecute, otherwise "
        "this field is ignored) tolerates the taint. By default, it is not set, which means tolerate the taint "
        "forever (do not evict). Zero and negative values will be treated as 0 (evict immediately) by the system."))


class Resources(ApiModel):
    """Compute resources of the trial's container, as in a Pod spec (quantities like "4", 16Gi, 500m).
    More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"""

    limits: dict[str, Quantity] = Field(default_factory=dict, description=(
        "Limits describes the maximum amount of compute resources allowed. "
        "More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"))
    requests: dict[str, Quantity] = Field(default_factory=dict, description=(
        "Requests describes the minimum amount of compute resources required. If Requests is omitted for a "
        "container, it defaults to Limits if that is explicitly specified, otherwise to an implementation-defined "
        "value. Requests cannot exceed Limits. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"))

    @field_validator("limits", "requests")
    @classmethod
    def _quantities(cls, value: dict[str, Quantity]) -> dict[str, Quantity]:
        from kubernetes.utils import parse_quantity

        for name, quantity in value.items():
            try:
                parse_quantity(quantity)
            except (ValueError, TypeError, ArithmeticError):
                raise ValueError(f"{name}: {quantity!r} is not a Kubernetes quantity (e.g. 2, 500m, 16Gi)") from None
        return value


class Platform(ApiModel):
    """A hardware platform: a node pool in a cluster, or a CPU set of this machine in local runs."""

    name: str = Field(max_length=63, description="Platform name (a DNS-1123 label), e.g. gpu-l4, cpu-2core.")
    node_selector: dict[str, str] = Field(default_factory=dict, description=(
        "NodeSelector is a selector which must be true for the trial pods to fit on a node: they are scheduled only on "
        "nodes with these labels. More info: https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/"))
    tolerations: list[Toleration] = Field(default_factory=list, description="If specified, the trial pods' tolerations.")
    resources: Resources = Field(default_factory=Resources, description=(
        "Compute resources required by the trial's container. "
        "More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"))
    cost_per_hour: float | None = Field(default=None, ge=0, description="Price of one replica per hour.")
    features: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Numeric or categorical descriptors (vcpus, accelerator, tdpWatts...) the models learn from.",
    )
    cpus: list[int] | None = Field(
        default=None, min_length=1, description="Local runs: CPU ids the trial process is pinned to."
    )
    threads: int | None = Field(default=None, ge=1, description="Local runs: thread cap (OMP_NUM_THREADS etc.).")
    power_watts: float | None = Field(
        default=None, gt=0, description="Nominal power draw, used for energy when no power metric is measured."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns_label(value, "platform name")

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if any(c < 0 for c in value):
                raise ValueError("CPU ids must be >= 0")
            if len(set(value)) != len(value):
                raise ValueError("a CPU id appears twice")
        return value


class Sampling(ApiModel):
    """Which parameter combinations to measure, how many, and how often each."""

    strategy: SamplingStrategy = Field(default="grid", description="grid, random, latin-hypercube or adaptive.")
    budget: int | None = Field(
        default=None, ge=1, le=MAX_BUDGET, description="Parameter combinations per platform (grid: all when unset)."
    )
    repetitions: int = Field(default=1, ge=1, le=100, description="Runs of each combination.")
    seed: int = Field(default=0, ge=0, description="Random seed; a sweep's trials are a function of it.")
    initial: int | None = Field(
        default=None, ge=1, description="adaptive: size of the initial space-filling design per platform."
    )
    batch_size: int | None = Field(default=None, ge=1, description="adaptive: trials chosen per round.")

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.strategy == 'grid' || has(self.budget)",
                 "message": "random, latin-hypercube and adaptive sampling need a budget"},
                {"rule": "!has(self.initial) || !has(self.budget) || self.initial <= self.budget",
                 "message": "initial must be <= budget"},
            ]
        }
    }

    @model_validator(mode="after")
    def _budget(self) -> "Sampling":
        if self.strategy != "grid" and self.budget is None:
            raise ValueError(f"strategy {self.strategy!r} needs a budget (number of parameter combinations per platform)")
        if self.initial is not None and self.budget is not None and self.initial > self.budget:
            raise ValueError(f"initial ({self.initial}) must be <= budget ({self.budget})")
        return self


class BenchmarkSweepSpec(SpecModel):
    """Where to benchmark an asset (the platforms) and how much (the sampling, repetitions and limits)."""

    asset_ref: ObjectRef = Field(description="The AIAsset to benchmark, in the same namespace.")
    platforms: list[Platform] = Field(min_length=1, max_length=64, description="The hardware to measure it on.")
    sampling: Sampling = Field(default_factory=Sampling, description="Which parameter combinations to measure.")
    parallelism: int = Field(default=1, ge=1, description="Trials running at once across the sweep.")
    parallelism_per_platform: int = Field(default=1, ge=1, description="Trials running at once on one platform.")
    trial_timeout: str = Field(default="10m", pattern=DURATION_PATTERN, description="Per trial, e.g. 90s, 10m.")
    backoff_limit: int = Field(default=0, ge=0, le=10, description="Retries of a failed trial.")
    instances: list[dict[str, float]] = Field(
        default_factory=list, max_length=1000, description="Values of the asset's instance features to benchmark on."
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.platforms.all(p, self.platforms.exists_one(q, q.name == p.name))",
                 "message": "platform names must be unique"},
            ]
        }
    }

    @field_validator("trial_timeout")
    @classmethod
    def _positive_timeout(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError(f"{value!r}: a trial timeout must be longer than 0 (every trial would time out)")
        return value

    @field_validator("platforms")
    @classmethod
    def _unique(cls, value: list[Platform]) -> list[Platform]:
        names = [p.name for p in value]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"platform names must be unique; repeated: {sorted(dup)}")
        return value

    @property
    def trial_timeout_seconds(self) -> float:
        return parse_duration(self.trial_timeout)

    def platform(self, name: str) -> Platform:
        for p in self.platforms:
            if p.name == name:
                return p
        raise KeyError(name)


def plan_size(parameters: "list[Any]", spec: BenchmarkSweepSpec) -> tuple[int, int]:
    """(grid points, trials) of a sweep's whole plan over an asset's ``parameters``, without listing it."""
    grid = math.prod(p.grid_size() for p in parameters) if parameters else 1
    sampling = spec.sampling
    combinations = sampling.budget if sampling.budget is not None else grid
    if sampling.strategy == "grid":
        combinations = min(combinations, grid)
    return grid, combinations * len(spec.platforms) * max(len(spec.instances), 1) * sampling.repetitions


def plan_problems(parameters: "list[Any]", spec: BenchmarkSweepSpec) -> list[tuple[str, str]]:
    """(field, message) for a plan beyond :data:`MAX_GRID_POINTS` or :data:`MAX_PLAN_TRIALS`."""
    grid, trials = plan_size(parameters, spec)
    out = []
    if spec.sampling.strategy == "grid" and grid > MAX_GRID_POINTS:
        out.append(("spec.sampling", f"the grid has {grid:.3g} points; at most {MAX_GRID_POINTS} can be planned: "
                                     "give parameters fewer values, or use random or latin-hypercube with a budget"))
    if trials > MAX_PLAN_TRIALS:
        out.append(("spec.sampling", f"the plan has {trials:.3g} trials (combinations × platforms × instances × "
                                     f"repetitions); at most {MAX_PLAN_TRIALS} are allowed: lower the budget, "
                                     "the repetitions or the grid"))
    return out


SweepPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class PlatformCounts(ApiModel):
    """One platform's trials by phase."""

    succeeded: int = Field(default=0, description="Trials that measured every declared metric.")
    failed: int = Field(default=0, description="Trials that ended without a result.")
    running: int = Field(default=0, description="Trials whose Job runs.")
    pending: int = Field(default=0, description="Trials not started yet.")


class BenchmarkSweepStatus(StatusBase):
    """The sweep's trials by phase and platform, and its state (written by the operator, or hwmatch run locally)."""

    phase: SweepPhase | None = Field(default=None, description=(
        "Pending (nothing started), Running, Succeeded (every trial ended, one succeeded) or Failed (every trial "
        "failed, or the spec cannot run)."))
    total: int | None = Field(default=None, description="Trials planned.")
    succeeded: int = Field(default=0, description="Trials that measured every declared metric.")
    failed: int = Field(default=0, description="Trials that ended without a result.")
    running: int = Field(default=0, description="Trials whose Job runs.")
    pending: int = Field(default=0, description="Trials not started yet.")
    progress: str | None = Field(default=None, description="finished/total, for kubectl.")
    platforms: dict[str, PlatformCounts] = Field(default_factory=dict, description="The counts per platform, by name.")
    start_time: datetime | None = Field(default=None, description="When the first trial started.")
    completion_time: datetime | None = Field(default=None, description="When the last trial ended.")


class BenchmarkSweep(ApiModel):
    """A benchmark campaign: an asset measured on several platforms over sampled parameter combinations."""

    api_version: Literal["hwmatch.dev/v1alpha1"] = API_VERSION
    kind: Literal["BenchmarkSweep"] = "BenchmarkSweep"
    metadata: ObjectMeta
    spec: BenchmarkSweepSpec
    status: BenchmarkSweepStatus | None = None

    @model_validator(mode="after")
    def _label_name(self) -> "BenchmarkSweep":
        check_label_name(self.metadata, "BenchmarkSweep")
        return self


TrialPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class BenchmarkTrialSpec(ApiModel):
    """What one trial measures (written by the operator; the trial's name is a hash of it)."""

    sweep_ref: ObjectRef = Field(description="The sweep it belongs to (a verification run: the sweep of its platform).")
    asset_ref: ObjectRef = Field(description="The AIAsset it runs.")
    platform: str = Field(description="The platform it runs on (a sweep's platforms[].name).")
    parameters: dict[str, Scalar] = Field(default_factory=dict, description="The asset's parameters, by name.")
    instance: dict[str, float] = Field(default_factory=dict, description="The instance features' values, by name.")
    repetition: int = Field(default=0, ge=0, description="Which run of this combination it is, from 0.")


class BenchmarkTrialStatus(StatusBase):
    """What the trial measured, or why it failed, and where it ran."""

    phase: TrialPhase | None = Field(default=None, description="Pending, Running, Succeeded or Failed.")
    reason: str | None = Field(default=None, description="Why it failed: Timeout, Crashed, OOMKilled, Unschedulable, ...")
    message: str | None = Field(default=None, description="What went wrong, or what is missing (a Prometheus metric).")
    metrics: dict[str, float] = Field(default_factory=dict, description="The measured metrics, by name.")
    attempts: int = Field(default=0, description="Attempts made (pods of its Job; retries within backoffLimit).")
    start_time: datetime | None = Field(default=None, description="When its Job started.")
    completion_time: datetime | None = Field(default=None, description="When it ended.")
    host: dict[str, Any] = Field(default_factory=dict, description="Where it ran.")
    log_tail: str | None = Field(default=None, description="Last lines of output of a failed trial.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="Seconds from startTime to completionTime, once it ended (for kubectl get).")
    summary: str | None = Field(
        default=None, description="What it found, in one line for kubectl get: its metrics, or why it failed.")


class BenchmarkTrial(ApiModel):
    """One measurement: an asset on one platform with one parameter combination (created by the operator)."""

    api_version: Literal["hwmatch.dev/v1alpha1"] = API_VERSION
    kind: Literal["BenchmarkTrial"] = "BenchmarkTrial"
    metadata: ObjectMeta
    spec: BenchmarkTrialSpec
    status: BenchmarkTrialStatus | None = None
