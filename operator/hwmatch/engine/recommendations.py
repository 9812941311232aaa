"""Answering a ``HWRecommendation`` from an asset's trials, wherever they are kept.

:func:`answer` is the one function behind ``hwmatch recommend``, ``hwmatch
run`` and the operator: the asset, its sweeps (platforms, prices) and the
dataset frame of their trials in, the resource with its status out.
:func:`answer_stored` finds those inputs in the local store and keeps the answer there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from hwmatch.api import STALLED, AIAsset, BenchmarkSweep, HWRecommendation, HWRecommendationStatus, InputError, set_state
from hwmatch.api.vocabulary import METRIC
from hwmatch.data.store import Store

if TYPE_CHECKING:  # pandas loads where a frame is made: the operator's process starts without it (issue 17)
    import pandas as pd


def answer_stored(store: Store, recommendation: HWRecommendation, seed: int = 0) -> HWRecommendation:
    """Answer ``recommendation`` from the stored trials of its asset; the answer is stored and returned.

    The store's side of :func:`answer`: it finds the asset, its sweeps and
    the dataset frame in ``store``.
    """
    from hwmatch.optimize import RecommendationError  # scikit-learn and OR-Tools: load on use

    asset = store.asset(recommendation.spec.asset_ref.name)
    if asset is None:
        known = ", ".join(a.metadata.name for a in store.assets()) or "none"
        solved = recommendation.model_copy(update={"status": cannot_recommend(recommendation, RecommendationError(
            f"spec.assetRef: no AIAsset {recommendation.spec.asset_ref.name!r} in the store (known: {known})"))})
    else:
        name = asset.metadata.name
        stored = next((r for r in store.recommendations(asset=name) if r.metadata.name == recommendation.metadata.name
                       and r.spec == recommendation.spec), None)
        if recommendation.status is None and stored is not None:  # the same request again: keep its verification
            recommendation = recommendation.model_copy(update={"status": stored.status})
        solved = answer(recommendation, asset, store.sweeps(asset=name),
                        lambda sweeps: store.frame(asset=name, sweeps=sweeps or None), seed=seed,
                        prior=lambda other: store.frame(asset=other) if store.asset(other) is not None else None)
    store.put_recommendation(solved)
    return solved


def answer(
    recommendation: HWRecommendation, asset: AIAsset, sweeps: Sequence[BenchmarkSweep],
    frame: Callable[[list[str]], pd.DataFrame], *, prior: Callable[[str], pd.DataFrame | None], seed: int = 0,
    where: str = "in the store",
) -> HWRecommendation:
    """``recommendation`` with its status, learnt from the asset's trials wherever they are kept.

    ``sweeps`` are the asset's sweeps; ``spec.sweepRefs`` (or all of them)
    give the platforms (features, prices, power) that candidates are built
    from, and ``frame(names)`` the dataset of those sweeps' trials (the
    convention of :mod:`hwmatch.data.frame`), a SQLite store's or a
    cluster's. A request that cannot be answered at all (no data, an unknown
    metric) gets phase Failed with the reason in its Ready condition rather
    than an exception, as a controller writes it; ``where`` says where the
    sweeps were looked for, in that message. The status's ``verification``
    (``spec.verify``'s rounds) is kept from the previous answer to the same
    spec, and a verified choice wins a tie on the objective, so learning from
    its own runs does not trade it for a near-copy by a shift in predictions.

    ``prior(name)`` is the dataset of another asset's trials (None: no such
    asset) for the asset's ``spec.priorFrom`` (docs/transfer.md): the store's,
    or the namespace's BenchmarkTrial objects in the operator.
    """
    from hwmatch.optimize import RecommendationError, recommend  # scikit-learn and OR-Tools: load on use

    spec = recommendation.spec
    generation = recommendation.metadata.generation
    old = recommendation.status
    verification = old.verification if old is not None and old.observed_generation == generation else None
    verified = [verification.choice] if verification is not None and verification.phase == "Verified" else []
    try:
        if spec.sweep_refs:
            wanted = {r.name for r in spec.sweep_refs}
            missing = sorted(wanted - {s.metadata.name for s in sweeps})
            if missing:
                raise RecommendationError(f"spec.sweepRefs: no sweep {missing} of asset {asset.metadata.name!r} {where}")
            sweeps = [s for s in sweeps if s.metadata.name in wanted]
        platforms = list({p.name: p for s in reversed(sweeps) for p in s.spec.platforms}.values())
        rows = frame([s.metadata.name for s in sweeps])
        declared = {METRIC + m.name for m in asset.spec.metrics}
        rows = rows.drop(columns=[c for c in rows.columns if c.startswith(METRIC) and c not in declared])
        goals = {m.name: m.goal for m in asset.spec.metrics if m.goal}
        status = recommend(rows, asset.spec.parameters, platforms or None, spec, seed=seed, goals=goals,
                           prefer=verified, prior=prior_frame(asset, prior, where))
    except InputError as exc:  # the request or its data, as the message says; anything else is a bug
        status = cannot_recommend(recommendation, exc)
    status.verification = verification  # spec.verify's rounds so far: a re-solve is one of its steps
    status.observed_generation = generation
    for condition in status.conditions:
        condition.observed_generation = generation
    return recommendation.model_copy(update={"status": status})


def prior_frame(asset: AIAsset, prior: Callable[[str], pd.DataFrame | None],
                where: str = "in the store") -> pd.DataFrame | None:
    """The trials of the assets ``spec.priorFrom`` names, as one dataset frame (None without priorFrom)."""
    from hwmatch.optimize import RecommendationError

    names = [r.name for r in asset.spec.prior_from]
    if not names:
        return None
    frames = []
    for name in names:
        got = prior(name)
        if got is None or got.empty:
            raise RecommendationError(
                f"spec.priorFrom: no asset {name!r} with trials {where}; import or run it first, or remove it")
        frames.append(got)
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def cannot_recommend(recommendation: HWRecommendation, error: Exception) -> HWRecommendationStatus:
    """The status of a request that cannot be answered: phase Failed, Stalled with the reason (a request to fix)."""
    generation = recommendation.metadata.generation
    status = HWRecommendationStatus(phase="Failed", observed_generation=generation)
    status.conditions = set_state(status.conditions, STALLED, "CannotRecommend", str(error), generation)
    return status
