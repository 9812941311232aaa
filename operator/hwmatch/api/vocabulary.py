"""The domain's words: trial phases and failure reasons, labels, trial names, canonical JSON.

They belong with the resource types, not with whoever stores or schedules
them: the SQLite store, the planner, the sweep policy, the executors, the
controller and the CLI all say "Succeeded" or name a trial the same way, and
all of them depend on :mod:`hwmatch.api`, never on each other, for it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the words load no model: the store and the CLI read them at start (hwmatch/api/__init__.py)
    from hwmatch.api.sweep import BenchmarkTrial

# Phases of a BenchmarkTrial (and of a stored trial row): ``TrialPhase`` in api/sweep.py.
PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED)
FINISHED = (SUCCEEDED, FAILED)

# Reasons of failed trials (BenchmarkTrialStatus.reason), the same wherever a trial ran.
TIMEOUT = "Timeout"
OOM_KILLED = "OOMKilled"
CRASHED = "Crashed"
NO_RESULT = "NoResult"
MISSING_METRICS = "MissingMetrics"
COMMAND_NOT_FOUND = "CommandNotFound"
EXECUTOR_ERROR = "ExecutorError"
#: No node took the trial's pod within the timeout (Kubernetes only).
UNSCHEDULABLE = "Unschedulable"
#: An attempt stopped because the run was interrupted: not an outcome, the trial is released.
CANCELLED = "Cancelled"
#: Failures that are findings about the configuration, not flakes: never retried unless asked.
FINAL_REASONS = frozenset({OOM_KILLED, UNSCHEDULABLE})

# Labels of trial objects, their Jobs and pods (and of stored trials read back as objects).
LABEL_ASSET = "hwmatch.dev/asset"
LABEL_SWEEP = "hwmatch.dev/sweep"
LABEL_PLATFORM = "hwmatch.dev/platform"
#: ``"true"`` on a trial that verified a recommendation (``hwmatch verify``): training data, not part of its sweep's plan.
LABEL_VERIFICATION = "hwmatch.dev/verification"
#: On a verification trial in a cluster: the HWRecommendation (``spec.verify``) whose choice it measures.
LABEL_RECOMMENDATION = "hwmatch.dev/recommendation"

#: Prefixes of the dataset's column families (:mod:`hwmatch.data.frame`), which exports, imports and
#: ``hwmatch trials -o csv`` write too: here, so that a listing names its columns without loading pandas.
PARAM, INSTANCE, FEATURE, METRIC = "param.", "instance.", "feature.", "metric."

#: Hex digits of the hash in a trial name; 40 bits keep collisions away at millions of trials.
ID_HEX = 10
_MAX_NAME = 63  # a DNS-1123 label: usable as a Job name and a label value


def canonical(value: Any) -> str:
    """Key-sorted compact JSON: the same value always gives the same text (names, hashes, stored rows)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def trial_id(sweep: str, platform: str, parameters: dict[str, Any], instance: dict[str, Any], repetition: int) -> str:
    """``<sweep>-<10 hex>``: a DNS-1123 label naming the trial, stable across runs and machines.

    A trial's name is a hash of what it measures, so planning the same sweep
    again (after a crash, in a restarted operator, from an imported table)
    names the same trials, and a result already kept for a name is never
    measured twice.
    """
    digest = hashlib.sha256(
        canonical({"sweep": sweep, "platform": platform, "parameters": parameters,
                   "instance": instance, "repetition": repetition}).encode()
    ).hexdigest()[:ID_HEX]
    prefix = re.sub(r"[^a-z0-9-]", "-", sweep.lower())[: _MAX_NAME - ID_HEX - 1].strip("-")
    return f"{prefix}-{digest}" if prefix else digest


def make_trial(
    asset: str, sweep: str, platform: str, parameters: dict[str, Any], instance: dict[str, float], repetition: int
) -> BenchmarkTrial:
    """A BenchmarkTrial (spec only) named by :func:`trial_id` and labelled with asset, sweep and platform."""
    from hwmatch.api.base import ObjectMeta, ObjectRef
    from hwmatch.api.sweep import BenchmarkTrial, BenchmarkTrialSpec

    return BenchmarkTrial(
        metadata=ObjectMeta(
            name=trial_id(sweep, platform, parameters, instance, repetition),
            labels={LABEL_ASSET: asset, LABEL_SWEEP: sweep, LABEL_PLATFORM: platform},
        ),
        spec=BenchmarkTrialSpec(
            sweep_ref=ObjectRef(name=sweep),
            asset_ref=ObjectRef(name=asset),
            platform=platform,
            parameters=parameters,
            instance=instance,
            repetition=repetition,
        ),
    )


def phase_of(trial: BenchmarkTrial) -> str:
    """A trial's phase; one without a status is Pending."""
    return trial.status.phase if trial.status is not None and trial.status.phase else PENDING
