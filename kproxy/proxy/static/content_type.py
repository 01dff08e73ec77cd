"""A served file's Content-Type, as Go's ``serveContent`` picks it.

In: the file's name, then (when the name says nothing) its first bytes. Out: a
Content-Type: Go's built-in extension table (``mime.builtinTypes``, plus ``.txt`` from the
observed machine's mime.types), else ``http.DetectContentType`` (``sniff.go``, the WHATWG
mimesniff algorithm) on at most 512 bytes.

Pure: no files are read here.

Deviations: no system mime.types; sniffing skips Go's audio, video and font signatures.
"""

from __future__ import annotations

import re

__all__ = ["HTML", "TEXT", "detect_content_type", "type_by_extension"]

TEXT, HTML = "text/plain; charset=utf-8", "text/html; charset=utf-8"

# Go 1.23's mime.builtinTypes, plus .txt as the observed machine's mime.types gave it.
_TYPES = {
    ".avif": "image/avif",
    ".css": "text/css; charset=utf-8",
    ".gif": "image/gif",
    ".htm": HTML,
    ".html": HTML,
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".mjs": "text/javascript; charset=utf-8",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".xml": "text/xml; charset=utf-8",
    ".txt": TEXT,
}

# Go's sniff.go (WHATWG mimesniff) in its order. HTML: after leading whitespace, letters
# case-insensitive, then a space or '>'. Then (mask or None for an exact prefix, pattern).
_HTML_TAGS = [
    b"<" + t.encode()
    for t in (
        "!DOCTYPE HTML",
        "HTML",
        "HEAD",
        "SCRIPT",
        "IFRAME",
        "H1",
        "DIV",
        "FONT",
        "TABLE",
        "A",
        "STYLE",
        "TITLE",
        "B",
        "BODY",
        "BR",
        "P",
        "!--",
    )
]
_SIGS: list[tuple[bytes | None, bytes, str]] = [
    (None, b"%PDF-", "application/pdf"),
    (None, b"%!PS-Adobe-", "application/postscript"),
    (b"\xff\xff\0\0", b"\xfe\xff\0\0", "text/plain; charset=utf-16be"),
    (b"\xff\xff\0\0", b"\xff\xfe\0\0", "text/plain; charset=utf-16le"),
    (b"\xff\xff\xff\0", b"\xef\xbb\xbf\0", TEXT),
    (None, b"\0\0\1\0", "image/x-icon"),
    (None, b"\0\0\2\0", "image/x-icon"),
    (None, b"BM", "image/bmp"),
    (None, b"GIF87a", "image/gif"),
    (None, b"GIF89a", "image/gif"),
    (b"\xff\xff\xff\xff\0\0\0\0\xff\xff\xff\xff\xff\xff", b"RIFF\0\0\0\0WEBPVP", "image/webp"),
    (None, b"\x89PNG\r\n\x1a\n", "image/png"),
    (None, b"\xff\xd8\xff", "image/jpeg"),
    (None, b"\x1f\x8b\x08", "application/x-gzip"),
    (None, b"PK\3\4", "application/zip"),
    (None, b"Rar!\x1a\x07\0", "application/x-rar-compressed"),
    (None, b"Rar!\x1a\x07\1\0", "application/x-rar-compressed"),
    (None, b"\0asm", "application/wasm"),
]
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")  # WHATWG "binary data bytes"


def type_by_extension(name: str) -> str | None:
    """Go's ``mime.TypeByExtension(filepath.Ext(name))`` over the built-in table: the
    extension is what follows the last dot, compared without case; None if unknown."""
    dot = name.rfind(".")
    return _TYPES.get(name[dot:].lower()) if dot >= 0 else None


def detect_content_type(data: bytes) -> str:
    """Go's ``http.DetectContentType`` (minus audio, video and fonts) of a file's start."""
    data = data[:512]
    lead = data.lstrip(b"\t\n\x0c\r ")
    for tag in _HTML_TAGS:
        if (
            len(lead) > len(tag)
            and lead[len(tag)] in b" >"
            and tag == bytes(b & 0xDF if 0x41 <= t <= 0x5A else b for b, t in zip(lead, tag))
        ):
            return HTML
    if lead.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for mask, pattern, ctype in _SIGS:
        if (
            data.startswith(pattern)
            if mask is None
            else len(data) >= len(pattern) and all(d & m == p for d, m, p in zip(data, mask, pattern))
        ):
            return ctype
    return "application/octet-stream" if _BINARY.search(lead) else TEXT
