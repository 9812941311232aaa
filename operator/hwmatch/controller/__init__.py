"""The Kubernetes operator: kopf handlers that reconcile hwmatch's custom resources with the engine.

``AIAsset`` is validated; a ``BenchmarkSweep`` becomes ``BenchmarkTrial``
objects and one Job per trial (:mod:`hwmatch.execution.kubernetes`), whose
outcomes are written into the trials' statuses; a ``HWRecommendation`` is
answered from those trials by the same engine as ``hwmatch recommend``.
Start it with :func:`hwmatch.controller.runner.run` (``hwmatch operator``)
and an :class:`hwmatch.controller.config.OperatorConfig`; see docs/operator.md.

Nothing is imported here: the ``hwmatch`` command line reads the config
module on every start and must not pay for kopf, kubernetes and the engine.
"""
