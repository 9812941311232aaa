"""The ``hwmatch.dev/v1alpha1`` resources as pydantic models: the single source of truth.

Manifests are validated with these models, ``crds/*.yaml`` is generated from
them (:mod:`hwmatch.api.crd`), and the engine works on them.
"""

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

__all__ = [name for name in dir() if not name.startswith("_")]
