"""The SensorThings model and its query language, for :mod:`publish.api.sta`: which entity sets
exist, how they relate, which properties a request may filter and order on, and the parsers of
resource paths and of ``$filter``, ``$orderby``, ``$expand``, ``$top``, ``$skip``, ``$count`` and
``$select``.

``$filter`` is parsed by hand: comparisons (``eq ne gt ge lt le``) of a whitelisted property with
a literal (string, number, ISO datetime, ``true``/``false``/``null``), joined by ``and``/``or``/
``not`` and parentheses. Column names come only from :data:`PROPS`; every literal is a bound
parameter. ``phenomenonTime`` of an hourly value is the hour ``[start, end)``; against an instant
``t`` it compares as FROST-Server does, with the end exclusive: ``gt`` starts after t, ``ge``
ends after t, ``lt`` ends at or before t, ``le`` starts at or before t, ``eq`` contains t.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from etl.duck import identifier as quote
from etl.timeutil import parse_iso
from publish.api.errors import ApiError

DEFAULT_TOP, MAX_TOP = 100, 1000
MAX_SKIP = 2**53
MAX_EXPAND_DEPTH = 4
MAX_FILTER_DEPTH = 32              # nested parentheses and nots
OPTIONS = ("$top", "$skip", "$count", "$filter", "$orderby", "$expand", "$select")


@dataclass(frozen=True)
class Prop:
    kind: str                      # text, number, instant or interval
    columns: tuple[str, ...]       # one column; an interval's (start, end)


@dataclass(frozen=True)
class Relation:
    target: str                    # entity set navigated to
    target_cols: tuple[str, ...]   # matched, in order, with the source's columns
    source_cols: tuple[str, ...]
    many: bool


_TEXT = {name: Prop("text", (name,)) for name in ("name", "description")}
_ID = {"id": Prop("text", ("id",)), "@iot.id": Prop("text", ("id",))}
PROPS: dict[str, dict[str, Prop]] = {
    "Things": {**_ID, **_TEXT},
    "Locations": {**_ID, **_TEXT, "encodingType": Prop("text", ("encodingType",))},
    "FeaturesOfInterest": {**_ID, **_TEXT, "encodingType": Prop("text", ("encodingType",))},
    "Sensors": {**_ID, **_TEXT, "encodingType": Prop("text", ("encodingType",)),
                "metadata": Prop("text", ("metadata",))},
    "ObservedProperties": {**_ID, **_TEXT, "definition": Prop("text", ("definition",))},
    "Datastreams": {**_ID, **_TEXT, "observationType": Prop("text", ("observationType",)),
                    "phenomenonTime": Prop("interval", ("phenomenon_start", "phenomenon_end")),
                    "resultTime": Prop("interval", ("result_start", "result_end")),
                    "Thing/@iot.id": Prop("text", ("thing_id",)), "Sensor/@iot.id": Prop("text", ("sensor_id",)),
                    "ObservedProperty/@iot.id": Prop("text", ("observed_property_id",))},
    "Observations": {"phenomenonTime": Prop("interval", ("period_start", "period_end")),
                     "resultTime": Prop("instant", ("period_end",)), "result": Prop("number", ("result",))},
}
KEYS: dict[str, tuple[str, ...]] = {s: ("id",) for s in PROPS}
KEYS["Observations"] = ("thing_id", "observed_property_id", "period_start")

_STREAM = ("thing_id", "observed_property_id")
RELATIONS: dict[tuple[str, str], Relation] = {
    ("Things", "Locations"): Relation("Locations", ("id",), ("id",), True),
    ("Things", "Datastreams"): Relation("Datastreams", ("thing_id",), ("id",), True),
    ("Locations", "Things"): Relation("Things", ("id",), ("id",), True),
    ("Sensors", "Datastreams"): Relation("Datastreams", ("sensor_id",), ("id",), True),
    ("ObservedProperties", "Datastreams"): Relation("Datastreams", ("observed_property_id",), ("id",), True),
    ("Datastreams", "Thing"): Relation("Things", ("id",), ("thing_id",), False),
    ("Datastreams", "Sensor"): Relation("Sensors", ("id",), ("sensor_id",), False),
    ("Datastreams", "ObservedProperty"): Relation("ObservedProperties", ("id",), ("observed_property_id",), False),
    ("Datastreams", "Observations"): Relation("Observations", _STREAM, _STREAM, True),
    ("Observations", "Datastream"): Relation("Datastreams", _STREAM, _STREAM, False),
    ("Observations", "FeatureOfInterest"): Relation("FeaturesOfInterest", ("id",), ("thing_id",), False),
    ("FeaturesOfInterest", "Observations"): Relation("Observations", ("thing_id",), ("id",), True),
}
FIELDS: dict[str, tuple[str, ...]] = {
    "Things": ("name", "description", "properties"),
    "Locations": ("name", "description", "encodingType", "location", "properties"),
    "FeaturesOfInterest": ("name", "description", "encodingType", "feature", "properties"),
    "Sensors": ("name", "description", "encodingType", "metadata", "properties"),
    "ObservedProperties": ("name", "definition", "description", "properties"),
    "Datastreams": ("name", "description", "observationType", "unitOfMeasurement", "phenomenonTime", "resultTime",
                    "properties"),
    "Observations": ("phenomenonTime", "resultTime", "result", "parameters"),
}
NAVS: dict[str, tuple[str, ...]] = {s: tuple(nav for (src, nav) in RELATIONS if src == s) for s in PROPS}


def bad(what: str, detail: str) -> ApiError:
    return ApiError(400, f"invalid {what}", detail)


# ---- resource paths -------------------------------------------------------------------------------

_SEGMENT = re.compile(r"^(\$?[A-Za-z]+)(?:\((.*)\))?$")


def parse_path(path: str) -> list[tuple[str, str | None]]:
    """``Things('a')/Datastreams`` → ``[("Things", "a"), ("Datastreams", None)]``."""
    out: list[tuple[str, str | None]] = []
    for part in path.strip("/").split("/"):
        m = _SEGMENT.match(part)
        if not m:
            raise ApiError(404, "not found", f"{part!r} is not a SensorThings path segment")
        name, key = m.group(1), m.group(2)
        if key is not None:
            if len(key) >= 2 and key[0] == key[-1] == "'":
                key = key[1:-1].replace("''", "'")
            elif not key.isdigit():
                raise bad("key", f"{key!r}: a key is a quoted string ('…') or an integer")
        out.append((name, key))
    return out


def literal(key: str) -> str:
    """A key as it is written in a path: ``'aq-ref-0001'``."""
    return "'" + key.replace("'", "''") + "'"


# ---- $filter --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^']|'')*')
  | (?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<paren>[()])
  | (?P<word>[A-Za-z@$][\w@./$]*)
)""", re.X)
COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_FLIP = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge", "eq": "eq", "ne": "ne"}
_INTERVAL = {"gt": "{s} > {t}", "ge": "{e} > {t}", "lt": "{e} <= {t}", "le": "{s} <= {t}",
             "eq": "({s} <= {t} AND {e} > {t})", "ne": "NOT ({s} <= {t} AND {e} > {t})"}
_WORDS = {"true": True, "false": False, "null": None}


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad("$filter", f"unexpected {text[pos:].strip()[:20]!r} at character {pos}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "str":
            out.append(("lit", raw[1:-1].replace("''", "'")))
        elif kind == "time":
            try:
                out.append(("lit", parse_iso(raw)))
            except ValueError:
                raise bad("$filter", f"{raw!r} is not a valid datetime") from None
        elif kind == "num":
            try:
                out.append(("lit", float(raw) if any(c in raw for c in ".eE") else int(raw)))
            except ValueError:          # more digits than int() takes
                raise bad("$filter", f"{raw[:20]!r}… is not a number") from None
        elif kind == "word" and raw in _WORDS:
            out.append(("lit", _WORDS[raw]))
        else:
            out.append((kind, raw))
        pos = m.end()
    return out


class _Filter:
    """Recursive descent over the tokens, emitting SQL and its parameters as it goes."""

    def __init__(self, text: str, props: dict[str, Prop]) -> None:
        self.tokens, self.props, self.i, self.depth = _tokens(text), props, 0, 0
        self.params: list[Any] = []

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise bad("$filter", "the expression ends too early")
        self.i += 1
        return token

    def parse(self) -> str:
        sql = self.disjunction()
        if self.peek() is not None:
            raise bad("$filter", f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return sql

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while self.peek() == ("word", "or"):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while self.peek() == ("word", "and"):
            self.i += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        if self.peek() not in (("word", "not"), ("paren", "(")):
            return self.comparison()
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise bad("$filter", f"nested deeper than {MAX_FILTER_DEPTH} levels")
        if self.take() == ("word", "not"):
            sql = f"(NOT {self.negation()})"
        else:
            sql = self.disjunction()
            if self.take() != ("paren", ")"):
                raise bad("$filter", "missing ')'")
        self.depth -= 1
        return sql

    def operand(self) -> tuple[str, Any]:
        kind, value = self.take()
        if kind == "lit":
            return "lit", value
        if kind == "word" and value in self.props:
            return "prop", self.props[value]
        if kind == "word" and self.peek() == ("paren", "("):
            raise bad("$filter", f"function {value}() is not supported")
        raise bad("$filter", f"{value!r} is not a filterable property; use one of {', '.join(self.props)}")

    def comparison(self) -> str:
        left = self.operand()
        kind, op = self.take()
        if kind != "word" or op not in COMPARISONS:
            raise bad("$filter", f"{op!r} is not a comparison; use one of {', '.join(COMPARISONS)}")
        right = self.operand()
        if left[0] == right[0]:
            raise bad("$filter", "a comparison needs one property and one literal")
        prop, value = (left[1], right[1]) if left[0] == "prop" else (right[1], left[1])
        return self.compare(prop, op if left[0] == "prop" else _FLIP[op], value)

    def compare(self, prop: Prop, op: str, value: Any) -> str:
        col = quote(prop.columns[0])
        if value is None:
            if op not in ("eq", "ne"):
                raise bad("$filter", "null compares only with eq or ne")
            return f"{col} IS {'NOT ' if op == 'ne' else ''}NULL"
        wanted = {"text": str, "number": (int, float), "instant": datetime, "interval": datetime}[prop.kind]
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise bad("$filter", f"a {prop.kind} property compared with {value!r}")
        if prop.kind in ("text", "number"):
            self.params.append(value)
            return f"{col} {COMPARISONS[op]} ?"
        if prop.kind == "instant":
            self.params.append(value.isoformat())
            return f"{col} {COMPARISONS[op]} CAST(? AS TIMESTAMPTZ)"
        template = _INTERVAL[op]
        self.params += [value.isoformat()] * template.count("{t}")
        return template.format(s=col, e=quote(prop.columns[1]), t="CAST(? AS TIMESTAMPTZ)")


def parse_filter(text: str, props: dict[str, Prop]) -> tuple[str, list[Any]]:
    if not text.strip():
        raise bad("$filter", "empty expression")
    f = _Filter(text, props)
    return f.parse(), f.params


# ---- the other options ----------------------------------------------------------------------------

@dataclass
class Expand:
    nav: str
    options: Options


@dataclass
class Options:
    top: int = DEFAULT_TOP
    skip: int = 0
    count: bool = False
    where: tuple[str, list[Any]] | None = None
    order: list[tuple[str, bool]] = field(default_factory=list)   # (column, descending)
    select: tuple[str, ...] | None = None
    expand: list[Expand] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)              # as given, for next links


def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
            if depth < 0:
                raise bad("option", f"unbalanced ')' in {text!r}")
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth or quoted:
        raise bad("option", f"unbalanced parentheses or quotes in {text!r}")
    return parts + [text[start:]]


def _count(text: str, name: str) -> int:
    try:
        n = int(text) if text.strip().isdigit() else -1
    except ValueError:          # a digit int() refuses ("²"), or more digits than it takes
        n = -1
    if not 0 <= n <= MAX_SKIP:
        raise bad(name, f"{text!r} is not an integer from 0 to {MAX_SKIP}")
    return n


def _orderby(text: str, set_name: str) -> list[tuple[str, bool]]:
    out = []
    for item in _split(text, ","):
        parts = item.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise bad("$orderby", f"{item.strip()!r} is not '<property> [asc|desc]'")
        prop = PROPS[set_name].get(parts[0])
        if prop is None:
            raise bad("$orderby", f"{parts[0]!r} cannot be ordered on; use one of {', '.join(PROPS[set_name])}")
        out.append((prop.columns[0], len(parts) == 2 and parts[1].lower() == "desc"))
    return out


def _expand(text: str, set_name: str, depth: int) -> list[Expand]:
    if depth >= MAX_EXPAND_DEPTH:
        raise bad("$expand", f"nested deeper than {MAX_EXPAND_DEPTH} levels")
    out: dict[str, Expand] = {}
    for item in _split(text, ","):
        m = re.fullmatch(r"\s*([A-Za-z/]+)\s*(?:\((.*)\))?\s*", item, re.S)
        if not m:
            raise bad("$expand", f"{item.strip()!r} is not '<navigation>[(<options>)]'")
        first, _, rest = m.group(1).partition("/")
        rel = RELATIONS.get((set_name, first))
        if rel is None:
            raise bad("$expand", f"{set_name} has no {first!r}; use one of {', '.join(NAVS[set_name])}")
        if rest:
            inner = f"$expand={rest}" + (f"({m.group(2)})" if m.group(2) is not None else "")
        else:
            inner = m.group(2) or ""
        raw = dict(kv.partition("=")[::2] for kv in _split(inner, ";") if kv.strip()) if inner else {}
        options = parse_options({k.strip(): v for k, v in raw.items()}, rel.target, depth + 1)
        if first in out:
            out[first].options.expand += options.expand
        else:
            out[first] = Expand(first, options)
    return list(out.values())


def parse_options(raw: dict[str, str], set_name: str, depth: int = 0) -> Options:
    """The query options of a request (or of one ``$expand`` item) on ``set_name``."""
    unknown = [k for k in raw if k not in OPTIONS]
    if unknown:
        raise bad("option", f"{', '.join(unknown)} not supported; supported: {', '.join(OPTIONS)}")
    opts = Options(raw={k: v for k, v in raw.items() if k not in ("$top", "$skip")})
    if "$top" in raw:
        opts.top = min(_count(raw["$top"], "$top"), MAX_TOP)
    if "$skip" in raw:
        opts.skip = _count(raw["$skip"], "$skip")
    if "$count" in raw:
        if raw["$count"] not in ("true", "false"):
            raise bad("$count", f"{raw['$count']!r}: use true or false")
        opts.count = raw["$count"] == "true"
    if "$filter" in raw:
        opts.where = parse_filter(raw["$filter"], PROPS[set_name])
    if "$orderby" in raw:
        opts.order = _orderby(raw["$orderby"], set_name)
    if "$select" in raw:
        opts.select = tuple(s.strip() for s in raw["$select"].split(",") if s.strip())
        known = ("id", "@iot.id", "@iot.selfLink", *FIELDS[set_name], *NAVS[set_name])
        wrong = [s for s in opts.select if s not in known]
        if not opts.select or wrong:
            raise bad("$select", f"{', '.join(wrong) or 'nothing'} selected; use some of {', '.join(known)}")
    if "$expand" in raw:
        opts.expand = _expand(raw["$expand"], set_name, depth)
    return opts
