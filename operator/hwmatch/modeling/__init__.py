"""MetricModel models of an asset's metrics: features, model selection by CV, conformal intervals.

``Surrogates(seed).fit(frame)`` learns every metric of a dataset frame;
``.predict(candidates, level)`` gives value, lower and upper per metric
(``.forecast`` gives them with each candidate's novelty);
``.scores()`` gives the held-out R² and MAPE the recommendation reports.
"""

from hwmatch.modeling.features import FeatureEncoder
from hwmatch.modeling.intervals import Conformal
from hwmatch.modeling.metric_model import MetricModel, Prediction
from hwmatch.modeling.surrogates import Forecast, Surrogates, categorical_columns, clear_cache

__all__ = [
    "Conformal",
    "FeatureEncoder",
    "Forecast",
    "Prediction",
    "MetricModel",
    "Surrogates",
    "categorical_columns",
    "clear_cache",
]
