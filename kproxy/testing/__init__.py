"""Test aids shipped with kproxy: a faithful fake kube-apiserver and throw-away certificates.

``FakeAPIServer`` is the upstream of kproxy's own tests and the cluster behind
``kproxy --demo``; ``TestPKI`` makes the CA, server and client certificates it uses;
``Rule`` and ``UserInfo`` say who may do what. See ``fake_apiserver`` for what the fake
serves, and the README's "The fake API server".

Where it still differs from kube-apiserver:

* HTTP/2 only when asked for (``FakeAPIServer(http2=True)``; kube-apiserver always
  offers it); answers in JSON or YAML, never protobuf (protobuf bodies are accepted for
  the kinds kubectl's typed clients post);
* authorization by rules given in Python, not RBAC objects; no admission, quotas or
  limits;
* pods are ``Running`` and ready at once on one node, and nothing runs in them: a small
  shell, and stand-in HTTP servers for ``nginx`` and CoreDNS images;
* deletion is immediate (no grace period, finalizers or ``Terminating``);
* field ownership follows a table of list keys, not the OpenAPI schema, and every field
  a write sets (defaults included) belongs to its manager;
* OpenAPI v3 only (no v2), its schemas made from the official Python client's models
  (no defaults, nested fields described by their type);
* list pages read the current state, not a snapshot;
* only the resources in ``resources`` are served;
* the proxy URL of CoreDNS's ``dns`` port answers a text page (a real one fails).
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
