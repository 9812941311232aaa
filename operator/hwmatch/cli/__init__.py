"""The ``hwmatch`` command line. Each module registers its commands on :data:`app`."""

from hwmatch.cli import manifests  # noqa: F401  (registers commands)
from hwmatch.cli import operator  # noqa: F401  (registers commands)
from hwmatch.cli import quality  # noqa: F401  (registers commands)
from hwmatch.cli import recommend  # noqa: F401  (registers commands)
from hwmatch.cli import sweeps  # noqa: F401  (registers commands)
from hwmatch.cli import telemetry  # noqa: F401  (registers commands)
from hwmatch.cli.app import app

__all__ = ["app"]
