"""Exec credential plugins (``users[].user.exec``), as client-go runs them.

In: a validated :class:`~kproxy.policy.exec_credential.ExecConfig`, the cluster it is for
(:class:`~kproxy.policy.exec_credential.ClusterInfo`, sent when ``provideClusterInfo`` is true),
the environment kproxy was started with. Out: :class:`ExecPlugin`, an
:class:`~kproxy.credentials.sources.AuthSource` (``Authorization: Bearer`` from the plugin's
token) and a :class:`~kproxy.credentials.sources.TLSSource` (the plugin's client certificate).

Protocol (``client.authentication.k8s.io`` ``v1`` and ``v1beta1``): the plugin runs
with kproxy's environment plus ``env``, and ``KUBERNETES_EXEC_INFO`` holding an
``ExecCredential`` whose ``spec`` says whether it may interact and, with
``provideClusterInfo``, which cluster it is for. It prints an ``ExecCredential`` whose
``status`` has a ``token`` or ``clientCertificateData`` + ``clientKeyData``, and
optionally ``expirationTimestamp`` (RFC 3339).

Behaviour (client-go ``plugin/pkg/client/auth/exec``): the result is cached until its
expiration (for the life of the process without one); concurrent requests share one
run; after a 401 the plugin runs again unless it already has since the refused
request began. Where kproxy adds to client-go: a run is stopped after a timeout (a
hung plugin would otherwise hold every request forever), and the plugin's stderr
(truncated) is part of the error, since nobody watches a proxy's terminal.

Messages name the plugin's command; never its arguments, environment or output,
which may carry secrets.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import os
import shutil
import signal
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kproxy.credentials.sources import AuthSource, TLSSource, bearer_line
from kproxy.errors import ConfigError, UpstreamError
from kproxy.log import log
from kproxy.metrics import tally
from kproxy.policy.exec_credential import ClusterInfo, ExecConfig, ExecResult, exec_info, parse_output

__all__ = ["DEFAULT_TIMEOUT", "ExecPlugin"]

# Long enough for a browser login (kubelogin), short enough that a hung plugin does not
# hold requests for ever. KPROXY_EXEC_PLUGIN_TIMEOUT overrides it
# (kproxy.config.upstream_auth).
DEFAULT_TIMEOUT = 120.0
_STDERR_LIMIT = 1024

_INSTALL_HINT_HELP = (
    "\n\nIt looks like you are trying to use a client-go credential plugin that is not installed."
    "\n\nTo learn more about this feature, consult the documentation available at:"
    "\n      https://kubernetes.io/docs/reference/access-authn-authz/authentication/"
    "#client-go-credential-plugins"
)


@dataclass(frozen=True)
class _Creds:
    line: bytes = field(repr=False)
    cert: bytes | None = field(repr=False)
    key: bytes | None = field(repr=False)
    ctx: ssl.SSLContext | None


class ExecPlugin(AuthSource, TLSSource):
    """One plugin configuration's cached credential, shared by every request."""

    refreshes_on_401 = True

    def __init__(
        self,
        config: ExecConfig,
        *,
        environ: Mapping[str, str],
        interactive: bool,
        cluster: ClusterInfo | None,
        timeout: float = DEFAULT_TIMEOUT,
        tls_for: Callable[[bytes | None, bytes | None], ssl.SSLContext] | None = None,
    ) -> None:
        """``tls_for(cert, key)``: the SSLContext for the plugin's client certificate (or
        for none); None when the API server is plain HTTP."""
        self._config = config
        self._name = config.command
        self._environ = dict(environ)
        for name, value in config.env:
            self._environ[name] = value
        self._environ["KUBERNETES_EXEC_INFO"] = exec_info(
            config.api_version, cluster if config.provide_cluster_info else None, interactive
        )
        self._path = environ.get("PATH", os.defpath)  # Go looks the command up in its own PATH
        self._interactive = interactive
        self._timeout = timeout
        self._tls_for = tls_for
        self._creds: _Creds | None = None
        self._changed_at = -math.inf  # monotonic time the credential last changed
        self._obtained_at = -math.inf
        self._running: asyncio.Task[_Creds] | None = None
        self._bare: ssl.SSLContext | None = None  # the context without a client certificate
        self.runs = 0  # how many times the plugin ran (for tests and debugging)

    # -- AuthSource / TLSSource ------------------------------------------------------

    async def fresh(self) -> bytes:
        if self._creds is not None and time.monotonic() < self.deadline:
            return self.line
        return (await self._shared()).line

    async def after_401(self, used: bytes, started: float) -> bool:
        if self._running is not None or self._obtained_at <= started:
            try:
                await self._shared()
            except UpstreamError as exc:
                # client-go logs this and hands the 401 back.
                log.error("refreshing credentials: %s", exc.message)
                return False
        return self._changed_at > started

    async def context(self) -> ssl.SSLContext:
        # The certificate of the last run, or none before the first. A dial never runs the
        # plugin itself: the relay has already asked for the credential of any request
        # that wants one, and a request carrying its own Authorization must not start it
        # (client-go does, through its GetCert callback: kubernetes/kubernetes#87369).
        # Connections made before the plugin's first certificate are retired by the
        # generation change.
        creds = self._creds
        if creds is not None and creds.ctx is not None:
            return creds.ctx
        if self._bare is None:
            assert self._tls_for is not None, "context() is only asked for over TLS"
            self._bare = self._tls_for(None, None)
        return self._bare

    # -- one run at a time -----------------------------------------------------------

    async def _shared(self) -> _Creds:
        task = self._running
        if task is None:
            task = asyncio.get_running_loop().create_task(self._run())
            self._running = task
            task.add_done_callback(self._finished)
        # shield: a client that leaves must not stop the run the others wait for.
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[_Creds]) -> None:
        self._running = None
        if not task.cancelled():
            tally.refresh("exec", task.exception() is None)  # (retrieved: the waiters re-raise it)

    async def _run(self) -> _Creds:
        result = await self._execute()
        try:
            line = bearer_line(result.token, f"exec plugin {self._name}") if result.token else b""
        except ValueError as exc:
            raise UpstreamError(f"getting credentials: {exc}") from None
        ctx = None
        if self._tls_for is not None and result.cert_pem is not None:
            try:
                ctx = self._tls_for(result.cert_pem, result.key_pem)
            except ConfigError as exc:
                raise UpstreamError(
                    f"getting credentials: exec plugin {self._name}: failed parsing client key/certificate: {exc}"
                ) from None
        creds = _Creds(line, result.cert_pem, result.key_pem, ctx)
        now = time.monotonic()
        old = self._creds
        if old is None or (old.line, old.cert, old.key) != (line, creds.cert, creds.key):
            self._changed_at = now
        previous = (old.cert, old.key) if old is not None else (None, None)
        if previous != (creds.cert, creds.key):
            # client-go closes every connection when the certificate rotates; the pool
            # drops idle ones and retires busy ones when they finish.
            self.generation += 1
        self._creds = creds
        self._obtained_at = now
        self.line = line
        self.deadline = math.inf if result.expires is None else now + (result.expires - time.time())
        if log.isEnabledFor(logging.DEBUG):
            until = (
                "no expiry"
                if result.expires is None
                else datetime.datetime.fromtimestamp(result.expires, datetime.UTC).isoformat()
            )
            kind = "a token" if line else "a client certificate"
            log.debug("exec plugin %s returned %s (%s)", self._name, kind, until)
        return creds

    async def _execute(self) -> ExecResult:
        self.runs += 1
        name = self._name
        command = shutil.which(name, path=self._path) if os.sep not in name else name
        if command is None or not os.path.exists(command):
            raise UpstreamError(self._not_found(f"exec: executable {name} not found"))
        log.debug("running exec plugin %s", name)
        interactive = self._interactive
        try:
            proc = await asyncio.create_subprocess_exec(
                command,
                *self._config.args,
                env=self._environ,
                stdin=None if interactive else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                # Interactive plugins talk to the user on stderr, as under kubectl.
                stderr=None if interactive else asyncio.subprocess.PIPE,
                # Its own process group, so a timeout stops the plugin's children too.
                start_new_session=not interactive,
            )
        except PermissionError:
            raise UpstreamError(
                self._not_found(f"exec: executable {name} is not executable (permission denied)")
            ) from None
        except FileNotFoundError:
            raise UpstreamError(self._not_found(f"exec: executable {name} not found")) from None
        except OSError as exc:
            raise UpstreamError(f"getting credentials: exec: cannot run {name}: {exc.strerror or exc}") from None
        try:
            async with asyncio.timeout(self._timeout):
                stdout, stderr = await proc.communicate()
        except TimeoutError:
            self._kill(proc)
            await proc.wait()
            raise UpstreamError(
                f"getting credentials: exec: executable {name} did not finish within "
                f"{self._timeout:g}s and was stopped; the next request runs it again"
            ) from None
        except BaseException:
            self._kill(proc)  # kproxy is stopping: leave no plugin behind
            raise
        err_text = _truncate(stderr or b"")
        code = proc.returncode
        if code != 0:
            how = (
                f"failed with exit code {code}"
                if code is not None and code > 0
                else f"was killed by signal {-(code or 0)}"
            )
            detail = f"; stderr: {err_text}" if err_text else ""
            raise UpstreamError(f"getting credentials: exec: executable {name} {how}{detail}")
        if err_text:
            log.info("exec plugin %s wrote to stderr: %s", name, err_text)
        try:
            return parse_output(stdout, self._config.api_version)
        except ValueError as exc:
            raise UpstreamError(f"getting credentials: exec plugin {name}: {exc}") from None

    def _not_found(self, first: str) -> str:
        message = f"getting credentials: {first}{_INSTALL_HINT_HELP}"
        if self._config.install_hint:
            message += "\n\n" + self._config.install_hint
        return message

    def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        try:
            if self._interactive:
                proc.kill()
            else:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we started with the plugin
        except ProcessLookupError:
            pass


def _truncate(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    if len(text) > _STDERR_LIMIT:
        text = text[:_STDERR_LIMIT] + "... (truncated)"
    return text
