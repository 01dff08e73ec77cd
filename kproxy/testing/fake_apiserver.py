"""A faithful fake kube-apiserver: the upstream of kproxy's tests and of ``kproxy --demo``.

No real API server can run here, so this one speaks the parts of the Kubernetes API that
kubectl and a proxy in front of it depend on, the way kube-apiserver 1.32 does, and the
real kubectl 1.32 is the judge (``tests/test_fake_apiserver.py``):

* **TLS and authentication** (``certs``, ``auth``): the server certificate of a
  ``TestPKI``; client certificates from its CA (verified if given, CN = user, O =
  groups), bearer tokens, basic auth. Without an accepted credential: ``401`` and the
  ``Unauthorized`` ``Status``, except anonymous requests to ``/version``, ``/healthz``,
  ``/readyz`` and ``/livez``.
* **Impersonation and authorization** (``impersonation``, ``authorization``,
  ``reviews``): ``Impersonate-*`` headers honoured for users allowed to impersonate
  (403 otherwise), RBAC-style rules deciding every request (403 ``Forbidden`` worded as
  kube-apiserver's), ``SelfSubjectReview``, ``SelfSubjectAccessReview`` and
  ``SelfSubjectRulesReview`` (``kubectl auth whoami``, ``kubectl auth can-i``).
* **Discovery** (``resources``, ``discovery``, ``openapi``): ``/version`` (v1.32.4),
  ``/api``, ``/apis``, ``/api/v1``, ``/apis/GROUP[/VERSION]`` in legacy and aggregated
  (``apidiscovery.k8s.io/v2``) forms, ``/openapi/v3`` per group version with schemas
  (``kubectl explain``), ``/healthz``, ``/livez``, ``/readyz``.
* **Resources** (``core_api``, ``writes``, ``store``, ``objects``, ``tables``, ``wire``):
  the kinds ``resources`` lists: create, get, list (selectors, paging), update, the
  patch types and server-side apply (``patches``, ``field_ownership``), delete,
  deletecollection, ``dryRun``, and watches streamed one event per chunk the moment the
  store changes (``watch_stream``), 410 past the history window. ``Table`` answers for
  ``kubectl get``; JSON or YAML out; JSON, YAML and (for what kubectl's typed clients
  send) protobuf in; gzip over 128 KiB. Controllers (``controllers``) roll Deployments
  out, keep ReplicaSets' pods, write Endpoints, EndpointSlices and events (``seed``:
  the demo cluster).
* **Subresources**: ``pods/log`` (also ``follow``), ``exec``/``attach``/``portforward``
  upgrades over WebSocket and SPDY (``upgrade``, run by ``runtime``), ``proxy`` to the
  pods' stand-in servers (``pod_network``) or local HTTP servers registered with
  ``register_backend`` (``proxying``), ``scale``, ``status``, ``ephemeralcontainers``.
* **Test aids** under ``/debug/kproxy/`` (``debug``), and ``FakeAPIServer.requests``: every
  request as it arrived on the wire, with the user it authenticated as.

Knowingly different from kube-apiserver: see ``kproxy.testing``'s docstring (and the
README's "The fake API server"); details in each module.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import itertools
import logging
import socket
import ssl
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, unquote

import yaml
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from kproxy.policy.gonet import join_host_port
from kproxy.testing import debug, discovery, openapi, resources, wire
from kproxy.testing.auth import TOKEN_USER, Authenticator, UserInfo, client_cert_identity
from kproxy.testing.authorization import Authorizer, Rule, default_rules, request_attributes
from kproxy.testing.certs import TestPKI
from kproxy.testing.controllers import Controllers
from kproxy.testing.core_api import CoreV1API, not_allowed, unknown_resource
from kproxy.testing.h2_front import H2Front
from kproxy.testing.impersonation import ImpersonationError, impersonate
from kproxy.testing.pod_network import PodNetwork
from kproxy.testing.reviews import handle_review
from kproxy.testing.runtime import PodRuntime
from kproxy.testing.seed import seed_cluster
from kproxy.testing.status import ApiError
from kproxy.testing.store import DEFAULT_HISTORY, Store

__all__ = ["TOKEN_USER", "FakeAPIServer", "RecordedRequest"]

log = logging.getLogger(__name__)

_DISCOVERY_GROUP = "apidiscovery.k8s.io"
_NOT_FOUND_TEXT = "404 page not found\n"
_ROOT_PATHS = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    raw_path: str  # the request target's path exactly as on the wire (no query)
    query_string: str  # the raw query, without "?"
    headers: CIMultiDictProxy[str]
    raw_headers: tuple[tuple[bytes, bytes], ...]  # names and values in wire order and case
    client_cert_cn: str | None
    user: str | None  # the authenticated user; None when answered 401
    impersonate_user: str | None = None  # the Impersonate-User header as sent
    effective_user: str | None = None  # the user the request ran as (after impersonation); None if refused
    groups: tuple[str, ...] = ()  # the effective user's groups

    @property
    def target(self) -> str:
        return self.raw_path + ("?" + self.query_string if self.query_string else "")

    @property
    def path(self) -> str:
        return unquote(self.raw_path)


class FakeAPIServer:
    """An in-process fake kube-apiserver on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        pki: TestPKI | None = None,
        tokens: Collection[str] = (),
        basic_auth: Collection[tuple[str, str]] = (),
        client_certs: bool = True,
        anonymous: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: bool = True,
        record_requests: bool = True,
        impersonators: Collection[str] = (),
        rules: Iterable[Rule] | None = None,
        http2: bool = False,
        max_streams: int = 100,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        """Configure (nothing listens until ``start()``).

        ``pki``: serve TLS with its server certificate (None: plain HTTP). ``tokens``: accepted
        bearer tokens, all for user ``TOKEN_USER``, or a mapping token -> user name.
        ``basic_auth``: accepted (user, password) pairs. ``client_certs``: accept client
        certificates signed by ``pki``'s CA (user = CN, groups = O). ``anonymous``: requests with
        no credential at all are ``system:anonymous`` everywhere, and the default rules let
        them do anything (without it: on the health and version endpoints only, else 401).
        ``seed``: start with the demo cluster. ``record_requests``: keep every request in
        ``requests`` (turn off for long demos). ``impersonators``: the users allowed to
        impersonate anyone (``system:masters`` always may). ``rules``: what users may do
        (``authorization.Rule``; default: every everyday verb on everything for
        authenticated users), on top of kube-apiserver's bootstrap rules. ``http2``: offer
        HTTP/2 by ALPN (with ``pki``), at most ``max_streams`` streams per connection; ``h2``
        is then the front, for GOAWAY and friends. ``history``: how many changes a watch can
        resume across; older resource versions answer 410 Gone.
        """
        self.http2, self.max_streams = http2, max_streams
        self.h2: H2Front | None = None
        self.pki = pki
        self.tokens = tuple(tokens)
        self.basic_auth = tuple(basic_auth)
        self.client_certs = client_certs and pki is not None
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.record_requests = record_requests
        self.store = Store(history=history)
        self._auth = Authenticator(tokens, basic_auth, anonymous)
        self._authorizer = Authorizer(default_rules(anonymous) if rules is None else rules, impersonators)
        self._runner: web.ServerRunner | None = None
        self._bound = False
        self._stopping = asyncio.Event()
        self._core = CoreV1API(self.store, self._stopping)
        self._kubeconfigs = itertools.count()
        if seed:
            seed_cluster(self.store, datetime.datetime.now(datetime.UTC), pki.ca_pem if pki else None)
        self.controllers = Controllers(self.store)
        self.controllers.resync()
        self._network = PodNetwork(self.store, self._core.runtime.port_target)
        self._core.runtime.network = self._network

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._bound:
            raise RuntimeError("FakeAPIServer.url is known once start() has returned")
        return f"{'https' if self.pki else 'http'}://{join_host_port(self.host, str(self.port))}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeAPIServer already started")
        self._stopping.clear()
        server = web.Server(
            self._handle,
            handler_cancellation=True,  # a client that leaves ends its watch or log stream
            access_log=None,
            auto_decompress=False,  # bodies are seen (and hashed) as sent
            max_line_size=65536,
            max_field_size=65536,
        )
        runner = web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family, backlog=128)
        self.port = sock.getsockname()[1]
        ssl_context: ssl.SSLContext | None = None
        if self.pki is not None:
            ssl_context = self.pki.server_ssl_context(client_certs=self.client_certs)
        if self.http2 and ssl_context is not None:
            self.h2 = H2Front(server, max_streams=self.max_streams)
            await self.h2.start(sock, ssl_context)
        else:
            await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        self._runner = runner
        self._bound = True

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()  # ends log streams and upgraded connections
        self.store.close_watches()
        if self.h2 is not None:
            await self.h2.close()
        for site in list(runner.sites):
            await site.stop()  # nothing new is accepted from here on
        server = runner.server
        handlers = server.connections if server is not None else []
        left = [handler.transport for handler in handlers if handler.transport is not None]
        await runner.cleanup()
        # aiohttp closes each connection gracefully; over TLS that waits for the peer's
        # close_notify (asyncio's SSL shutdown), which the test's event loop may not live
        # to see: the transport would be collected open. A stopped API server is gone, so
        # what is still open after the handlers ended is cut, as a killed process would.
        for transport in left:
            transport.abort()
        await self._network.close()

    def register_backend(self, kind: str, namespace: str, name: str, port: str | int, url: str) -> None:
        """Let ``url`` (``http[s]://127.0.0.1:PORT``) stand for a service port, pod port or node
        port behind the ``proxy`` subresources; see ``proxying`` for how URLs resolve to it."""
        self._core.backends.register(kind, namespace, name, port, url)

    @property
    def runtime(self) -> PodRuntime:
        """What runs in the pods: exec/attach sessions, files for ``kubectl cp``, port targets."""
        return self._core.runtime

    @property
    def auth(self) -> Authenticator:
        """Who is let in: edit ``auth.tokens`` (token → user) while serving to rotate or revoke."""
        return self._auth

    @property
    def authorizer(self) -> Authorizer:
        """What users may do: edit ``authorizer.rules`` or ``authorizer.impersonators`` while serving."""
        return self._authorizer

    def open_watches(self) -> int:
        """How many watches are streaming right now (a client that leaves closes its own)."""
        return self.store.open_watches()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- kubeconfig --------------------------------------------------------------

    def kubeconfig(
        self,
        directory: Path,
        *,
        auth: Literal["token", "cert", "basic", "none"] = "token",
        token: str | None = None,
        embed: bool = True,
    ) -> Path:
        """Write a kubeconfig for this server and return its path (a new file per call).

        ``embed``: certificates inline (``*-data``) or as files under ``directory/pki``.
        ``token`` overrides the token written (e.g. a wrong one). Note that kubectl (client-go's
        clientcmd) only applies a kubeconfig's credentials over TLS: against a plain-HTTP
        fake, use ``anonymous=True`` and ``auth="none"``.
        """
        directory.mkdir(parents=True, exist_ok=True)
        cluster: dict[str, Any] = {"server": self.url}
        user: dict[str, Any] = {}
        files = self.pki.write(directory / "pki") if self.pki is not None and not embed else {}
        if self.pki is not None:
            if embed:
                cluster["certificate-authority-data"] = base64.b64encode(self.pki.ca_pem).decode()
            else:
                cluster["certificate-authority"] = str(files["ca.crt"])
        if auth == "token":
            chosen = token if token is not None else next(iter(self._auth.tokens), None)
            if chosen is None:
                raise ValueError("auth='token' needs a token: pass token= or start the server with tokens=")
            user["token"] = chosen
        elif auth == "cert":
            if self.pki is None:
                raise ValueError("auth='cert' needs a server started with pki=")
            if embed:
                user["client-certificate-data"] = base64.b64encode(self.pki.client.cert_pem).decode()
                user["client-key-data"] = base64.b64encode(self.pki.client.key_pem).decode()
            else:
                user["client-certificate"] = str(files["client.crt"])
                user["client-key"] = str(files["client.key"])
        elif auth == "basic":
            if not self.basic_auth:
                raise ValueError("auth='basic' needs a server started with basic_auth=")
            user["username"], user["password"] = self.basic_auth[0]
        elif auth != "none":
            raise ValueError(f"auth must be token, cert, basic or none, not {auth!r}")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": f"fake-{auth}", "user": user}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": f"fake-{auth}", "namespace": "default"}}
            ],
            "current-context": "fake",
            "preferences": {},
        }
        n = next(self._kubeconfigs)
        path = directory / (f"kubeconfig-{auth}.yaml" if n == 0 else f"kubeconfig-{auth}-{n}.yaml")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # -- request handling --------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path, _, query_string = request.raw_path.partition("?")
        path = unquote(raw_path)
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        cert = client_cert_identity(request)
        user = self._auth.authenticate(request, cert, path)
        acting: UserInfo | None = None
        refusal: ApiError | ImpersonationError | None = None
        if user is None:
            refusal = ApiError(401, "Unauthorized", "Unauthorized")
        else:
            try:
                acting = impersonate(user, request.headers, self._authorizer)
                self._authorizer.check(acting, request_attributes(request.method, path, query))
            except (ApiError, ImpersonationError) as exc:
                refusal = exc
        if self.record_requests:
            self._record(request, raw_path, query_string, cert, user, acting)
        try:
            if isinstance(refusal, ImpersonationError):
                # Go's responsewriters.InternalError: plain text, the request URI quoted.
                text = f'Internal Server Error: "{request.raw_path}": {refusal}\n'
                return web.Response(status=500, text=text, headers={"X-Content-Type-Options": "nosniff"})
            if refusal is not None:
                raise refusal
            assert acting is not None
            return await self._route(request, raw_path, query, acting)
        except ApiError as exc:
            return wire.status_response(request, exc)
        except ConnectionError as exc:  # the client left mid-request: nobody will read this
            return wire.status_response(request, ApiError(500, "InternalError", f"connection lost: {exc}"))
        except Exception as exc:  # a bug in the fake: say so the way the API server would
            log.exception("fake API server failed on %s %s", request.method, request.raw_path)
            return wire.status_response(request, ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    def _record(
        self,
        request: web.BaseRequest,
        raw_path: str,
        query_string: str,
        cert: UserInfo | None,
        user: UserInfo | None,
        acting: UserInfo | None,
    ) -> None:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                raw_path=raw_path,
                query_string=query_string,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                raw_headers=tuple(request.raw_headers),
                client_cert_cn=cert.username if cert is not None else None,
                user=user.username if user is not None else None,
                impersonate_user=request.headers.get("Impersonate-User"),
                effective_user=acting.username if acting is not None else None,
                groups=acting.groups if acting is not None else (),
            )
        )

    async def _route(
        self, request: web.BaseRequest, raw_path: str, query: dict[str, str], user: UserInfo
    ) -> web.StreamResponse:
        if raw_path.startswith(debug.DEBUG_PREFIX):
            return await debug.handle_debug(request, raw_path[len(debug.DEBUG_PREFIX) :])
        parts = [unquote(p) for p in raw_path.split("/")[1:]]
        if parts and parts[-1] == "" and len(parts) > 1:
            parts.pop()  # kube-apiserver's go-restful routes ignore a trailing slash
        head = parts[0] if parts else ""
        if head in ("healthz", "livez", "readyz"):
            return self._health(head, parts[1:], query)
        if request.method not in ("GET", "HEAD") and head in ("", "version", "openapi"):
            raise not_allowed()
        if parts == [""]:
            return wire.respond(request, {"paths": _ROOT_PATHS})
        if parts == ["version"]:
            return wire.respond(request, resources.version_info())
        if parts == ["openapi", "v3"]:
            return wire.respond(request, openapi.openapi_v3_index())
        if parts[:2] == ["openapi", "v3"] and len(parts) > 2:
            gv = tuple(parts[3:5]) if parts[2] == "apis" else ("", parts[3] if len(parts) > 3 else "")
            if parts[2] not in ("api", "apis") or len(parts) != (5 if parts[2] == "apis" else 4):
                raise unknown_resource()
            if gv not in resources.GROUP_VERSIONS:
                raise unknown_resource()
            return wire.respond(request, openapi.document(gv[0], gv[1]))
        if parts in (["api"], ["apis"]):
            return self._discovery(request, core=head == "api")
        if parts == ["api", "v1"]:
            return wire.respond(request, discovery.api_resource_list())
        if head == "apis" and len(parts) > 1:
            return await self._group(request, parts[1:], query, user)
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            return await self._core.handle(request, parts[2:], query)
        if head == "api":
            raise unknown_resource()
        return web.Response(status=404, text=_NOT_FOUND_TEXT, headers={"X-Content-Type-Options": "nosniff"})

    async def _group(
        self, request: web.BaseRequest, parts: list[str], query: dict[str, str], user: UserInfo
    ) -> web.StreamResponse:
        """``/apis/GROUP[/VERSION[/...]]``."""
        group = parts[0]
        if not discovery.served_group(group):
            raise unknown_resource()
        if len(parts) == 1:
            return wire.respond(request, discovery.api_group(group))
        version = parts[1]
        if (group, version) not in resources.GROUP_VERSIONS:
            raise unknown_resource()
        if len(parts) == 2:
            return wire.respond(request, discovery.api_resource_list(group, version))
        rest = parts[2:]
        named = rest[1] if rest[0] == "watch" and len(rest) > 1 else rest[0]
        if named == "namespaces" and len(rest) >= 3:
            named = rest[2] if rest[0] != "watch" else rest[3] if len(rest) > 3 else ""
        rtype = resources.resource_in(group, version, named)
        if rtype is not None and not rtype.stored:
            if len(rest) > 1:
                raise unknown_resource()
            return await handle_review(request, rtype, user, self._authorizer)
        return await self._core.handle(request, rest, query, group=group, version=version)

    def _health(self, check: str, rest: list[str], query: Mapping[str, str]) -> web.Response:
        if rest and rest != ["ping"]:
            return web.Response(status=404, text=_NOT_FOUND_TEXT)
        headers = {"Cache-Control": "no-cache, private", "X-Content-Type-Options": "nosniff"}
        if "verbose" in query:
            checks = ["ping", "log", "etcd"] + (["informer-sync"] if check == "readyz" else [])
            lines = [f"[+]{name} ok" for name in checks] + [f"{check} check passed", ""]
            return web.Response(text="\n".join(lines), headers=headers)
        return web.Response(text="ok", headers=headers)

    def _discovery(self, request: web.BaseRequest, *, core: bool) -> web.Response:
        for media in wire.parse_accept(request.headers.get("Accept", "")):
            if media.mime != wire.JSON:
                continue
            if media.params.get("g") == _DISCOVERY_GROUP and media.params.get("as") == "APIGroupDiscoveryList":
                version = media.params.get("v", "")
                if version in ("v2", "v2beta1"):
                    ctype = f"{wire.JSON};g={_DISCOVERY_GROUP};v={version};as=APIGroupDiscoveryList"
                    doc = discovery.aggregated_discovery(version, core=core)
                    return wire.respond(request, doc, content_type=ctype)
            elif "as" not in media.params:
                break
        address = join_host_port(self.host, str(self.port))
        legacy = discovery.api_versions(address) if core else discovery.api_group_list()
        return wire.respond(request, legacy)
