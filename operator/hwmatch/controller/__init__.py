"""The Kubernetes operator: kopf handlers that reconcile hwmatch's custom resources with the engine.

``AIAsset`` is validated; a ``BenchmarkSweep`` becomes ``BenchmarkTrial``
objects and one Job per trial (:mod:`hwmatch.execution.kubernetes`), whose
outcomes are written into the trials' statuses; a ``HWRecommendation`` is
answered from those trials by the same engine as ``hwmatch recommend``.
Start it with :func:`run` (``hwmatch operator``); see docs/operator.md.
"""

from hwmatch.controller.config import OperatorConfig
from hwmatch.controller.runner import operate, run

__all__ = ["OperatorConfig", "operate", "run"]
