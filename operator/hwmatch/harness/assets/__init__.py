"""The built-in assets, by name, and lookup of user assets given as ``module:Class``.

Asset modules import their ML libraries inside ``setup``: listing the assets
and rejecting a bad parameter then answer at once instead of after loading
scikit-learn, ONNX Runtime and OR-Tools (seconds each).
"""

from __future__ import annotations

import importlib

from hwmatch.harness.assets.base import HARNESS_METRICS, SERVING_METRICS, Asset
from hwmatch.harness.assets.forest import ForestAsset
from hwmatch.harness.assets.onnx_mlp import OnnxMlpAsset
from hwmatch.harness.assets.onnx_server import OnnxMlpServer
from hwmatch.harness.assets.solver import JobShopAsset

BUILTIN: dict[str, type[Asset]] = {cls.name: cls for cls in (ForestAsset, OnnxMlpAsset, JobShopAsset)}
#: The built-in model servers (``hwmatch-bench serve NAME``), for assets with ``spec.serving``.
SERVERS: dict[str, type[OnnxMlpServer]] = {OnnxMlpServer.name: OnnxMlpServer}


class UnknownAsset(LookupError):
    """An asset name that is neither built in nor an importable ``module:Class`` (a usage error)."""


def get(reference: str) -> type[Asset]:
    """The asset class for a built-in name, or for ``package.module:ClassName`` (a user's Asset subclass)."""
    if reference in BUILTIN:
        return BUILTIN[reference]
    module_name, sep, attr = reference.partition(":")
    if not sep:
        raise UnknownAsset(f"unknown asset {reference!r}; built-in assets: {', '.join(BUILTIN)} "
                           "(or give your own Asset subclass as package.module:ClassName)")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownAsset(f"cannot load asset {reference!r}: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, Asset)):
        raise UnknownAsset(f"{reference!r} is not a subclass of hwmatch.harness.Asset")
    return found


__all__ = ["BUILTIN", "HARNESS_METRICS", "SERVERS", "SERVING_METRICS", "Asset", "ForestAsset", "JobShopAsset", "OnnxMlpAsset",
           "OnnxMlpServer", "UnknownAsset", "get"]
