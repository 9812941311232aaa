"""The ``hwmatch.dev/v1alpha1`` resources as pydantic models: the single source of truth.

Manifests are validated with these models, ``crds/*.yaml`` is generated from
them (:mod:`hwmatch.api.crd`), and the engine works on them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hwmatch.api.asset import AIAsset, AIAssetSpec, AIAssetStatus, InstanceFeature, MetricSpec, Parameter, Range
    from hwmatch.api.base import (
        API_VERSION,
        GROUP,
        READY,
        RECONCILING,
        STALLED,
        VERSION,
        Condition,
        ObjectMeta,
        ObjectRef,
        is_true,
        parse_duration,
        set_condition,
        set_state,
    )
    from hwmatch.api.errors import HwmatchError, InputError, TemporaryError
    from hwmatch.api.manifest import Document, ManifestError, ManifestProblem, Resource, load_documents, load_files, load_text
    from hwmatch.api.recommendation import (
        DERIVED_METRICS,
        Budget,
        Choice,
        Constraint,
        DataShortfall,
        HWRecommendation,
        HWRecommendationSpec,
        HWRecommendationStatus,
        Infeasibility,
        ModelScore,
        Objective,
        PredictedValue,
        SolverInfo,
        Throughput,
        Verification,
        VerificationCheck,
        VerificationRound,
        Verify,
        describe_level,
        interval_caption,
        joint_confidence,
    )
    from hwmatch.api.sweep import (
        BenchmarkSweep,
        BenchmarkSweepSpec,
        BenchmarkSweepStatus,
        BenchmarkTrial,
        BenchmarkTrialSpec,
        BenchmarkTrialStatus,
        Platform,
        Resources,
        Sampling,
        Toleration,
    )
    from hwmatch.api.vocabulary import (
        FAILED,
        FINISHED,
        LABEL_ASSET,
        LABEL_PLATFORM,
        LABEL_SWEEP,
        PENDING,
        PHASES,
        RUNNING,
        SUCCEEDED,
        canonical,
        make_trial,
        phase_of,
        trial_id,
    )

#: The names this package exports, by the module that defines them. They load on first use (PEP 562), so
#: ``hwmatch.api.errors`` and ``hwmatch.api.vocabulary``, which the store and the CLI read at start, load no
#: model: ``hwmatch --help`` and a listing never import pydantic.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "asset": (
        "AIAsset", "AIAssetSpec", "AIAssetStatus", "InstanceFeature", "MetricSpec", "Parameter", "Range",
    ),
    "base": (
        "API_VERSION", "GROUP", "READY", "RECONCILING", "STALLED", "VERSION", "Condition", "ObjectMeta", "ObjectRef",
        "is_true", "parse_duration", "set_condition", "set_state",
    ),
    "errors": (
        "HwmatchError", "InputError", "TemporaryError",
    ),
    "manifest": (
        "Document", "ManifestError", "ManifestProblem", "Resource", "load_documents", "load_files", "load_text",
    ),
    "recommendation": (
        "DERIVED_METRICS", "Budget", "Choice", "Constraint", "DataShortfall", "HWRecommendation",
        "HWRecommendationSpec", "HWRecommendationStatus", "Infeasibility", "ModelScore", "Objective",
        "PredictedValue", "SolverInfo", "Throughput", "Verification", "VerificationCheck", "VerificationRound",
        "Verify", "describe_level", "interval_caption", "joint_confidence",
    ),
    "sweep": (
        "BenchmarkSweep", "BenchmarkSweepSpec", "BenchmarkSweepStatus", "BenchmarkTrial", "BenchmarkTrialSpec",
        "BenchmarkTrialStatus", "Platform", "Resources", "Sampling", "Toleration",
    ),
    "vocabulary": (
        "FAILED", "FINISHED", "LABEL_ASSET", "LABEL_PLATFORM", "LABEL_SWEEP", "PENDING", "PHASES", "RUNNING",
        "SUCCEEDED", "canonical", "make_trial", "phase_of", "trial_id",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """``hwmatch.api.NAME``: the name from its module, which is imported the first time one of its names is asked for."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
