"""Shared pytest configuration: fixtures for the local control plane and a real Prometheus."""

import importlib.util

pytest_plugins = [
    name
    for name in ("tests.fixtures.cluster", "tests.fixtures.prometheus")
    if importlib.util.find_spec(name) is not None
]
