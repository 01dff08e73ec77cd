"""The verb of a request, as the API server's request-info rules name it (for metrics and logs).

In: the method, the API path (decoded, after ``--api-prefix`` is stripped: what the API
server routes on), the raw query and whether the request asks for an upgrade. Out: one
of the fixed :data:`VERBS`, never a value the client chose, so that a metric label keeps
a fixed set whatever clients send.

The rules are k8s.io/apiserver's ``RequestInfoFactory.NewRequestInfo``
(pkg/endpoints/request/requestinfo.go), with kproxy's two additions:

* a resource path ``/api/{version}/...`` or ``/apis/{group}/{version}/...``: a leading
  ``watch``/``proxy`` segment is the verb; otherwise GET and HEAD are ``get``, POST
  ``create``, PUT ``update``, PATCH ``patch``, DELETE ``delete``; without a name, ``get``
  becomes ``watch`` when the ``watch`` parameter is true (any value but ``0``/``false``,
  the empty one included: apimachinery's ``Convert_Slice_string_To_bool``) and ``list``
  otherwise, and ``delete`` becomes ``deletecollection``;
* a non-resource path (``/version``, ``/healthz``, ``/api``, ``/apis/apps``) is the
  lowercase method;
* kproxy's: an upgrade (exec, attach, port-forward) is ``connect``, and a ``proxy``
  subresource (``services/NAME/proxy/...``, also for pods and nodes) is ``proxy`` like the
  deprecated ``/proxy/`` prefix; a method or a path the rules cannot name is ``other``.

Examples::

    GET    /api/v1/namespaces/default/pods               list
    GET    /api/v1/pods?watch=1                          watch
    GET    /api/v1/watch/namespaces/default/pods         watch
    GET    /api/v1/namespaces/default/pods/web           get
    DELETE /api/v1/namespaces/default/configmaps         deletecollection
    PUT    /api/v1/namespaces/default/status             update (a namespace subresource)
    GET    /api/v1/namespaces/d/services/s:80/proxy/x    proxy
    POST   /api/v1/namespaces/d/pods/p/exec + Upgrade    connect
    GET    /version                                      get
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote_plus

__all__ = ["VERBS", "request_verb"]

VERBS: Final = (
    "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy", "connect",
    "head", "post", "put", "options", "other",
)  # fmt: skip

_API_PREFIXES = frozenset({"api", "apis"})
_GROUPLESS_PREFIXES = frozenset({"api"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_RESOURCE_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Non-resource requests are named by their method; only these, so the label set is fixed.
_METHODS = {m: m.lower() for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}


def request_verb(method: str, path: str, query: str | None, *, upgrade: bool = False) -> str:
    """The verb (see the module docstring); ``path`` decoded, ``query`` raw (no ``?``)."""
    if upgrade:
        return "connect"
    trimmed = path.strip("/")
    parts = trimmed.split("/") if trimmed else []
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return _METHODS.get(method, "other")
    prefix, parts = parts[0], parts[1:]
    if prefix not in _GROUPLESS_PREFIXES:
        if len(parts) < 3:
            return _METHODS.get(method, "other")  # /apis/GROUP/VERSION: discovery
        parts = parts[1:]  # the group
    parts = parts[1:]  # the version
    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            return "other"  # the API server fails such a request ("unable to determine kind")
        return parts[0]
    if parts[0] == "namespaces" and len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
        parts = parts[2:]  # /namespaces/NS/RESOURCE/...: relative to the resource
    if len(parts) >= 3 and parts[2] == "proxy":
        return "proxy"  # RESOURCE/NAME/proxy/...: whatever the method (the backend's business)
    verb = _RESOURCE_VERBS.get(method)
    if verb is None:
        return "other"
    named = len(parts) >= 2 and parts[1] != ""  # Go: len(requestInfo.Name) == 0
    if verb == "get" and not named:
        return "watch" if _watch(query) else "list"
    if verb == "delete" and not named:
        return "deletecollection"
    return verb


def _watch(query: str | None) -> bool:
    """The first ``watch`` parameter, as apimachinery converts it to a bool."""
    if not query:
        return False
    for pair in query.split("&"):
        if ";" in pair:
            continue  # Go's url.ParseQuery drops pairs with a semicolon
        key, _, value = pair.partition("=")
        if unquote_plus(key) == "watch":
            value = unquote_plus(value)
            return not (value == "0" or value.lower() == "false")
    return False
