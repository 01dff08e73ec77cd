"""Which requests stream for long, and so go to the API server over HTTP/2.

In: a forwarded request's method, its decoded API path (prefix stripped) and raw query.
Out: True for the requests kube-apiserver keeps open: watches and followed logs. They go
over the HTTP/2 lane (:mod:`kproxy.upstream.lane`), a hundred to a connection, where
client-go would send them too; everything else stays on the HTTP/1.1 pool, which is
cheaper per request (``docs/upstream-connections.md`` §1).

The rules are kube-apiserver's (``k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory``):

* a ``watch`` segment right after the version: ``/api/v1/watch/...``,
  ``/apis/GROUP/VERSION/watch/...`` (the deprecated watch paths);
* a list with ``watch`` set: the first ``watch`` query value parsed as Go's
  ``strconv.ParseBool`` is true (``1``, ``t``, ``T``, ``TRUE``, ``true``, ``True``);
* ``follow`` set the same way on a pod's ``log`` subresource
  (``/api/v1/namespaces/NS/pods/NAME/log``).

Only ``GET``: no request body to replay, and nothing else is a watch or a log. Upgrades
(exec, attach, port-forward) never get here: they are HTTP/1.1 by definition.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

__all__ = ["is_long_running", "parse_bool_true"]

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def parse_bool_true(value: str) -> bool:
    """Go's ``strconv.ParseBool(value)`` returned true."""
    return value in _TRUE


def is_long_running(method: str, path: str, raw_query: str | None) -> bool:
    """``path``: decoded, as the filter sees it; ``raw_query``: as sent, without ``?``."""
    if method != "GET":
        return False
    parts = path.split("/")
    # "/api/v1/watch/..." -> ["", "api", "v1", "watch", ...]
    if len(parts) > 3 and parts[1] == "api" and parts[3] == "watch":
        return True
    if len(parts) > 4 and parts[1] == "apis" and parts[4] == "watch":
        return True
    if not raw_query:
        return False
    watch = _first(raw_query, "watch")
    if watch is not None and parse_bool_true(watch):
        return True
    if len(parts) == 8 and parts[1] == "api" and parts[3] == "namespaces" and parts[5] == "pods" and parts[7] == "log":
        return parse_bool_true(_first(raw_query, "follow") or "")
    return False


def _first(raw_query: str, key: str) -> str | None:
    """The first value of ``key`` in a query, decoded as Go's ``url.ParseQuery`` does."""
    if key not in raw_query and "%" not in raw_query:
        return None
    for pair in raw_query.split("&"):
        name, _, value = pair.partition("=")
        if name == key or ("%" in name and unquote_plus(name) == key):
            return unquote_plus(value)
    return None
