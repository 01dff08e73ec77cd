"""The write verbs over HTTP (``kproxy.testing.writes``): dry-run on every verb, the
options kube-apiserver validates, server-side apply (create-on-apply, conflicts,
force), and the Status of each refusal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer, TestPKI

TOKEN = "writes-token"
CMS = "/api/v1/namespaces/default/configmaps"
APPLY = {"Content-Type": "application/apply-patch+yaml"}


@pytest.fixture
async def client(pki: TestPKI) -> AsyncIterator[tuple[FakeAPIServer, aiohttp.ClientSession]]:
    async with FakeAPIServer(pki=pki, tokens=[TOKEN]) as api:
        connector = aiohttp.TCPConnector(ssl=pki.client_ssl_context())
        headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": "writes-test/1.0"}
        async with aiohttp.ClientSession(api.url, connector=connector, headers=headers) as session:
            yield api, session


async def call(session: aiohttp.ClientSession, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    headers = kw.pop("headers", None) or {"Content-Type": "application/json"}
    async with session.request(method, path, data=data, headers=headers, **kw) as resp:
        return resp.status, await resp.json()


async def test_dry_run_on_every_verb_stores_nothing(client: tuple[FakeAPIServer, aiohttp.ClientSession]) -> None:
    api, session = client
    before = api.store.resource_version()
    cm = {"metadata": {"name": "dry"}, "data": {"a": "1"}}
    status, created = await call(session, "POST", CMS + "?dryRun=All", cm)
    assert (status, created["data"], created["metadata"]["name"]) == (201, {"a": "1"}, "dry")
    assert "resourceVersion" not in created["metadata"]
    live = api.store.get("configmaps", "demo-config", "default")
    changed = {**live, "data": {"x": "y"}}
    status, updated = await call(session, "PUT", CMS + "/demo-config?dryRun=All", changed)
    assert (status, updated["data"]) == (200, {"x": "y"})
    merge = {"Content-Type": "application/merge-patch+json"}
    status, patched = await call(session, "PATCH", CMS + "/demo-config?dryRun=All", {"data": {"z": "1"}}, headers=merge)
    assert status == 200 and patched["data"]["z"] == "1"
    status, applied = await call(
        session, "PATCH", CMS + "/new?dryRun=All&fieldManager=t", "data: {k: v}", headers=APPLY
    )
    assert (status, applied["data"]) == (201, {"k": "v"})
    status, deleted = await call(session, "DELETE", CMS + "/demo-config?dryRun=All")
    assert (status, deleted["metadata"]["name"]) == (200, "demo-config")
    status, _ = await call(session, "DELETE", CMS + "?dryRun=All")
    assert status == 200
    assert api.store.resource_version() == before  # nothing was written
    assert api.store.get("configmaps", "demo-config", "default")["data"] == live["data"]


@pytest.mark.parametrize(
    ("method", "query", "body", "headers", "message"),
    [
        (
            "POST",
            "?dryRun=Some",
            {"metadata": {"name": "x"}},
            {},
            'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: '
            'supported values: "All"',
        ),
        (
            "PATCH",
            "/demo-config",
            "data: {a: b}",
            APPLY,
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
        ),
        (
            "PATCH",
            "/demo-config?force=true",
            {"data": {}},
            {"Content-Type": "application/merge-patch+json"},
            'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch',
        ),
        (
            "POST",
            "?fieldManager=" + "m" * 129,
            {"metadata": {"name": "x"}},
            {},
            'CreateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes',
        ),
        (
            "POST",
            "?fieldValidation=Loose",
            {"metadata": {"name": "x"}},
            {},
            'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": supported values: '
            '"Ignore", "Strict", "Warn"',
        ),
    ],
)
async def test_invalid_options_are_422(
    client: tuple[FakeAPIServer, aiohttp.ClientSession],
    method: str,
    query: str,
    body: Any,
    headers: dict[str, str],
    message: str,
) -> None:
    _, session = client
    status, answer = await call(session, method, CMS + query, body, headers=headers)
    assert (status, answer["reason"], answer["message"]) == (422, "Invalid", message)
    assert answer["details"]["group"] == "meta.k8s.io"


async def test_server_side_apply(client: tuple[FakeAPIServer, aiohttp.ClientSession]) -> None:
    api, session = client
    path = CMS + "/ssa?fieldManager=tool"
    status, created = await call(
        session, "PATCH", path, "apiVersion: v1\nkind: ConfigMap\ndata: {a: '1'}", headers=APPLY
    )
    assert status == 201
    assert created["metadata"]["managedFields"][0]["manager"] == "tool"
    assert created["metadata"]["managedFields"][0]["operation"] == "Apply"
    # Another client edits a: it owns it now (the User-Agent's product is its manager).
    merge = {"Content-Type": "application/merge-patch+json"}
    status, _ = await call(session, "PATCH", CMS + "/ssa", {"data": {"a": "edited"}}, headers=merge)
    assert status == 200
    status, conflict = await call(session, "PATCH", path, "data: {a: '2'}", headers=APPLY)
    assert (status, conflict["reason"]) == (409, "Conflict")
    assert conflict["message"] == 'Apply failed with 1 conflict: conflict with "writes-test" using v1: .data.a'
    status, forced = await call(session, "PATCH", path + "&force=true", "data: {a: '2'}", headers=APPLY)
    assert (status, forced["data"]) == (200, {"a": "2"})
    assert [(e["manager"], e["operation"]) for e in forced["metadata"]["managedFields"]] == [("tool", "Apply")]
    assert api.store.get("configmaps", "ssa", "default")["data"] == {"a": "2"}
    status, bad = await call(session, "PATCH", path, "data: [unclosed", headers=APPLY)
    assert (status, bad["reason"]) == (400, "BadRequest")


async def test_unknown_patch_type_and_resource(client: tuple[FakeAPIServer, aiohttp.ClientSession]) -> None:
    _, session = client
    status, answer = await call(session, "PATCH", CMS + "/demo-config", "{}", headers={"Content-Type": "text/plain"})
    assert (status, answer["reason"]) == (415, "UnsupportedMediaType")
    status, answer = await call(session, "GET", "/api/v1/namespaces/default/widgets")
    assert (status, answer["details"]) == (404, {})  # kubectl debug reads details.name: it must be there
    status, answer = await call(session, "GET", "/apis/apps/v1/namespaces/default/deployments/nope")
    assert (status, answer["message"], answer["details"]) == (
        404,
        'deployments.apps "nope" not found',
        {"name": "nope", "group": "apps", "kind": "deployments"},
    )


async def test_events_through_both_apis(client: tuple[FakeAPIServer, aiohttp.ClientSession]) -> None:
    api, session = client
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e1"},
        "eventTime": "2026-12-06T00:00:00.000000Z",
        "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
        "note": "something happened",
        "reason": "Tested",
        "type": "Normal",
        "action": "Test",
        "reportingController": "tests",
        "reportingInstance": "tests-1",
    }
    status, created = await call(session, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", event)
    assert (status, created["apiVersion"], created["note"]) == (201, "events.k8s.io/v1", "something happened")
    status, core = await call(session, "GET", "/api/v1/namespaces/default/events/e1")
    assert (status, core["apiVersion"], core["message"], core["involvedObject"]["name"]) == (
        200,
        "v1",
        "something happened",
        "p",
    )
    assert core["reportingComponent"] == "tests"
    status, listed = await call(
        session, "GET", "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=reason=Tested"
    )
    assert (status, listed["kind"], [e["regarding"]["name"] for e in listed["items"]]) == (200, "EventList", ["p"])
    assert api.store.get("events", "e1", "default")["message"] == "something happened"
