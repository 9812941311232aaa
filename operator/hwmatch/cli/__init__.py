"""The ``hwmatch`` command line. Each module registers its commands on :data:`app`."""

from hwmatch.cli import (
    manifests,  # noqa: F401  (registers commands)
    operator,  # noqa: F401  (registers commands)
    quality,  # noqa: F401  (registers commands)
    recommend,  # noqa: F401  (registers commands)
    sweeps,  # noqa: F401  (registers commands)
    telemetry,  # noqa: F401  (registers commands)
)
from hwmatch.cli.app import app

__all__ = ["app"]
