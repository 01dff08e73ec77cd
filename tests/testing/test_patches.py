"""Strategic merge patch (``kproxy.testing.patches``) as a table: lists merge by key,
directives, sets; merge patch and JSON patch keep their RFC meaning."""

from __future__ import annotations

from typing import Any

import pytest

from kproxy.testing.patches import apply_patch, list_key, strategic_merge_patch
from kproxy.testing.status import ApiError

POD = {
    "spec": {
        "containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "y"}],
        "volumes": [{"name": "v", "emptyDir": {}}],
    },
    "metadata": {"finalizers": ["f1"], "labels": {"app": "web", "tier": "db"}},
}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        # Containers merge by name: one changed, one added, the other kept.
        (
            {"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}},
            {"containers": [("a", "x"), ("b", "z"), ("c", "w")]},
        ),
        ({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}, {"containers": [("b", "y")]}),
        # $setElementOrder is an ordering hint, not content.
        (
            {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": [{"name": "a"}]}},
            {"containers": [("a", "x"), ("b", "y")]},
        ),
    ],
)
def test_lists_merge_by_key(patch: dict[str, Any], expected: dict[str, list[tuple[str, str]]]) -> None:
    result = strategic_merge_patch(POD, patch)
    assert [(c["name"], c.get("image")) for c in result["spec"]["containers"]] == expected["containers"]


def test_maps_null_sets_and_replace() -> None:
    result = strategic_merge_patch(POD, {"metadata": {"labels": {"tier": None, "v": "2"}, "finalizers": ["f2", "f1"]}})
    assert result["metadata"] == {"finalizers": ["f1", "f2"], "labels": {"app": "web", "v": "2"}}
    replaced = strategic_merge_patch(POD, {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert replaced["metadata"]["labels"] == {"only": "this"}
    removed = strategic_merge_patch(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}})
    assert removed["metadata"]["finalizers"] == []
    # A merge patch replaces the lists instead.
    merged = apply_patch(POD, {"spec": {"containers": [{"name": "c", "image": "w"}]}}, "merge")
    assert merged["spec"]["containers"] == [{"name": "c", "image": "w"}]


@pytest.mark.parametrize(
    ("field", "items", "keys"),
    [
        ("containers", [{"name": "a"}], ("name",)),
        ("ports", [{"containerPort": 80}], ("containerPort", "protocol")),
        ("ports", [{"port": 80}], ("port", "protocol")),
        ("addresses", [{"type": "InternalIP", "address": "x"}], ("type",)),
        ("addresses", [{"ip": "10.0.0.1"}], None),  # endpoint addresses are atomic
        ("args", ["a"], None),
        ("containers", [{"image": "no-name"}], None),
    ],
)
def test_list_keys(field: str, items: list[Any], keys: tuple[str, ...] | None) -> None:
    assert list_key(field, items) == keys


def test_bad_patches() -> None:
    with pytest.raises(ApiError) as info:
        apply_patch(POD, ["not", "a", "map"], "strategic")
    assert info.value.code == 400
    with pytest.raises(ApiError) as info:
        apply_patch(POD, [{"op": "remove", "path": "/spec/nope"}], "json")
    assert info.value.code == 422
