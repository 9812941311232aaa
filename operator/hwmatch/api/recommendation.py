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
    min: float | None = Field(default=None, description="Lowest value allowed, inclusive.")
    max: float | None = Field(default=None, description="Highest value allowed, inclusive.")

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

    minimize: str | None = Field(default=None, pattern=IDENTIFIER_PATTERN, description="A metric to make as small as possible.")
    maximize: str | None = Field(default=None, pattern=IDENTIFIER_PATTERN, description="A metric to make as large as possible.")
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
    """A load to serve: replicas of the chosen platform are sized so that their throughput covers it."""

    requests_per_second: float = Field(gt=0, description="Load to serve; replicas are sized to cover it.")
    max_replicas: int = Field(default=64, ge=1, description="Upper bound on replicas of one platform.")


class Budget(ApiModel):
    """A spending limit on the recommended deployment."""

    max_cost_per_hour: float = Field(gt=0, description="Most the recommendation may cost per hour, all replicas together.")


class Verify(ApiModel):
    """Measure the chosen configuration before trusting it; on a broken requirement, learn from the runs and re-solve."""

    repetitions: int = Field(default=3, ge=1, le=20, description="Runs of the chosen configuration in each round.")
    rounds: int = Field(
        default=3, ge=1, le=10,
        description="Most choices verified. When a round's runs break a requirement, they join the training data, the "
        "recommendation is solved again and its new choice is verified, until one holds or the rounds are spent.",
    )


class HWRecommendationSpec(SpecModel):
    """The requirements: which asset, the constraints and the objective, a load to serve, a budget, a confidence."""

    asset_ref: ObjectRef = Field(description="The AIAsset to recommend hardware for, in the same namespace.")
    sweep_refs: list[ObjectRef] = Field(
        default_factory=list, description="Sweeps whose trials to learn from (default: every sweep of the asset)."
    )
    platforms: list[str] = Field(default_factory=list, description="Restrict the choice to these platforms.")
    constraints: list[Constraint] = Field(
        default_factory=list, description="Bounds on metrics that the choice must meet, all together at the confidence.")
    objective: Objective = Field(default_factory=lambda: Objective(minimize="cost_per_hour"),
                                 description="What to optimise among the candidates that meet the constraints "
                                 "(default: minimize cost_per_hour).")
    throughput: Throughput | None = Field(default=None, description="A load to serve, which sizes the replicas.")
    budget: Budget | None = Field(default=None, description="A spending limit.")
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

    value: float = Field(description="The predicted value.")
    lower: float | None = Field(default=None, description="Lower end of the interval; unset when unbounded.")
    upper: float | None = Field(default=None, description="Upper end of the interval; unset when unbounded.")
    level: float | None = Field(
        default=None, gt=0, lt=1,
        description="Two-sided level of [lower, upper]: the interval holds the measured value with this probability, "
        "each bound alone with (1 + level) / 2. It is the per-bound level 1 - 2(1 - confidence)/k for k requirements, "
        "not the joint confidence (status.confidence). It is kept on every interval, not once per status, so that a "
        "value read on its own (one choice, one Pareto point, a verify report) still says what its bounds mean; "
        "within one status all levels are equal.",
    )


class Choice(ApiModel):
    """A candidate answer: a platform, the asset's parameters and a replica count, with what is predicted for it."""

    platform: str = Field(description="The platform (a sweep's platforms[].name).")
    parameters: dict[str, Scalar] = Field(default_factory=dict, description="The asset's parameters, by name.")
    replicas: int = Field(default=1, description="Replicas to run (sized by spec.throughput; else 1).")
    predicted: dict[str, PredictedValue] = Field(
        default_factory=dict, description="The predicted metrics, by name, each with its interval.")
    cost_per_hour: float | None = Field(default=None, description="Cost of all replicas per hour, where platforms have a price.")
    objective: float | None = Field(default=None, description="The objective's value for this candidate.")
    novelty: float | None = Field(
        default=None,
        description="Distance to the nearest measured configuration (encoded, range-scaled inputs) over the largest "
        "distance calibration rows had to their training data. Above 1 the candidate lies outside the sampled region "
        "and its intervals were widened by this factor; measuring it (hwmatch verify) is the way to trust it.",
    )
    platform_trials: int | None = Field(
        default=None, ge=0,
        description="Succeeded trials of this asset on this platform that the prediction rests on.")
    basis: str | None = Field(
        default=None,
        description="What the predictions rest on, e.g. 'based on 5 trials of this platform plus transfer' for a "
        "platform with few trials, predicted from the other platforms (docs/transfer.md).")


class ModelScore(ApiModel):
    """How well one metric's surrogate model predicts, by cross-validation over the trials."""

    family: str = Field(description="The model family chosen by cross-validation (gradient boosting, extra trees, ridge).")
    r2: float | None = Field(default=None, description="Cross-validated coefficient of determination (1 is perfect).")
    mape: float | None = Field(default=None, description="Cross-validated mean absolute percentage error.")
    trained_on_trials: int = Field(default=0, description="Succeeded trials the model learnt from.")


class SolverInfo(ApiModel):
    """What the optimiser did."""

    status: str = Field(description="The solver's outcome, e.g. OPTIMAL or INFEASIBLE.")
    wall_time_ms: float = Field(description="Time the solve took, in milliseconds.")
    candidates: int = Field(default=0, description="Candidates considered (platforms × parameter grid).")
    feasible_candidates: int = Field(default=0, description="Candidates that meet every requirement.")


class Infeasibility(ApiModel):
    """Why no candidate meets the requirements."""

    constraints: list[str] = Field(default_factory=list, description="The constraints no candidate meets.")
    message: str = Field(default="", description="The reason in words, with the closest candidate.")


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
    message: str = Field(default="", description="The shortfall in words: how many more trials, and where.")


class VerificationCheck(ApiModel):
    """One metric of a verified choice: its requirement's bounds, what was predicted, what each run measured."""

    metric: str = Field(description="The metric (replicas × throughput for a throughput target).")
    min: float | None = Field(default=None, description="The requirement's lower bound, if any.")
    max: float | None = Field(default=None, description="The requirement's upper bound, if any.")
    predicted: PredictedValue | None = Field(default=None, description="What was predicted when the choice was made.")
    measured: list[float] = Field(default_factory=list, description="What each verification run measured.")
    met: bool | None = Field(default=None, description="Every run meets the bounds; unset for an unconstrained metric.")
    inside: bool | None = Field(
        default=None, description="Every run lies in the predicted interval; unset without a finite interval.")


VerificationPhase = Literal["Running", "Verified", "Failed"]


class VerificationRound(ApiModel):
    """One verified choice: where it ran, how it went."""

    round: int = Field(ge=1, description="The round's number, from 1.")
    platform: str = Field(description="The platform of the choice it verified.")
    parameters: dict[str, Scalar] = Field(default_factory=dict, description="The parameters of the choice it verified.")
    replicas: int = Field(default=1, description="The replicas of the choice it verified.")
    met: bool | None = Field(default=None, description="Every requirement held in every run; unset while running.")
    intervals_held: int = Field(default=0, description="Predicted intervals that held every run of this round.")
    intervals: int = Field(default=0, description="Predicted intervals compared with a measurement in this round.")


class Verification(ApiModel):
    """``spec.verify``'s progress: the round now (or last) verified, its checks, and the rounds before it."""

    phase: VerificationPhase = Field(description="Running, Verified or Failed.")
    reason: str = Field(
        default="Verifying", description="Verifying, RequirementsMet, RequirementBroken, RunFailed, RoundsSpent, "
        "NoAnswer (re-solved, nothing feasible), ChoiceChanged (the answer moved on, rounds spent).")
    round: int = Field(ge=1, description="Rounds taken so far (each verifies one choice).")
    choice: Choice = Field(description="The choice this round verifies, with the predictions made when it was chosen.")
    trials: list[str] = Field(default_factory=list, description="This round's verification BenchmarkTrials.")
    checks: list[VerificationCheck] = Field(default_factory=list, description="This round's judgement, one per metric.")
    history: list[VerificationRound] = Field(default_factory=list, description="Every round so far, this one last.")
    message: str = Field(default="", description="What the verification found, in words.")


RecommendationPhase = Literal["Pending", "Ready", "Infeasible", "InsufficientData", "Failed"]


class HWRecommendationStatus(StatusBase):
    """The answer: the choice, its alternatives and Pareto front, the models and the solver, or why there is none."""

    phase: RecommendationPhase | None = Field(
        default=None, description="Pending (no trials yet), Ready (answered), Infeasible, InsufficientData or Failed.")
    confidence: float | None = Field(
        default=None,
        description="The joint confidence this answer was made at (spec.confidence when solved): its requirements hold "
        "together with at least this probability. Each predicted interval names its own, per-bound level.",
    )
    recommendation: Choice | None = Field(default=None, description="The best candidate that meets every requirement.")
    alternatives: list[Choice] = Field(default_factory=list, description="The runners-up, best first (spec.alternatives).")
    pareto_front: list[Choice] = Field(
        default_factory=list, description="Feasible candidates no other beats on every constrained and objective metric.")
    models: dict[str, ModelScore] = Field(default_factory=dict, description="The surrogate model of each metric, by name.")
    solver: SolverInfo | None = Field(default=None, description="What the optimiser did.")
    infeasible: Infeasibility | None = Field(default=None, description="Phase Infeasible: the constraints no candidate meets.")
    insufficient: DataShortfall | None = Field(
        default=None, description="Phase InsufficientData: which metrics lack trials, how many more, and where.")
    dataset_hash: str | None = Field(default=None, description="A hash of the trials the answer was learnt from.")
    verification: Verification | None = Field(
        default=None, description="spec.verify: predicted against measured for the chosen configuration, per round.")

    def interval_levels(self) -> list[float]:
        """The distinct levels of the intervals this status reports (one for an answer; none if it predates levels)."""
        choices = [*([self.recommendation] if self.recommendation else []), *self.alternatives, *self.pareto_front]
        return sorted({p.level for c in choices for p in c.predicted.values() if p.level is not None})


class HWRecommendation(ApiModel):
    """A request for hardware: the requirements for an asset, answered with a platform, configuration and replicas."""

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
