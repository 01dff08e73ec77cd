"""Fakes for credential tests: exec plugin scripts and an OIDC issuer.

* :func:`write_plugin` writes a real executable exec credential plugin (a Python script)
  whose behaviour is read from a JSON file on every run, so a test can change it while
  kproxy serves (:meth:`Plugin.configure`): a token (``{n}`` is replaced by the run
  number), a client certificate, an expiry, a failure, a hang, bad output. Each run is
  recorded (:attr:`Plugin.runs`, :meth:`Plugin.last_exec_info`).
* :class:`FakeOIDCIssuer` is an OpenID provider on 127.0.0.1: discovery and a token
  endpoint for ``grant_type=refresh_token`` that mints unsigned JWT id-tokens
  (:func:`make_jwt`) and rotates refresh tokens; ``on_issue`` lets a test make the
  fake API server accept each new id-token.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

from aiohttp import web

from kproxy.testing.certs import TestPKI

__all__ = ["FakeOIDCIssuer", "Plugin", "make_jwt", "write_plugin"]

_SCRIPT = r"""#!{python}
import json, os, sys, time, datetime
here = {spec!r}
spec = json.load(open(here))
calls = here + ".calls"
with open(calls, "a") as f:
    f.write("run\n")
n = sum(1 for _ in open(calls))
with open(here + ".exec-info", "w") as f:
    json.dump({{"info": os.environ.get("KUBERNETES_EXEC_INFO"), "env": {{k: os.environ.get(k)
               for k in spec.get("record_env", [])}}, "stdin_tty": os.isatty(0), "args": sys.argv[1:]}}, f)
if spec.get("sleep"):
    time.sleep(spec["sleep"])
if spec.get("stderr"):
    sys.stderr.write(spec["stderr"])
if spec.get("stdout") is not None:
    sys.stdout.write(spec["stdout"])
    sys.exit(spec.get("exit", 0))
if spec.get("exit"):
    sys.exit(spec["exit"])
status = {{}}
if spec.get("token"):
    status["token"] = spec["token"].replace("{{n}}", str(n))
if spec.get("cert"):
    status["clientCertificateData"] = spec["cert"]
    status["clientKeyData"] = spec["key"]
if spec.get("expires_in") is not None:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=spec["expires_in"])
    status["expirationTimestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
out = {{"apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1"),
       "kind": spec.get("kind", "ExecCredential"), "status": status}}
print(json.dumps(out))
"""


class Plugin:
    """An exec plugin script on disk; see :func:`write_plugin`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spec_path = path.with_suffix(".json")

    def configure(self, **spec: Any) -> None:
        """Replace the behaviour: token, cert, key, expires_in, exit, stderr, stdout, sleep,
        apiVersion, kind, record_env (names of variables to record)."""
        self.spec_path.write_text(json.dumps(spec))

    @property
    def runs(self) -> int:
        try:
            return len(Path(str(self.spec_path) + ".calls").read_text().splitlines())
        except FileNotFoundError:
            return 0

    def last_exec_info(self) -> dict[str, Any]:
        """``{"info": parsed KUBERNETES_EXEC_INFO, "env": {...}, "stdin_tty": bool, "args": [...]}``."""
        data: dict[str, Any] = json.loads(Path(str(self.spec_path) + ".exec-info").read_text())
        if data.get("info"):
            data["info"] = json.loads(data["info"])
        return data


def write_plugin(directory: Path, name: str = "plugin", **spec: Any) -> Plugin:
    """Write an executable plugin ``directory/name`` configured with ``spec``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    plugin = Plugin(path)
    plugin.configure(**spec)
    path.write_text(_SCRIPT.format(python=sys.executable, spec=str(plugin.spec_path)))
    path.chmod(0o755)
    return plugin


def make_jwt(exp: float, subject: str = "oidc-user", nonce: str = "") -> str:
    """An unsigned JWT (``alg: none``) with ``exp``; clients read it, nobody verifies it."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims: dict[str, Any] = {"iss": "fake", "sub": subject, "exp": int(exp)}
    if nonce:
        claims["nonce"] = nonce
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"


class FakeOIDCIssuer:
    """An OpenID Connect provider on 127.0.0.1 for the refresh-token flow."""

    def __init__(
        self,
        *,
        client_id: str = "kproxy",
        client_secret: str = "",
        refresh_token: str = "refresh-1",
        lifetime: float = 3600.0,
        rotate_refresh: bool = True,
        basic_auth: bool = True,
        pki: TestPKI | None = None,
        on_issue: Callable[[str], None] | None = None,
    ) -> None:
        """``basic_auth``: accept client credentials in HTTP Basic (else only in the form, so
        a client must fall back). ``pki``: serve HTTPS with its server certificate."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens = {refresh_token}
        self.lifetime = lifetime
        self.rotate_refresh = rotate_refresh
        self.basic_auth = basic_auth
        self.pki = pki
        self.on_issue = on_issue
        self.fail_with: tuple[int, dict[str, Any]] | None = None  # e.g. (400, {"error": ...})
        self.omit_id_token = False
        self.token_requests = 0
        self.discovery_requests = 0
        self.issued: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._count = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.pki else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_post("/token", self._token)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ctx: ssl.SSLContext | None = None
        if self.pki is not None:
            ctx = self.pki.server_ssl_context(client_certs=False)
        await web.SockSite(runner, sock, ssl_context=ctx).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        base = f"{'https' if self.pki else 'http'}://{request.host}"  # the name the client used
        return web.json_response(
            {"issuer": base, "token_endpoint": base + "/token", "authorization_endpoint": base + "/auth"}
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            if not self.basic_auth:
                return web.json_response({"error": "invalid_client"}, status=401)
            pair = base64.b64decode(header[6:]).decode()
            client_id, _, secret = (unquote(p) for p in pair.partition(":"))
        if client_id != self.client_id or secret != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if self.fail_with is not None:
            status, body = self.fail_with
            return web.json_response(body, status=status)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.refresh_tokens:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "unknown refresh token"}, status=400
            )
        self._count += 1
        id_token = make_jwt(time.time() + self.lifetime, nonce=str(self._count))
        self.issued.append(id_token)
        if self.on_issue is not None:
            self.on_issue(id_token)
        answer: dict[str, Any] = {
            "access_token": f"access-{self._count}",
            "token_type": "Bearer",
            "expires_in": int(self.lifetime),
        }
        if not self.omit_id_token:
            answer["id_token"] = id_token
        if self.rotate_refresh:
            self.refresh_tokens = {f"refresh-{self._count + 1}"}
            answer["refresh_token"] = f"refresh-{self._count + 1}"
        return web.json_response(answer)
