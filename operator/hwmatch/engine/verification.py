"""Verifying a recommendation: run the chosen configuration, compare every metric with what was predicted.

Each run is a real trial of the asset's command. Two questions are answered
per metric (:func:`judge`), and they differ:

- does the *requirement* hold (``met``): every measured value meets the
  constraint's bounds; a throughput target is checked as replicas ×
  measured throughput;
- did the *prediction* hold (``inside``): every measured value lies in the
  predicted interval — for every predicted metric, constrained or not, since
  a requirement met by luck with a missed interval still says the model is
  wrong there.

Runs are kept as verification trials of the sweep whose platform they ran on
(locally :meth:`hwmatch.data.store.Store.add_verification`, in a cluster
``BenchmarkTrial`` objects labelled ``hwmatch.dev/verification``): they join
that sweep's training data, so the next answer learns from them, without
becoming part of the sweep's plan.

``spec.verify`` makes this a loop, the same for ``hwmatch run`` and the
operator (:func:`judge_round` and :func:`verification_step` are the policy,
the drivers only run trials and solve): verify the choice; judge the round
once its runs have ended; solve again with the runs (a verified choice wins
a tie on the objective); when a requirement broke, verify the new choice, for
at most ``rounds`` rounds.

:func:`next_run` is the closed loop's choice of what to measure next, given
every candidate's predictions and the runs so far: verify the choice at the
bounds, measure the most plausible candidate when the bounds admit none, and,
once a choice is measured to hold, spend what is left of the budget on the
candidates predicted to beat it. ``hwmatch evaluate --verify-budget`` drives
it with replayed runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Mapping, Sequence

import numpy as np

from hwmatch.api import (
    BenchmarkSweep,
    BenchmarkTrial,
    BenchmarkTrialStatus,
    Choice,
    HWRecommendation,
    HWRecommendationStatus,
    PredictedValue,
    Verification,
    VerificationCheck,
    VerificationRound,
    set_condition,
    set_state,
)
from hwmatch.api.base import RECONCILING, STALLED, ConditionStatus, State
from hwmatch.api.vocabulary import (
    LABEL_ASSET,
    LABEL_PLATFORM,
    LABEL_RECOMMENDATION,
    LABEL_VERIFICATION,
    SUCCEEDED,
    make_trial,
    trial_id,
)
from hwmatch.data.store import Store
from hwmatch.engine.sweeps import NoProgress, Progress, SweepError
from hwmatch.execution import Executor

if TYPE_CHECKING:
    from hwmatch.modeling import Prediction
    from hwmatch.optimize import Problem


def judge(recommendation: HWRecommendation, choice: Choice, measured: Sequence[Mapping[str, float]]) -> list[VerificationCheck]:
    """Predicted against measured for one choice's runs (their metrics), constraints first.

    Then a throughput target, as replicas × measured throughput against
    replicas × the per-replica prediction, then every other metric that was
    both predicted and measured.
    """
    from hwmatch.optimize import THROUGHPUT_METRIC

    def check(metric: str, low: float | None, high: float | None, predicted: PredictedValue | None,
              values: list[float]) -> VerificationCheck:
        met = None if low is None and high is None else all(
            (low is None or m >= low) and (high is None or m <= high) for m in values)
        inside = None if predicted is None or predicted.lower is None or predicted.upper is None else all(
            predicted.lower <= m <= predicted.upper for m in values)
        return VerificationCheck(metric=metric, min=low, max=high, predicted=predicted, measured=values, met=met,
                                 inside=inside)

    common = set.intersection(*(set(m) for m in measured)) if measured else set()
    checks: list[VerificationCheck] = []
    constrained = set()
    for c in recommendation.spec.constraints:
        if c.metric not in common:
            continue  # a derived metric (cost): nothing to measure
        constrained.add(c.metric)
        checks.append(check(c.metric, c.min, c.max, choice.predicted.get(c.metric), [m[c.metric] for m in measured]))
    target = recommendation.spec.throughput
    if target is not None and THROUGHPUT_METRIC in common:
        checks.append(check(f"{choice.replicas} × {THROUGHPUT_METRIC}", target.requests_per_second, None,
                            _scaled(choice.predicted.get(THROUGHPUT_METRIC), choice.replicas),
                            [choice.replicas * m[THROUGHPUT_METRIC] for m in measured]))
    for metric, predicted in choice.predicted.items():
        if metric not in constrained and metric in common:
            checks.append(check(metric, None, None, predicted, [m[metric] for m in measured]))
    return checks


def verify(
    store: Store, recommendation: HWRecommendation, executor: Executor, repetitions: int = 1,
    progress: Progress | None = None,
) -> HWRecommendation:
    """One round of verification of the stored answer: ``repetitions`` runs of its choice, judged; kept in the store.

    The round is the next one of the status's ``verification`` (its
    ``history`` counts every verification of the request, ``spec.verify``'s
    rounds and these alike), the runs are verification trials that join the
    training data, and the recommendation is returned, and stored, with the
    judged round (:func:`judge_round`). A failed run is reason ``RunFailed``.
    """
    best, sweep = _choice(store, recommendation)
    status = recommendation.status
    assert status is not None  # _choice checked it
    started = _start(recommendation, best, [sweep], status.verification, repetitions)
    results = _run(store, recommendation, sweep, started.trials, executor, progress, keep=True)
    running = status.model_copy(update={"verification": started.verification})
    runs = {t.metadata.name: r for t, r in zip(started.trials, results)}
    running.verification = judge_round(recommendation.model_copy(update={"status": running}), runs)
    verification_condition(running, recommendation.metadata.generation, asked=recommendation.spec.verify is not None)
    done = recommendation.model_copy(update={"status": running})
    store.put_recommendation(done)
    return done


# -- spec.verify: the loop ----------------------------------------------------------------------


@dataclass
class VerifyStep:
    """What :func:`verification_step` decided: the status's ``verification``, and the trials its round needs."""

    verification: Verification | None
    trials: list[BenchmarkTrial]


def judge_round(recommendation: HWRecommendation, runs: Mapping[str, BenchmarkTrialStatus]) -> Verification | None:
    """The status's verification, with a round whose runs have all ended judged; unchanged otherwise.

    Called before the recommendation is solved again with the round's runs:
    a verified choice then wins a tie on the objective in that solve
    (:func:`~hwmatch.engine.answer`), and :func:`verification_step` decides
    on the answer that learnt from the runs whether another round is due.
    All requirements met in every run is ``Verified``; a failed run, or a
    requirement broken, ``Failed`` (``RunFailed``, ``RequirementBroken``).
    """
    status = recommendation.status
    current = status.verification if status is not None else None
    if current is None or current.phase != "Running" or not all(n in runs for n in current.trials):
        return current
    ended = [runs[n] for n in current.trials]
    failed = next((r for r in ended if r.phase != SUCCEEDED), None)
    checks = [] if failed is not None else judge(recommendation, current.choice, [r.metrics for r in ended])
    met = failed is None and all(c.met is not False for c in checks)
    held = sum(c.inside is True for c in checks)
    compared = held + sum(c.inside is False for c in checks)
    history = [*current.history[:-1], current.history[-1].model_copy(update={
        "met": met, "intervals_held": held, "intervals": compared})]
    done = current.model_copy(update={"checks": checks, "history": history, "phase": "Failed"})
    if met:
        return done.model_copy(update={"phase": "Verified", "reason": "RequirementsMet", "message": (
            f"round {current.round}: every requirement held in {len(ended)} run(s); {held} of {compared} predicted "
            "intervals held")})
    if failed is not None:
        return done.model_copy(update={"reason": "RunFailed", "message": (
            f"round {current.round}: a verification run failed: {failed.reason}: {failed.message}")})
    broken = ", ".join(c.metric for c in checks if c.met is False)
    return done.model_copy(update={"reason": "RequirementBroken", "message": (
        f"round {current.round}: {broken} broken in the runs; they joined the training data")})


def verification_step(
    recommendation: HWRecommendation, sweeps: Sequence[BenchmarkSweep], runs: Mapping[str, BenchmarkTrialStatus],
) -> VerifyStep:
    """The next step of ``spec.verify`` for a recommendation solved from every finished run.

    ``recommendation.status`` is the answer, its ``verification`` the one
    :func:`judge_round` returned; ``runs`` the finished verification runs by
    name. A round's trials are named by the recommendation, the round and the
    run, so a restarted driver finds the runs it started. A new round starts
    on the current choice when there was none, after a broken requirement,
    or when the answer moved away from a verified choice (new trials), while
    ``spec.verify.rounds`` remain.
    """
    spec, status = recommendation.spec.verify, recommendation.status
    if spec is None or status is None:
        return VerifyStep(None, [])
    previous = judge_round(recommendation, runs)
    if previous is not None and previous.phase == "Running":
        return VerifyStep(previous, _round_trials(recommendation, previous.choice, sweeps, previous.round,
                                                  len(previous.trials)))
    choice = status.recommendation
    if previous is None:
        return _start(recommendation, choice, sweeps, None) if choice is not None else VerifyStep(None, [])
    if previous.reason in ("RequirementBroken", "NoAnswer"):  # verify what the runs taught the answer
        if choice is None:
            return VerifyStep(previous if previous.reason == "NoAnswer" else previous.model_copy(update={
                "reason": "NoAnswer", "message": f"{previous.message}; re-solved with them, the recommendation is "
                                                 f"{status.phase}: nothing left to verify"}), [])
        if previous.round >= spec.rounds:
            return VerifyStep(previous.model_copy(update={"reason": "RoundsSpent", "message": (
                f"{previous.message}; the {spec.rounds} round(s) of spec.verify.rounds are spent")}), [])
        return _start(recommendation, choice, sweeps, previous)
    if previous.reason == "RequirementsMet" and choice is not None and not _same(previous.choice, choice):
        resized = _resized(recommendation, previous, choice, runs)
        if resized is not None:
            return VerifyStep(resized, [])
        if previous.round >= spec.rounds:
            return VerifyStep(previous.model_copy(update={"reason": "ChoiceChanged", "message": (
                f"{previous.message}; the answer has moved to {choice.platform} {_values(choice)} since (new trials), "
                f"which is not verified: the {spec.rounds} round(s) of spec.verify.rounds are spent")}), [])
        return _start(recommendation, choice, sweeps, previous)
    return VerifyStep(previous, [])  # verified and still the answer, or ended for good (RunFailed, RoundsSpent, ...)


def _start(recommendation: HWRecommendation, choice: Choice, sweeps: Sequence[BenchmarkSweep],
           previous: Verification | None, repetitions: int | None = None) -> VerifyStep:
    """Round N+1 (1 without a previous one) on ``choice``: ``repetitions`` runs (default ``spec.verify``'s)."""
    round_ = previous.round + 1 if previous is not None else 1
    if repetitions is None:
        assert recommendation.spec.verify is not None
        repetitions = recommendation.spec.verify.repetitions
    trials = _round_trials(recommendation, choice, sweeps, round_, repetitions)
    history = [*(previous.history if previous else []),
               VerificationRound(round=round_, platform=choice.platform, parameters=choice.parameters,
                                 replicas=choice.replicas)]
    message = f"round {round_}: {len(trials)} run(s) of {choice.platform} {_values(choice)}"
    if previous is not None:
        message = f"{previous.message}; {message}"
    return VerifyStep(Verification(phase="Running", reason="Verifying", round=round_, choice=choice,
                                   trials=[t.metadata.name for t in trials], history=history, message=message), trials)


def verification_condition(status: HWRecommendationStatus, generation: int | None, *, asked: bool = True) -> None:
    """The ``Verified`` condition of a status with a ``verification``: Unknown while it runs, then True or False.

    True only while the verified choice is still the answer (``RequirementsMet``).
    With ``spec.verify`` (``asked``; ``hwmatch verify`` on a request without it
    only reports) the goal is a verified answer, so an answer is Ready
    only once verified: Reconciling while its runs go (``Verifying``), Stalled
    with the verification's reason when it ended otherwise (its rounds spent,
    a run failed, the namespace denied). A request without an answer keeps its own state.
    """
    v = status.verification
    if v is None:
        return
    value: ConditionStatus = "Unknown" if v.phase == "Running" else "True" if v.reason == "RequirementsMet" else "False"
    status.conditions = set_condition(status.conditions, "Verified", value, v.reason, v.message, generation)
    if asked and status.phase == "Ready" and value != "True":
        state: State = RECONCILING if value == "Unknown" else STALLED
        status.conditions = set_state(status.conditions, state, v.reason, v.message, generation)


def verify_spec(store: Store, recommendation: HWRecommendation, executor: Executor,
                progress: Progress | None = None) -> HWRecommendation:
    """``spec.verify`` locally: verify, and on a broken requirement re-solve and verify again, within the rounds.

    ``recommendation`` is as :func:`~hwmatch.engine.answer_stored` answered it
    (its ``verification`` kept from an earlier run of the same request). Runs
    already in the store (an interrupted ``hwmatch run``) are not run again.
    Returns the recommendation as last solved, with its verification.
    """
    from hwmatch.engine.recommendations import answer_stored

    name = recommendation.spec.asset_ref.name
    current = recommendation
    sweeps = store.sweeps(asset=name)
    while True:
        status = current.status
        assert status is not None
        runs = {t.metadata.name: t.status for t in store.verifications(asset=name) if t.status is not None}
        judged = judge_round(current, runs)
        if judged is not status.verification:  # a round ended: solve again with its runs (a verified choice wins ties)
            status.verification = judged
            current = answer_stored(store, current)
            assert current.status is not None
            status = current.status
        step = verification_step(current, sweeps, runs)
        status.verification = step.verification
        verification_condition(status, current.metadata.generation)
        store.put_recommendation(current)
        if not step.trials:
            return current
        todo = [t for t in step.trials if t.metadata.name not in runs]
        _run(store, current, _sweep_of(current, sweeps, step.trials[0].spec.platform), todo, executor, progress, True)


# -- helpers ---------------------------------------------------------------------------------------


def _run(store: Store, recommendation: HWRecommendation, sweep: BenchmarkSweep, trials: list[BenchmarkTrial],
         executor: Executor, progress: Progress | None, keep: bool) -> list[BenchmarkTrialStatus]:
    """Run verification trials one after the other through ``executor``; with ``keep``, store each."""
    asset = store.asset(recommendation.spec.asset_ref.name)
    if asset is None:
        raise SweepError(f"{recommendation.metadata.name}: asset {recommendation.spec.asset_ref.name!r} is no longer "
                         "in the store")
    executor.check(asset, sweep)
    progress = progress or NoProgress()
    results = []
    for trial in trials:
        progress.trial_started(trial)
        outcome = executor.run(trial, asset, sweep)
        progress.trial_finished(trial, outcome)
        results.append(outcome)
        if keep:
            store.add_verification(BenchmarkTrial(metadata=trial.metadata, spec=trial.spec, status=outcome))
    return results


def _choice(store: Store, recommendation: HWRecommendation) -> tuple[Choice, BenchmarkSweep]:
    status = recommendation.status
    if status is None or status.recommendation is None:
        raise SweepError(f"{recommendation.metadata.name}: nothing to verify (phase {status.phase if status else 'unsolved'})")
    best = status.recommendation
    return best, _sweep_of(recommendation, store.sweeps(asset=recommendation.spec.asset_ref.name), best.platform)


def _sweep_of(recommendation: HWRecommendation, sweeps: Sequence[BenchmarkSweep], platform: str) -> BenchmarkSweep:
    """The sweep a verification run on ``platform`` belongs to (among ``spec.sweepRefs``, when given)."""
    wanted = {r.name for r in recommendation.spec.sweep_refs}
    found = next((s for s in sweeps if (not wanted or s.metadata.name in wanted)
                  and platform in {p.name for p in s.spec.platforms}), None)
    if found is None:
        raise SweepError(f"{recommendation.metadata.name}: no sweep of asset {recommendation.spec.asset_ref.name!r} "
                         f"has platform {platform!r} any more")
    return found


def _round_trials(recommendation: HWRecommendation, choice: Choice, sweeps: Sequence[BenchmarkSweep], round_: int,
                  repetitions: int) -> list[BenchmarkTrial]:
    """A round's verification trials, named by recommendation, round and run (stable across restarts)."""
    sweep = _sweep_of(recommendation, sweeps, choice.platform)
    series = f"{recommendation.metadata.name}-verify-{round_}"
    return [_trial(recommendation, choice, sweep, series, rep) for rep in range(repetitions)]


def _trial(recommendation: HWRecommendation, choice: Choice, sweep: BenchmarkSweep, series: str,
           index: int) -> BenchmarkTrial:
    """A verification trial of ``sweep``: not labelled with the sweep (it is not in its plan), but with the request."""
    asset = recommendation.spec.asset_ref.name
    trial = make_trial(asset, sweep.metadata.name, choice.platform, choice.parameters, recommendation.spec.instance, index)
    trial.metadata.name = trial_id(series, choice.platform, choice.parameters, recommendation.spec.instance, index)
    trial.metadata.labels = {LABEL_ASSET: asset, LABEL_PLATFORM: choice.platform, LABEL_VERIFICATION: "true",
                             LABEL_RECOMMENDATION: recommendation.metadata.name}
    return trial


def _resized(recommendation: HWRecommendation, verified: Verification, choice: Choice,
             runs: Mapping[str, BenchmarkTrialStatus]) -> Verification | None:
    """The verification carried to ``choice`` when only its replicas changed and the runs still meet every requirement.

    Learning from the runs moves the throughput prediction, and with it the
    replicas a target needs; the configuration measured is the same, and a
    throughput target is judged as replicas × what each run measured, so the
    round's own runs answer for the new count without running again.
    """
    if (choice.platform, choice.parameters) != (verified.choice.platform, verified.choice.parameters):
        return None
    ended = [runs[n] for n in verified.trials if n in runs]
    if len(ended) < len(verified.trials) or any(r.phase != SUCCEEDED for r in ended):
        return None
    checks = judge(recommendation, choice, [r.metrics for r in ended])
    if any(c.met is False for c in checks):
        return None
    return verified.model_copy(update={"choice": choice, "checks": checks, "message": (
        f"{verified.message}; resized from ×{verified.choice.replicas} to ×{choice.replicas} by what the runs taught, "
        "their measurements still meet every requirement")})


def _same(a: Choice, b: Choice) -> bool:
    return (a.platform, a.parameters, a.replicas) == (b.platform, b.parameters, b.replicas)


def _values(choice: Choice) -> str:
    return " ".join(f"{k}={v}" for k, v in choice.parameters.items()) + f" ×{choice.replicas}"


def _scaled(predicted: PredictedValue | None, factor: int) -> PredictedValue | None:
    """A per-replica prediction times the replicas (value and both bounds)."""
    if predicted is None:
        return None
    return PredictedValue(
        value=predicted.value * factor,
        lower=None if predicted.lower is None else predicted.lower * factor,
        upper=None if predicted.upper is None else predicted.upper * factor,
        level=predicted.level,
    )


# -- the closed loop: which candidate to measure next ---------------------------------------------

Why = Literal["verify", "plausible", "improve", "done", "spent", "nothing"]


@dataclass(frozen=True)
class NextRun:
    """:func:`next_run`'s decision: measure candidate ``run`` (``why``), or stop (``run`` None) with ``answer``.

    ``answer`` is what the loop answers if it stops now (None: "no solution"),
    ``measured`` whether that answer was measured to meet every requirement.
    ``why``: ``verify`` (the choice at the bounds, not yet measured),
    ``plausible`` (the bounds admit nothing: the candidate nearest to meeting
    the requirements), ``improve`` (a candidate predicted better than the
    measured answer); when stopping, ``done`` (nothing predicted better than
    the measured answer), ``spent`` (the budget is spent) or ``nothing``
    (nothing left that could meet the requirements). ``repetitions``: how
    many runs of ``run`` (all must meet the requirements for it to hold).
    """

    run: int | None
    answer: int | None
    measured: bool
    why: Why
    repetitions: int = 1


#: Runs of a candidate the bounds do not vouch for (a plausible one, or one predicted better), all of which must
#: hold before it is an answer: one run of it is the draw of its noise, which the model does not bound there.
UNPROVEN_RUNS = 2


def measured_predictions(
    pred: Mapping[str, "Prediction"], runs: Mapping[int, Sequence[Mapping[str, float]]],
) -> dict[str, "Prediction"]:
    """``pred`` with each measured candidate's predictions replaced by its runs.

    ``runs`` maps a candidate (an index into the arrays) to the metrics each
    of its runs measured. A measured candidate's value becomes the mean of
    its runs and its bounds their smallest and largest value, so a
    requirement holds there exactly when every run met it (as :func:`judge`
    decides), and its objective is what was measured. A metric its runs did
    not measure becomes unknown there (unknown meets no requirement).
    """
    from hwmatch.modeling import Prediction

    out = {}
    for metric, p in pred.items():
        value, lower, upper = p.value.astype(float), p.lower.astype(float), p.upper.astype(float)
        for i, measured in runs.items():
            seen = np.array([float(m.get(metric, np.nan)) for m in measured], dtype=float)
            seen = seen[np.isfinite(seen)]
            if seen.size == len(measured) and seen.size:
                value[i], lower[i], upper[i] = seen.mean(), seen.min(), seen.max()
            else:
                value[i] = lower[i] = upper[i] = np.nan
        out[metric] = Prediction(value, lower, upper)
    return out


def next_run(
    problem: Callable[[Mapping[str, "Prediction"]], "Problem"], pred: Mapping[str, "Prediction"],
    runs: Mapping[int, Sequence[Mapping[str, float]]], budget: int, improve: bool = True,
    unproven: int = UNPROVEN_RUNS,
) -> NextRun:
    """What the closed loop measures next, from every candidate's predictions and the runs so far.

    ``problem(predictions)`` builds the request's optimisation problem over
    the candidates (bounds at the request's confidence); ``pred`` are the
    predictions (value and interval), ``runs`` the metrics measured per
    candidate (:func:`measured_predictions`), ``budget`` the runs left;
    ``improve=False`` stops at the first answer measured to hold (step 3 is
    skipped). The choice at the bounds is verified with one run; a candidate
    the bounds do not vouch for (steps 2 and 3) with ``unproven`` runs, all
    of which must hold, and only while the budget has that many left.

    1. The *answer* is the best measured candidate whose runs met every
       requirement, by what they measured.
    2. Without one, the choice at the bounds among the unmeasured candidates
       is verified; when the bounds admit none, the most plausible candidate
       (:func:`most_plausible`) is measured. With the budget spent, the
       choice at the bounds is answered unverified, a plausible one is not.
    3. With one, the unmeasured candidates whose *point* predictions meet
       every requirement and beat the answer's measured objective may still
       improve it. The one measured is the one with the largest expected
       gain: the predicted gain times the chance that it meets every
       requirement, read from its interval (:func:`chance_of_meeting`). The
       loop stops when the budget is spent or no candidate is predicted
       better than the answer.

    Every run joins the predictions of the candidate it measured (which the
    driver may also learn from, refitting ``pred``), so a failed candidate is
    never measured again and a better one that held becomes the answer.
    """
    from hwmatch.optimize.solver import best_of, feasible_mask

    measured = np.zeros(len(next(iter(pred.values()))), dtype=bool)
    measured[list(runs)] = True
    known = measured_predictions(pred, runs)
    bounded = problem(known)
    holds = measured & feasible_mask(bounded)
    answer = best_of(bounded, np.flatnonzero(holds))
    if answer is None:
        choice = best_of(bounded, np.flatnonzero(~measured & feasible_mask(bounded)))
        if choice is not None:
            return NextRun(choice, None, False, "verify") if budget > 0 else NextRun(None, choice, False, "spent")
        plausible = most_plausible(problem, known, ~measured)
        if plausible is None:
            return NextRun(None, None, False, "nothing")
        if budget < unproven:
            return NextRun(None, None, False, "spent")
        return NextRun(plausible, None, False, "plausible", unproven)
    if not improve:
        return NextRun(None, int(answer), True, "done")
    point = problem(_points(known))
    gain = bounded.objective[answer] - point.objective
    better = np.flatnonzero(~measured & feasible_mask(point) & (gain > 0))
    if better.size == 0:
        return NextRun(None, int(answer), True, "done")
    if budget < unproven:
        return NextRun(None, int(answer), True, "spent")
    expected = gain[better] * chance_of_meeting(point, bounded, better)
    top = better[expected == expected.max()]
    return NextRun(int(best_of(point, top)), int(answer), True, "improve", unproven)  # type: ignore[arg-type]


def chance_of_meeting(point: "Problem", bounded: "Problem", among: np.ndarray) -> np.ndarray:
    """Per candidate ``among``, the chance that it meets every requirement, read from its intervals.

    Each requirement's pessimistic end (``bounded``, at the per-bound level
    ``L`` of :func:`~hwmatch.optimize.interval_level`) lies ``z`` spreads from
    the point (``point``), ``z`` the one-sided normal quantile at
    ``(1 + L) / 2``; the chance of meeting the threshold is the normal
    probability of the point's margin in those spreads, multiplied over the
    requirements (as if independent). An exact requirement (the price: no
    interval) is met or not; an unbounded end gives 1/2 to a point that meets.
    """
    from scipy.stats import norm

    z = float(norm.ppf((1 + bounded.level) / 2))
    chance = np.ones(among.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        for at_point, at_end in zip(point.requirements, bounded.requirements):
            sign = 1.0 if at_point.sense == "max" else -1.0
            margin = sign * (at_point.threshold - at_point.bound[among])  # >= 0: the point meets
            spread = sign * (at_end.bound[among] - at_point.bound[among]) / z
            p = np.where(spread > 0, norm.cdf(margin / np.where(spread > 0, spread, 1.0)), (margin >= 0).astype(float))
            chance *= np.nan_to_num(p, nan=0.0)
    return chance


def most_plausible(
    problem: Callable[[Mapping[str, "Prediction"]], "Problem"], pred: Mapping[str, "Prediction"],
    among: np.ndarray,
) -> int | None:
    """The candidate worth measuring when the bounds admit none: the nearest to meeting every requirement.

    ``among`` is a mask of the candidates that may be chosen. Among those
    whose *point* predictions meet every requirement, the best one (the
    choice on point predictions). When there is none, the candidate with the
    smallest *shortfall*: per requirement, how far its point prediction
    misses the threshold in units of the distance from the point to the
    interval's optimistic end (a miss of 0.3 means the threshold lies 30% of
    the way to the end that would meet it), the largest over its
    requirements; ties by the objective. A miss is thus measured against
    what the model does not know at that candidate, which makes metrics in
    different units comparable and prefers a candidate the model is unsure
    of to one it is sure misses. A requirement on an exact metric (the
    price) that is missed cannot be met: such candidates are never chosen.
    ``None`` when no candidate can meet the requirements at all.
    """
    from hwmatch.modeling import Prediction
    from hwmatch.optimize.solver import best_of

    point = problem(_points(pred))
    # swapping the ends makes each requirement read its optimistic end (a max on the lower one)
    optimistic = problem({m: Prediction(p.value, p.upper, p.lower) for m, p in pred.items()})
    shortfall = np.zeros(len(among))
    with np.errstate(invalid="ignore", divide="ignore"):
        for at_point, at_end in zip(point.requirements, optimistic.requirements):
            sign = 1.0 if at_point.sense == "max" else -1.0
            excess = sign * (at_point.bound - at_point.threshold)
            reach = sign * (at_point.bound - at_end.bound)
            miss = np.where(reach > 0, excess / reach, np.inf)
            # a miss against an unbounded end is still a miss: after every point-feasible candidate
            miss = np.where(excess > 0, np.maximum(miss, np.finfo(float).tiny), np.inf)  # NaN: an infinite miss
            shortfall = np.maximum(shortfall, np.where(at_point.met, 0.0, miss))  # met: the problem's own rule
    usable = among & np.isfinite(shortfall) & np.isfinite(point.objective)
    if not usable.any():
        return None
    return best_of(point, np.flatnonzero(usable & (shortfall == shortfall[usable].min())))


def _points(pred: Mapping[str, "Prediction"]) -> dict[str, "Prediction"]:
    """The point predictions as intervals of no width."""
    from hwmatch.modeling import Prediction

    return {m: Prediction(p.value, p.value, p.value) for m, p in pred.items()}
