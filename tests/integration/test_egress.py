"""Egress through real forward proxies, end to end: the kproxy process, the fake API server,
and third-party proxies (tinyproxy, stunnel, Dante; see ``forward_proxies``) whose own
logs prove what went through them.

Go never proxies loopback destinations, so the tests that exercise the environment or
``--http-proxy-config`` give the API server a name only the proxy can resolve
(``kube.corp.invalid``, in the proxy's private ``/etc/hosts``; root only). A kubeconfig
``proxy-url`` proxies loopback too (client-go's rule), which lets the other tests run
without root.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kproxy import Flags, Options, ProxyServer
from kproxy.testing import FakeAPIServer, TestPKI
from kproxy.testing.certs import CertPair
from kproxy.testing.credential_fakes import FakeOIDCIssuer, make_jwt
from tests.conftest import KproxyProcess, StartKproxy, kproxy_cmd, kubectl_env
from tests.integration.forward_proxies import (
    PRIVATE_NAME,
    Dante,
    Stunnel,
    Tinyproxy,
    free_port,
    require,
    require_root_namespaces,
)

pytestmark = pytest.mark.timeout(120)

# tinyproxy's configuration takes only [A-Za-z0-9._-] words; the URL's percent-encoding
# must still be decoded before it goes into Proxy-Authorization (Go, docs/go-proxy-selection.md §4).
AUTH = ("alice", "p.ss-w0rd")
AUTH_USERINFO = "al%69ce:p%2Ess-w0rd"
NAMESPACES = "/api/v1/namespaces"


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("forward-proxies")


def _private_hosts() -> dict[str, str] | None:
    return {PRIVATE_NAME: "127.0.0.1"} if os.geteuid() == 0 else None


@pytest.fixture(scope="module")
def tinyproxy(workdir: Path) -> Iterator[Tinyproxy]:
    require("tinyproxy")
    proxy = Tinyproxy(workdir, hosts=_private_hosts())
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def auth_proxy(workdir: Path) -> Iterator[Tinyproxy]:
    require("tinyproxy")
    proxy = Tinyproxy(workdir, auth=AUTH, hosts=_private_hosts())
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def proxy_ca() -> trustme.CA:
    return trustme.CA(organization_name="Corp Proxy CA")


@pytest.fixture(scope="module")
def https_proxy(workdir: Path, tinyproxy: Tinyproxy, proxy_ca: trustme.CA) -> Iterator[Stunnel]:
    """An https:// proxy: stunnel (certificate for "localhost" from the Corp Proxy CA) in
    front of tinyproxy."""
    require("stunnel4")
    cert = proxy_ca.issue_cert("localhost")
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    proxy = Stunnel(workdir, tinyproxy.port, chain, cert.private_key_pem.bytes())
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def dante(workdir: Path) -> Iterator[Dante]:
    require("danted")
    proxy = Dante(workdir, hosts=_private_hosts())
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def private_name() -> str:
    require_root_namespaces()
    return PRIVATE_NAME


@pytest.fixture(scope="session")
def corp_pki() -> TestPKI:
    return TestPKI.create(server_names=(PRIVATE_NAME, "localhost", "127.0.0.1"))


@pytest.fixture
async def api(corp_pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    """The fake API server, its certificate valid for the private name too."""
    async with FakeAPIServer(pki=corp_pki, tokens=("test-token",)) as server:
        yield server


@pytest.fixture
async def plain_api() -> AsyncIterator[FakeAPIServer]:
    """An http:// API server (anonymous access: kubeconfig credentials need TLS)."""
    async with FakeAPIServer(anonymous=True) as server:
        yield server


def kubeconfig_for(
    api: FakeAPIServer, directory: Path, *, server: str = "", proxy_url: str = "", ca: bool = True
) -> Path:
    path = api.kubeconfig(directory, auth="token" if api.pki else "none")
    doc = yaml.safe_load(path.read_text())
    cluster = doc["clusters"][0]["cluster"]
    if server:
        cluster["server"] = server
    if proxy_url:
        cluster["proxy-url"] = proxy_url
    if not ca:
        del cluster["certificate-authority-data"]
    path.write_text(yaml.safe_dump(doc))
    return path


def env(**proxy_vars: str) -> dict[str, str]:
    return {**os.environ, **proxy_vars}


async def get(url: str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        body = await resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body.decode(errors="replace")


def connects(log: str, target: str) -> int:
    return log.count(f"CONNECT {target} HTTP/1.1")


def dead_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


# -- CONNECT through a real proxy; the environment and NO_PROXY -----------------------------


async def test_connect_tunnel_to_a_name_only_the_proxy_resolves(
    api: FakeAPIServer,
    tinyproxy: Tinyproxy,
    private_name: str,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    target = f"{private_name}:{api.port}"
    kubeconfig = kubeconfig_for(api, tmp_path, server=f"https://{target}")
    mark = tinyproxy.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), env=env(HTTPS_PROXY=tinyproxy.url))
    for _ in range(3):
        status, body = await get(kp.url + NAMESPACES)
        assert status == 200, body
    assert {"default", "kube-system"} <= {item["metadata"]["name"] for item in body["items"]}
    # The proxy's own log: one CONNECT, its tunnel pooled and reused by the next requests.
    assert connects(tinyproxy.since(mark), target) == 1, tinyproxy.since(mark)
    assert api.requests[-1].headers["Authorization"] == "Bearer test-token"
    assert f"through the proxy {tinyproxy.url} (from HTTPS_PROXY)" in kp.stderr


@pytest.mark.parametrize(
    ("name", "value", "proxied"),
    [
        ("NO_PROXY", "", True),
        ("NO_PROXY", ".corp.invalid", False),
        ("NO_PROXY", "corp.invalid", False),
        ("no_proxy", "*.corp.invalid", False),
        ("NO_PROXY", " other.example , KUBE.CORP.INVALID ", False),
        ("NO_PROXY", "kube.corp.invalid:1", True),  # another port
        ("NO_PROXY", "kube.corp.invalid:{port}", False),
        ("NO_PROXY", ".kube.corp.invalid", True),  # subdomains only
        ("NO_PROXY", "10.0.0.0/8,127.0.0.0/8", True),  # CIDRs match IP hosts, never names
        ("NO_PROXY", "*", False),
    ],
)
async def test_no_proxy_decides_direct_or_proxied(
    api: FakeAPIServer,
    tinyproxy: Tinyproxy,
    private_name: str,
    tmp_path: Path,
    start_kproxy: StartKproxy,
    name: str,
    value: str,
    proxied: bool,
) -> None:
    target = f"{private_name}:{api.port}"
    kubeconfig = kubeconfig_for(api, tmp_path, server=f"https://{target}")
    mark = tinyproxy.mark()
    kp = await start_kproxy(
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        env=env(HTTPS_PROXY=tinyproxy.url, **{name: value.format(port=api.port)}),
    )
    status, body = await get(kp.url + NAMESPACES)
    if proxied:
        assert status == 200, body
        assert connects(tinyproxy.since(mark), target) == 1
    else:
        # Direct: only the proxy knows the name, so the direct attempt fails to resolve it.
        assert status == 502, body
        assert body["kind"] == "Status"
        assert f"cannot resolve the API server host '{private_name}'" in body["message"]
        assert "CONNECT" not in tinyproxy.since(mark)


async def test_socks5_resolves_the_name_on_the_proxy(
    api: FakeAPIServer,
    dante: Dante,
    private_name: str,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, server=f"https://{private_name}:{api.port}")
    mark = dante.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), env=env(HTTPS_PROXY=dante.url))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 200, body
    assert f"127.0.0.1.{api.port}" in dante.since(mark)  # Dante resolved the name and connected
    assert f"through the proxy {dante.url} (from HTTPS_PROXY)" in kp.stderr


async def test_socks5_proxy_url_from_the_kubeconfig(
    api: FakeAPIServer,
    dante: Dante,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=dante.url)
    mark = dante.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 200, body
    assert f"127.0.0.1.{api.port}" in dante.since(mark)


# -- precedence: --http-proxy-config > kubeconfig proxy-url > environment ------------------------


async def test_proxy_url_wins_over_the_environment_and_proxies_loopback(
    api: FakeAPIServer,
    tinyproxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=tinyproxy.url)
    mark = tinyproxy.mark()
    dead = f"http://127.0.0.1:{dead_port()}"
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), env=env(HTTPS_PROXY=dead, NO_PROXY="*"))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 200, body
    assert connects(tinyproxy.since(mark), f"127.0.0.1:{api.port}") == 1
    assert "(from kubeconfig proxy-url)" in kp.stderr


async def test_http_proxy_config_wins_over_proxy_url(
    api: FakeAPIServer,
    tinyproxy: Tinyproxy,
    private_name: str,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    dead = f"http://127.0.0.1:{dead_port()}"
    kubeconfig = kubeconfig_for(api, tmp_path, server=f"https://{private_name}:{api.port}", proxy_url=dead)
    config = tmp_path / "proxy.json"
    config.write_text(
        json.dumps({"httpProxy": dead, "httpsProxy": tinyproxy.url, "noProxy": ["localhost", "10.0.0.0/8"]})
    )
    mark = tinyproxy.mark()
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--http-proxy-config", str(config), env=env(HTTPS_PROXY=dead)
    )
    status, body = await get(kp.url + NAMESPACES)
    assert status == 200, body
    assert connects(tinyproxy.since(mark), f"{private_name}:{api.port}") == 1
    assert f"(from httpsProxy in {config})" in kp.stderr


# -- http:// API servers: absolute form; proxy authentication ----------------------------------


async def test_http_api_server_absolute_form_with_proxy_credentials(
    plain_api: FakeAPIServer,
    auth_proxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    proxy_url = f"http://{AUTH_USERINFO}@127.0.0.1:{auth_proxy.port}"
    kubeconfig = kubeconfig_for(plain_api, tmp_path, proxy_url=proxy_url)
    mark = auth_proxy.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + "/debug/kproxy/echo?x=1")
    assert status == 200, body
    log = auth_proxy.since(mark)
    assert f"GET http://127.0.0.1:{plain_api.port}/debug/kproxy/echo?x=1 HTTP/1.1" in log, log
    headers = {name.lower(): value for name, value in body["headers"]}
    assert headers["host"] == f"127.0.0.1:{plain_api.port}"
    assert "proxy-authorization" not in headers  # spent on the proxy
    assert "al%69ce" not in kp.stderr and "w0rd" not in kp.stderr


@pytest.mark.parametrize(
    ("scheme", "userinfo"),
    # tinyproxy answers wrong credentials with 401 rather than 407; on an absolute-form
    # request that is indistinguishable from the API server's own 401 and passes through
    # (as in Go), so that combination is not here.
    [("http", ""), ("https", ""), ("https", "alice:wrong@")],
)
async def test_proxy_authentication_required_is_502(
    api: FakeAPIServer,
    plain_api: FakeAPIServer,
    auth_proxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
    scheme: str,
    userinfo: str,
) -> None:
    server = api if scheme == "https" else plain_api
    kubeconfig = kubeconfig_for(server, tmp_path, proxy_url=f"http://{userinfo}127.0.0.1:{auth_proxy.port}")
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    assert body["reason"] == "ServiceUnavailable"
    message = body["message"]
    assert f"the proxy http://127.0.0.1:{auth_proxy.port}" in message
    assert "requires proxy authentication" in message and ("407" in message or "401" in message)
    if userinfo:
        assert "credentials from the proxy URL were rejected" in message
        assert "wrong" not in message and "alice" not in message
    else:
        assert "no credentials were sent" in message


async def test_connect_with_proxy_credentials(
    api: FakeAPIServer,
    auth_proxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=f"http://{AUTH_USERINFO}@127.0.0.1:{auth_proxy.port}")
    mark = auth_proxy.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 200, body
    assert connects(auth_proxy.since(mark), f"127.0.0.1:{api.port}") == 1


# -- https:// proxies: TLS to the proxy, then TLS to the API server inside ----------------------


def write_ca(path: Path, ca: trustme.CA) -> Path:
    path.write_bytes(ca.cert_pem.bytes())
    return path


async def test_https_proxy_trusted_with_custom_ca_file(
    api: FakeAPIServer,
    https_proxy: Stunnel,
    tinyproxy: Tinyproxy,
    proxy_ca: trustme.CA,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=https_proxy.url)
    ca_file = write_ca(tmp_path / "corp-ca.pem", proxy_ca)
    mark = tinyproxy.mark()
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--custom-ca-trust-certificates", str(ca_file)
    )
    for _ in range(2):
        status, body = await get(kp.url + NAMESPACES)
        assert status == 200, body
    assert connects(tinyproxy.since(mark), f"127.0.0.1:{api.port}") == 1
    assert "trusting 1 extra CA certificate(s)" in kp.stderr


async def test_https_proxy_unknown_authority(
    api: FakeAPIServer,
    https_proxy: Stunnel,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=https_proxy.url)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    message = body["message"]
    assert message.startswith(f"cannot verify the TLS certificate of the proxy {https_proxy.url}")
    assert "certificate signed by unknown authority" in message and "Corp Proxy CA" in message
    assert "--custom-ca-trust-certificates" in message


async def test_https_proxy_name_mismatch(
    api: FakeAPIServer,
    https_proxy: Stunnel,
    proxy_ca: trustme.CA,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=f"https://127.0.0.1:{https_proxy.port}")
    ca_file = write_ca(tmp_path / "corp-ca.pem", proxy_ca)
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--custom-ca-trust-certificates", str(ca_file)
    )
    status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    assert "x509: certificate is valid for localhost, not 127.0.0.1" in body["message"]


async def test_https_proxy_trusted_ca_from_http_proxy_config(
    api: FakeAPIServer,
    https_proxy: Stunnel,
    tinyproxy: Tinyproxy,
    proxy_ca: trustme.CA,
    private_name: str,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    kubeconfig = kubeconfig_for(api, tmp_path, server=f"https://{private_name}:{api.port}")
    config = tmp_path / "proxy.json"
    config.write_text(
        json.dumps(
            {
                "httpProxy": tinyproxy.url,
                "httpsProxy": https_proxy.url,
                "noProxy": ["localhost", "127.0.0.1"],
                "trustedCA": base64.b64encode(proxy_ca.cert_pem.bytes()).decode(),  # the AKS example's spelling
            }
        )
    )
    mark = tinyproxy.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--http-proxy-config", str(config))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 200, body
    assert connects(tinyproxy.since(mark), f"{private_name}:{api.port}") == 1


async def test_tls_in_tls_on_the_standard_event_loop(
    api: FakeAPIServer,
    https_proxy: Stunnel,
    tinyproxy: Tinyproxy,
    proxy_ca: trustme.CA,
    tmp_path: Path,
) -> None:
    """The CLI runs uvloop; embedders may run asyncio's own loop: start_tls there too."""
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=https_proxy.url)
    ca_file = write_ca(tmp_path / "corp-ca.pem", proxy_ca)
    options = Options.from_flags(
        Flags(port=0, kubeconfig=str(kubeconfig), custom_ca_trust_certificates=str(ca_file)), environ={}
    )
    mark = tinyproxy.mark()
    async with ProxyServer(options) as server:
        status, body = await get(server.url + NAMESPACES)
        status2, _ = await get(server.url + "/version")
    assert (status, status2) == (200, 200), body
    assert connects(tinyproxy.since(mark), f"127.0.0.1:{api.port}") == 1


# -- the API server's certificate through the tunnel: trust and clear failures ------------------


def cn_only_pki(pki: TestPKI, common_name: str) -> TestPKI:
    """``pki`` with a server certificate naming ``common_name`` only in its subject CN."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_pem)
    ca_key = serialization.load_pem_private_key(pki.ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return replace(pki, server=CertPair(cert.public_bytes(serialization.Encoding.PEM), key_pem))


@pytest.mark.parametrize("via_proxy", [True, False])
async def test_api_server_tls_failures_are_explained(
    api: FakeAPIServer,
    corp_pki: TestPKI,
    tinyproxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
    via_proxy: bool,
) -> None:
    proxy_url = tinyproxy.url if via_proxy else ""
    via = f" through the proxy {tinyproxy.url}" if via_proxy else ""
    # 1. No CA in the kubeconfig: the system store does not know the cluster's CA.
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=proxy_url, ca=False)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    message = body["message"]
    assert message.startswith(
        f"cannot verify the TLS certificate of the API server https://127.0.0.1:{api.port}{via}: "
        "x509: certificate signed by unknown authority (issued by CN=kproxy-test-ca)"
    )
    assert "trusted: the system trust store" in message and "--custom-ca-trust-certificates" in message
    # ... which the custom CA file fixes, next to the system store.
    ca_file = tmp_path / "cluster-ca.pem"
    ca_file.write_bytes(corp_pki.ca_pem)
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--custom-ca-trust-certificates", str(ca_file)
    )
    status, body = await get(kp.url + NAMESPACES)
    assert status == 200, body
    # 2. A name the certificate does not list.
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=proxy_url)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--tls-server-name", "wrong.example")
    status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    assert (
        f"x509: certificate is valid for {PRIVATE_NAME}, localhost, 127.0.0.1, not wrong.example; set tls-server-name"
    ) in body["message"]


@pytest.mark.parametrize("via_proxy", [True, False])
async def test_common_name_only_certificate_is_explained(
    corp_pki: TestPKI,
    tinyproxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
    via_proxy: bool,
) -> None:
    async with FakeAPIServer(pki=cn_only_pki(corp_pki, "localhost"), tokens=("test-token",)) as cn_api:
        kubeconfig = kubeconfig_for(
            cn_api, tmp_path, server=f"https://localhost:{cn_api.port}", proxy_url=tinyproxy.url if via_proxy else ""
        )
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
        status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    message = body["message"]
    assert "x509: certificate relies on legacy Common Name field, use SANs instead" in message
    assert "only the Common Name 'localhost'" in message and "Go, and so kubectl, ignore the Common Name" in message


# -- upgrades through the proxy -----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "spdy"])
@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_kubectl_exec_through_the_proxy(
    api: FakeAPIServer,
    plain_api: FakeAPIServer,
    tinyproxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
    transport: str,
    scheme: str,
) -> None:
    server = api if scheme == "https" else plain_api
    kubeconfig = kubeconfig_for(server, tmp_path, proxy_url=tinyproxy.url)
    mark = tinyproxy.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--reject-paths=")
    code, out, err = await kubectl(kp, tmp_path, transport, "exec", "nginx-7c5ddbdf54-2xkqw", "--", "echo", "hi")
    assert (code, out, err) == (0, "hi\n", "")
    [session] = [s for s in server.runtime.sessions if s.kind == "exec"]
    assert session.transport == transport
    log = tinyproxy.since(mark)
    target = f"127.0.0.1:{server.port}"
    if scheme == "https":
        assert connects(log, target) >= 1  # the GET's pooled tunnel, and the upgrade's own
    else:
        # Ordinary requests in absolute form; the upgrade through a CONNECT tunnel, as
        # client-go's SPDY and WebSocket dialers do.
        assert f"GET http://{target}/api/v1/namespaces/default/pods/nginx-7c5ddbdf54-2xkqw HTTP/1.1" in log
        assert connects(log, target) == 1


async def kubectl(kp: KproxyProcess, tmp_path: Path, transport: str, *args: str) -> tuple[int, str, str]:
    home = tmp_path / "kubectl-home"
    home.mkdir(exist_ok=True)
    environ = kubectl_env(home)
    forced = "true" if transport == "websocket" else "false"
    environ["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = forced
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        kp.url,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# -- failures: never a hang ---------------------------------------------------------------------


async def test_proxy_unreachable_is_502_naming_the_proxy(
    api: FakeAPIServer,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    port = dead_port()
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=f"http://{AUTH_USERINFO}@127.0.0.1:{port}")
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    assert body["message"] == (
        f"cannot connect to the proxy http://127.0.0.1:{port} (from kubeconfig proxy-url): Connection refused"
    )
    assert "al%69ce" not in body["message"] and "w0rd" not in kp.stderr


async def test_connect_refused_is_502_with_the_proxy_status_line(
    api: FakeAPIServer,
    tinyproxy: Tinyproxy,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    port = dead_port()
    kubeconfig = kubeconfig_for(api, tmp_path, server=f"https://127.0.0.1:{port}", proxy_url=tinyproxy.url)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    assert status == 502, body
    assert body["message"].startswith(
        f"the proxy {tinyproxy.url} (from kubeconfig proxy-url) refused CONNECT 127.0.0.1:{port}: HTTP/1.1 500 "
    )


@pytest.mark.parametrize("behaviour", ["silent", "slow-tls"])
async def test_a_silent_proxy_times_out_as_504(
    api: FakeAPIServer,
    tmp_path: Path,
    start_kproxy: StartKproxy,
    behaviour: str,
) -> None:
    """A proxy that accepts and never answers CONNECT (or never finishes TLS) is bounded by
    --connect-timeout."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # say nothing, keep the connection open

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scheme = "http" if behaviour == "silent" else "https"
    try:
        kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=f"{scheme}://127.0.0.1:{port}")
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--connect-timeout", "1s")
        status, body = await asyncio.wait_for(get(kp.url + NAMESPACES), 20)
        assert status == 504, body
        assert body["message"] == (
            f"timed out after 1s connecting to the API server https://127.0.0.1:{api.port} "
            f"through the proxy {scheme}://127.0.0.1:{port}"
        )
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# -- configuration errors and --explain-egress ---------------------------------------------------


async def run_to_exit(*args: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *kproxy_cmd(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=environ if environ is not None else dict(os.environ),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("{", ["not valid JSON"]),
        (
            '{"httpProxy": "https://proxy:3128"}',
            ["httpProxy", "'https://proxy:3128'", "must be a URL starting with http://"],
        ),
        ('{"httpProxy": 3128}', ["httpProxy must be a string", "3128"]),
        ('{"httpsProxy": "ftp://proxy:21"}', ["httpsProxy", "'ftp://proxy:21'", "http:// or https://"]),
        ('{"noProxy": "localhost"}', ["noProxy must be a list", "'localhost'"]),
        ('{"noProxy": ["*.corp.example"]}', ["noProxy[0]", "'*.corp.example'", "'.corp.example'"]),
        ('{"trustedCa": "not base64!"}', ["trustedCa", "'not base64!'", "not valid base64"]),
        ('{"trustedCa": "aGVsbG8="}', ["trustedCa", "not a PEM certificate"]),
        ('{"proxy": "http://p:1"}', ["unknown field 'proxy'"]),
    ],
)
async def test_malformed_http_proxy_config_exits_1(
    kubeconfig: Path,
    tmp_path: Path,
    content: str,
    needles: list[str],
) -> None:
    config = tmp_path / "proxy.json"
    config.write_text(content)
    code, out, err = await run_to_exit(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--http-proxy-config", str(config)
    )
    assert code == 1 and out == "", err
    assert err.startswith(f"error: {config}: "), err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("hello\n", "block 1 (line 1): not PEM: 'hello'"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "block 1 (line 1): a PEM PRIVATE KEY block"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "block 1 (line 1): not a valid certificate"),
    ],
)
async def test_malformed_custom_ca_file_exits_1(kubeconfig: Path, tmp_path: Path, content: str, needle: str) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(content)
    code, out, err = await run_to_exit(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--custom-ca-trust-certificates", str(ca_file)
    )
    assert code == 1 and out == ""
    assert err.startswith(f"error: {ca_file}: {needle}"), err


async def test_explain_egress(kubeconfig: Path, tmp_path: Path, pki: TestPKI) -> None:
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = "https://10.1.2.3:6443"
    kubeconfig.write_text(yaml.safe_dump(doc))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pki.ca_pem)
    environ = env(HTTPS_PROXY="http://alice:secret@proxy.corp:3128", NO_PROXY=".svc,10.0.0.0/8")
    code, out, err = await run_to_exit(
        "--kubeconfig",
        str(kubeconfig),
        "--custom-ca-trust-certificates",
        str(ca_file),
        "--explain-egress",
        "https://example.com/",
        "https://kubernetes.svc/",
        environ=environ,
    )
    assert code == 0, err
    assert "secret" not in out
    lines = out.splitlines()
    assert lines[:5] == [
        "proxy settings: the environment",
        "  HTTP_PROXY   (not set)",
        "  HTTPS_PROXY  http://alice:xxxxx@proxy.corp:3128",
        "  NO_PROXY     10.0.0.0/8, .svc",
        "API server https://10.1.2.3:6443",
    ]
    assert lines[5] == "  direct: NO_PROXY entry 10.0.0.0/8 matches 10.1.2.3"
    assert lines[6].startswith(
        "  TLS: server name 10.1.2.3; trusted: clusters[fake].cluster.certificate-authority-data"
        f" and 1 custom CA(s) from {ca_file}"
    )
    assert lines[7:11] == [
        "https://example.com/",
        "  proxy http://alice:xxxxx@proxy.corp:3128 from HTTPS_PROXY (no NO_PROXY entry matches example.com)",
        "https://kubernetes.svc/",
        "  direct: NO_PROXY entry .svc matches kubernetes.svc",
    ]
    assert lines[11] == "custom CAs (trusted for the API server and for https:// proxies):"
    assert lines[12].startswith("  CN=kproxy-test-ca (expires ")


# -- OIDC refreshes take the API server's road: egress decision and trust -------------------


def oidc_kubeconfig(
    api: FakeAPIServer,
    directory: Path,
    issuer: FakeOIDCIssuer,
    issuer_url: str,
    *,
    ca: bytes | None,
    proxy_url: str = "",
) -> Path:
    """The API server at 127.0.0.1 (loopback: never proxied from the environment) and an
    expired id-token, so that the first request refreshes it at ``issuer_url``."""
    path = kubeconfig_for(api, directory, proxy_url=proxy_url)
    doc = yaml.safe_load(path.read_text())
    config = {
        "idp-issuer-url": issuer_url,
        "client-id": issuer.client_id,
        "id-token": make_jwt(time.time() - 60),
        "refresh-token": "refresh-1",
    }
    if ca is not None:
        config["idp-certificate-authority-data"] = base64.b64encode(ca).decode()
    doc["users"][0]["user"] = {"auth-provider": {"name": "oidc", "config": config}}
    path.write_text(yaml.safe_dump(doc))
    return path


def oidc_issuer(api: FakeAPIServer, pki: TestPKI) -> FakeOIDCIssuer:
    return FakeOIDCIssuer(pki=pki, on_issue=lambda token: api.auth.tokens.__setitem__(token, "oidc-user"))


async def test_oidc_refresh_goes_through_the_proxy_to_a_name_only_it_resolves(
    api: FakeAPIServer,
    corp_pki: TestPKI,
    tinyproxy: Tinyproxy,
    private_name: str,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    async with oidc_issuer(api, corp_pki) as issuer:
        issuer_at = f"{private_name}:{issuer.port}"
        kubeconfig = oidc_kubeconfig(api, tmp_path, issuer, f"https://{issuer_at}", ca=corp_pki.ca_pem)
        mark = tinyproxy.mark()
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), env=env(HTTPS_PROXY=tinyproxy.url))
        status, body = await get(kp.url + NAMESPACES)
        assert status == 200, body
        assert (issuer.discovery_requests, issuer.token_requests) == (1, 1)
        log = tinyproxy.since(mark)
        assert connects(log, issuer_at) == 2  # discovery and the token, through the proxy
        assert connects(log, f"127.0.0.1:{api.port}") == 0  # the API server: loopback, direct


async def test_oidc_refresh_follows_no_proxy(
    api: FakeAPIServer,
    corp_pki: TestPKI,
    tinyproxy: Tinyproxy,
    private_name: str,
    tmp_path: Path,
    start_kproxy: StartKproxy,
) -> None:
    async with oidc_issuer(api, corp_pki) as issuer:
        url = f"https://{private_name}:{issuer.port}"
        kubeconfig = oidc_kubeconfig(api, tmp_path, issuer, url, ca=corp_pki.ca_pem)
        mark = tinyproxy.mark()
        proxies = env(HTTPS_PROXY=tinyproxy.url, NO_PROXY=".corp.invalid")
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), env=proxies)
        status, body = await get(kp.url + NAMESPACES)
        # Direct, as NO_PROXY says: the name resolves nowhere but in the proxy.
        assert status == 502 and f"cannot resolve '{private_name}'" in body["message"], body
        assert issuer.discovery_requests == 0 and connects(tinyproxy.since(mark), private_name) == 0


async def test_oidc_refresh_through_the_kubeconfig_socks5_proxy_url(
    api: FakeAPIServer, corp_pki: TestPKI, dante: Dante, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    async with oidc_issuer(api, corp_pki) as issuer:
        kubeconfig = oidc_kubeconfig(api, tmp_path, issuer, issuer.url, ca=corp_pki.ca_pem, proxy_url=dante.url)
        mark = dante.mark()
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
        status, body = await get(kp.url + NAMESPACES)
        assert status == 200, body
        log = dante.since(mark)
        assert f"127.0.0.1.{issuer.port}" in log and f"127.0.0.1.{api.port}" in log


@pytest.mark.parametrize("trusted", [True, False])
async def test_oidc_issuer_trusted_through_the_custom_ca_file(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy, trusted: bool
) -> None:
    issuer_pki = TestPKI.create()  # a CA the kubeconfig does not name for the issuer
    async with oidc_issuer(api, issuer_pki) as issuer:
        kubeconfig = oidc_kubeconfig(api, tmp_path, issuer, issuer.url, ca=None)
        args = ["--port", "0", "--kubeconfig", str(kubeconfig)]
        if trusted:
            ca_file = tmp_path / "corp-ca.pem"
            ca_file.write_bytes(issuer_pki.ca_pem)
            args += ["--custom-ca-trust-certificates", str(ca_file)]
        kp = await start_kproxy(*args)
        status, body = await get(kp.url + NAMESPACES)
        if trusted:
            assert status == 200, body
        else:
            assert status == 502 and "cannot verify the certificate of 127.0.0.1" in body["message"], body


# -- SOCKS5 username/password (RFC 1929) against Dante and a system user ---------------------


@pytest.fixture
def socks_user() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root: Dante checks SOCKS5 passwords against a system user the test creates")
    require("danted", "useradd", "userdel", "chpasswd")
    name = f"kpx{os.getpid() % 100000}"
    password = "s0cks-Pass.word"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n".encode(), check=True)
        yield name, password
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def dante_with_users(workdir: Path) -> Iterator[Dante]:
    proxy = Dante(workdir, username=True)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("right", [True, False])
async def test_socks5_username_and_password(
    api: FakeAPIServer,
    dante_with_users: Dante,
    socks_user: tuple[str, str],
    tmp_path: Path,
    start_kproxy: StartKproxy,
    right: bool,
) -> None:
    name, password = socks_user
    secret = password if right else "wrong-password"
    url = f"socks5://{name}:{secret}@127.0.0.1:{dante_with_users.port}"
    kubeconfig = kubeconfig_for(api, tmp_path, proxy_url=url)
    mark = dante_with_users.mark()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    status, body = await get(kp.url + NAMESPACES)
    log = dante_with_users.since(mark)
    if right:
        assert status == 200, body
        assert f"127.0.0.1.{api.port}" in log and name in log
    else:
        assert status == 502, body
        assert "requires authentication" in body["message"] and "were rejected" in body["message"]
        assert secret not in body["message"] and secret not in kp.stderr


# -- the HTTP/2 lane takes the same road --------------------------------------------------


@pytest.mark.parametrize("kind", ["http", "https"])
async def test_watches_go_over_http2_through_the_proxy(
    corp_pki: TestPKI,
    tinyproxy: Tinyproxy,
    proxy_ca: trustme.CA,
    tmp_path: Path,
    start_kproxy: StartKproxy,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    """ALPN h2 inside the tunnel, http/1.1 to an https:// proxy itself (TLS in TLS)."""
    proxy = tinyproxy if kind == "http" else request.getfixturevalue("https_proxy")
    async with FakeAPIServer(pki=corp_pki, tokens=("test-token",), http2=True) as h2api:
        kubeconfig = kubeconfig_for(h2api, tmp_path, proxy_url=proxy.url)
        mark = tinyproxy.mark()  # stunnel hands its tunnels to tinyproxy
        ca_file = write_ca(tmp_path / "proxy-ca.pem", proxy_ca)
        kp = await start_kproxy(
            "--port", "0", "--kubeconfig", str(kubeconfig), "--custom-ca-trust-certificates", str(ca_file)
        )
        url = f"{kp.url}/api/v1/namespaces/default/configmaps?watch=1"
        async with aiohttp.ClientSession() as session:
            watches = [await session.get(url) for _ in range(3)]
            try:
                assert [w.status for w in watches] == [200] * 3
                for watch in watches:
                    assert b'"ADDED"' in await asyncio.wait_for(watch.content.readline(), 10)
            finally:
                for watch in watches:
                    watch.close()
            status, _ = await get(kp.url + NAMESPACES)
            assert status == 200
        assert h2api.h2 is not None and (h2api.h2.streams_opened, h2api.h2.connections) == (3, 1)
        # One tunnel for the HTTP/2 connection (ALPN h2 inside it), one for the pool's request.
        assert connects(tinyproxy.since(mark), f"127.0.0.1:{h2api.port}") == 2
