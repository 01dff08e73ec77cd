"""The dashboard (examples/dashboard) in headless Chromium, through the real kproxy
process in front of the fake API server: it follows kubectl's changes through watches,
lists again on 410 Gone and when a stream drops, shows API errors, follows logs, works
from the keyboard, and — served from another origin — works only when kproxy allows
that origin, while an attacker's page can neither write nor open a port-forward.

Waits poll a condition up to a bound (tests/integration/browser.py); the one bound the
issue sets is the 5 s in which the page must follow a change made with kubectl.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env
from tests.integration.browser import DASHBOARD, Browser, chromium, missing
from tests.waiting import until

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

FOLLOW = 5.0  # s: the page follows a change within this (the bound)
RECOVER = 90.0  # s: retries pause up to 30 s between attempts


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
async def dash(api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    return await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--www", str(DASHBOARD))


async def kubectl(kp: KproxyProcess, home: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        kp.url,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(home),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def open_live(browser: Browser, url: str) -> None:
    await browser.get(url)
    await browser.wait_for("document.body.dataset.connection === 'live'", what="the dashboard goes live")


def row(hook: str, key: str) -> str:
    return f"document.querySelector('[{hook}=\"{key}\"]')"


async def rows(browser: Browser, hook: str) -> dict[str, str]:
    """{hook value: data-phase} of the visible rows."""
    return dict(
        await browser.js(
            f"return [...document.querySelectorAll('[{hook}]')].map(r => [r.getAttribute('{hook}'), r.dataset.phase])"
        )
    )


def keys_of(api: FakeAPIServer, resource: str) -> set[str]:
    items = api.store.list(resource)["items"]
    return {"/".join(filter(None, (o["metadata"].get("namespace"), o["metadata"]["name"]))) for o in items}


async def test_the_dashboard_shows_the_cluster_and_follows_kubectl(
    dash: KproxyProcess, api: FakeAPIServer, browser: Browser, tmp_path: Path
) -> None:
    await open_live(browser, f"{dash.url}/static/")
    pods = await rows(browser, "data-pod")
    assert pods == {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}": "Running" for p in api.store.list("pods")["items"]
    }
    assert set((await rows(browser, "data-namespace")).keys()) - {""} == keys_of(api, "namespaces")
    assert set((await rows(browser, "data-service")).keys()) == keys_of(api, "services")
    links = await browser.js(
        "return [...document.querySelectorAll('[data-service=\"default/nginx\"] a[data-proxy-link]')].map(a => a.href)"
    )
    assert links == [f"{dash.url}/api/v1/namespaces/default/services/nginx:80/proxy/"]

    home = tmp_path / "home"
    await kubectl(dash, home, "run", "web-1", "--image=nginx:1.27", "--restart=Never")
    await browser.wait_for(f"{row('data-pod', 'default/web-1')}?.dataset.phase === 'Running'", timeout=FOLLOW)
    await kubectl(dash, home, "delete", "pod", "web-1")
    await browser.wait_for(f"{row('data-pod', 'default/web-1')} === null", timeout=FOLLOW)

    # Nothing but kproxy's origin was asked for anything, and no script failed.
    origins = await browser.js(
        "return [...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).origin))]"
    )
    assert origins == [dash.url]
    assert await browser.javascript_errors() == []
    assert [e for e in await browser.console() if e["level"] == "SEVERE"] == []


async def test_a_services_proxy_link_opens_the_service(dash: KproxyProcess, browser: Browser) -> None:
    # The fake's nginx pods answer their own page, as the demo's do.
    await open_live(browser, f"{dash.url}/static/")
    await browser.keys('[data-service="default/nginx"] a[data-proxy-link]', "\n")
    await browser.wait_for("document.body.innerText.includes('Welcome to nginx!')")
    assert await browser.js("return location.href") == f"{dash.url}/api/v1/namespaces/default/services/nginx:80/proxy/"


async def test_namespaces_and_logs_from_the_keyboard(dash: KproxyProcess, api: FakeAPIServer, browser: Browser) -> None:
    from selenium.webdriver.common.keys import Keys

    await open_live(browser, f"{dash.url}/static/")
    await browser.keys('[data-filter="kube-system"]', Keys.ENTER)
    await browser.wait_for(
        "[...document.querySelectorAll('[data-pod]')].every(r => r.dataset.pod.startsWith('kube-system/'))"
    )
    assert (
        await browser.js("return document.querySelector('[data-filter=\"kube-system\"]').getAttribute('aria-pressed')")
        == "true"
    )
    await browser.keys('[data-filter=""]', Keys.ENTER)
    await browser.wait_for("document.querySelectorAll('[data-pod^=\"default/\"]').length === 2")

    pod = "default/nginx-7c5ddbdf54-2xkqw"
    await browser.keys(f'[data-action="logs"][data-target="{pod}"]', Keys.ENTER)
    await browser.wait_for(f"document.querySelector('[data-logs-panel]').dataset.logs === '{pod}'")
    assert (await browser.active())[4] == "logs-title"  # focus moves to the panel
    first = int(await browser.wait_for("Number(document.querySelector('[data-logs-output]').dataset.lines)"))
    # Following: the fake's pods log a line every 0.2 s.
    await browser.wait_for(f"Number(document.querySelector('[data-logs-output]').dataset.lines) >= {first + 3}")
    text = await browser.js("return document.querySelector('[data-logs-output]').textContent")
    assert f"nginx {pod}: log line 0\n" in text
    # Escape closes the panel and gives the focus back to the button that opened it.
    await browser.keys("[data-logs-output]", Keys.ESCAPE)
    await browser.wait_for("document.querySelector('[data-logs-panel]').hidden")
    assert (await browser.active())[:3] == ["BUTTON", "logs", pod]

    # A pod that goes away ends its log stream, and the page says so.
    other = "nginx-7c5ddbdf54-8hvzn"
    await browser.keys(f'[data-action="logs"][data-target="default/{other}"]', Keys.ENTER)
    await browser.wait_for("Number(document.querySelector('[data-logs-output]').dataset.lines) > 0")
    api.store.delete("pods", other, "default")
    await browser.wait_for("document.querySelector('[data-logs-state]').textContent.includes('ended')")
    await browser.wait_for(f"{row('data-pod', 'default/' + other)} === null", timeout=FOLLOW)
    assert await browser.javascript_errors() == []


async def test_api_errors_are_shown_and_a_dropped_stream_is_listed_again(
    dash: KproxyProcess, api: FakeAPIServer, browser: Browser
) -> None:
    await open_live(browser, f"{dash.url}/static/")
    await api.stop()  # every watch ends; listing again meets kproxy's 502 Status
    # The first error shown may be another one: the fake ends its watches before it
    # stops listening, and the page's first list again can meet the server on its way
    # down. Each retry shows its own error; the lasting one is that nothing listens.
    error = await browser.wait_for(
        "(text => text && text.includes('cannot connect') ? text : null)"
        "(document.querySelector('[data-error=\"pods\"]')?.textContent)",
        what="the pods error says the API server cannot be reached",
    )
    assert error.startswith("Pods: 502 ServiceUnavailable: cannot connect to the API server https://127.0.0.1:")
    # Read together: the page lists again every second or more while the error stands,
    # and a snapshot taken between two reads can fall in a retry's "listing".
    await browser.wait_for(
        "document.body.dataset.connection === 'error'"
        " && document.querySelector('[data-watch=\"pods\"]').dataset.state === 'error'",
        what="the page in its error state",
    )
    # What changed while the stream was down is there once it is listed again.
    api.store.create(
        "pods", {"metadata": {"name": "while-down"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, "default"
    )
    api.store.delete("pods", "nginx-7c5ddbdf54-2xkqw", "default")
    await api.start()
    await browser.wait_for("document.body.dataset.connection === 'live'", timeout=RECOVER)
    pods = await rows(browser, "data-pod")
    assert "default/while-down" in pods and "default/nginx-7c5ddbdf54-2xkqw" not in pods
    assert await browser.js("return document.querySelector('[data-errors]').textContent") == ""
    assert await browser.javascript_errors() == []


async def test_a_refused_request_shows_kproxys_answer(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, browser: Browser
) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--www", str(DASHBOARD), "--reject-paths", "/log$"
    )
    await open_live(browser, f"{kp.url}/static/")
    await browser.js("document.querySelector('[data-action=logs]').click()")
    error = await browser.wait_for("document.querySelector('[data-error=\"logs\"]')?.textContent")
    assert error == "Logs: 403: Forbidden"  # kubectl's own filter answer, shown as it is
    assert await browser.js("return document.querySelector('[data-logs-state]').textContent") == "Logs unavailable."
    assert await browser.javascript_errors() == []


async def test_410_gone_lists_again(dash: KproxyProcess, api: FakeAPIServer, browser: Browser) -> None:
    await open_live(browser, f"{dash.url}/static/")
    store = api.store
    listed = store.list
    armed = True

    def list_then_compact(resource: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # The first pods list from here on: its version is made too old before the watch
        # that follows it starts, as when etcd compacts (other resources' writes).
        nonlocal armed
        answer = listed(resource, *args, **kwargs)
        if resource == "pods" and armed:
            armed = False
            version = answer["metadata"]["resourceVersion"]
            while True:
                for _ in range(1000):
                    store.patch("configmaps", "demo-config", {"data": {"n": "x"}}, "default")
                probe = store.watch("pods", resource_version=version)
                if probe.closed:  # an expired version: the watch starts with 410
                    break
                probe.close()
        return answer

    store.list = list_then_compact  # type: ignore[method-assign]
    # "Live" means listed, with the watch requests sent: they may not have reached the
    # API server yet, and a watch that starts after the close below would never end.
    await until(lambda: api.open_watches() >= 3, lambda: f"{api.open_watches()} watches open, not 3", timeout=30)
    first = len(api.requests)
    store.close_watches()  # the streams end: the page lists again...
    # ...and on the 410 that follows the compaction, lists once more, then watches.
    relisted = await browser.wait_for(
        "(document.querySelector('[data-watch=\"pods\"]').dataset.relisted || '').startsWith('410')"
        " && document.querySelector('[data-watch=\"pods\"]').dataset.relisted"
    )
    assert relisted.startswith("410 Gone: too old resource version: "), relisted

    def pods_requests() -> list[str]:
        return [r.query_string for r in api.requests[first:] if r.raw_path == "/api/v1/pods"]

    async def settled() -> bool:
        seen = pods_requests()
        return len(seen) >= 4 and "watch=1" in seen[-1]

    await until(settled, pods_requests, timeout=30, step=0.1)
    kinds = ["watch" if "watch=1" in q else "list" for q in pods_requests()]
    assert kinds[:4] == ["list", "watch", "list", "watch"], pods_requests()
    # Still live: a new pod shows up.
    store.create(
        "pods", {"metadata": {"name": "after-410"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, "default"
    )
    await browser.wait_for(f"{row('data-pod', 'default/after-410')} !== null", timeout=FOLLOW)
    assert await browser.javascript_errors() == []


Serve = Callable[[Path], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve a directory from another web server (Python's http.server), on another
    origin; the origin."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(directory: Path) -> str:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(directory)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        return f"http://127.0.0.1:{int(line.split(' port ')[1].split()[0])}"

    yield start
    for proc in procs:
        proc.terminate()
        await proc.wait()


async def test_from_another_origin_only_when_allowed(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, browser: Browser, serve: Serve
) -> None:
    elsewhere = await serve(DASHBOARD)
    # kproxy as everyone runs it: the page cannot read anything, and says why.
    plain = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))
    await browser.get(f"{elsewhere}/index.html?api={plain.url}/")
    error = await browser.wait_for("document.querySelector('[data-error=\"pods\"]')?.textContent")
    assert error.startswith(f"Pods: no answer from {plain.url} (") and "allow this page's origin?" in error
    assert await browser.js("return document.body.dataset.connection") == "error"

    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--cors-allowed-origins", elsewhere)
    await browser.get("about:blank")  # the refused page is gone, with its expected CORS errors
    await browser.console()
    browser.log.clear()
    await open_live(browser, f"{elsewhere}/index.html?api={kp.url}/")
    assert await browser.js("return document.querySelector('[data-api-base]').textContent") == f"{kp.url}/"
    assert "default/nginx-7c5ddbdf54-2xkqw" in await rows(browser, "data-pod")
    # A DELETE needs a preflight: kproxy grants it, then the page reads the answer.
    answer = await browser.js_async(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'DELETE'}).then(r => r.json().then(b => done([r.status, b.metadata.name])),"
        " e => done(String(e)))",
        f"{kp.url}/api/v1/namespaces/default/pods/nginx-7c5ddbdf54-2xkqw",
    )
    assert answer == [200, "nginx-7c5ddbdf54-2xkqw"]
    await browser.wait_for(f"{row('data-pod', 'default/nginx-7c5ddbdf54-2xkqw')} === null", timeout=FOLLOW)
    assert await browser.javascript_errors() == []
    assert [e for e in await browser.console() if e["level"] == "SEVERE"] == []


ATTACK = """
const [kproxy, pod, manifest] = arguments;
const done = arguments[arguments.length - 1];
const socket = (path, protocol) => new Promise((resolve) => {
  const ws = new WebSocket(kproxy.replace('http', 'ws') + path, [protocol]);
  ws.onopen = () => { ws.close(); resolve('open'); };
  ws.onclose = (event) => resolve('closed ' + event.code);
});
(async () => {
  const results = {};
  const pods = kproxy + '/api/v1/namespaces/default/pods';
  // A "simple" POST: no preflight; the browser sends it and hides the answer.
  await fetch(pods, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: manifest})
    .then(() => { results.post = 'sent'; }, (e) => { results.post = String(e); });
  // WebSockets are outside CORS: only the server can say no.
  const pod_path = '/api/v1/namespaces/default/pods/' + pod;
  results.exec = await socket(pod_path + '/exec?command=sh&stdin=true&stdout=true', 'v5.channel.k8s.io');
  results.portforward = await socket(pod_path + '/portforward?ports=80', 'v4.channel.k8s.io');
  // A DELETE is preflighted first.
  await fetch(pods + '/' + pod, {method: 'DELETE'})
    .then(() => { results.delete = 'answered'; }, () => { results.delete = 'refused'; });
  // Reading: a GET is sent, but without a grant its answer stays hidden from the page.
  await fetch(pods).then(() => { results.read = 'read'; }, () => { results.read = 'hidden'; });
  done(results);
})();
"""


async def test_an_attackers_page_can_neither_write_nor_open_sockets(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, browser: Browser, serve: Serve, tmp_path: Path
) -> None:
    # Two pages with the same script: one from an allowed origin, one from the attacker's.
    # kproxy allows exec, as users who relax --reject-paths do (the README shows how).
    sites = {}
    for name in ("friend", "attacker"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.html").write_text(f"<!doctype html><title>{name}</title><p>{name}</p>")
        sites[name] = await serve(tmp_path / name)
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--reject-paths", "^/api/.*/pods/.*/attach",
        "--cors-allowed-origins", sites["friend"],
    )  # fmt: skip
    manifest = json.dumps({"metadata": {"name": "planted"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})

    # The friend's page: everything it asks for is done (the browser could, and would).
    await browser.get(f"{sites['friend']}/index.html")
    results = await browser.js_async(ATTACK, kp.url, "nginx-7c5ddbdf54-8hvzn", manifest)
    # (The fake API server takes no text/plain bodies: that one fails upstream.)
    assert results == {
        "post": "sent", "delete": "answered", "exec": "open", "portforward": "open", "read": "read"
    }  # fmt: skip
    assert "nginx-7c5ddbdf54-8hvzn" not in {p["metadata"]["name"] for p in api.store.list("pods")["items"]}

    # The attacker's page: nothing but the GET reaches the API server.
    await browser.get(f"{sites['attacker']}/index.html")
    pod = "nginx-7c5ddbdf54-2xkqw"
    before = len(api.requests)
    results = await browser.js_async(ATTACK, kp.url, pod, manifest)
    assert results == {
        "post": "sent", "delete": "refused", "exec": "closed 1006", "portforward": "closed 1006", "read": "hidden"
    }  # fmt: skip
    names = {p["metadata"]["name"] for p in api.store.list("pods", "default")["items"]}
    assert pod in names and "planted" not in names
    reached = [(r.method, r.raw_path) for r in api.requests[before:]]
    assert reached == [("GET", "/api/v1/namespaces/default/pods")], reached
