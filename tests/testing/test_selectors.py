"""Label and field selectors of the fake API server (``kproxy.testing.selectors``), as a table.

``tests/testing/test_fake_apiserver.py`` lists with selectors over HTTP; this is the
grammar itself: set-based and equality requirements, errors, escapes in field values.
"""

from __future__ import annotations

import pytest

from kproxy.testing.selectors import SelectorError, parse_field_selector, parse_label_selector


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("", {}, True),
        ("app=nginx", {"app": "nginx"}, True),
        ("app==nginx", {"app": "web"}, False),
        ("app!=nginx", {}, True),
        ("app in (a, nginx),tier", {"app": "nginx", "tier": "x"}, True),
        ("app notin (nginx)", {"app": "nginx"}, False),
        ("!tier", {"app": "nginx"}, True),
        ("kubernetes.io/cluster-service=true", {"kubernetes.io/cluster-service": "true"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(selector)(labels) is matches


def test_selector_errors_and_field_escapes() -> None:
    with pytest.raises(SelectorError):
        parse_label_selector("a=b,,=c")
    (req,) = parse_field_selector(r"metadata.name=a\,b")
    assert (req.path, req.value, req.equal) == ("metadata.name", "a,b", True)
