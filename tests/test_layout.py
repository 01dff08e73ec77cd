"""Project-wide rules: pure policy modules do no I/O imports; the code type-checks."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = (
    "errors",
    "filters",
    "routing",
    "kubeconfig",
    "ranges",
    "service_urls",
    "egress",
    "no_proxy",
    "go_url",
    "trust",
    "gonet",
    "headers",
)
# What a pure module may import besides its siblings: the standard library's data
# helpers and the regex/YAML parsers; nothing that opens sockets, files or processes.
ALLOWED = {
    "__future__",
    "base64",
    "binascii",
    "bisect",
    "collections",
    "dataclasses",
    "enum",
    "functools",
    "ipaddress",
    "json",
    "os",
    "posixpath",
    "re",
    "re2",
    "string",
    "types",
    "typing",
    "urllib",
    "yaml",
    "html",
    "collections.abc",
    "urllib.parse",
    "os.path",
    "math",
    "itertools",
    "unicodedata",
    "encodings",
    "encodings.idna",
    "cryptography",
    "datetime",
}


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io(module: str) -> None:
    tree = ast.parse((ROOT / "kproxy" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            sibling = node.module if node.level else (node.module or "").removeprefix("kproxy.")
            if node.level or (node.module or "").startswith("kproxy."):
                assert sibling in PURE, f"{module} imports {node.module}"
                continue
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name in ALLOWED or name.split(".")[0] in ALLOWED, f"{module} imports {name}"
    source = (ROOT / "kproxy" / f"{module}.py").read_text()
    for call in ("open(", "os.environ", "subprocess", "socket."):
        assert call not in source.replace("# ", ""), f"{module} uses {call}"


def test_mypy_strict() -> None:
    pytest.importorskip("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the test extra)")
    result = subprocess.run([ruff, "check", "kproxy", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
