"""kproxy.cli.demo: the demo cluster's lifetime (in process, loopback only) and what it refuses."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import aiohttp
import pytest
import yaml

from kproxy.cli.demo import demo_cluster
from kproxy.config.flags import Flags
from kproxy.errors import ConfigError


@pytest.mark.parametrize("flags", [Flags(kubeconfig="/k"), Flags(server="https://h")])
async def test_the_demo_brings_its_own_cluster(flags: Flags) -> None:
    with pytest.raises(ConfigError, match="--demo runs its own cluster: drop --kubeconfig and --server"):
        async with demo_cluster(flags):
            pass


async def test_the_demo_cluster_lives_as_long_as_the_block() -> None:
    async with demo_cluster(Flags(port=0)) as flags:
        assert flags.port == 0
        kubeconfig = Path(flags.kubeconfig)
        doc = yaml.safe_load(kubeconfig.read_text())
        server = doc["clusters"][0]["cluster"]["server"]
        assert server.startswith("https://127.0.0.1:")
        ca = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        ctx = ssl.create_default_context(cadata=ca)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server}/version", ssl=ctx, headers={"Authorization": "Bearer demo-token"}) as resp,
        ):
            assert resp.status == 200
    assert not kubeconfig.parent.exists()
