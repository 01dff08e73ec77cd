"""Install what the harness needs on a fresh Debian machine: nginx, wrk, curl, stunnel, matplotlib.

nginx, wrk, curl and stunnel come from Debian (``nginx-light``, ``wrk``, ``curl``,
``stunnel4``) via apt-get, which needs root. curl is the client of the "direct over TLS"
list baseline: wrk cannot present a client certificate. stunnel is the TLS front of the
HTTPS small GET (kubectl proxy has no TLS listener of its own).
While installing, a temporary ``policy-rc.d`` (the Debian mechanism for this) stops the
package from starting a system-wide nginx on port 80; an existing one is left alone.
matplotlib comes from PyPI through pip, only when the chart is drawn.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["MissingTool", "ensure_matplotlib", "ensure_tools", "tool_versions"]

APT_PACKAGES = {"nginx": "nginx-light", "wrk": "wrk", "curl": "curl", "stunnel4": "stunnel4"}
_POLICY_RC = Path("/usr/sbin/policy-rc.d")


class MissingTool(RuntimeError):
    """A tool is missing and could not be installed; the message says how to get it."""


def _missing() -> list[str]:
    return [tool for tool in APT_PACKAGES if shutil.which(tool) is None]


def ensure_tools(log: bool = True) -> None:
    missing = _missing()
    if not missing:
        return
    packages = [APT_PACKAGES[t] for t in missing]
    hint = f"install them with: apt-get update && apt-get install -y {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        raise MissingTool(f"{', '.join(missing)} not found and apt-get is unavailable; {hint}")
    if os.geteuid() != 0:
        raise MissingTool(f"{', '.join(missing)} not found and not running as root; {hint}")
    if log:
        print(f"installing {' '.join(packages)} with apt-get ...", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    made_policy = False
    try:
        if not _POLICY_RC.exists():
            _POLICY_RC.write_text("#!/bin/sh\n# temporary, from kproxy benchmarks: do not start services\nexit 101\n")
            _POLICY_RC.chmod(0o755)
            made_policy = True
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise MissingTool(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    finally:
        if made_policy:
            _POLICY_RC.unlink(missing_ok=True)
    still = _missing()
    if still:
        raise MissingTool(f"{', '.join(still)} still not found after apt-get install; {hint}")


def ensure_matplotlib() -> str | None:
    """Import matplotlib, installing it with pip if needed. Returns a reason on failure."""
    if importlib.util.find_spec("matplotlib") is not None:
        return None
    print("installing matplotlib with pip (for the chart) ...", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], capture_output=True, text=True)
    importlib.invalidate_caches()
    if done.returncode != 0 or importlib.util.find_spec("matplotlib") is None:
        return f"pip install matplotlib failed: {done.stderr.strip()[-400:]}"
    return None


def _first_line(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _curl_version() -> str:
    # "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.19 zlib/...": the TLS
    # library matters as much as curl's own version for the list over TLS.
    words = _first_line(["curl", "--version"]).split()
    if words[:1] != ["curl"] or len(words) < 2:
        return " ".join(words)
    tls = [w for w in words if w.split("/")[0] in ("OpenSSL", "GnuTLS", "BoringSSL", "LibreSSL", "wolfSSL")]
    return " ".join([words[1], *tls[:1]])


def tool_versions(kubectl: str | None) -> dict[str, str]:
    versions = {
        "nginx": _first_line(["nginx", "-v"]).removeprefix("nginx version: "),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "curl": _curl_version(),
        "python": sys.version.split()[0],
    }
    if kubectl:
        versions["kubectl"] = _first_line([kubectl, "version", "--client"]).removeprefix("Client Version: ")
    return versions
