"""A trial's inputs as environment variables: the harness contract, the same for every executor.

A local process and a Kubernetes pod see the same variables, so an asset
that runs under ``hwmatch run`` runs unchanged as a Job.
"""

from __future__ import annotations

import json

from hwmatch.api import BenchmarkTrial
from hwmatch.harness.params import ENV_VAR

#: Native thread pools capped to a platform's ``threads``.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def trial_variables(trial: BenchmarkTrial, platform: str, threads: int | None) -> dict[str, str]:
    """``HWMATCH_PARAMS`` (parameters and instance features: the asset needs both), the instance alone,
    the trial's name, platform and repetition, unbuffered output (the log tail of a killed trial shows
    where it was), and the thread cap when there is one."""
    env = {
        ENV_VAR: json.dumps({**trial.spec.instance, **trial.spec.parameters}),
        "HWMATCH_INSTANCE": json.dumps(trial.spec.instance),
        "HWMATCH_TRIAL_ID": trial.metadata.name,
        "HWMATCH_PLATFORM": platform,
        "HWMATCH_REPETITION": str(trial.spec.repetition),
        "PYTHONUNBUFFERED": "1",
    }
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env
