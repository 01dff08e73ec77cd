"""kproxy.credentials.exec_plugin: real plugin scripts run by ExecPlugin (one run shared,
expiry, refresh after a 401, failures that say what to do, certificates that rotate)."""

from __future__ import annotations

import asyncio
import math
import os
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from kproxy.credentials import exec_plugin
from kproxy.credentials import sources as credentials
from kproxy.errors import UpstreamError
from kproxy.policy import exec_credential
from kproxy.testing import TestPKI
from kproxy.testing.credential_fakes import write_plugin

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
SERVER = "https://127.0.0.1:6443"


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create()


# --------------------------------------------------------------------------- exec runs


def plugin_source(
    tmp_path: Path,
    name: str = "plugin",
    *,
    api_version: str = V1,
    timeout: float = 30.0,
    install_hint: str = "",
    tls_for: Any = None,
    **spec: Any,
) -> tuple[Any, exec_plugin.ExecPlugin]:
    plugin = write_plugin(tmp_path / "bin", name, apiVersion=api_version, **spec)
    config = exec_credential.parse_config(
        {
            "command": str(plugin.path),
            "apiVersion": api_version,
            "interactiveMode": "Never",
            "installHint": install_hint,
            "env": [{"name": "FROM_KUBECONFIG", "value": "yes"}],
            "provideClusterInfo": True,
        },
        "u",
        "w",
    )
    source = exec_plugin.ExecPlugin(
        config,
        environ={**os.environ, "FROM_KPROXY": "env"},
        interactive=False,
        cluster=exec_credential.ClusterInfo(server=SERVER),
        timeout=timeout,
        tls_for=tls_for,
    )
    return plugin, source


async def test_concurrent_requests_share_one_run(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="tok-{n}", record_env=["FROM_KUBECONFIG", "FROM_KPROXY"])
    lines = await asyncio.gather(*(source.fresh() for _ in range(25)))
    assert set(lines) == {b"Authorization: Bearer tok-1\r\n"}
    assert plugin.runs == 1
    # Cached for the life of the process without an expiry.
    assert source.deadline == math.inf and await source.fresh() == lines[0] and plugin.runs == 1
    recorded = plugin.last_exec_info()
    assert recorded["env"] == {"FROM_KUBECONFIG": "yes", "FROM_KPROXY": "env"}
    assert recorded["info"]["spec"] == {"cluster": {"server": SERVER}, "interactive": False}
    assert recorded["stdin_tty"] is False


async def test_expiry_runs_the_plugin_again(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="tok-{n}", expires_in=3600)
    await source.fresh()
    assert 3500 < source.deadline - time.monotonic() < 3700
    plugin.configure(token="tok-{n}", expires_in=-10)  # already expired when it arrives
    source.deadline = 0.0  # as if an hour went by
    assert await source.fresh() == b"Authorization: Bearer tok-2\r\n"
    assert source.deadline < time.monotonic()
    assert await source.fresh() == b"Authorization: Bearer tok-3\r\n"  # expired: run again
    assert plugin.runs == 3


async def test_after_401_refreshes_once(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="tok-{n}")
    used = await source.fresh()
    started = time.monotonic()
    # Ten requests refused with the same token: one new run, all may retry.
    results = await asyncio.gather(*(source.after_401(used, started) for _ in range(10)))
    assert all(results) and plugin.runs == 2
    # A request that began after the refresh and is refused again: one more run.
    later = time.monotonic()
    assert await source.after_401(source.line, later) is True
    assert plugin.runs == 3
    # The plugin keeps returning the same token: nothing new to retry with.
    plugin.configure(token="same")
    t = time.monotonic()
    await source.after_401(source.line, t)
    t = time.monotonic()
    assert await source.after_401(source.line, t) is False


async def test_failures_are_clear_and_the_next_call_runs_again(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, exit=3, stderr="no account configured\n" + "x" * 5000, timeout=0.5)
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    message = info.value.message
    assert f"executable {plugin.path} failed with exit code 3" in message
    assert "no account configured" in message and message.endswith("... (truncated)")
    assert len(message) < 1400
    plugin.configure(sleep=30, token="late")
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert f"executable {plugin.path} did not finish within 0.5s" in info.value.message
    plugin.configure(stdout="{not json")
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert f"exec plugin {plugin.path}: decoding stdout: not JSON" in info.value.message
    plugin.configure(token="fine")
    assert await source.fresh() == b"Authorization: Bearer fine\r\n"
    assert plugin.runs == 4


async def test_missing_plugin_shows_the_install_hint(tmp_path: Path) -> None:
    config = exec_credential.parse_config(
        {
            "command": "kproxy-no-such-plugin",
            "apiVersion": V1BETA1,
            "installHint": "Install it with: brew install no-such-plugin",
        },
        "u",
        "w",
    )
    source = exec_plugin.ExecPlugin(config, environ={"PATH": str(tmp_path)}, interactive=False, cluster=None)
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert "exec: executable kproxy-no-such-plugin not found" in info.value.message
    assert "client-go credential plugin that is not installed" in info.value.message
    assert info.value.message.endswith("Install it with: brew install no-such-plugin")
    # Looked up in kproxy's PATH, like Go's exec.Command.
    write_plugin(tmp_path, "kproxy-no-such-plugin", apiVersion=V1BETA1, token="found")
    assert await source.fresh() == b"Authorization: Bearer found\r\n"


async def test_not_executable(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="t")
    plugin.path.chmod(0o644)
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert "is not executable (permission denied)" in info.value.message


async def test_certificate_from_a_plugin_rotates_the_tls_generation(tmp_path: Path, pki: TestPKI) -> None:
    built: list[tuple[bytes | None, bytes | None]] = []

    def tls_for(cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
        built.append((cert, key))
        return credentials.tls_context(
            ca_pem=pki.ca_pem,
            ca_field="ca",
            insecure=False,
            cert_pem=cert,
            key_pem=key,
            cert_field="cert",
            key_field="key",
        )

    plugin, source = plugin_source(
        tmp_path, cert=pki.client.cert_pem.decode(), key=pki.client.key_pem.decode(), tls_for=tls_for
    )
    # A dial before the first run does not start the plugin: it gets no client certificate.
    bare = await source.context()
    assert plugin.runs == 0 and built == [(None, None)] and source.generation == 0
    assert await source.fresh() == b""  # no token: the certificate is the credential
    ctx = await source.context()
    assert ctx is not bare and source.generation == 1  # connections without it are retired
    other = pki.issue_client("rotated")
    plugin.configure(cert=other.cert_pem.decode(), key=other.key_pem.decode())
    assert await source.after_401(b"", time.monotonic()) is True
    assert source.generation == 2 and built[-1] == (other.cert_pem, other.key_pem)
    plugin.configure(cert=other.cert_pem.decode(), key=pki.client.key_pem.decode())
    with pytest.raises(UpstreamError) as info:
        source.deadline = 0
        await source.fresh()
    assert "failed parsing client key/certificate" in info.value.message
    assert "PRIVATE KEY" not in info.value.message


async def test_a_token_with_a_line_break_is_refused(tmp_path: Path) -> None:
    _, source = plugin_source(tmp_path, token="abc\r\nX-Injected: 1")
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert "control characters" in info.value.message and "abc" not in info.value.message
