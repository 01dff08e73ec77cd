"""Service, pod and node proxy URLs through the real kproxy process, with curl.

Behind the fake API server, local aiohttp servers on 127.0.0.1 stand for the targets
(``FakeAPIServer.register_backend``). ``kproxy url`` and ``kproxy cluster-info`` run as
real processes too; ``cluster-info`` is compared with ``kubectl cluster-info``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kproxy.cli.cluster_info import build_url, render_cluster_info
from kproxy.errors import ConfigError
from kproxy.policy.service_urls import InvalidProxyURL
from kproxy.testing import FakeAPIServer, TestPKI
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env

NS = "/api/v1/namespaces"


@dataclass
class Backend:
    name: str
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)


async def _start_backend(name: str, ssl_context: ssl.SSLContext | None = None) -> tuple[Backend, web.ServerRunner]:
    backend = Backend(name)

    async def echo(request: web.BaseRequest) -> web.Response:
        path, _, query = request.raw_path.partition("?")
        seen = {
            "backend": name,
            "method": request.method,
            "path": path,
            "query": query,
            "headers": dict(request.headers),
            "body": (await request.read()).decode(),
        }
        backend.seen.append(seen)
        return web.json_response(seen, headers={"X-Backend": name})

    runner = web.ServerRunner(web.Server(echo), shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    scheme = "https" if ssl_context else "http"
    backend.url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    return backend, runner


MakeBackend = Callable[..., Awaitable[Backend]]


@pytest.fixture
async def make_backend() -> AsyncIterator[MakeBackend]:
    runners: list[web.ServerRunner] = []

    async def make(name: str, ssl_context: ssl.SSLContext | None = None) -> Backend:
        backend, runner = await _start_backend(name, ssl_context)
        runners.append(runner)
        return backend

    yield make
    for runner in runners:
        await runner.cleanup()


def _service(name: str, ports: list[dict[str, Any]], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"ports": ports}}


async def _run(*cmd: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def curl(url: str, *args: str) -> tuple[int, dict[str, str], str]:
    """(status, headers with lower-case names, body) of one request, redirects not followed."""
    code, out, err = await _run("curl", "-sS", "-i", *args, url)
    assert code == 0, err
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


async def kproxy(*args: str) -> tuple[int, str, str]:
    return await _run(sys.executable, "-m", "kproxy", *args)


async def test_service_by_name_port_number_and_port_name(
    proxy: KproxyProcess, api: FakeAPIServer, make_backend: MakeBackend
) -> None:
    web_http = await make_backend("web-http")
    web_metrics = await make_backend("web-metrics")
    api.store.create(
        "services", _service("web", [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]), "default"
    )
    api.register_backend("service", "default", "web", "http", web_http.url)
    api.register_backend("service", "default", "web", 9090, web_metrics.url)
    base = f"{proxy.url}{NS}/default/services"

    for spec, backend in (
        ("web:http", web_http),
        ("web:80", web_http),
        ("web:metrics", web_metrics),
        ("web:9090", web_metrics),
        ("http:web:http", web_http),
    ):
        status, headers, body = await curl(f"{base}/{spec}/proxy/hello/a%2Fb?x=1&y=%20")
        assert status == 200, (spec, body)
        seen = json.loads(body)
        assert seen["backend"] == backend.name, spec
        # The remaining path and query arrive as sent: kproxy forwards proxy URLs untouched.
        assert (seen["path"], seen["query"]) == ("/hello/a%2Fb", "x=1&y=%20")
        assert headers["x-backend"] == backend.name
        assert "Authorization" not in seen["headers"]  # kproxy's credentials stop at the API server

    status, _, body = await curl(f"{base}/web:http/proxy/submit", "-X", "POST", "-d", "a=1")
    assert status == 200 and json.loads(body)["method"] == "POST" and json.loads(body)["body"] == "a=1"

    # .../proxy without a trailing slash: the API server's redirect, through kproxy.
    status, headers, _ = await curl(f"{base}/web:http/proxy?q=1")
    assert status == 301 and headers["location"] == f"{NS}/default/services/web:http/proxy/?q=1"

    # What the API server says when the URL is well-formed but leads nowhere.
    for spec, code, message in (
        ("web", 503, 'no endpoints available for service "web"'),  # two named ports: one must be named
        ("web:81", 503, 'no service port 81 found for service "web"'),
        ("web:grpc", 503, 'no endpoints available for service "web:grpc"'),
        ("nope:80", 404, 'services "nope" not found'),
    ):
        status, _, body = await curl(f"{base}/{spec}/proxy/")
        assert status == code, (spec, body)
        assert json.loads(body)["message"] == message


async def test_https_scheme_and_empty_port(
    proxy: KproxyProcess, api: FakeAPIServer, pki: TestPKI, make_backend: MakeBackend
) -> None:
    secure = await make_backend("secure", pki.server_ssl_context(client_certs=False))
    labels = {"kubernetes.io/cluster-service": "true"}
    api.store.create("services", _service("metrics-server", [{"port": 443, "targetPort": 4443}], labels), "kube-system")
    api.register_backend("service", "kube-system", "metrics-server", 443, secure.url.replace("https:", "http:"))
    base = f"{proxy.url}{NS}/kube-system/services"

    # https:NAME: (an empty port: the single unnamed one) — the fake speaks TLS to the backend
    # because the URL says https, as kube-apiserver does.
    for spec in ("https:metrics-server:", "https:metrics-server:443"):
        status, _, body = await curl(f"{base}/{spec}/proxy/apis/metrics.k8s.io/v1beta1")
        assert status == 200, (spec, body)
        assert json.loads(body)["path"] == "/apis/metrics.k8s.io/v1beta1"
    # Without the scheme the fake speaks plain HTTP to a TLS server: the API server's 503.
    status, _, body = await curl(f"{base}/metrics-server/proxy/")
    assert status == 503 and json.loads(body)["message"].startswith("error trying to reach service")
    assert len(secure.seen) == 2


async def test_pod_and_node_proxy(proxy: KproxyProcess, api: FakeAPIServer, make_backend: MakeBackend) -> None:
    pod_backend = await make_backend("pod")
    kubelet = await make_backend("kubelet")
    pod = {
        "metadata": {"name": "web-0"},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]},
    }
    api.store.create("pods", pod, "default")
    api.register_backend("pod", "default", "web-0", 8080, pod_backend.url)
    api.register_backend("node", "", "demo-node", 10250, kubelet.url)

    for spec in ("web-0", "web-0:8080"):  # no port: the first containerPort
        status, _, body = await curl(f"{proxy.url}{NS}/default/pods/{spec}/proxy/metrics?a=b")
        assert status == 200, body
        assert json.loads(body)["path"] == "/metrics" and json.loads(body)["query"] == "a=b"
    status, _, body = await curl(f"{proxy.url}{NS}/default/pods/web-0:9999/proxy/")
    assert status == 503
    assert json.loads(body)["message"].startswith("error trying to reach service: dial tcp 10.244.")
    status, _, body = await curl(f"{proxy.url}{NS}/default/pods/gone/proxy/")
    assert status == 404 and json.loads(body)["message"] == 'pods "gone" not found'

    status, _, body = await curl(f"{proxy.url}/api/v1/nodes/demo-node/proxy/stats/summary")
    assert status == 200 and json.loads(body)["backend"] == "kubelet"


async def test_malformed_proxy_urls_answered_400_by_kproxy(proxy: KproxyProcess, api: FakeAPIServer) -> None:
    for path, words in (
        (f"{NS}/default/services/nginx:80:https/proxy/", "scheme 'nginx' must be http or https"),
        (f"{NS}/default/services/Nginx/proxy/", "service name 'Nginx'"),
        (f"{NS}/default/services/nginx:0/proxy/", "port '0' is out of range"),
        ("/api/v1/proxy/namespaces/default/services/nginx/", "removed in Kubernetes 1.10"),
    ):
        before = len(api.requests)
        status, _, body = await curl(f"{proxy.url}{path}")
        assert status == 400, (path, body)
        status_obj = json.loads(body)
        assert status_obj["kind"] == "Status" and status_obj["reason"] == "BadRequest"
        assert words in status_obj["message"]
        assert len(api.requests) == before  # nothing went upstream


async def test_kproxy_url_opens_the_service(
    proxy: KproxyProcess, api: FakeAPIServer, make_backend: MakeBackend
) -> None:
    backend = await make_backend("nginx")
    # The demo's nginx service has one unnamed port (so that services/nginx/proxy/ works); name it here.
    api.store.patch("services", "nginx", {"spec": {"ports": [{"name": "http", "port": 80}]}}, "default")
    api.register_backend("service", "default", "nginx", "http", backend.url)
    code, out, err = await kproxy("url", "svc/nginx:http", "--proxy-url", proxy.url)
    assert (code, err) == (0, "")
    assert out == f"{proxy.url}/api/v1/namespaces/default/services/nginx:http/proxy/\n"
    status, _, body = await curl(out.strip())
    assert status == 200 and json.loads(body)["path"] == "/"

    code, out, err = await kproxy("url", "service/Nginx")
    assert code == 1 and out == ""
    assert err.startswith("error: invalid service proxy URL: service name 'Nginx' contains 'N'")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "url"),
    [
        (("svc/nginx",), "http://127.0.0.1:8001/api/v1/namespaces/default/services/nginx/proxy/"),
        (
            ("svc/metrics-server", "-n", "kube-system", "--https"),
            "http://127.0.0.1:8001/api/v1/namespaces/kube-system/services/https:metrics-server:/proxy/",
        ),
        (
            ("svc/web:8443", "--https", "healthz"),
            "http://127.0.0.1:8001/api/v1/namespaces/default/services/https:web:8443/proxy/healthz",
        ),
        (
            ("pod/web-0:8080", "/a%2Fb?x=1", "--proxy-url", "http://localhost:9/custom/"),
            "http://localhost:9/custom/api/v1/namespaces/default/pods/web-0:8080/proxy/a%2Fb?x=1",
        ),
        (
            ("no/demo-node:10250", "-n", "ignored", "metrics"),
            "http://127.0.0.1:8001/api/v1/nodes/demo-node:10250/proxy/metrics",
        ),
    ],
)
def test_build_url(args: tuple[str, ...], url: str) -> None:
    kwargs: dict[str, Any] = {}
    rest = list(args[1:])
    path = ""
    while rest:
        arg = rest.pop(0)
        if arg == "-n":
            kwargs["namespace"] = rest.pop(0)
        elif arg == "--https":
            kwargs["https"] = True
        elif arg == "--proxy-url":
            kwargs["base_url"] = rest.pop(0)
        else:
            path = arg
    assert build_url(args[0], path=path, **kwargs) == url


@pytest.mark.parametrize(
    ("spec", "https", "error"),
    [
        ("nginx", False, ConfigError),
        ("deploy/nginx", False, ConfigError),
        ("svc/nginx:", False, InvalidProxyURL),
        ("svc/http:nginx:80", True, InvalidProxyURL),  # http: and --https contradict
    ],
)
def test_build_url_rejects(spec: str, https: bool, error: type[Exception]) -> None:
    with pytest.raises(error):
        build_url(spec, https=https)


def test_render_cluster_info_load_balancer_and_names() -> None:
    services: list[dict[str, Any]] = [
        {
            "metadata": {"name": "lb", "namespace": "kube-system"},
            "spec": {"ports": [{"port": 80}, {"port": 443}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}},
        },
        {
            "metadata": {"name": "dash", "namespace": "kube-system", "labels": {"kubernetes.io/name": "Dashboard"}},
            "spec": {"ports": [{"name": "https", "port": 8443}]},
        },
        {"metadata": {"name": "bare", "namespace": "kube-system"}, "spec": {}},
    ]
    assert render_cluster_info("http://h", services) == (
        "Kubernetes control plane is running at http://h\n"
        "lb is running at http://lb.example:80 http://lb.example:443 \n"
        "Dashboard is running at http://h/api/v1/namespaces/kube-system/services/https:dash:https/proxy\n"
        "bare is running at http://h/api/v1/namespaces/kube-system/services/bare/proxy\n"
        "\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n"
    )


async def test_cluster_info_matches_kubectl(proxy: KproxyProcess, api: FakeAPIServer, tmp_path: Path) -> None:
    labels = {"kubernetes.io/cluster-service": "true"}
    api.store.create("services", _service("metrics-server", [{"port": 443, "targetPort": 4443}], labels), "kube-system")
    dash = _service("dashboard", [{"name": "https", "port": 8443}], {**labels, "kubernetes.io/name": "Dashboard"})
    api.store.create("services", dash, "kube-system")
    lb = api.store.create(
        "services",
        _service("ingress", [{"name": "http", "port": 80}, {"port": 443, "name": "tls"}], labels),
        "kube-system",
    )
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}
    api.store.update("services", lb, "kube-system", subresource="status")
    (tmp_path / "home").mkdir(exist_ok=True)
    env = kubectl_env(tmp_path / "home")

    outputs = []
    for extra in ((), ("-n", "default")):  # default: no cluster services, only the control plane
        code, expected, err = await _run("kubectl", "cluster-info", "--server", proxy.url, *extra, env=env)
        assert code == 0, err
        code, out, err = await kproxy("cluster-info", "--proxy-url", proxy.url, *extra)
        assert (code, err) == (0, "")
        assert out == expected
        outputs.append(out)
    assert "/services/https:metrics-server:/proxy\n" in outputs[0]  # the edge case kubectl prints
    assert "is running at http://203.0.113.7:80 http://203.0.113.7:443 \n" in outputs[0]
    assert outputs[1].count("is running at") == 1


async def test_cluster_info_without_a_proxy() -> None:
    # Port 1 on loopback: nothing listens there.
    code, out, err = await kproxy("cluster-info", "--proxy-url", "http://127.0.0.1:1")
    assert code == 1 and out == ""
    assert err == (
        "error: cannot reach kproxy at http://127.0.0.1:1: connection refused; is it running?"
        " Start it with `kproxy`, or pass --proxy-url\n"
    )


async def test_access_log_names_the_proxy_target(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, make_backend: MakeBackend
) -> None:
    backend = await make_backend("logged")
    api.store.create("services", _service("logged", [{"name": "http", "port": 80}]), "default")
    api.register_backend("service", "default", "logged", "http", backend.url)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "-v=2")
    status, _, _ = await curl(f"{kp.url}{NS}/default/services/logged:http/proxy/x?token=secret-in-query")
    assert status == 200
    assert await kp.stop() == 0
    line = next(line for line in kp.stderr.splitlines() if "/services/logged:http/proxy/x" in line)
    assert line.endswith("200 (service default/logged:http)")
    assert "secret-in-query" not in kp.stderr
