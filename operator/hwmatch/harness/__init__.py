"""The benchmark harness: measures an asset inside the trial's process and prints one JSON result.

``hwmatch-bench run ASSET`` (:mod:`hwmatch.harness.cli`) is the entry point;
:class:`Measurer` and :func:`run_trial` do the measuring for any Python
:class:`Asset`, built in (:mod:`hwmatch.harness.assets`) or a user's.
"""

from hwmatch.harness.assets import BUILTIN, HARNESS_METRICS, Asset, UnknownAsset
from hwmatch.harness.measure import PERCENTILES, Measurer, Timing
from hwmatch.harness.params import ENV_VAR, ParameterError, resolve
from hwmatch.harness.result import TERMINATION_LOG_ENV, termination_log_path, write_termination_log
from hwmatch.harness.trial import run_trial

__all__ = [
    "BUILTIN", "ENV_VAR", "HARNESS_METRICS", "PERCENTILES", "TERMINATION_LOG_ENV", "Asset", "Measurer",
    "ParameterError", "Timing", "UnknownAsset", "resolve", "run_trial", "termination_log_path",
    "write_termination_log",
]
