"""Parameter spaces, samplers and the planner: bounds, counts, determinism, stable trial names."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from hwmatch.api import AIAsset, BenchmarkSweep, Parameter
from hwmatch.api.vocabulary import trial_id
from hwmatch.planning import GridSampler, LatinHypercubeSampler, Planner, RandomSampler, Space, get_sampler, register
from hwmatch.planning import samplers as samplers_module

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def param(**kw) -> Parameter:
    return Parameter.model_validate(kw)


SPACE_PARAMS = [
    param(name="n_estimators", type="int", values=[10, 50, 200]),
    param(name="max_depth", type="int", range={"min": 2, "max": 32, "log": True}),
    param(name="lr", type="float", range={"min": 0.001, "max": 1.0, "log": True}),
    param(name="frac", type="float", range={"min": 0.1, "max": 0.5, "step": 0.1}),
    param(name="kind", type="categorical", values=["a", "b"]),
]


def make_asset(parameters=SPACE_PARAMS, name="toy") -> AIAsset:
    return AIAsset.model_validate({
        "metadata": {"name": name},
        "spec": {"command": ["python"], "parameters": [p.to_wire() for p in parameters],
                 "metrics": [{"name": "latency_ms"}], "instanceFeatures": [{"name": "rows"}]},
    })


def make_sweep(name="toy-sweep", asset="toy", **sampling) -> BenchmarkSweep:
    return BenchmarkSweep.model_validate({
        "metadata": {"name": name},
        "spec": {"assetRef": {"name": asset},
                 "platforms": [{"name": "cpu-1core", "cpus": [0]}, {"name": "cpu-2core", "cpus": [0, 1]}],
                 "sampling": sampling or {"strategy": "grid"}},
    })


def in_space(point: dict) -> bool:
    return all(p.contains(point[p.name]) for p in SPACE_PARAMS)


# -- spaces ---------------------------------------------------------------------------------------

def test_decode_respects_types_bounds_and_grids():
    space = Space(SPACE_PARAMS)
    rng = np.random.default_rng(0)
    for u in rng.random((200, len(space))).tolist() + [[0.0] * 5, [1.0] * 5]:
        point = space.decode(u)
        assert in_space(point), point
        assert isinstance(point["max_depth"], int)
        assert point["frac"] in (0.1, 0.2, 0.3, 0.4, 0.5)
    assert space.decode([0, 0, 0, 0, 0]) == {"n_estimators": 10, "max_depth": 2, "lr": 0.001, "frac": 0.1, "kind": "a"}
    assert space.decode([1, 1, 1, 1, 1]) == {"n_estimators": 200, "max_depth": 32, "lr": 1.0, "frac": 0.5, "kind": "b"}


def test_log_range_is_uniform_in_log_space():
    space = Space([param(name="lr", type="float", range={"min": 0.001, "max": 1.0, "log": True})])
    assert space.decode([0.5])["lr"] == pytest.approx(math.sqrt(0.001), rel=1e-5)
    assert space.encode({"lr": 0.01})[0] == pytest.approx(1 / 3)


def test_encode_inverts_decode():
    space = Space(SPACE_PARAMS)
    point = {"n_estimators": 50, "max_depth": 8, "lr": 0.1, "frac": 0.3, "kind": "b"}
    assert space.decode(space.encode(point)) == point


def test_grid_resolution_steps_and_int_ranges():
    space = Space(SPACE_PARAMS)
    axes = space.grid_axes(resolution=5)
    assert axes[0] == [10, 50, 200]
    assert axes[1] == [2, 4, 8, 16, 32]  # log-spaced integer points
    assert axes[2] == [0.001, pytest.approx(0.00562341), pytest.approx(0.0316228), pytest.approx(0.177828), 1.0]
    assert axes[3] == [0.1, 0.2, 0.3, 0.4, 0.5]  # step wins over resolution
    assert axes[4] == ["a", "b"]
    assert Space([param(name="k", type="int", range={"min": 1, "max": 3})]).grid_axes(5) == [[1, 2, 3]]
    assert Space([param(name="x", type="float", range={"min": 0, "max": 1})]).grid_axes(3) == [[0.0, 0.5, 1.0]]


def test_empty_space_has_one_point():
    assert Space([]).grid() == [{}]
    assert GridSampler().sample(Space([]), None, np.random.default_rng(0)) == [{}]


# -- samplers -------------------------------------------------------------------------------------

def test_grid_full_and_budgeted_subset_is_deterministic():
    space = Space(SPACE_PARAMS)
    full = GridSampler(resolution=3).sample(space, None, np.random.default_rng(1))
    assert len(full) == 3 * 3 * 3 * 5 * 2
    a = GridSampler(resolution=3).sample(space, 20, np.random.default_rng(7))
    b = GridSampler(resolution=3).sample(space, 20, np.random.default_rng(7))
    c = GridSampler(resolution=3).sample(space, 20, np.random.default_rng(8))
    assert a == b and a != c and len(a) == 20
    positions = [full.index(p) for p in a]
    assert positions == sorted(positions) and len(set(positions)) == 20  # a subset, in grid order


@pytest.mark.parametrize("sampler", [RandomSampler(), LatinHypercubeSampler()])
def test_random_designs_count_bounds_determinism(sampler):
    space = Space(SPACE_PARAMS)
    a = sampler.sample(space, 40, np.random.default_rng(3))
    assert len(a) == 40 and all(in_space(p) for p in a)
    assert a == sampler.sample(space, 40, np.random.default_rng(3))
    assert a != sampler.sample(space, 40, np.random.default_rng(4))


def test_latin_hypercube_uses_every_stratum_once():
    space = Space([param(name="x", type="float", range={"min": 0, "max": 10}),
                   param(name="y", type="float", range={"min": 1, "max": 1000, "log": True})])
    n = 16
    design = LatinHypercubeSampler().sample(space, n, np.random.default_rng(5))
    cells = np.floor(np.array([space.encode(p) for p in design]) * n).astype(int)
    for column in cells.T:
        assert sorted(column) == list(range(n))


def test_budgetless_random_sampling_is_refused():
    with pytest.raises(ValueError, match="needs a budget"):
        RandomSampler().sample(Space(SPACE_PARAMS), None, np.random.default_rng(0))


def test_registry_lookup_and_extension(monkeypatch):
    monkeypatch.setattr(samplers_module, "_REGISTRY", dict(samplers_module._REGISTRY))
    assert isinstance(get_sampler("latin-hypercube"), LatinHypercubeSampler)
    with pytest.raises(ValueError, match="unknown sampling strategy 'sobol'; known: .*grid, latin-hypercube, random"):
        get_sampler("sobol")
    register("sobol", RandomSampler)
    assert isinstance(get_sampler("sobol"), RandomSampler)


# -- the planner ----------------------------------------------------------------------------------

def test_plan_counts_platforms_combinations_instances_repetitions():
    sweep = make_sweep(strategy="latin-hypercube", budget=6, repetitions=3, seed=2)
    sweep.spec.instances = [{"rows": 100.0}, {"rows": 1000.0}]
    trials = Planner(make_asset(), sweep).plan()
    assert len(trials) == 2 * 6 * 2 * 3
    names = [t.metadata.name for t in trials]
    assert len(set(names)) == len(names)
    assert all(DNS_LABEL.match(n) and n.startswith("toy-sweep-") for n in names)
    assert {t.spec.repetition for t in trials} == {0, 1, 2}
    assert {t.spec.instance["rows"] for t in trials} == {100.0, 1000.0}
    assert trials[0].metadata.labels == {"hwmatch.dev/asset": "toy", "hwmatch.dev/sweep": "toy-sweep",
                                         "hwmatch.dev/platform": "cpu-1core"}
    # platform innermost, repetition outermost
    assert [t.spec.platform for t in trials[:2]] == ["cpu-1core", "cpu-2core"]
    assert trials[0].spec.repetition == 0 and trials[-1].spec.repetition == 2


def test_same_seed_same_trials_other_seed_other_trials():
    names = lambda seed: [t.metadata.name for t in Planner(  # noqa: E731
        make_asset(), make_sweep(strategy="random", budget=5, seed=seed)).plan()]
    assert names(1) == names(1)
    assert set(names(1)) != set(names(2))


def test_trial_ids_are_stable_and_distinct_across_repetitions():
    params = {"n_estimators": 50, "kind": "a"}
    assert trial_id("toy-sweep", "cpu-1core", params, {}, 0) == "toy-sweep-8cc5e42e5c"  # pinned: resume depends on it
    assert trial_id("toy-sweep", "cpu-1core", dict(reversed(params.items())), {}, 0) == "toy-sweep-8cc5e42e5c"
    ids = {trial_id("toy-sweep", p, params, inst, r) for p in ("cpu-1core", "cpu-2core")
           for inst in ({}, {"rows": 10.0}) for r in range(3)}
    assert len(ids) == 12


def test_long_and_dotted_sweep_names_give_dns_labels():
    name = trial_id("a." + "x" * 80, "p", {}, {}, 0)
    assert DNS_LABEL.match(name) and len(name) <= 63


def test_grid_duplicates_dropped_in_small_discrete_spaces():
    asset = make_asset([param(name="k", type="categorical", values=["a", "b"])])
    trials = Planner(asset, make_sweep(strategy="random", budget=20, seed=0)).plan()
    assert sorted({t.spec.parameters["k"] for t in trials}) == ["a", "b"] and len(trials) == 2 * 2


class CountingRounds:
    """A round sampler proposing the next unseen integer, to exercise the rounds protocol."""

    def sample(self, space, n, rng):
        return [{"k": i} for i in range(n)]

    def propose(self, space, history, n, rng, *, asset, sweep, platform):
        seen = set(history["param.k"]) if len(history) else set()
        return [{"k": k} for k in range(100) if k not in seen][:n]


def test_rounds_until_the_budget_per_platform():
    asset = make_asset([param(name="k", type="int", range={"min": 0, "max": 99})])
    sweep = make_sweep(strategy="random", budget=5, initial=2, batch_size=2)
    planner = Planner(asset, sweep, sampler=CountingRounds())
    assert planner.in_rounds and planner.max_trials() == 10
    done = planner.plan()
    assert len(done) == 4
    rounds = 0
    while True:
        history = pd.DataFrame({"trial_id": [t.metadata.name for t in done],
                                "platform": [t.spec.platform for t in done],
                                "param.k": [t.spec.parameters["k"] for t in done]})
        batch = planner.next_round(history)
        if not batch:
            break
        rounds += 1
        done += batch
    assert rounds == 2 and len(done) == 10
    for platform in ("cpu-1core", "cpu-2core"):
        assert sorted(t.spec.parameters["k"] for t in done if t.spec.platform == platform) == [0, 1, 2, 3, 4]


def test_planner_refuses_a_sweep_of_another_asset():
    with pytest.raises(ValueError, match="refers to asset 'other'"):
        Planner(make_asset(), make_sweep(asset="other"))
