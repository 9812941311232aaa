"""Shared pytest configuration: fixtures for the local control plane and a real Prometheus."""

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.prometheus"]
