"""kproxy.server.upstream_reload: a valid new configuration goes into force whole, with a
new relay and pool while the old pool is closed; an invalid one changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kproxy import Flags, Options
from kproxy.metrics import tally
from kproxy.proxy.relay import Relay
from kproxy.server.upstream_reload import UpstreamReload, relay_for

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
contexts:
- name: c
  context: {{cluster: k, user: u}}
users:
- name: u
  user: {{token: {token}}}
"""


def setup(tmp_path: Path) -> tuple[Path, UpstreamReload, list[tuple[Options, Relay]]]:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG.format(server="https://a.example:6443", token="first-secret"))
    options = Options.from_flags(Flags(kubeconfig=str(path), port=0))
    used: list[tuple[Options, Relay]] = []
    return path, UpstreamReload(options, relay_for(options), lambda o, r: used.append((o, r))), used


async def test_a_valid_configuration_goes_into_force(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, reload, used = setup(tmp_path)
    old = reload.relay
    before = tally.config_reloads["upstream", "success"]
    path.write_text(KUBECONFIG.format(server="https://b.example:6443/gw", token="second-secret"))
    with caplog.at_level(logging.INFO, logger="kproxy"):
        assert reload.reload()
    ((options, relay),) = used
    assert relay is reload.relay and options is reload.options and relay is not old
    assert options.upstream.display == "https://b.example:6443" and options.upstream.server_path == "/gw"
    assert relay.upstream.auth_header == b"Authorization: Bearer second-secret\r\n"
    assert old.pool._closed and not relay.pool._closed  # the old pool takes nothing back
    assert tally.config_reloads["upstream", "success"] == before + 1
    messages = [r.getMessage() for r in caplog.records]
    assert "reloaded the configuration: new requests go to the API server https://b.example:6443" in messages
    assert any("server path /gw" in m for m in messages)  # a new warning is said once
    assert not any("secret" in m for m in messages)


async def test_an_invalid_configuration_changes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, reload, used = setup(tmp_path)
    old_options, old_relay = reload.options, reload.relay
    before = tally.config_reloads["upstream", "failure"]
    path.write_text("users:\n- name: u\n  user: {token: [second-secret\n")
    with caplog.at_level(logging.ERROR, logger="kproxy"):
        assert not reload.reload()
    assert used == [] and (reload.options, reload.relay) == (old_options, old_relay) and not old_relay.pool._closed
    assert tally.config_reloads["upstream", "failure"] == before + 1
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"Keeping the configuration in force, the new one is not valid: {path}: invalid YAML")
    assert "secret" not in message
