"""Loading multi-document YAML manifests into the API models, with errors a person can act on.

Every problem names the file, the document (index and kind/name), the field
path in the manifest's own spelling (``spec.parameters[1].range``) and what
is allowed there. All problems of all files are collected, so one run of
``hwmatch validate`` shows everything to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Iterable, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from hwmatch.api.asset import AIAsset
from hwmatch.api.base import API_VERSION
from hwmatch.api.errors import InputError
from hwmatch.api.recommendation import DERIVED_METRICS, HWRecommendation
from hwmatch.api.sweep import BenchmarkSweep, BenchmarkTrial, plan_problems

Resource = Union[AIAsset, BenchmarkSweep, BenchmarkTrial, HWRecommendation]
KINDS: dict[str, type[BaseModel]] = {
    "AIAsset": AIAsset,
    "BenchmarkSweep": BenchmarkSweep,
    "BenchmarkTrial": BenchmarkTrial,
    "HWRecommendation": HWRecommendation,
}


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with one document."""

    file: str
    document: int  # 1-based, as a person counts
    label: str  # "BenchmarkSweep foo" when known
    path: str  # field path, e.g. spec.parameters[1].range
    message: str

    def __str__(self) -> str:
        where = f"{self.file}, document {self.document}"
        if self.label:
            where += f" ({self.label})"
        return f"{where}: {self.path or '<document>'}: {self.message}"


class ManifestError(InputError):
    """Raised with every problem found in the manifests."""

    def __init__(self, problems: list[ManifestProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_loc(loc: Iterable[Any]) -> str:
    """``('spec', 'parameters', 1, 'range')`` -> ``spec.parameters[1].range``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc`` (for listing the allowed field names)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            if get_origin(current) in (list, dict):
                current = get_args(current)[-1]
                continue
            return None
        field = next(
            (f for n, f in current.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """Strip Optional[...] / X | None."""
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return tp


def _allowed_fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def problems_from_validation(
    error: ValidationError, model: type[BaseModel], file: str, document: int, label: str
) -> list[ManifestProblem]:
    problems = []
    for err in error.errors():
        loc = tuple(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            allowed = ", ".join(_allowed_fields(parent)) if parent else "see the CRD schema"
            msg = f"unknown field {loc[-1]!r}; allowed here: {allowed}"
        elif err["type"] in ("literal_error", "enum"):
            msg = f"{msg} (got {err.get('input')!r})"
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append(ManifestProblem(file, document, label, format_loc(loc), msg))
    return problems


def parse_document(doc: Any, file: str = "<input>", document: int = 1) -> Resource:
    """Validate one decoded YAML document; raise :class:`ManifestError` on problems."""
    if not isinstance(doc, dict):
        raise ManifestError([ManifestProblem(file, document, "", "", f"expected a mapping (an object), got {type(doc).__name__}")])
    kind = doc.get("kind")
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    label = f"{kind} {name}" if kind and name else str(kind or "")
    if doc.get("apiVersion") != API_VERSION:
        raise ManifestError([ManifestProblem(file, document, label, "apiVersion",
                                     f"must be {API_VERSION!r} (got {doc.get('apiVersion')!r})")])
    if kind not in KINDS:
        raise ManifestError([ManifestProblem(file, document, label, "kind",
                                     f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")])
    model = KINDS[kind]
    try:
        # by_name=False: on the wire only camelCase is valid; snake_case is for Python callers.
        return model.model_validate(doc, by_alias=True, by_name=False)  # type: ignore[return-value]
    except ValidationError as exc:
        raise ManifestError(problems_from_validation(exc, model, file, document, label)) from None


@dataclass(frozen=True)
class Document:
    """A validated resource and where it came from."""

    resource: Resource
    file: str
    index: int

    @property
    def label(self) -> str:
        return f"{self.resource.kind} {self.resource.metadata.name}"


#: Deepest nesting of a manifest's YAML (a real one has about 10 levels).
MAX_DEPTH = 64
#: Most nodes a document may have once its aliases are expanded (a "billion laughs" has 10**9).
MAX_NODES = 200_000


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys, deep nesting and alias expansion beyond the bounds."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except TypeError:
                    continue
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given at line {seen[key]}); keep one of them",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Nodes of ``node`` with every alias expanded (shared nodes counted each time they are used)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias counts once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


def _safe_load_all(text: str) -> list[Any]:
    loader = _Loader(text)
    try:
        docs = []
        while loader.check_node():
            node: Any = loader.get_node()
            if _expanded_size(node, {}) > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"the document expands to more than {MAX_NODES} nodes (aliases used over and over: "
                                "a \"billion laughs\"); write the values out, or use fewer aliases", node.start_mark)
            docs.append(loader.construct_document(node))
        return docs
    finally:
        loader.dispose()


def load_text(text: str, file: str = "<input>") -> list[Document]:
    """Every resource in a multi-document YAML string; empty documents are skipped."""
    try:
        docs = _safe_load_all(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ManifestError([ManifestProblem(file, 0, "", "", f"not valid YAML at {where}: {getattr(exc, 'problem', exc)}")]) from None
    out: list[Document] = []
    problems: list[ManifestProblem] = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        try:
            out.append(Document(parse_document(doc, file, index), file, index))
        except ManifestError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    return out


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Every resource in the files, also checked across documents (references resolve)."""
    out: list[Document] = []
    problems: list[ManifestProblem] = []
    for path in paths:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(ManifestProblem(str(path), 0, "", "", f"cannot read: {exc.strerror}"))
            continue
        text, problem = _decode(data)
        if problem:
            problems.append(ManifestProblem(str(path), 0, "", "", problem))
            continue
        try:
            found = load_text(text, str(path))
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        if not found:
            problems.append(ManifestProblem(str(path), 0, "", "", "no resources in this file (it is empty or only "
                                                                 "comments); add a manifest or leave the file out"))
        out.extend(found)
    problems.extend(_duplicates(out))
    problems.extend(check_references(out))
    if problems:
        raise ManifestError(problems)
    return out


def _decode(data: bytes) -> tuple[str, str | None]:
    """The file's text, or why it is not a manifest (binary, not UTF-8)."""
    if b"\0" in data[:65536]:
        return "", "a binary file, not YAML text; give a manifest file"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return "", (f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} cannot be decoded; "
                    "save the file as UTF-8")


def _duplicates(documents: list[Document]) -> list[ManifestProblem]:
    """The same object (kind, namespace, name) defined twice, as kubectl refuses it."""
    first: dict[tuple[str, str | None, str], Document] = {}
    problems = []
    for d in documents:
        key = (d.resource.kind, d.resource.metadata.namespace, d.resource.metadata.name)
        if key in first:
            f = first[key]
            problems.append(ManifestProblem(d.file, d.index, d.label, "metadata.name",
                                            f"{d.label} is defined twice (first in {f.file}, document {f.index}); "
                                            "rename one or remove it"))
        else:
            first[key] = d
    return problems


def load_files(paths: Iterable[str | Path]) -> list[Resource]:
    """The resources of :func:`load_documents`, without their origin."""
    return [d.resource for d in load_documents(paths)]


def check_references(documents: list[Document]) -> list[ManifestProblem]:
    """Cross-document checks: an assetRef names a known AIAsset, a recommendation's metrics exist, ...

    References are judged only when the files define AIAssets at all: a file of
    recommendations alone may refer to assets already in the store or cluster.
    """
    assets = {d.resource.metadata.name: d.resource for d in documents if isinstance(d.resource, AIAsset)}
    sweeps = {d.resource.metadata.name for d in documents if isinstance(d.resource, BenchmarkSweep)}
    problems: list[ManifestProblem] = []
    for d in documents:
        r = d.resource
        if not isinstance(r, (BenchmarkSweep, HWRecommendation)) or not assets:
            continue

        def add(path: str, message: str, d: Document = d) -> None:
            problems.append(ManifestProblem(d.file, d.index, d.label, path, message))

        asset = assets.get(r.spec.asset_ref.name)
        if asset is None:
            add("spec.assetRef.name", f"no AIAsset named {r.spec.asset_ref.name!r}; known: {', '.join(assets)}")
            continue
        if isinstance(r, BenchmarkSweep):
            for path, message in plan_problems(asset.spec.parameters, r.spec):
                add(path, message)
            known = {f.name for f in asset.spec.instance_features}
            for i, inst in enumerate(r.spec.instances):
                for key in inst:
                    if key not in known:
                        add(f"spec.instances[{i}].{key}",
                            f"not an instance feature of {asset.metadata.name}; known: {sorted(known) or 'none'}")
            continue
        metrics = {m.name for m in asset.spec.metrics} | set(DERIVED_METRICS)
        for i, c in enumerate(r.spec.constraints):
            if c.metric not in metrics:
                add(f"spec.constraints[{i}].metric", f"unknown metric {c.metric!r}; known: {', '.join(sorted(metrics))}")
        for key in r.spec.objective.terms():
            if key not in metrics:
                add("spec.objective", f"unknown metric {key!r}; known: {', '.join(sorted(metrics))}")
        params = {p.name: p for p in asset.spec.parameters}
        for key, value in r.spec.fixed.items():
            if key not in params:
                add(f"spec.fixed.{key}", f"unknown parameter; known: {', '.join(params)}")
            elif not params[key].contains(value):
                add(f"spec.fixed.{key}", f"{value!r} is outside the space: {params[key].describe_space()}")
        known_features = {f.name for f in asset.spec.instance_features}
        for key in r.spec.instance:
            if key not in known_features:
                add(f"spec.instance.{key}", f"not an instance feature of {asset.metadata.name}; known: {sorted(known_features) or 'none'}")
        for i, ref in enumerate(r.spec.sweep_refs):
            if sweeps and ref.name not in sweeps:
                add(f"spec.sweepRefs[{i}].name", f"no BenchmarkSweep named {ref.name!r}; known: {', '.join(sorted(sweeps))}")
    return problems
