"""Label and field selectors, as ``labelSelector=`` and ``fieldSelector=`` spell them.

Label selectors (a subset of apimachinery's ``labels.Parse``)::

    app=nginx            equality (also ``==``)
    tier!=frontend       inequality
    env in (a,b)         set membership; ``notin`` for the opposite
    release              the key exists; ``!release``: it does not
    app=nginx,tier!=db   requirements joined by commas all hold

Field selectors (``fields.ParseSelector``): ``path=value``, ``path==value`` and
``path!=value`` joined by commas, with ``\\,``, ``\\=`` and ``\\\\`` escaping. Which
paths a resource supports is decided by the caller (``metadata.name`` and
``metadata.namespace`` everywhere, plus a few per resource, like kube-apiserver).

Parse errors raise ``SelectorError`` with kube-apiserver's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["FieldRequirement", "SelectorError", "parse_field_selector", "parse_label_selector"]

LabelMatcher = Callable[[Mapping[str, str]], bool]


class SelectorError(ValueError):
    """An unparsable selector."""


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_REQUIREMENT = re.compile(
    rf"""\s*(?:
        (?P<not>!)\s*(?P<nkey>{_KEY})
      | (?P<skey>{_KEY})\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})
      | (?P<ekey>{_KEY})
    )\s*(?:,|$)""",
    re.VERBOSE,
)


def parse_label_selector(selector: str) -> LabelMatcher:
    """A predicate on a label mapping; an empty selector matches everything."""
    tests: list[LabelMatcher] = []
    pos = 0
    text = selector.strip()
    while pos < len(text):
        m = _REQUIREMENT.match(text, pos)
        if m is None or m.end() == pos:
            raise SelectorError(f"unable to parse requirement: found '{text[pos:]}', expected: identifier")
        pos = m.end()
        tests.append(_label_test(m))
    return lambda labels: all(test(labels) for test in tests)


def _label_test(m: re.Match[str]) -> LabelMatcher:
    if m["nkey"]:
        key = m["nkey"]
        return lambda labels: key not in labels
    if m["ekey"]:
        key = m["ekey"]
        return lambda labels: key in labels
    if m["skey"]:
        key = m["skey"]
        values = {v.strip() for v in m["values"].split(",") if v.strip()}
        if m["setop"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    key, value = m["key"], m["value"]
    if m["op"] == "!=":
        return lambda labels: labels.get(key) != value
    return lambda labels: key in labels and labels[key] == value


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    value: str
    equal: bool  # False for !=

    def holds(self, actual: str) -> bool:
        return (actual == self.value) == self.equal


def parse_field_selector(selector: str) -> list[FieldRequirement]:
    requirements: list[FieldRequirement] = []
    for term in _split_unescaped(selector, ","):
        if not term:
            continue
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            index = _find_unescaped(term, op)
            if index >= 0:
                path = _unescape(term[:index]).strip()
                value = _unescape(term[index + len(op) :])
                requirements.append(FieldRequirement(path, value, equal))
                break
        else:
            raise SelectorError(f"invalid selector: '{selector}'; can't understand '{term}'")
    return requirements


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _find_unescaped(text: str, needle: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(needle, i):
            return i
        i += 1
    return -1


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
