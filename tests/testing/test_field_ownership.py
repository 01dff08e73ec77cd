"""Server-side apply and managedFields (``kproxy.testing.field_ownership``), without HTTP."""

from __future__ import annotations

import pytest

from kproxy.testing.field_ownership import Obj, apply, field_paths, record_update
from kproxy.testing.status import ApiError

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}


def owners(obj: Obj) -> dict[tuple[str, str], Obj]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


def test_paths_of_keyed_lists_and_sets() -> None:
    obj = {
        "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
        "spec": {"containers": [{"name": "web", "image": "i", "ports": [{"containerPort": 80}]}]},
        "status": {"phase": "Running"},
    }
    paths = set(field_paths(obj))
    assert ("f:metadata", "f:labels", "f:a") in paths
    assert ("f:metadata", "f:finalizers", 'v:"x"') in paths
    assert ("f:spec", "f:containers", 'k:{"name":"web"}', ".") in paths
    assert ("f:spec", "f:containers", 'k:{"name":"web"}', "f:image") in paths
    assert (
        "f:spec",
        "f:containers",
        'k:{"name":"web"}',
        "f:ports",
        'k:{"containerPort":80,"protocol":"TCP"}',
        ".",
    ) in paths
    assert not any(p[0] in ("f:status", "f:kind") or p[:2] == ("f:metadata", "f:name") for p in paths)


def test_apply_creates_updates_and_removes_what_it_no_longer_applies() -> None:
    created = apply(None, {**CM, "data": {"a": "1", "b": "2"}}, "tool", force=False, api_version="v1")
    assert owners(created)[("tool", "Apply")] == {"f:data": {"f:a": {}, "f:b": {}}}
    again = apply(created, {**CM, "data": {"a": "3"}}, "tool", force=False, api_version="v1")
    assert again["data"] == {"a": "3"}  # b was applied before and is applied no more
    assert owners(again)[("tool", "Apply")] == {"f:data": {"f:a": {}}}


def test_conflicts_with_another_manager() -> None:
    live = {**CM, "data": {"a": "1"}}
    record_update(None, live, "kubectl-edit", "v1")
    with pytest.raises(ApiError) as info:
        apply(live, {**CM, "data": {"a": "2"}}, "kubectl", force=False, api_version="v1")
    error = info.value
    assert (error.code, error.reason) == (409, "Conflict")
    assert error.message == 'Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.a'
    assert error.status()["details"] == {
        "causes": [
            {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl-edit" using v1', "field": ".data.a"}
        ]
    }
    # The same value is no conflict: both own it.
    shared = apply(live, {**CM, "data": {"a": "1"}}, "kubectl", force=False, api_version="v1")
    assert set(owners(shared)) == {("kubectl-edit", "Update"), ("kubectl", "Apply")}
    # force takes it over.
    forced = apply(live, {**CM, "data": {"a": "2"}}, "kubectl", force=True, api_version="v1")
    assert forced["data"] == {"a": "2"}
    assert set(owners(forced)) == {("kubectl", "Apply")}


def test_several_conflicts_are_listed_by_manager() -> None:
    live = {**CM, "data": {"a": "1", "b": "1"}}
    record_update(None, live, "other", "v1")
    with pytest.raises(ApiError) as info:
        apply(live, {**CM, "data": {"a": "2", "b": "2"}}, "me", force=False, api_version="v1")
    assert info.value.message == 'Apply failed with 2 conflicts: conflicts with "other" using v1:\n- .data.a\n- .data.b'


def test_an_update_takes_the_fields_it_changes() -> None:
    live = apply(None, {**CM, "data": {"a": "1", "b": "1"}}, "applier", force=False, api_version="v1")
    new = {**live, "data": {"a": "1", "b": "changed"}}
    record_update(live, new, "editor", "v1")
    assert owners(new) == {("applier", "Apply"): {"f:data": {"f:a": {}}}, ("editor", "Update"): {"f:data": {"f:b": {}}}}
