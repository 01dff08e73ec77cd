"""Server-side field validation (``kproxy.testing.field_validation``) against the shipped
OpenAPI schemas: unknown fields by path, and what Strict, Warn and Ignore do with them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer, TestPKI
from kproxy.testing.field_validation import check, unknown_fields
from kproxy.testing.openapi import kind_schema
from kproxy.testing.resources import resource_in
from kproxy.testing.status import ApiError

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"any": "label"}, "annotations": {"x": "y"}},
    "spec": {
        "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "imagee": "typo"}],
        "contaners": [],
        "$setElementOrder/containers": [{"name": "c"}],
    },
}


def pod_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    rtype = resource_in("", "v1", "pods")
    assert rtype is not None
    schema, schemas = kind_schema(rtype)
    assert schema is not None
    return schema, schemas


def test_unknown_fields_by_path() -> None:
    schema, schemas = pod_schema()
    assert unknown_fields(POD, schema, schemas) == ["spec.containers[0].imagee", "spec.contaners"]
    known = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert unknown_fields(known, schema, schemas) == []


def test_strict_warn_and_ignore() -> None:
    schema, schemas = pod_schema()
    with pytest.raises(ApiError) as info:
        check(POD, schema, schemas, "Strict")
    assert (info.value.code, info.value.message) == (
        400,
        'strict decoding error: unknown field "spec.containers[0].imagee", unknown field "spec.contaners"',
    )
    assert check(POD, schema, schemas, "Warn") == [
        'unknown field "spec.containers[0].imagee"',
        'unknown field "spec.contaners"',
    ]
    assert check(POD, schema, schemas, "Ignore") == []


@pytest.fixture
async def session(pki: TestPKI) -> AsyncIterator[aiohttp.ClientSession]:
    async with FakeAPIServer(pki=pki, tokens=["v"]) as api:
        connector = aiohttp.TCPConnector(ssl=pki.client_ssl_context())
        headers = {"Authorization": "Bearer v", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(api.url, connector=connector, headers=headers) as client:
            yield client


async def test_over_http(session: aiohttp.ClientSession) -> None:
    body = json.dumps({"metadata": {"name": "cm"}, "data": {"a": "1"}, "dataa": {}})
    path = "/api/v1/namespaces/default/configmaps"
    async with session.post(path + "?fieldValidation=Strict", data=body) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"] == 'strict decoding error: unknown field "dataa"'
    async with session.post(path, data=body) as resp:  # Warn, the default
        assert resp.status == 201
        assert resp.headers.getall("Warning") == ['299 - "unknown field \\"dataa\\""']
    async with session.patch(
        path + "/cm?fieldValidation=Ignore",
        data=json.dumps({"bogus": 1}),
        headers={"Content-Type": "application/merge-patch+json"},
    ) as resp:
        assert resp.status == 200 and "Warning" not in resp.headers
