"""hwmatch's error types: one root, and the permanent/temporary split a caller acts on.

Callers catch what they mean: the CLI prints any :class:`HwmatchError` as a
message (never a traceback), the operator turns an :class:`InputError` into
a status that names the field to fix and retries a :class:`TemporaryError`
later. Anything else (a numpy or scikit-learn error) is a bug and surfaces as one.
"""

from __future__ import annotations


class HwmatchError(Exception):
    """Root of the errors hwmatch raises on purpose; the message names what failed and the fix."""


class InputError(HwmatchError, ValueError):
    """Permanent: the input (a manifest, a table, a request, a flag) must change; retrying cannot help.

    Also a ValueError, which is what it is to Python code that predates these types.
    """


class TemporaryError(HwmatchError, RuntimeError):
    """Transient: a server or a resource is not there yet; the same call may succeed later."""
