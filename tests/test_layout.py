"""Project-wide rules: the layout shows the architecture and imports flow one way.

The layers, lowest first (``docs/architecture.md`` draws them)::

    base         errors, log, metrics, waiters, _version
    policy/      pure functions on plain data: may import base (errors) only
    http/        the client-facing HTTP/1.1 server: base only, nothing else of kproxy
    credentials/ run-time credential refresh: policy, base
    config/      start-up: flags, environment and files -> Options: credentials, policy, base
    upstream/    dialer, tunnels, connections, pool: config, credentials, policy, base
    proxy/       pipeline, gate, relay, fast path, upgrades, static files: upstream, http and below
    server       ProxyServer's lifecycle: proxy and below
    cli/         the command: anything, kproxy.testing included (for --demo)
    testing/     the fake API server: policy, base and itself (it is public and stands apart)

Also: no module over 500 lines, no function over 80 lines without a docstring saying
why ("Long because ..."), one import style (absolute), a dozen modules at most at the
top, ``ruff format``, ruff and ``mypy --strict`` clean (mypy over ``kproxy``,
``benchmarks`` and ``tests``: ``pyproject.toml``'s ``[tool.mypy] files``).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kproxy"
BASE = {"errors", "log", "metrics", "waiters", "_version"}
# What each layer may import from kproxy, besides itself.
ALLOWED_LAYERS: dict[str, set[str]] = {
    "base": {"base"},
    "policy": {"base"},
    "http": {"base"},
    "credentials": {"base", "policy"},
    "config": {"base", "policy", "credentials"},
    "upstream": {"base", "policy", "credentials", "config"},
    "proxy": {"base", "policy", "credentials", "config", "upstream", "http"},
    "server": {"base", "policy", "credentials", "config", "upstream", "http", "proxy"},
    "cli": {"base", "policy", "credentials", "config", "upstream", "http", "proxy", "server", "testing", "facade"},
    "testing": {"base", "policy"},
    # kproxy/__init__.py and the documented thin re-exports (kproxy.egress, kproxy.service_urls)
    "facade": {"base", "policy", "config", "server"},
}
# What a pure policy module may import besides kproxy's base and its siblings: the
# standard library's data helpers and the regex/YAML/X.509 parsers; nothing that opens
# sockets, files or processes.
PURE_ALLOWED = {
    "__future__", "base64", "binascii", "bisect", "collections", "dataclasses", "enum", "functools", "ipaddress",
    "json", "os", "posixpath", "re", "re2", "string", "types", "typing", "urllib", "yaml", "html", "math",
    "itertools", "unicodedata", "encodings", "cryptography", "datetime", "uuid", "http",
    "ssl",  # its error types and constants, to explain a refused certificate (tls_failure)
}  # fmt: skip
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_TOP_LEVEL = 12


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # kproxy itself
        return "facade"
    head = parts[1]
    if head in BASE:
        return "base"
    if head in ("egress", "service_urls", "__main__"):
        return "cli" if head == "__main__" else "facade"
    if head == "server":
        return "server"
    return head


def kproxy_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (kproxy uses absolute imports only)"
            if node.module == "kproxy":
                found += [(node.lineno, f"kproxy.{alias.name}") for alias in node.names]
            elif node.module and node.module.startswith("kproxy."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("kproxy.")]
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_imports_flow_one_way(path: Path) -> None:
    here = layer(dotted(path))
    allowed = ALLOWED_LAYERS[here] | {here}
    for lineno, target in kproxy_imports(path):
        there = layer(target)
        assert there in allowed, f"{dotted(path)}:{lineno} ({here}) imports {target} ({there})"


@pytest.mark.parametrize("path", sorted((PACKAGE / "policy").rglob("*.py")), ids=lambda p: dotted(p))
def test_policy_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.startswith("kproxy"):
                continue  # checked by the arrows
            assert name.split(".")[0] in PURE_ALLOWED, f"{dotted(path)} imports {name}"
    source = path.read_text()
    for call in ("open(", "os.environ", "subprocess", "socket.", "asyncio"):
        assert call not in source.replace("# ", ""), f"{dotted(path)} uses {call}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_modules_are_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{dotted(path)} has {lines} lines; split it by responsibility"


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_functions_are_short_or_say_why(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                doc = ast.get_docstring(node) or ""
                assert "Long because" in doc, (
                    f"{dotted(path)}.{node.name} has {length} lines: split it, or say why in its docstring"
                )


def test_top_level_shows_the_architecture() -> None:
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL, sorted(top)
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")} - {"testing"}
    assert len(packages) >= 4, packages
    assert (PACKAGE / "py.typed").exists()


def test_public_modules_keep_working() -> None:
    import kproxy
    import kproxy.egress
    import kproxy.service_urls
    import kproxy.testing

    for module in (kproxy, kproxy.egress, kproxy.service_urls, kproxy.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (it is pinned in the test extra)")
    return path


def test_mypy_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "kproxy", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = subprocess.run(
        [_tool("ruff"), "format", "--check", "kproxy", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_citations_point_into_the_repository() -> None:
    # What the code relies on is written down in docs/; a comment cites it there.
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        if path == Path(__file__):
            continue
        text = path.read_text()
        for needle in ("reference §", "shared/reference", "shared/seeds", "shared/DESIGN", "shared/STYLE"):
            assert needle not in text, f"{path.relative_to(ROOT)} cites {needle!r}"
        for doc in ("kubectl-proxy.md", "go-proxy-selection.md", "architecture.md", "browsers.md"):
            for line in text.splitlines():
                if doc in line:
                    assert f"docs/{doc}" in line, f"{path.relative_to(ROOT)}: cite docs/{doc}: {line.strip()}"
