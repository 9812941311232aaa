"""PromQL templates of a trial's metrics: placeholders, presets, rendering.

A ``source: prometheus`` metric of an ``AIAsset`` is either a ``preset`` (a
named template below) or a ``query`` written by the user. Both are templates
with the same placeholders, filled per trial. ``{name}`` with a bare
identifier inside braces is never valid PromQL (a label matcher needs an
operator), so placeholders cannot be confused with label selectors and need
no escaping: ``DCGM_FI_DEV_POWER_USAGE{pod_selector}`` and
``foo{namespace="{namespace}"}`` both work.

Selector placeholders (``{pod_selector}``, ``{node_selector}``) expand to a
whole label selector and cover the relabellings one meets in practice: the
template is rendered once per variant and the variants joined with ``or``, so
the first one that has data answers. ``{pod_selector}`` is
``{namespace="ns",pod="p"}`` or, where the scrape lacks ``honorLabels: true``
(Prometheus then renames the exporter's ``pod``/``namespace`` labels),
``{exported_namespace="ns",exported_pod="p"}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product

from hwmatch.api.asset import METRIC_PRESETS, MetricSpec
from hwmatch.api.errors import InputError

#: Placeholders a template may use, and what each becomes.
PLACEHOLDERS: dict[str, str] = {
    "namespace": "the trial pod's namespace (inside quotes: foo{namespace=\"{namespace}\"})",
    "pod": "the trial pod's name (inside quotes)",
    "node": "the node the pod ran on (inside quotes; node-level metrics)",
    "window": "the trial's window as a PromQL duration, rounded up to the scrape resolution, e.g. 45s",
    "window_seconds": "the same window as a number of seconds",
    "duration_seconds": "the trial's exact length in seconds (end - start)",
    "pod_selector": "a label selector of the pod: {namespace=\"ns\",pod=\"p\"}, "
                    "or {exported_namespace=\"ns\",exported_pod=\"p\"} where the scrape renamed them",
    "node_selector": "a label selector of the node's exporter: {instance=~\"node(:port)?\"} or {node=\"node\"}",
}

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(InputError):
    """A metric's template uses a placeholder hwmatch does not know, or cannot be filled."""


class MissingContext(TemplateError):
    """The template needs something this trial does not have (e.g. the node, for a node-level metric)."""


@dataclass(frozen=True)
class Preset:
    """A named PromQL template for a common power or energy exporter."""

    name: str
    template: str
    unit: str
    level: str
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "dcgm-energy",
            "sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{pod_selector}[{window}])) / 1000",
            "J", "pod",
            "GPU energy of the pod's GPUs over the window (NVIDIA DCGM exporter, counter in mJ). "
            "DCGM attributes a GPU to a pod only when the pod requests nvidia.com/gpu.",
        ),
        Preset(
            "dcgm-power",
            "sum(avg_over_time(DCGM_FI_DEV_POWER_USAGE{pod_selector}[{window}]))",
            "W", "pod",
            "Average GPU power of the pod's GPUs over the window, summed over GPUs (NVIDIA DCGM exporter, gauge in W).",
        ),
        Preset(
            "kepler-energy",
            'sum(increase(kepler_pod_cpu_joules_total{pod_namespace="{namespace}",pod_name="{pod}",zone="package"}'
            "[{window}]))",
            "J", "pod",
            "CPU energy Kepler (>= 0.10) attributes to the pod over the window, package zone only: "
            "package already contains core and uncore, so summing zones would count them twice.",
        ),
        Preset(
            "rapl-energy",
            "sum(increase(node_rapl_package_joules_total{node_selector}[{window}]))",
            "J", "node",
            "CPU package energy of the whole NODE the pod ran on (node_exporter RAPL collector): node level only, "
            "it includes everything else running there, so it is the pod's energy only on a node it has to itself.",
        ),
    )
}
assert set(PRESETS) == set(METRIC_PRESETS), "hwmatch.api.asset.METRIC_PRESETS and the presets here must agree"


@dataclass(frozen=True)
class QueryContext:
    """What a template is filled with: the trial's pod, node and time window (Unix seconds).

    The window is the trial's length rounded UP to ``resolution`` (the scrape
    interval): a range selector shorter than the scrape interval holds at most
    one sample and ``increase()`` of one sample is empty. Queries are evaluated
    at ``end``.
    """

    namespace: str
    pod: str
    start: float
    end: float
    node: str | None = None
    resolution: float = 15.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end < self.start:
            raise InputError(f"trial window end ({self.end}) must be a Unix time at or after start ({self.start})")
        if not self.resolution > 0:
            raise InputError(f"resolution must be > 0 seconds (the scrape interval), got {self.resolution}")
        if not self.namespace or not self.pod:
            raise InputError("namespace and pod must name the trial's pod")

    @property
    def duration_seconds(self) -> float:
        return self.end - self.start

    @property
    def window_seconds(self) -> float:
        steps = max(1, math.ceil(round(self.duration_seconds / self.resolution, 6)))  # float noise is not a step
        return round(steps * self.resolution, 3)

    @property
    def window(self) -> str:
        """``window_seconds`` as a PromQL duration (``45s``, or ``1500ms`` off whole seconds)."""
        ms = round(self.window_seconds * 1000)
        return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"

    def values(self) -> dict[str, list[str]]:
        """Every placeholder's text; selector placeholders have one text per variant (joined with ``or``)."""
        out: dict[str, list[str]] = {
            "namespace": [_quote(self.namespace)],
            "pod": [_quote(self.pod)],
            "window": [self.window],
            "window_seconds": [_number(self.window_seconds)],
            "duration_seconds": [_number(self.duration_seconds)],
            "pod_selector": [
                f'{{namespace="{_quote(self.namespace)}",pod="{_quote(self.pod)}"}}',
                f'{{exported_namespace="{_quote(self.namespace)}",exported_pod="{_quote(self.pod)}"}}',
            ],
        }
        if self.node is not None:
            node_regex = _quote(self.node.replace(".", "\\."))  # instance is "node" or "node:port"
            out["node"] = [_quote(self.node)]
            out["node_selector"] = [
                f'{{instance=~"{node_regex}(:[0-9]+)?"}}',
                f'{{node="{_quote(self.node)}"}}',
            ]
        return out


def template_of(metric: MetricSpec) -> str:
    """The template of a ``source: prometheus`` metric: its preset's or its own ``query``."""
    if metric.source != "prometheus":
        raise TemplateError(f"metric {metric.name!r} has source {metric.source!r}, not prometheus")
    if metric.preset is not None:
        return PRESETS[metric.preset].template
    assert metric.query is not None  # MetricSpec guarantees one of query/preset
    return metric.query


def check_template(metric_name: str, template: str) -> set[str]:
    """The placeholders ``template`` uses; :class:`TemplateError` naming the metric if one is unknown."""
    used = set(_PLACEHOLDER.findall(template))
    unknown = sorted(used - PLACEHOLDERS.keys())
    if unknown:
        raise TemplateError(
            f"metric {metric_name!r}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)} in query "
            f"{template!r}; allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )
    return used


def validate_metrics(metrics: Iterable[MetricSpec]) -> None:
    """Check every ``source: prometheus`` metric's template at once (e.g. when an AIAsset is admitted)."""
    problems = []
    for m in metrics:
        if m.source == "prometheus":
            try:
                check_template(m.name, template_of(m))
            except TemplateError as exc:
                problems.append(str(exc))
    if problems:
        raise TemplateError("; ".join(problems))


def render(metric_name: str, template: str, context: QueryContext) -> str:
    """Fill ``template`` for one trial; selector variants are joined as ``(a) or (b)``."""
    used = check_template(metric_name, template)
    values = context.values()
    lacking = sorted(used - values.keys())
    if lacking:
        need = " and ".join("{" + p + "}" for p in lacking)
        raise MissingContext(
            f"metric {metric_name!r} uses {need} but the trial's node is not known "
            "(a node-level metric needs the node the pod ran on)"
        )
    variant_names = sorted(p for p in used if len(values[p]) > 1)
    expressions = []
    for choice in product(*(range(len(values[p])) for p in variant_names)):
        picked = {p: values[p][i] for p, i in zip(variant_names, choice)}

        def fill(m: re.Match[str], picked: dict[str, str] = picked) -> str:
            return picked.get(m[1], values[m[1]][0])

        expressions.append(_PLACEHOLDER.sub(fill, template))
    if len(expressions) == 1:
        return expressions[0]
    return " or ".join(f"({e})" for e in expressions)


def render_metric(metric: MetricSpec, context: QueryContext) -> str:
    """The PromQL that measures ``metric`` for the trial in ``context``."""
    return render(metric.name, template_of(metric), context)


def _quote(text: str) -> str:
    """Escape for the inside of a PromQL double-quoted string (Go escaping rules)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _number(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


# --- tenancy: what a user's query may read -------------------------------------------------------

#: Labels that hold the namespace of the object a series is about: ``namespace`` (Kubernetes' exporters, and the
#: target's own), ``exported_namespace`` (the exporter's ``namespace`` renamed by a scrape without honorLabels,
#: as in ``{pod_selector}``'s second variant), Kepler's ``pod_namespace`` (>= 0.10) and ``container_namespace``.
NAMESPACE_LABELS = frozenset({"namespace", "exported_namespace", "pod_namespace", "container_namespace"})

#: Words of PromQL that are never a metric name outside braces (Prometheus matches them in any case): binary
#: operators, aggregations, modifiers, the ``@`` preprocessors, and the number literals Inf and NaN.
_KEYWORDS = frozenset({
    "and", "or", "unless", "atan2", "bool", "offset", "start", "end", "inf", "nan",
    "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk", "bottomk", "count_values",
    "quantile", "limitk", "limit_ratio",
    "by", "without", "on", "ignoring", "group_left", "group_right",
})
#: Keywords that a parenthesised list of label names may follow (it is not an expression, and holds no selector).
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_MATCH_OPS = frozenset({"=", "!=", "=~", "!~"})
_NAMESPACE_MATCHER = 'namespace="{namespace}" matcher'
_TOKEN = re.compile(
    r"(?P<space>\s+|#[^\n]*)"
    r"|(?P<string>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)"
    r"|(?P<number>\.?[0-9][0-9A-Za-z_.]*)"  # numbers and durations; Prometheus refuses a malformed one
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}\[\]@:])"
)


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, ident or op
    text: str
    start: int
    end: int


class _Unreadable(Exception):
    """The query is not PromQL this check can read (Prometheus would refuse most such queries too)."""

    def __init__(self, query: str, at: int, what: str):
        super().__init__(f"the query cannot be checked: {what} at character {at} ({query[at:at + 20]!r})")


def _tokens(query: str) -> list[_Token]:
    """The query's tokens; inside ``[...]`` a ``:`` is the subquery's colon, elsewhere it may start a metric name
    (``job:requests:rate5m``), as in Prometheus's lexer."""
    out: list[_Token] = []
    pos, in_brackets = 0, False
    while pos < len(query):
        if in_brackets and query[pos] == ":":
            out.append(_Token("op", ":", pos, pos + 1))
            pos += 1
            continue
        m = _TOKEN.match(query, pos)
        if m is None:
            raise _Unreadable(query, pos, "an unexpected character")
        if m.lastgroup != "space":
            assert m.lastgroup is not None
            out.append(_Token(m.lastgroup, m[0], m.start(), m.end()))
            in_brackets = {"[": True, "]": False}.get(m[0], in_brackets)
        pos = m.end()
    return out


def _string_content(token: _Token) -> str | None:
    """A string literal's text when it has no escape sequence (namespaces and label names need none), else None."""
    inner = token.text[1:-1]
    return inner if token.kind == "string" and (token.text[0] == "`" or "\\" not in inner) else None


def _selector_confined(query: str, tokens: list[_Token], i: int, namespace: str) -> tuple[bool, int]:
    """Read the matchers of the ``{`` at ``tokens[i]``: whether one is ``<namespace label>="<namespace>"``,
    and the index after the ``}``. Only ``matcher, matcher, ...`` is read; anything else (an ``or`` between
    matchers, say) is :class:`_Unreadable`, so a form this check does not know is refused, never let through."""
    confined = False
    i += 1
    while True:
        if i >= len(tokens):
            raise _Unreadable(query, len(query), "an unclosed {")
        tok = tokens[i]
        if tok.text == "}":
            return confined, i + 1
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.kind == "string" and after is not None and after.text in {",", "}"}:
            i += 1  # a quoted metric name, {"metric.name"} (Prometheus 3)
        elif tok.kind in {"ident", "string"} and after is not None and after.text in _MATCH_OPS:
            value = tokens[i + 2] if i + 2 < len(tokens) else None
            if value is None or value.kind != "string":
                raise _Unreadable(query, after.end, "a label matcher without a quoted value")
            label = tok.text if tok.kind == "ident" else _string_content(tok)
            confined = confined or (label in NAMESPACE_LABELS and after.text == "="
                                    and _string_content(value) == namespace)
            i += 3
        else:
            raise _Unreadable(query, tok.start, "not a label matcher")
        if i < len(tokens) and tokens[i].text == ",":
            i += 1
        elif i < len(tokens) and tokens[i].text != "}":
            raise _Unreadable(query, tokens[i].start, "not a , or } after a label matcher")


def unconfined_selectors(query: str, namespace: str) -> list[str]:
    """The vector selectors of the PromQL ``query`` that may match series outside ``namespace``; empty when none.

    A selector is confined when one of its matchers is ``L="namespace"`` with ``L`` one of
    :data:`NAMESPACE_LABELS` (matchers are ANDed, so another matcher cannot widen it). Every selector must be,
    not just one: ``x{namespace="a"} or y`` reads all of ``y``. The query is tokenised as Prometheus's lexer
    does (strings, comments, keywords in any case); a bare word that is neither a keyword nor followed by ``(``
    is a metric name, hence a selector. What cannot be read is one entry (refused, never let through).
    """
    try:
        tokens = _tokens(query)
        problems, i = [], 0
        while i < len(tokens):
            tok = tokens[i]
            after = tokens[i + 1] if i + 1 < len(tokens) else None
            word = tok.text.lower()
            if tok.kind == "ident" and word in _LABEL_LIST_KEYWORDS and after is not None and after.text == "(":
                i += 2
                while i < len(tokens) and tokens[i].text != ")":
                    if tokens[i].kind not in {"ident", "string"} and tokens[i].text != ",":
                        raise _Unreadable(query, tokens[i].start, f"not a label name in {tok.text}(...)")
                    i += 1
                i += 1
            elif tok.kind == "ident" and (word in _KEYWORDS or (after is not None and after.text == "(")):
                i += 1  # an operator, aggregation, modifier or function
            elif (tok.kind == "ident" and after is not None and after.text == "{") or tok.text == "{":
                brace = i + 1 if tok.kind == "ident" else i
                confined, i = _selector_confined(query, tokens, brace, namespace)
                if not confined:
                    problems.append(f"selector {query[tok.start:tokens[i - 1].end]} has no {_NAMESPACE_MATCHER}")
            elif tok.kind == "ident":  # a bare metric name: every series of it
                problems.append(f"selector {tok.text} has no {_NAMESPACE_MATCHER}")
                i += 1
            elif tok.text == "}":
                raise _Unreadable(query, tok.start, "a } without its {")
            else:
                i += 1
    except _Unreadable as exc:
        return [str(exc)]
    return problems


def namespace_confinement(metric: MetricSpec, context: QueryContext) -> str | None:
    """Why ``metric``'s query for this trial could read series of other namespaces, or None when it cannot.

    The query runs under the operator's identity, which sees all of Prometheus; ``--promql-tenancy=namespace``
    lets an asset read only its trial's namespace. Presets are the operator's own templates (pod- or
    node-level, never another namespace's series): None. A user's query is checked as it is rendered for this
    trial, i.e. exactly the text that would be sent. Raises :class:`TemplateError` as :func:`render` does.
    """
    if metric.preset is not None:
        return None
    problems = unconfined_selectors(render_metric(metric, context), context.namespace)
    if not problems:
        return None
    return (f"refused (--promql-tenancy=namespace: a query may read only the trial's namespace): "
            f"{'; '.join(problems)}; give every vector selector {_NAMESPACE_MATCHER} (or use {{pod_selector}}, "
            "or a preset)")
