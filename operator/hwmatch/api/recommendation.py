"""``HWRecommendation``: a user's requirements, and the chosen platform and configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hwmatch.api.asset import Scalar
from hwmatch.api.base import (
    API_VERSION,
    IDENTIFIER_PATTERN,
    ApiModel,
    ObjectMeta,
    ObjectRef,
    SpecModel,
    StatusBase,
)

#: Metrics the optimiser derives for every candidate, usable in constraints and objectives.
DERIVED_METRICS = ("cost_per_hour", "cost_per_1k_requests", "energy_per_request_j", "replicas")


class Constraint(ApiModel):
    """A bound on a metric; it must hold at the recommendation's ``confidence``."""

    metric: str = Field(pattern=IDENTIFIER_PATTERN, description="A metric of the asset or a derived one.")
    min: float | None = None
    max: float | None = None

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "a constraint needs min, max or both"},
                {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                 "message": "constraint min must be <= max"},
            ]
        }
    }

    @model_validator(mode="after")
    def _bounds(self) -> "Constraint":
        if self.min is None and self.max is None:
            raise ValueError(f"constraint on {self.metric!r} needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"constraint on {self.metric!r}: min ({self.min:g}) must be <= max ({self.max:g})")
        return self


class Objective(ApiModel):
    """What to optimise: exactly one of ``minimize``, ``maximize`` or ``weights`` (a weighted sum to minimise)."""

    minimize: str | None = Field(default=None, pattern=IDENTIFIER_PATTERN)
    maximize: str | None = Field(default=None, pattern=IDENTIFIER_PATTERN)
    weights: dict[str, float] | None = Field(
        default=None, description="metric -> weight; the weighted sum of normalised metrics is minimised (negative weight maximises)."
    )

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "(has(self.minimize) ? 1 : 0) + (has(self.maximize) ? 1 : 0) + (has(self.weights) ? 1 : 0) == 1",
                 "message": "set exactly one of minimize, maximize or weights"},
            ]
        }
    }

    @model_validator(mode="after")
    def _one(self) -> "Objective":
        given = [k for k in ("minimize", "maximize", "weights") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of 'minimize', 'maximize' or 'weights' (got {given or 'none'})")
        if self.weights is not None and not self.weights:
            raise ValueError("weights must name at least one metric")
        return self

    def terms(self) -> dict[str, float]:
        """The objective as metric -> sign/weight, to be minimised."""
        if self.minimize is not None:
            return {self.minimize: 1.0}
        if self.maximize is not None:
            return {self.maximize: -1.0}
        assert self.weights is not None
        return dict(self.weights)


class Throughput(ApiModel):
    requests_per_second: float = Field(gt=0, description="Load to serve; replicas are sized to cover it.")
    max_replicas: int = Field(default=64, ge=1, description="Upper bound on replicas of one platform.")


class Budget(ApiModel):
    max_cost_per_hour: float = Field(gt=0)


class Verify(ApiModel):
    """Measure the chosen configuration before trusting it; on a broken requirement, learn from the runs and re-solve."""

    repetitions: int = Field(default=3, ge=1, le=20, description="Runs of the chosen configuration in each round.")
    rounds: int = Field(
        default=3, ge=1, le=10,
        description="Most choices verified. When a round's runs break a requirement, they join the training data, the "
        "recommendation is solved again and its new choice is verified, until one holds or the rounds are spent.",
    )


class HWRecommendationSpec(SpecModel):
    asset_ref: ObjectRef
    sweep_refs: list[ObjectRef] = Field(
        default_factory=list, description="Sweeps whose trials to learn from (default: every sweep of the asset)."
    )
    platforms: list[str] = Field(default_factory=list, description="Restrict the choice to these platforms.")
    constraints: list[Constraint] = Field(default_factory=list)
    objective: Objective = Field(default_factory=lambda: Objective(minimize="cost_per_hour"))
    throughput: Throughput | None = None
    budget: Budget | None = None
    confidence: float = Field(
        default=0.9, ge=0.5, le=0.999,
        description="Joint confidence: all requirements (constraints and the throughput target) hold together with at "
        "least this probability. Each is checked on one end of an interval at a higher per-bound level "
        "(status: predicted.*.level).",
    )
    instance: dict[str, float] = Field(default_factory=dict, description="Fixed values of the asset's instance features.")
    fixed: dict[str, Scalar] = Field(default_factory=dict, description="Parameters fixed by the user.")
    alternatives: int = Field(default=3, ge=0, le=50, description="How many runner-up candidates to report.")
    resolution: int = Field(default=16, ge=2, le=1000, description="Points per continuous range in the candidate grid.")
    verify: Verify | None = Field(
        default=None, description="Run the chosen configuration as verification trials and report predicted against "
        "measured in status.verification (the operator as Jobs, hwmatch run locally).")


class PredictedValue(ApiModel):
    """A predicted metric: its value and, where known, its interval [lower, upper] with the level of that interval."""

    value: float
    lower: float | None = None
    upper: float | None = None
    level: float | None = Field(
        default=None, gt=0, lt=1,
        description="Two-sided level of [lower, upper]: the interval holds the measured value with this probability, "
        "each bound alone with (1 + level) / 2. It is the per-bound level 1 - 2(1 - confidence)/k for k requirements, "
        "not the joint confidence (status.confidence). It is kept on every interval, not once per status, so that a "
        "value read on its own (one choice, one Pareto point, a verify report) still says what its bounds mean; "
        "within one status all levels are equal.",
    )


class Choice(ApiModel):
    platform: str
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    replicas: int = 1
    predicted: dict[str, PredictedValue] = Field(default_factory=dict)
    cost_per_hour: float | None = None
    objective: float | None = None
    novelty: float | None = Field(
        default=None,
        description="Distance to the nearest measured configuration (encoded, range-scaled inputs) over the largest "
        "distance calibration rows had to their training data. Above 1 the candidate lies outside the sampled region "
        "and its intervals were widened by this factor; measuring it (hwmatch verify) is the way to trust it.",
    )


class ModelScore(ApiModel):
    family: str
    r2: float | None = None
    mape: float | None = None
    trained_on_trials: int = 0


class SolverInfo(ApiModel):
    status: str
    wall_time_ms: float
    candidates: int = 0
    feasible_candidates: int = 0


class Infeasibility(ApiModel):
    constraints: list[str] = Field(default_factory=list, description="The constraints no candidate meets.")
    message: str = ""


class DataShortfall(ApiModel):
    """Why a request cannot be answered yet: a requirement rests on a metric with too few trials for a finite bound.

    Split conformal gives a finite interval at level ``c`` only with at least
    ``c/(1-c)`` rows (9 at 0.9, 19 at 0.95); below that the bound is unbounded
    and no candidate can be shown to meet the requirement. It is not
    Infeasible (relax a number) nor Failed (fix the request): measuring more
    is the fix.
    """

    metrics: list[str] = Field(default_factory=list, description="Metrics whose intervals are unbounded at this level.")
    trials: int = Field(default=0, description="Trials the least-measured of those metrics was learnt from.")
    needed_trials: int = Field(default=0, description="Trials a finite bound at this level needs.")
    more_trials: int = Field(default=0, description="How many more succeeded trials would make the bounds finite.")
    platform: str | None = Field(
        default=None, description="Where to measure first: the platform of the best candidate by point prediction.")
    parameters: dict[str, Scalar] = Field(default_factory=dict, description="That candidate's parameters.")
    message: str = ""


class VerificationCheck(ApiModel):
    """One metric of a verified choice: its requirement's bounds, what was predicted, what each run measured."""

    metric: str
    min: float | None = None
    max: float | None = None
    predicted: PredictedValue | None = None
    measured: list[float] = Field(default_factory=list)
    met: bool | None = Field(default=None, description="Every run meets the bounds; unset for an unconstrained metric.")
    inside: bool | None = Field(
        default=None, description="Every run lies in the predicted interval; unset without a finite interval.")


VerificationPhase = Literal["Running", "Verified", "Failed"]


class VerificationRound(ApiModel):
    """One verified choice: where it ran, how it went."""

    round: int = Field(ge=1)
    platform: str
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    replicas: int = 1
    met: bool | None = Field(default=None, description="Every requirement held in every run; unset while running.")
    intervals_held: int = 0
    intervals: int = Field(default=0, description="Predicted intervals compared with a measurement in this round.")


class Verification(ApiModel):
    """``spec.verify``'s progress: the round now (or last) verified, its checks, and the rounds before it."""

    phase: VerificationPhase
    reason: str = Field(
        default="Verifying", description="Verifying, RequirementsMet, RequirementBroken, RunFailed, RoundsSpent, "
        "NoAnswer (re-solved, nothing feasible), ChoiceChanged (the answer moved on, rounds spent).")
    round: int = Field(ge=1, description="Rounds taken so far (each verifies one choice).")
    choice: Choice = Field(description="The choice this round verifies, with the predictions made when it was chosen.")
    trials: list[str] = Field(default_factory=list, description="This round's verification BenchmarkTrials.")
    checks: list[VerificationCheck] = Field(default_factory=list)
    history: list[VerificationRound] = Field(default_factory=list, description="Every round so far, this one last.")
    message: str = ""


RecommendationPhase = Literal["Pending", "Ready", "Infeasible", "InsufficientData", "Failed"]


class HWRecommendationStatus(StatusBase):
    phase: RecommendationPhase | None = None
    confidence: float | None = Field(
        default=None,
        description="The joint confidence this answer was made at (spec.confidence when solved): its requirements hold "
        "together with at least this probability. Each predicted interval names its own, per-bound level.",
    )
    recommendation: Choice | None = None
    alternatives: list[Choice] = Field(default_factory=list)
    pareto_front: list[Choice] = Field(default_factory=list)
    models: dict[str, ModelScore] = Field(default_factory=dict)
    solver: SolverInfo | None = None
    infeasible: Infeasibility | None = None
    insufficient: DataShortfall | None = Field(
        default=None, description="Phase InsufficientData: which metrics lack trials, how many more, and where.")
    dataset_hash: str | None = None
    verification: Verification | None = Field(
        default=None, description="spec.verify: predicted against measured for the chosen configuration, per round.")

    def interval_levels(self) -> list[float]:
        """The distinct levels of the intervals this status reports (one for an answer; none if it predates levels)."""
        choices = [*([self.recommendation] if self.recommendation else []), *self.alternatives, *self.pareto_front]
        return sorted({p.level for c in choices for p in c.predicted.values() if p.level is not None})


class HWRecommendation(ApiModel):
    api_version: Literal["hwmatch.dev/v1alpha1"] = API_VERSION
    kind: Literal["HWRecommendation"] = "HWRecommendation"
    metadata: ObjectMeta
    spec: HWRecommendationSpec
    status: HWRecommendationStatus | None = None


def describe_level(level: float) -> str:
    """``two-sided 80%``: how every printed interval names its level (CLI, report, infeasibility messages)."""
    return f"two-sided {level * 100:.3g}%"


def joint_confidence(spec: HWRecommendationSpec, status: HWRecommendationStatus) -> float:
    """The joint confidence an answer holds at: the one its status recorded, else (written before it was) the spec's."""
    return status.confidence if status.confidence is not None else spec.confidence


def interval_caption(spec: HWRecommendationSpec, status: HWRecommendationStatus) -> str:
    """The caption under printed intervals, naming both figures, since they differ.

    ``value [interval: two-sided 80% per bound] — requirements hold together
    with confidence 0.9``: the interval is at the per-bound level, the
    user's confidence is the joint one. A status written before levels were
    recorded says so rather than guess.
    """
    levels = status.interval_levels()
    interval = (" / ".join(describe_level(x) for x in levels) + " per bound") if levels else "level not recorded"
    return f"value [interval: {interval}] — requirements hold together with confidence {joint_confidence(spec, status):g}"
