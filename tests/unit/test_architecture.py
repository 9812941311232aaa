"""The package's layering, read from its imports (``ast``, every import, lazy ones in functions too).

An arrow that runs back up (the store importing the planner) or a circle of
imports is a design fault long before it is an ImportError: these tests name it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "hwmatch"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("hwmatch", *path.relative_to(PACKAGE).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> dict[str, set[str]]:
    """Module -> the names imported from it (empty set: ``import module``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hwmatch":
                    out.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module.split(".")[0] != "hwmatch":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if sub in MODULES:  # `from hwmatch.cli import sweeps`: the submodule itself
                    out.setdefault(sub, set())
                else:
                    out.setdefault(module, set()).add(alias.name)
    return out


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _graph(key) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, imported in IMPORTS.items():
        for target in imported:
            if target in MODULES and key(target) != key(name):
                graph.setdefault(key(name), set()).add(key(target))
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_the_walk_sees_the_package() -> None:
    assert {"hwmatch.api.vocabulary", "hwmatch.planning.schedule", "hwmatch.data.store"} <= set(MODULES)
    assert "hwmatch.api.vocabulary" in IMPORTS["hwmatch.data.store"]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_through_others() -> None:
    assert _circles(_graph(lambda m: m)) == []


def test_no_package_imports_itself_back_through_others() -> None:
    assert _circles(_graph(_package)) == []


@pytest.mark.parametrize(("package", "allowed"), [
    ("api", set()),
    ("data", {"api"}),
    ("planning", {"api", "data"}),
    ("modeling", {"api", "data"}),
    ("harness", {"api"}),
    ("telemetry", {"api"}),
])
def test_lower_layers_import_only_what_is_below_them(package: str, allowed: set[str]) -> None:
    used = _graph(_package).get(package, set()) - {"hwmatch"}
    assert used <= allowed, f"hwmatch.{package} imports {sorted(used - allowed)}"


def test_the_store_is_imported_for_storage_not_for_the_domain_words() -> None:
    storage = {"Store", "StoreError", "DEFAULT_PATH", "runner_id", "runner_alive", "TrialRow", "TrialRecord"}
    for name, imported in IMPORTS.items():
        if _package(name) == "data":
            continue
        extra = imported.get("hwmatch.data.store", set()) - storage
        assert not extra, f"{name} imports {sorted(extra)} from the store; they live in hwmatch.api.vocabulary"


def test_the_api_package_exports_each_name_from_the_module_it_names() -> None:
    """``hwmatch.api`` loads its names on first use: the table it loads them by is what mypy reads, and each resolves."""
    import hwmatch.api as api

    tree = ast.parse((PACKAGE / "api" / "__init__.py").read_text())
    typed = {alias.name: node.module.rsplit(".", 1)[1] for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hwmatch.api.")
             for alias in node.names}
    assert typed == api._MODULE_OF
    for name, module in typed.items():
        assert getattr(api, name) is getattr(__import__(f"hwmatch.api.{module}", fromlist=[name]), name)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        api.Nope  # noqa: B018
