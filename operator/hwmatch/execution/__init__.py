"""Executors run one trial attempt each and report it as a BenchmarkTrialStatus (see :mod:`.base`)."""

from hwmatch.execution.base import Executor
from hwmatch.execution.environment import THREAD_VARIABLES, trial_variables
from hwmatch.execution.local import LocalExecutor
from hwmatch.execution.result import HarnessResult, ResultError, parse_result

__all__ = [
    "Executor", "HarnessResult", "LocalExecutor", "ResultError", "THREAD_VARIABLES", "parse_result", "trial_variables",
]
