"""The kproxy command as users run it: start-up output, errors, kubectl through it,
static files, unix sockets, the demo, and the embedding API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import sys
from pathlib import Path

import aiohttp
import pytest

import kproxy
from kproxy.testing import FakeAPIServer, TestPKI
from tests.conftest import KproxyProcess, StartKproxy, kproxy_cmd, kubectl_env, run_kproxy
from tests.integration.test_forwarding import curl


async def kubectl(home: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(home),
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_to_exit(*args: str, cwd: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *kproxy_cmd(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_kubectl_get_create_delete_through_kproxy(
    proxy: KproxyProcess, tmp_path: Path, api: FakeAPIServer
) -> None:
    server = ["--server", proxy.url]
    code, out, err = await kubectl(tmp_path, *server, "get", "pods", "-n", "default")
    assert code == 0, err
    assert "NAME" in out and "nginx" in out
    code, out, err = await kubectl(tmp_path, *server, "create", "configmap", "via-kproxy", "--from-literal=k=v")
    assert code == 0, err
    assert "configmap/via-kproxy created" in out
    code, out, err = await kubectl(tmp_path, *server, "get", "configmap", "via-kproxy", "-o", "json")
    assert code == 0 and json.loads(out)["data"] == {"k": "v"}
    manifest = (
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-file\nspec:\n"
        b"  containers:\n  - name: c\n    image: busybox\n"
    )
    code, out, err = await kubectl(tmp_path, *server, "create", "-f", "-", stdin=manifest)
    assert code == 0, err
    code, out, err = await kubectl(tmp_path, *server, "delete", "configmap", "via-kproxy")
    assert code == 0, err
    assert 'configmap "via-kproxy" deleted' in out
    code, out, err = await kubectl(tmp_path, *server, "get", "configmap", "via-kproxy")
    assert code != 0 and "NotFound" in err
    # kproxy added the kubeconfig's credentials: kubectl itself sent none.
    proxied = [r for r in api.requests if r.path.startswith("/api/v1/namespaces/default/configmaps")]
    assert proxied and all(r.user == "kproxy-token-user" for r in proxied)
    assert err.count("\n") <= 1


async def test_client_certificate_upstream(api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    for embed in (True, False):
        config = api.kubeconfig(tmp_path, auth="cert", embed=embed)
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
        code, out, _ = await curl(f"{kp.url}/debug/kproxy/echo")
        body = json.loads(out)
        assert "Authorization" not in dict(body["headers"])
        assert api.requests[-1].client_cert_cn == "kproxy-test-user"


async def test_basic_auth_and_impersonation(pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    api = FakeAPIServer(pki=pki, basic_auth=[("admin", "pa:ss")], impersonators=("admin",))
    await api.start()
    config = api.kubeconfig(tmp_path, auth="basic")
    kp = await start_kproxy(
        "--port",
        "0",
        "--kubeconfig",
        str(config),
        "--as",
        "bob",
        "--as-group",
        "devs",
        "--as-group",
        "ops",
        "--as-uid",
        "42",
    )
    code, out, _ = await curl(f"{kp.url}/debug/kproxy/echo")
    headers = json.loads(out)["headers"]
    assert ["Impersonate-User", "bob"] in headers
    assert ["Impersonate-Group", "devs"] in headers and ["Impersonate-Group", "ops"] in headers
    assert ["Impersonate-Uid", "42"] in headers
    assert any(name == "Authorization" and value.startswith("Basic ") for name, value in headers)
    # A client's own Impersonate-User replaces the configured set (client-go's rule).
    code, out, _ = await curl("-H", "Impersonate-User: alice", f"{kp.url}/debug/kproxy/echo")
    headers = json.loads(out)["headers"]
    assert ["Impersonate-User", "alice"] in headers
    assert not any(name == "Impersonate-Group" for name, _ in headers)
    assert (api.requests[-1].user, api.requests[-1].effective_user) == ("admin", "alice")
    await api.stop()


async def test_several_kubeconfig_files_first_wins(api: FakeAPIServer, tmp_path: Path) -> None:
    good = api.kubeconfig(tmp_path, auth="token", token="test-token")
    other = tmp_path / "other.yaml"
    other.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        "clusters:\n- name: other\n  cluster: {server: 'http://127.0.0.1:1'}\n"
        "contexts:\n- name: other\n  context: {cluster: other, user: other}\n"
        "users:\n- name: other\n  user: {token: nope}\n"
    )
    env = dict(os.environ, KUBECONFIG=f"{good}{os.pathsep}{other}")
    kp = await run_kproxy("--port", "0", env=env)
    try:
        code, out, _ = await curl(f"{kp.url}/version")
        assert json.loads(out)["major"] == "1"  # the first file's current-context won
    finally:
        await kp.stop()


async def test_static_files_through_the_process(
    api: FakeAPIServer, kubeconfig: Path, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello\n")
    (www / "sub").mkdir()
    (www / "sub" / "index.html").write_text("<p>index</p>")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (www / "escape.txt").symlink_to(outside)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--www", str(www))
    code, out, _ = await curl("-i", f"{kp.url}/static/hello.txt")
    assert "200 OK" in out.splitlines()[0] and out.endswith("\r\n\r\nhello\n")
    assert "Content-Type: text/plain; charset=utf-8" in out and "Accept-Ranges: bytes" in out
    code, out, _ = await curl(f"{kp.url}/static/sub/")
    assert out == "<p>index</p>"
    code, out, _ = await curl(f"{kp.url}/static/")
    assert '<a href="hello.txt">hello.txt</a>' in out
    code, out, _ = await curl("-i", "-r", "1-3", f"{kp.url}/static/hello.txt")
    assert " 206 " in out.splitlines()[0] and out.endswith("ell")
    code, out, _ = await curl("-i", f"{kp.url}/static/escape.txt")
    assert " 404 " in out.splitlines()[0] and "secret" not in out
    code, out, _ = await curl("-i", "-H", "Host: evil.com", f"{kp.url}/static/hello.txt")
    assert " 403 " in out.splitlines()[0]
    code, out, _ = await curl("-i", f"{kp.url}/static")
    assert "Location: /static/" in out
    # The API is still proxied next to the static prefix.
    code, out, _ = await curl(f"{kp.url}/version")
    assert json.loads(out)["major"] == "1"


async def test_missing_www_warns_word_for_word(kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--www", "missing-dir", cwd=str(tmp_path))
    code, out, _ = await curl("-i", f"{kp.url}/static/x")
    assert " 404 " in out.splitlines()[0]
    assert kp.stderr.endswith(
        "Failed to stat static file directory missing-dir: stat missing-dir: no such file or directory"
    )


async def test_unix_socket(kubeconfig: Path, tmp_path: Path) -> None:
    path = tmp_path / "kproxy.sock"
    kp = await run_kproxy("--unix-socket", str(path), "--kubeconfig", str(kubeconfig), "--disable-filter")
    try:
        assert kp.address == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        code, out, _ = await curl("--unix-socket", str(path), "http://localhost/debug/kproxy/echo")
        headers = dict(json.loads(out)["headers"])
        assert "X-Forwarded-For" not in headers  # no client address on a unix socket
        assert kp.stderr == ""  # the --disable-filter warning is not printed on a socket
    finally:
        assert await kp.stop() == 0
    assert not path.exists()  # removed on exit (kubectl leaves it behind)


async def test_unix_socket_replaces_stale_socket_not_files(kubeconfig: Path, tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    kp = await run_kproxy("-u", str(stale), "--kubeconfig", str(kubeconfig))
    assert await kp.stop() == 0
    regular = tmp_path / "file"
    regular.write_text("x")
    code, out, err = await run_to_exit("-u", str(regular), "--kubeconfig", str(kubeconfig))
    assert code == 1 and f"listen unix {regular}: bind: address already in use" in err
    assert regular.read_text() == "x"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--reject-paths", "["], ["--reject-paths", "'['"]),
        (["--accept-paths", "(?!x)"], ["--accept-paths", "(?!x)"]),
        (["--www", ".", "--www-prefix", "/x/", "--api-prefix", "/x"], ["--www-prefix", "--api-prefix"]),
        (["--api-prefix", "custom"], ["--api-prefix", "custom"]),
        (["--reject-methods", "POST,"], ["--reject-methods"]),
        (["--unix-socket", "/tmp/x.sock", "--port", "9"], ["cannot set --unix-socket and --port at the same time"]),
        (["--address", "999.1.1.1"], ["listen tcp 999.1.1.1:0"]),
        (["--keepalive", "5"], ["--keepalive '5'"]),
    ],
)
async def test_bad_flags_exit_with_one_line(args: list[str], needles: list[str], kubeconfig: Path) -> None:
    code, out, err = await run_to_exit("--port", "0", "--kubeconfig", str(kubeconfig), *args)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) in (1, 2)  # a flag syntax error adds "See 'kproxy --help'"
    for needle in needles:
        assert needle in err


async def test_port_in_use(kubeconfig: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out, err = await run_to_exit("--port", str(port), "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert err == f"error: listen tcp 127.0.0.1:{port}: bind: address already in use\n"


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("clusters: [\n", ["invalid YAML"]),
        ("current-context: nope\n", ['"nope"']),
        (
            "clusters:\n- name: c\n  cluster:\n    server: https://h\n    certificate-authority-data: '!!!'\n"
            "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n"
            "users:\n- name: u\n  user: {token: SECRET-VALUE}\n",
            ["clusters[c].cluster.certificate-authority-data"],
        ),
    ],
)
async def test_malformed_kubeconfig(tmp_path: Path, content: str, needles: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code, out, err = await run_to_exit("--port", "0", "--kubeconfig", str(path))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert str(path) in err or "nope" in err
    for needle in needles:
        assert needle in err
    assert "SECRET-VALUE" not in err


async def test_no_configuration_suggests_demo(tmp_path: Path) -> None:
    code, out, err = await run_to_exit("--port", "0")
    assert code == 1 and "kproxy --demo" in err


async def test_version() -> None:
    code, out, _ = await run_to_exit("--version")
    assert code == 0 and out.strip() == f"kproxy {kproxy.__version__}"


async def test_dual_stack_and_ipv6_addresses(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--address", "0.0.0.0")
    assert kp.address.startswith("[::]:")
    code, out, _ = await curl(f"http://127.0.0.1:{kp.port}/version")
    assert json.loads(out)["major"] == "1"
    kp6 = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--address", "::1")
    assert kp6.address.startswith("[::1]:")
    code, out, _ = await curl("-g", f"http://[::1]:{kp6.port}/version")  # Host: [::1]:PORT passes
    assert json.loads(out)["major"] == "1"


async def test_demo(tmp_path: Path) -> None:
    kp = await run_kproxy("--demo", "--port", "0")
    try:
        code, out, _ = await curl(f"{kp.url}/api/v1/namespaces")
        assert "default" in {i["metadata"]["name"] for i in json.loads(out)["items"]}
        code, out, err = await kubectl(tmp_path, "--server", kp.url, "get", "pods")
        assert code == 0 and "NAME" in out, err
        assert "demo cluster" in kp.stderr
        # The demo cluster offers HTTP/2 as kube-apiserver does: a watch takes the lane.
        code, out, _ = await curl("-N", "--max-time", "2", f"{kp.url}/api/v1/namespaces/default/configmaps?watch=1")
        assert code == 28 and '"type":"ADDED"' in out  # events, until curl gave up waiting
    finally:
        assert await kp.stop(signal.SIGINT) == 0


async def test_embedding_api(api: FakeAPIServer, kubeconfig: Path) -> None:
    options = kproxy.Options.from_flags(kproxy.Flags(port=0, kubeconfig=str(kubeconfig)))
    async with kproxy.ProxyServer(options) as server:
        assert server.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/api/v1/namespaces/default/pods") as resp:
                assert resp.status == 200
                assert (await resp.json())["kind"] == "PodList"
    # Closed: the port no longer accepts connections.
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))


def test_public_api_is_small() -> None:
    assert sorted(kproxy.__all__) == sorted(
        [
            "BadRequest",
            "ConfigError",
            "Flags",
            "Forbidden",
            "KproxyError",
            "Options",
            "ProxyServer",
            "RequestError",
            "UpstreamError",
            "UpstreamTimeout",
            "__version__",
        ]
    )
    for name in kproxy.__all__:
        assert hasattr(kproxy, name)


def test_ci_runs_the_readme_test_command() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    command = "python3 -m pip install -e '.[test]' && python3 -m pytest"
    assert command in readme
    assert command in (root / ".ci" / "run").read_text()


async def test_verbose_logs_requests_but_never_credentials(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    config = api.kubeconfig(tmp_path, auth="token", token="test-token")
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config), "-v=5")
    await curl(f"{kp.url}/api/v1/namespaces?token=query-secret")
    await curl("-H", "Authorization: Bearer client-secret", f"{kp.url}/api/v1/pods")
    await curl(f"{kp.url}/api/v1/namespaces/default/pods/x/exec")
    assert await kp.stop() == 0
    assert "GET /api/v1/namespaces 200" in kp.stderr
    assert "Filter rejecting GET /api/v1/namespaces/default/pods/x/exec" in kp.stderr
    for secret in ("test-token", "query-secret", "client-secret"):
        assert secret not in kp.stderr


async def test_tls_server_name(api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    assert api.pki is not None
    ca = tmp_path / "ca.crt"
    ca.write_bytes(api.pki.ca_pem)
    common = ("--port", "0", "--server", api.url, "--token", "test-token", "--certificate-authority", str(ca))
    good = await start_kproxy(*common, "--tls-server-name", "localhost")
    code, out, _ = await curl(f"{good.url}/version")
    assert json.loads(out)["major"] == "1"
    bad = await start_kproxy(*common, "--tls-server-name", "wrong.example")
    code, out, _ = await curl(f"{bad.url}/version")
    status = json.loads(out)
    assert status["code"] == 502 and "wrong.example" in status["message"]


async def test_missing_kubeconfig_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = await run_to_exit("--port", "0", "--kubeconfig", str(missing))
    assert code == 1 and err.startswith("error: ") and str(missing) in err


async def test_sighup_with_nothing_to_reload_keeps_serving(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    # kubectl proxy dies of SIGHUP (Go's default); kproxy reloads what it can, here nothing.
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    kp.proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(0.2)
    code, out, _ = await curl(f"{kp.url}/version")
    assert (code, kp.proc.returncode) == (0, None) and "gitVersion" in out


async def test_version_prints_without_importing_the_proxy() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "kproxy",
        "--version",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0 and out.decode() == f"kproxy {kproxy.__version__}\n"
    imported = {line.split("|")[-1].strip() for line in err.decode().splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m.startswith(("kproxy.config", "kproxy.server", "kproxy.proxy", "asyncio"))}


def _imported(importtime: bytes) -> set[str]:
    """The modules ``-X importtime`` saw imported."""
    lines = importtime.decode().splitlines()
    return {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}


async def _imported_by_the_interpreter() -> set[str]:
    """What any interpreter here imports before kproxy runs (site, .pth files)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-c", "pass", stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    return _imported(err)


@pytest.mark.parametrize("form", ["yaml", "json"])
async def test_nothing_the_first_request_does_not_need_is_imported_before_serving(
    api: FakeAPIServer, kubeconfig: Path, form: str, tmp_path: Path
) -> None:
    # docs/startup.md §6.
    if form == "json":  # as tools (and the benchmark) write it: no YAML machinery then (§3)
        import yaml

        written = tmp_path / "kubeconfig.json"
        written.write_text(json.dumps(yaml.safe_load(kubeconfig.read_text()), indent=1))
        kubeconfig = written
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "kproxy",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.startswith(b"Starting to serve on ")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    imported = _imported(err) - await _imported_by_the_interpreter()
    assert "kproxy.proxy.fast" in imported  # the check sees kproxy's imports
    unneeded = (
        *("cryptography", "h2", "hpack", "aiohttp", "kproxy.testing", "kproxy.proxy.static", "kproxy.cli.demo"),
        # A request's headers as a multidict (and the platform module multidict loads),
        # the system's CA bundle, hashes and Go's TLS names for a TLS listener.
        *("multidict", "platform", "certifi", "hashlib", "kproxy.policy.tls_names"),
        *("pathlib", "tempfile"),  # files are read with open(); memfd_create where there is one
        *(("yaml",) if form == "json" else ()),
    )
    assert not {m for m in imported if m.split(".")[0] in unneeded or m.startswith(unneeded)}
    unneeded_here = (
        *("kproxy.credentials.exec_plugin", "kproxy.credentials.oidc", "kproxy.upstream.h2_connection"),
        # Without a proxy set anywhere, the proxy rules and the NO_PROXY matcher (§7).
        *("kproxy.policy.egress", "kproxy.policy.no_proxy", "kproxy.config.proxy_route"),
    )
    assert not imported & set(unneeded_here)
