"""Headless Chromium, driven by selenium, for the dashboard's tests and its screenshot.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them), started with a
new empty profile and without the background connections Chromium makes on its own
(updates, sync, field trials), which a closed network refuses. Selenium is blocking; the
tests run the fake API server on their own event loop, so every call here goes through
a thread (``asyncio.to_thread``) and waits poll a condition up to a generous bound.

``python -m tests.integration.browser --screenshot docs/dashboard.png`` takes the
README's screenshot: ``kproxy --demo --www examples/dashboard``, the logs of one pod open.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "dashboard"
WAIT = 30.0  # s: the bound for page conditions on a loaded machine (a failure waits this long)


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for program, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(program) is None:
            return f"needs {program}: apt-get install {package}"
    if importlib.util.find_spec("selenium") is None:
        return "needs selenium: pip install -e '.[test]'"
    return None


class Browser:
    """One headless Chromium window; its console is collected across ``console()`` calls."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.log: list[dict[str, Any]] = []

    async def get(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def js_async(self, script: str, *args: Any) -> Any:
        """``script`` calls ``arguments[arguments.length - 1](result)`` when done."""
        return await asyncio.to_thread(self.driver.execute_async_script, script, *args)

    async def wait_for(self, expression: str, *args: Any, timeout: float = WAIT, what: str = "") -> Any:
        """Poll the JavaScript ``expression`` until it is truthy; its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.js(f"return ({expression});", *args)
            if value:
                return value
            if loop.time() > deadline:
                state = await self.js("return document.body ? document.body.innerText.slice(0, 2000) : ''")
                raise AssertionError(f"not within {timeout:.0f} s: {what or expression}\npage:\n{state}")
            await asyncio.sleep(0.05)

    async def keys(self, selector: str, *keys: str) -> None:
        """Focus the element and type ``keys`` into it (a keyboard user's way)."""

        def send() -> None:
            from selenium.webdriver.common.by import By

            element = self.driver.find_element(By.CSS_SELECTOR, selector)
            self.driver.execute_script("arguments[0].focus()", element)
            element.send_keys(*keys)

        await asyncio.to_thread(send)

    async def active(self) -> Any:
        """The focused element's hooks: (tag, data-action, data-target, data-filter, id)."""
        return await self.js(
            "const e = document.activeElement;"
            "return [e.tagName, e.dataset.action || '', e.dataset.target || '', e.dataset.filter ?? null, e.id];"
        )

    async def console(self) -> list[dict[str, Any]]:
        """Everything the console got so far (errors, warnings, logs)."""
        self.log += await asyncio.to_thread(self.driver.get_log, "browser")
        return self.log

    async def javascript_errors(self) -> list[str]:
        """Console errors from scripts: uncaught exceptions and rejections, console.error.
        (Network errors, such as a 502 the page shows, are the browser's, not the page's.)"""
        return [
            e["message"]
            for e in await self.console()
            if e["level"] == "SEVERE" and e.get("source") in ("javascript", "console-api")
        ]

    async def screenshot(self, path: Path) -> None:
        await asyncio.to_thread(self.driver.save_screenshot, str(path))


@contextmanager
def chromium(size: tuple[int, int] = (1280, 900)) -> Iterator[Browser]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="kproxy-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=shutil.which("chromedriver") or "chromedriver")
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.set_script_timeout(WAIT)
            driver.set_page_load_timeout(WAIT)
            yield Browser(driver)
        finally:
            driver.quit()


def _port() -> str:
    """8001, kubectl's default (as the README shows it), unless it is taken."""
    try:
        with socket.create_server(("127.0.0.1", 8001)):
            return "8001"
    except OSError:
        return "0"


async def _screenshot(path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "kproxy", "--demo", "--www", str(DASHBOARD), "--port", _port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        address = line.removeprefix("Starting to serve on ").strip()
        with chromium((1280, 860)) as browser:
            await browser.get(f"http://{address}/static/")
            await browser.wait_for("document.body.dataset.connection === 'live'", what="the dashboard is live")
            await browser.js("document.querySelector('[data-pod^=\"default/nginx\"] [data-action=logs]').click()")
            await browser.wait_for("Number(document.querySelector('[data-logs-output]').dataset.lines) >= 14")
            await browser.js("document.activeElement.blur(); window.scrollTo(0, 0)")
            await browser.screenshot(path)
    finally:
        proc.terminate()
        await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, required=True, help="where to write the PNG")
    args = parser.parse_args()
    reason = missing()
    if reason:
        raise SystemExit(f"error: {reason}")
    asyncio.run(_screenshot(args.screenshot))


if __name__ == "__main__":
    main()
