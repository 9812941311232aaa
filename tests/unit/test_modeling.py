"""Surrogates: encoding, model choice, determinism, accuracy, interval coverage, retraining on change only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwmatch.api import Parameter
from hwmatch.modeling import FeatureEncoder, MetricModel, Surrogates, categorical_columns, clear_cache
from hwmatch.modeling.intervals import conformal_quantile, rows_needed
from hwmatch.modeling.metric_model import choose_transform, configuration_groups

PLATFORMS = {"cpu-2": (2, "none"), "cpu-8": (8, "none"), "gpu": (32, "l4")}


def dataset(n: int, seed: int = 0, noise: float = 0.0, repetitions: int = 1) -> pd.DataFrame:
    """A smooth asset: latency ~ depth·batch^0.5 / speed (log-normal noise), accuracy ~ saturating in depth."""
    rng = np.random.default_rng(seed)
    configs = n // repetitions
    platform = rng.choice(list(PLATFORMS), configs)
    depth = rng.uniform(2, 32, configs)
    batch = rng.choice([1, 4, 16, 64], configs)
    precision = rng.choice(["fp32", "int8"], configs)
    frame = pd.DataFrame({
        "platform": platform,
        "feature.vcpus": [PLATFORMS[p][0] for p in platform],
        "feature.accelerator": [PLATFORMS[p][1] for p in platform],
        "param.depth": depth,
        "param.batch_size": batch,
        "param.precision": precision,
    }).loc[np.repeat(np.arange(configs), repetitions)].reset_index(drop=True)
    speed = frame["feature.vcpus"].to_numpy(float) * np.where(frame["platform"] == "gpu", 4, 1)
    base = frame["param.depth"] * np.sqrt(frame["param.batch_size"]) / speed * np.where(frame["param.precision"] == "int8", 0.6, 1)
    # the noise is wider on the small CPU: intervals must adapt to it
    spread = noise * np.where(frame["platform"] == "cpu-2", 3.0, 1.0)
    frame["metric.latency_ms"] = base * np.exp(rng.normal(0, 1, len(frame)) * spread)
    frame["metric.accuracy"] = 0.8 + 0.15 * (1 - np.exp(-frame["param.depth"] / 8)) + rng.normal(0, noise / 20 + 1e-9, len(frame))
    frame["status"] = "Succeeded"
    frame["trial_id"] = [f"t{i}" for i in range(len(frame))]
    return frame


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    clear_cache()


def test_encoder_one_hot_numeric_and_unseen_levels() -> None:
    frame = dataset(30)
    enc = FeatureEncoder(categorical=frozenset({"param.batch_size"})).fit(frame)
    names = enc.feature_names
    assert "platform=gpu" in names and "feature.accelerator=l4" in names and "param.precision=int8" in names
    assert "param.batch_size=16" in names and "param.depth" in names and "feature.vcpus" in names
    X = enc.transform(frame)
    assert X.shape == (30, len(names)) and np.isfinite(X).all()
    unseen = frame.iloc[:1].assign(platform="tpu", **{"feature.accelerator": "tpu-v5", "feature.vcpus": np.nan})
    row = dict(zip(names, enc.transform(unseen)[0]))
    assert row["platform=gpu"] == row["platform=cpu-2"] == 0 and row["feature.accelerator=l4"] == 0
    assert row["feature.vcpus"] == np.median(frame["feature.vcpus"])
    # a numeric column constant in training carries nothing and is dropped
    assert "feature.x" not in FeatureEncoder().fit(frame.assign(**{"feature.x": 3})).feature_names


def test_smooth_function_is_learnt_with_high_held_out_r2() -> None:
    model = Surrogates(seed=0).fit(dataset(240))
    scores = model.scores()
    assert scores["latency_ms"].r2 > 0.95 and scores["latency_ms"].mape < 0.2
    assert scores["accuracy"].r2 > 0.95
    assert scores["latency_ms"].trained_on_trials == 240
    assert model.models["latency_ms"].transform == "log"  # spans orders of magnitude
    assert model.models["accuracy"].transform == "identity"


def test_fitting_is_deterministic_for_a_seed_and_independent_of_row_order() -> None:
    frame = dataset(80, noise=0.1)
    randomised = {"families": ("hist_gradient_boosting", "extra_trees")}
    first = Surrogates(seed=3, **randomised).fit(frame).predict(frame.head(20), 0.9)
    clear_cache()
    second = Surrogates(seed=3, **randomised).fit(frame.sample(frac=1.0, random_state=7)).predict(frame.head(20), 0.9)
    for metric in first:
        np.testing.assert_array_equal(first[metric].value, second[metric].value)
        np.testing.assert_array_equal(first[metric].upper, second[metric].upper)


def test_intervals_cover_held_out_configurations_at_the_confidence() -> None:
    train = dataset(600, seed=1, noise=0.15, repetitions=3)
    test = dataset(900, seed=2, noise=0.15)
    # the goal is the direction the optimiser selects in: the calibration at selected candidates widens for it only
    model = Surrogates(seed=0, metrics=["latency_ms"], goals={"latency_ms": "minimize"}).fit(train)
    for confidence in (0.8, 0.9):
        p = model.predict(test, confidence)["latency_ms"]
        y = test["metric.latency_ms"].to_numpy()
        covered = np.mean((y >= p.lower) & (y <= p.upper))
        assert confidence - 0.06 <= covered <= confidence + 0.07, (confidence, covered)
    # intervals are wider where the noise is (the small CPU)
    p = model.predict(test, 0.9)["latency_ms"]
    relative = (p.upper - p.lower) / p.value
    noisy = test["platform"].to_numpy() == "cpu-2"
    assert np.median(relative[noisy]) > 1.5 * np.median(relative[~noisy])


def test_retrain_only_when_the_training_rows_change() -> None:
    frame = dataset(60, noise=0.05)
    fast = {"families": ("ridge_poly",)}  # the cache does not depend on the family; keep the test quick
    first = Surrogates(seed=0, **fast).fit(frame)
    assert sorted(first.fitted_now) == ["accuracy", "latency_ms"]
    second = Surrogates(seed=0, **fast).fit(frame.sample(frac=1.0, random_state=3))
    assert second.fitted_now == [] and second.models["latency_ms"] is first.models["latency_ms"]
    assert second.dataset_hash == first.dataset_hash
    changed = frame.copy()
    changed.loc[0, "metric.latency_ms"] *= 2
    third = Surrogates(seed=0, **fast).fit(changed)
    assert third.fitted_now == ["latency_ms"] and third.models["accuracy"] is first.models["accuracy"]
    assert third.dataset_hash != first.dataset_hash
    assert Surrogates(seed=1, **fast).fit(frame).fitted_now == ["latency_ms", "accuracy"]
    assert Surrogates(seed=0, families=("extra_trees",)).fit(frame).fitted_now == ["latency_ms", "accuracy"]
    # failed trials do not count
    failed = pd.concat([frame, frame.head(1).assign(status="Failed", **{"metric.latency_ms": 1e9})])
    assert Surrogates(seed=0, **fast).fit(failed).fitted_now == []


def test_tiny_and_constant_datasets() -> None:
    tiny = dataset(8, noise=0.05)
    model = Surrogates(seed=0).fit(tiny.assign(**{"metric.constant": 4.0}))
    p = model.predict(tiny, 0.8)  # 8 rows: enough for a finite bound at 0.8 (4 needed), not at 0.9 (9)
    np.testing.assert_array_equal(p["constant"].value, 4.0)
    np.testing.assert_array_equal(p["constant"].upper - p["constant"].lower, 0.0)
    assert model.scores()["constant"].family == "constant"
    assert model.scores()["latency_ms"].trained_on_trials == 8
    assert np.all(p["latency_ms"].lower <= p["latency_ms"].upper) and np.all(np.isfinite(p["latency_ms"].upper))
    assert model.unbounded(0.8) == {}
    short = model.predict(tiny, 0.9)  # below the finite-sample threshold: unbounded, even for a constant
    for metric in ("constant", "latency_ms", "accuracy"):
        assert np.all(short[metric].lower == -np.inf) and np.all(short[metric].upper == np.inf)
        assert np.all(np.isfinite(short[metric].value))
    assert model.unbounded(0.9) == {"constant": (8, 9), "latency_ms": (8, 9), "accuracy": (8, 9)}
    capped = model.predict(tiny, 0.9, capped=True)  # for ranking only: the largest residual
    assert np.all(np.isfinite(capped["latency_ms"].upper))
    two = dataset(6, repetitions=3, noise=0.1)  # two configurations measured three times each
    mean = Surrogates(seed=0, metrics=["latency_ms"]).fit(two)
    assert mean.scores()["latency_ms"].family == "mean"


def test_categorical_parameters_declared_numeric_are_one_hot() -> None:
    params = [Parameter(name="batch_size", type="categorical", values=[1, 4, 16, 64])]
    model = Surrogates(seed=0, categorical=categorical_columns(params), families=("ridge_poly",)).fit(dataset(40))
    assert "param.batch_size=64" in model.encoder.feature_names


def test_bad_inputs_are_explained() -> None:
    with pytest.raises(ValueError, match="no succeeded trials"):
        Surrogates().fit(dataset(10).assign(**{"metric.latency_ms": np.nan, "metric.accuracy": np.nan}))
    with pytest.raises(ValueError, match=r"metrics \['energy'\] have no succeeded"):
        Surrogates(metrics=["energy"]).fit(dataset(10))
    with pytest.raises(ValueError, match="unknown model families"):
        Surrogates(families=("xgboost",))
    with pytest.raises(RuntimeError, match="not fitted"):
        MetricModel().predict(np.zeros((1, 1)))


def test_helpers() -> None:
    assert choose_transform(np.array([1.0, 2.0, 3.0, 1000.0])) == "log"
    assert choose_transform(np.array([0.9, 0.91, 0.92, 0.5])) == "identity"
    assert choose_transform(np.array([-1.0, 2.0, 300.0])) == "identity"
    X = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]])
    groups = configuration_groups(X)
    assert groups[0] == groups[1] != groups[2]
    scores = np.arange(1.0, 11.0)
    assert conformal_quantile(scores, 0.9) == 10.0  # ceil(11*0.9)=10th
    assert conformal_quantile(scores, 0.5) == 6.0
    assert conformal_quantile(scores[:9], 0.9) == 9.0  # ceil(10*0.9)=9th, despite 10*0.9 = 9.000000000000002
    assert conformal_quantile(scores[:8], 0.9) == np.inf  # too few rows: unbounded, not the largest
    assert conformal_quantile(scores[:3], 0.9, capped=True) == 3.0  # capped (ranking only): the largest
    assert conformal_quantile(scores[:0], 0.9) == np.inf
    assert [rows_needed(c) for c in (0.5, 0.8, 0.9, 1 - 0.2 / 3, 0.95, 0.99)] == [1, 4, 9, 14, 19, 99]


def test_candidates_of_a_platform_without_some_feature_are_predicted() -> None:
    frame = dataset(40)
    model = Surrogates(seed=0, families=("ridge_poly",)).fit(frame)
    bare = frame.drop(columns=["feature.accelerator"]).head(5)
    assert np.isfinite(model.predict(bare, 0.9)["latency_ms"].value).all()
    with pytest.raises(ValueError, match=r"lack the columns \['param.depth'\]"):
        model.predict(frame.drop(columns=["param.depth"]), 0.9)


def test_candidates_outside_the_sampled_region_get_wider_intervals() -> None:
    train = dataset(120, noise=0.05)
    sampled = train[train["param.depth"] < 16]  # only the lower half of depth was measured
    model = Surrogates(seed=0).fit(sampled)
    inside = sampled.head(20)
    far = inside.assign(**{"param.depth": 64.0})  # beyond every trial on the depth axis
    unseen = inside.assign(**{"param.precision": "fp16"})  # a level no trial had (fp32 and int8 were measured)
    assert np.all(model.novelty(inside) == 0.0)  # they are trials
    assert np.all(model.novelty(far) > 1.0) and np.all(model.novelty(unseen) > 1.0)
    widths = {name: model.predict(rows, 0.8)["latency_ms"] for name, rows in (("far", far), ("unseen", unseen))}
    plain = {name: model.models["latency_ms"].predict(model.encode(rows), 0.8) for name, rows in (("far", far), ("unseen", unseen))}
    for name in widths:  # the half-widths (in the model's space) grow by exactly the novelty factor
        factor = np.maximum(model.novelty(far if name == "far" else unseen), 1.0)
        assert np.all(widths[name].upper - widths[name].lower > plain[name].upper - plain[name].lower)
        if model.models["latency_ms"].transform == "identity":
            np.testing.assert_allclose(widths[name].upper - widths[name].value,
                                       factor * (plain[name].upper - plain[name].value), rtol=1e-9)


def test_region_without_a_reference_never_widens() -> None:
    from hwmatch.modeling.region import Region, widening

    two = Region.fit(np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))  # two configurations: no reference distance
    np.testing.assert_array_equal(two.novelty(np.array([[5.0, 5.0]])), [1.0])
    grid = np.array([[x, y] for x in range(5) for y in range(5)], dtype=float)
    region = Region.fit(grid, folds=5, seed=0)
    assert region.reference > 0
    inside, outside = region.novelty(np.array([[2.0, 2.0], [2.5, 2.5]])), region.novelty(np.array([[40.0, 2.0]]))
    assert inside[0] == 0.0 and inside[1] <= 1.0 and outside[0] > 1.0
    np.testing.assert_array_equal(widening(region.novelty(np.array([[2.0, 2.0], [40.0, 2.0]]))), [1.0, outside[0]])


def _noisy_plane(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One platform, two parameters, a gentle trend under unit noise: a model that chases noise has a winner's curse."""
    x = rng.uniform(0, 1, (n, 2))
    return pd.DataFrame({
        "platform": "p", "param.a": x[:, 0], "param.b": x[:, 1],
        "metric.y": 0.5 * x[:, 0] + rng.normal(0, 1, n), "status": "Succeeded", "trial_id": [f"t{i}" for i in range(n)],
    })


def test_intervals_hold_at_the_selected_candidate_not_only_at_a_random_one() -> None:
    """Oracle: the optimiser's pick (lowest predicted value among many) is covered at the level, over many seeds.

    The truth is mostly noise, so the candidate predicted lowest is mostly one
    whose noise the trees chased: its fresh measurement is higher than a
    random candidate's residual suggests. Without the selection calibration
    the upper bound of the pick covers clearly less than the level; with it,
    at least the level (within the sampling error of the seeds).
    """
    level, seeds = 0.8, 60
    hits = {"selection": 0, "marginal": 0}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        train, candidates = _noisy_plane(150, rng), _noisy_plane(2000, rng)
        models = Surrogates(seed=seed, families=("extra_trees",)).fit(train)
        measured = candidates["metric.y"].to_numpy()
        for name, selections in (("selection", models.selections), ("marginal", {})):
            models.selections = selections
            p = models.predict(candidates, level)["y"]
            pick = int(np.argmin(p.value))
            hits[name] += bool(measured[pick] <= p.upper[pick])
    assert hits["marginal"] / seeds < level - 0.1, hits
    assert hits["selection"] / seeds >= level - 0.05, hits


def test_selected_quantile_reads_the_fewest_rows_a_finite_quantile_needs() -> None:
    from hwmatch.modeling.intervals import selected_quantile

    first = np.array([5.0, 1.0, 2.0, 3.0, 4.0, 0.5, 0.1, 0.2, 0.3, 99.0])  # rows_needed(0.9) = 9: 99 is the tenth
    assert selected_quantile([(first,)], 0.9) == 5.0
    assert selected_quantile([(first[:8],)], 0.9) == 0.0  # too few rows: no information, skipped
    assert selected_quantile([(first,), (first[::-1],)], 0.9) == 99.0  # the largest over selections
    assert selected_quantile([], 0.9) == 0.0
    # the orderings of one selection (one rule at several bounds) are pooled: 27 rows, 18 zeros then 0.1 .. 5;
    # ((27 + 1) · 0.9 = 25.2 -> the 26th smallest) is 4
    low = np.zeros(10)
    assert selected_quantile([(first, low, low)], 0.9) == 4.0


def test_a_metric_the_platform_determines_is_looked_up_not_learnt() -> None:
    """A price per run (one value per platform) is exact out of fold: no family is cross-validated for it."""
    price = {"cpu-2": 0.7, "cpu-8": 2.2, "gpu": 3.8}
    frame = dataset(90, noise=0.05)
    frame["metric.cost_per_run"] = frame["platform"].map(price)
    model = Surrogates(seed=0).fit(frame)
    fitted = model.models["cost_per_run"]
    assert fitted.family == "platform_table" and model.scores()["cost_per_run"].r2 == 1.0
    p = model.predict(frame, 0.8)["cost_per_run"]
    np.testing.assert_allclose(p.value, frame["metric.cost_per_run"], rtol=1e-12)
    np.testing.assert_array_equal(p.upper - p.lower, 0.0)  # every out-of-fold residual is 0, computed
    unseen = frame.head(3).assign(platform="tpu", **{"feature.vcpus": 8, "feature.accelerator": "l4"})
    placed = model.predict(unseen, 0.8)["cost_per_run"].value  # by its features, among the known prices
    assert np.all((placed >= min(price.values()) - 1e-12) & (placed <= max(price.values()) + 1e-12))
    # a metric that also varies with the parameters is learnt as any other
    assert model.models["latency_ms"].family != "platform_table"


def test_forecast_returns_the_novelty_its_intervals_were_widened_by(monkeypatch: pytest.MonkeyPatch) -> None:
    import hwmatch.modeling.surrogates as surrogates

    train = dataset(120, noise=0.05)
    model = Surrogates(seed=0, families=("ridge_poly",)).fit(train[train["param.depth"] < 16])
    rows = train.head(30).assign(**{"param.depth": np.linspace(2, 64, 30)})
    whole = model.forecast(rows, 0.8)
    np.testing.assert_array_equal(whole.novelty, model.novelty(rows))
    monkeypatch.setattr(surrogates, "PREDICT_CHUNK", 7)  # chunked: the same answer (to BLAS rounding), filled in place
    chunked = model.forecast(rows, 0.8)
    np.testing.assert_array_equal(chunked.novelty, whole.novelty)
    for m, p in whole.predictions.items():
        for field in ("value", "lower", "upper"):
            np.testing.assert_allclose(getattr(chunked.predictions[m], field), getattr(p, field), rtol=1e-12)


def test_large_sets_choose_the_family_on_the_first_fold_and_calibrate_on_every_row() -> None:
    from hwmatch.modeling.metric_model import SELECTION_FROM

    frame = dataset(SELECTION_FROM + 200, noise=0.05)
    model = Surrogates(seed=0, metrics=["latency_ms"]).fit(frame).models["latency_ms"]
    assert set(model.cv_rmse) == {"hist_gradient_boosting", "extra_trees", "ridge_poly"}
    # every row has an out-of-fold prediction (two folds), and each calibrates the intervals
    assert model.oof_ is not None and np.isfinite(model.oof_).all() and model.rows == len(frame)


def test_distinct_rows_of_a_design_without_columns_are_one_configuration() -> None:
    """A recommendation retrained while only one configuration is measured (every feature constant, so none
    is left) asked for the distinct rows of a matrix of 0 columns; ``np.lexsort`` refuses no keys."""
    from hwmatch.modeling.region import distinct

    for X in (np.zeros((3, 0)), np.array([[1.0, 2.0], [0.0, 5.0], [1.0, 2.0]])):
        rows, inverse = distinct(X)
        expected_rows, expected_inverse = np.unique(X, axis=0, return_inverse=True)
        assert rows.shape == expected_rows.shape and (rows == expected_rows).all()
        assert (inverse == expected_inverse.ravel()).all()
