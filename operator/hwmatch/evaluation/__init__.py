"""Recommendation quality on real benchmark tables: truth, queries, scoring, methods, and the evaluation run.

``Evaluation(imported, queries).run(budgets)`` samples a budget of an
imported table (random or adaptive), learns, recommends, and scores every
answer against the measured truth; ``hwmatch evaluate`` and
``bench/quality.py`` print its figures (method and definitions:
``docs/quality.md``).
"""

from hwmatch.evaluation.queries import draw_queries, metrics_read
from hwmatch.evaluation.run import STRATEGIES, Evaluation, Result
from hwmatch.evaluation.scoring import Outcome, Summary, score, summarise
from hwmatch.evaluation.truth import GroundTruth

__all__ = [
    "STRATEGIES",
    "Evaluation",
    "GroundTruth",
    "Outcome",
    "Result",
    "Summary",
    "draw_queries",
    "metrics_read",
    "score",
    "summarise",
]
