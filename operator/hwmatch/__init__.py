"""hwmatch: find the right hardware, and the right settings, for an AI asset."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``hwmatch.__version__``, read from the installed metadata when asked: ``importlib.metadata`` takes 30 ms to load."""
    if name != "__version__":
        raise AttributeError(f"module 'hwmatch' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwmatch")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0"
