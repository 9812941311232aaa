"""The flows, independent of where trials run: one module per flow.

- :mod:`~hwmatch.engine.sweeps`: run a sweep's trials locally through an
  executor, with the sweep policy of :mod:`hwmatch.planning.schedule`;
- :mod:`~hwmatch.engine.recommendations`: answer a ``HWRecommendation`` from
  an asset's trials, wherever they are kept;
- :mod:`~hwmatch.engine.verification`: run the recommended configuration and
  compare what was predicted with what is measured; ``spec.verify``'s loop
  of verifying and re-solving.
"""

from hwmatch.engine.recommendations import answer, answer_stored, cannot_recommend
from hwmatch.engine.sweeps import FileRun, NoProgress, Progress, SweepError, SweepRun, run_file, run_sweep
from hwmatch.engine.verification import VerifyStep, judge, verification_step, verify, verify_spec

__all__ = [
    "FileRun",
    "NoProgress",
    "Progress",
    "SweepError",
    "SweepRun",
    "VerifyStep",
    "answer",
    "answer_stored",
    "cannot_recommend",
    "judge",
    "run_file",
    "run_sweep",
    "verification_step",
    "verify",
    "verify_spec",
]
