"""Trial parameters: read from ``HWMATCH_PARAMS`` and ``--param k=v``, checked against the asset's space.

The space is a list of :class:`hwmatch.api.Parameter`, the model users write in
AIAsset manifests, so a value accepted here is exactly a value the planner may
produce, and the error names the parameter and its allowed space.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from hwmatch.api import Parameter
from hwmatch.api.asset import Scalar

ENV_VAR = "HWMATCH_PARAMS"


class ParameterError(ValueError):
    """A parameter that is unknown, malformed or outside the asset's space (a usage error, exit code 2)."""


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; values stay text until typed by the space."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"--param {item!r} is not NAME=VALUE; write e.g. --param batch_size=16")
        out[name.strip()] = value.strip()
    return out


def parse_env(text: str | None) -> dict[str, object]:
    """The JSON object in ``HWMATCH_PARAMS`` (empty when unset or blank)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{ENV_VAR} is not valid JSON ({exc.msg} at char {exc.pos}); "
                             f"set it to an object like '{{\"batch_size\": 16}}'") from exc
    if not isinstance(value, dict):
        raise ParameterError(f"{ENV_VAR} must be a JSON object of name: value, got {type(value).__name__}")
    return value


def coerce(param: Parameter, raw: object) -> Scalar:
    """``raw`` (text from a flag, or a JSON value) as a value of ``param``'s type, checked against its space."""
    value = _typed(param, raw)
    if not param.contains(value):
        raise ParameterError(f"parameter {param.name!r}: {raw} is outside its space ({param.describe_space()})")
    if param.type == "categorical":
        assert param.values is not None
        return next(v for v in param.values if str(v) == str(value))
    if param.type == "int":
        return int(value)
    return float(value)


def _typed(param: Parameter, raw: object) -> Scalar:
    if param.type == "categorical":
        if isinstance(raw, (str, int, float, bool)):
            return raw
        raise ParameterError(f"parameter {param.name!r}: {raw!r} is not a scalar ({param.describe_space()})")
    if isinstance(raw, bool):
        raise ParameterError(f"parameter {param.name!r} is {param.type}, got a boolean {raw!r}")
    if isinstance(raw, (int, float)):
        return raw
    if isinstance(raw, str):
        try:
            return float(raw)  # "8", "8.0" and "1e3" alike; coerce() restores int
        except ValueError:
            pass
    raise ParameterError(f"parameter {param.name!r} is {param.type}, got {raw!r} ({param.describe_space()})")


def resolve(
    space: Sequence[Parameter], defaults: Mapping[str, Scalar], *layers: Mapping[str, object]
) -> dict[str, Scalar]:
    """The defaults overridden by each layer in turn (later wins), every value checked against ``space``."""
    by_name = {p.name: p for p in space}
    merged: dict[str, object] = dict(defaults)
    for layer in layers:
        unknown = sorted(set(layer) - set(by_name))
        if unknown:
            raise ParameterError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"this asset takes {', '.join(by_name) or 'no parameters'}"
            )
        merged.update(layer)
    missing = [name for name in by_name if name not in merged]
    if missing:
        raise ParameterError(f"no value for {', '.join(map(repr, missing))} and no default; "
                             f"pass --param {missing[0]}=VALUE or set it in {ENV_VAR}")
    return {name: coerce(by_name[name], merged[name]) for name in by_name}
