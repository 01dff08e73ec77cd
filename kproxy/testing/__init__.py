"""Test aids shipped with kproxy: a faithful fake kube-apiserver and throw-away certificates.

``FakeAPIServer`` is the upstream of kproxy's own tests and the cluster behind
``kproxy --demo``; ``TestPKI`` makes the CA, server and client certificates it uses.
See ``fake_apiserver`` for what the fake does and where it knowingly differs from
kube-apiserver.
"""

from __future__ import annotations

from kproxy.testing.auth import UserInfo
from kproxy.testing.authorization import Rule
from kproxy.testing.certs import CertPair, TestPKI
from kproxy.testing.debug import pattern as debug_pattern
from kproxy.testing.fake_apiserver import TOKEN_USER, FakeAPIServer, RecordedRequest
from kproxy.testing.status import ApiError
from kproxy.testing.store import Store, Watch, WatchEvent

__all__ = [
    "TOKEN_USER",
    "ApiError",
    "CertPair",
    "FakeAPIServer",
    "RecordedRequest",
    "Rule",
    "Store",
    "TestPKI",
    "UserInfo",
    "Watch",
    "WatchEvent",
    "debug_pattern",
]
