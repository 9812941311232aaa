"""Model-guided sampling strategies: the samplers that learn from the trials so far.

They sit above :mod:`hwmatch.modeling` and :mod:`hwmatch.optimize`, whose
surrogates, candidate sets and feasibility rules they reuse, so
:mod:`hwmatch.planning` stays free of both: the planner finds a strategy here
through its registry by name (``"adaptive"`` is
``hwmatch.strategies.adaptive:AdaptiveSampler``), imported only when a sweep asks for it.
"""
