"""What every client-library test shares: the fake API server with a pod whose port 80
answers, and kproxy in front of it with exec allowed (kubectl proxy's default refuses it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest

from kproxy.testing import FakeAPIServer, TestPKI
from tests.conftest import KproxyProcess, StartKproxy

POD = "nginx-7c5ddbdf54-2xkqw"
NAMESPACE = "default"

T = TypeVar("T")


@pytest.fixture
async def api(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    async with FakeAPIServer(pki=pki, tokens=("client-token",)) as server:
        yield server


@pytest.fixture
async def proxy(api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    kubeconfig = api.kubeconfig(tmp_path, token="client-token")
    return await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--reject-paths=^/api/.*/pods/.*/attach")


def configmap(name: str, **labels: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def present(value: T | None) -> T:
    """``value``, which the API server always sends, though a client's model types it
    optional (an object's metadata, a list's, a node's status)."""
    assert value is not None
    return value
