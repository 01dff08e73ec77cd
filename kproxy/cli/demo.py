"""``kproxy --demo``: a built-in cluster to try kproxy against, no kubeconfig needed.

In: the :class:`~kproxy.config.flags.Flags` given (``--kubeconfig`` and ``--server`` are
refused: the demo brings its own). Out, for the life of the ``async with``: the same flags
pointing at an in-process :class:`~kproxy.testing.FakeAPIServer` (TLS, a bearer token)
through a kubeconfig in a temporary directory; both are gone afterwards. One NOTICE line
on stderr says it is not a real cluster. The other flags are checked first (against a
placeholder cluster), so a bad one is an error before any demo starts.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from kproxy.config.flags import Flags
from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.log import NOTICE, log

__all__ = ["demo_cluster"]

_TOKEN = "demo-token"  # not a secret: the demo cluster's only user
# What the flags are checked against before the demo starts: a cluster nobody serves.
_PLACEHOLDER = """apiVersion: v1
kind: Config
clusters: [{name: demo, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: demo, user: {token: placeholder}}]
contexts: [{name: demo, context: {cluster: demo, user: demo}}]
current-context: demo
"""


def _check_flags(flags: Flags, workdir: Path) -> None:
    """Raise the ConfigError the flags would give, before any demo cluster starts."""
    placeholder = workdir / "check.yaml"
    placeholder.write_text(_PLACEHOLDER)
    placeholder.chmod(0o600)
    try:
        Options.from_flags(replace(flags, kubeconfig=str(placeholder)))
    finally:
        placeholder.unlink()


@asynccontextmanager
async def demo_cluster(flags: Flags) -> AsyncIterator[Flags]:
    # Imported here: only --demo pays for the fake API server.
    from kproxy.testing import FakeAPIServer, TestPKI

    if flags.kubeconfig or flags.server:
        raise ConfigError("--demo runs its own cluster: drop --kubeconfig and --server")
    with tempfile.TemporaryDirectory(prefix="kproxy-demo-") as workdir:
        _check_flags(flags, Path(workdir))
        # Not recording requests: a long-running demo must not grow a list forever. HTTP/2
        # offered, as kube-apiserver does: watches take kproxy's HTTP/2 lane.
        api = FakeAPIServer(pki=TestPKI.create(), tokens=(_TOKEN,), record_requests=False, http2=True)
        await api.start()
        try:
            kubeconfig = api.kubeconfig(Path(workdir), auth="token", token=_TOKEN)
            log.log(NOTICE, "demo cluster: an in-process fake API server at %s (not a real cluster)", api.url)
            yield replace(flags, kubeconfig=str(kubeconfig))
        finally:
            await api.stop()
