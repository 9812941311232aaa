"""hwmatch: find the right hardware, and the right settings, for an AI asset."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hwmatch")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
