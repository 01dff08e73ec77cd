"""kproxy.proxy.static.content_type: Go's extension table and http.DetectContentType, as tables."""

from __future__ import annotations

import pytest

from kproxy.proxy.static.content_type import HTML, TEXT, detect_content_type, type_by_extension

PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(32))


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("index.html", HTML),
        ("INDEX.HTM", HTML),  # TypeByExtension ignores case
        ("notes.txt", TEXT),
        (".txt", TEXT),  # filepath.Ext of a dotfile is the whole name
        ("style.css", "text/css; charset=utf-8"),
        ("app.mjs", "text/javascript; charset=utf-8"),
        ("photo.JPG", "image/jpeg"),
        ("logo.svg", "image/svg+xml"),
        ("data.json", "application/json"),
        ("module.wasm", "application/wasm"),
        ("archive.tar.gz", None),  # only the last extension counts, and .gz is not built in
        ("html", None),
        ("trailing.", None),
        ("", None),
    ],
)
def test_type_by_extension(name: str, ctype: str | None) -> None:
    assert type_by_extension(name) == ctype


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (b"", TEXT),
        (b"plain text\n", TEXT),
        (b"\x00\x01binary", "application/octet-stream"),
        (b"  <!DOCTYPE html><p>", HTML),
        (b"<HtMl>", HTML),
        (b"<b>bold", HTML),
        (b"<bx", TEXT),
        (b"<!-- c -->", HTML),
        (b"\n<?xml version='1.0'?>", "text/xml; charset=utf-8"),
        (b"%PDF-1.7", "application/pdf"),
        (PNG, "image/png"),
        (b"GIF89a....", "image/gif"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"RIFF\x10\0\0\0WEBPVP8 ", "image/webp"),
        (b"PK\3\4rest", "application/zip"),
        (b"\x1f\x8b\x08\0", "application/x-gzip"),
        (b"\xef\xbb\xbf\0", TEXT),
        (b"\xfe\xff\0\0", "text/plain; charset=utf-16be"),
        (b"\0asm\1\0\0\0", "application/wasm"),
        # HTML: whitespace first is skipped, and the tag must end in a space or '>'
        (b"\t\n\x0c\r <html>", HTML),
        (b"<script>x</script>", HTML),
        (b"<IFRAME src=x>", HTML),
        (b"<h1>", HTML),
        (b"<a href=x>", HTML),
        (b"<P>", HTML),
        (b"<br/>", TEXT),
        (b"<!--x-->", TEXT),
        (b"<html", TEXT),  # the data ends before the tag does
        (b"x<html>", TEXT),
        # XML skips whitespace too; the binary signatures match at the first byte only
        (b"  <?xml", "text/xml; charset=utf-8"),
        (b" %PDF-1.7", TEXT),
        (b"%!PS-Adobe-3.0", "application/postscript"),
        (b"\xff\xfeh\0", "text/plain; charset=utf-16le"),
        (b"\xef\xbb\xbfhello", TEXT),
        (b"\0\0\1\0\1\0", "image/x-icon"),
        (b"\0\0\2\0\1\0", "image/x-icon"),
        (b"BM\x36\0", "image/bmp"),
        (b"GIF87a....", "image/gif"),
        (b"RIFF\x10\0\0\0WEBP", "application/octet-stream"),  # too short for the webp mask
        (b"RIFF\x10\0\0\0WAVEfmt ", "application/octet-stream"),  # audio is not sniffed
        (b"Rar!\x1a\x07\0", "application/x-rar-compressed"),
        (b"Rar!\x1a\x07\1\0", "application/x-rar-compressed"),
        # WHATWG binary data bytes: ESC, FF and DEL are text, VT is not
        (b"\x1b[1mbold\x1b[0m", TEXT),
        (b"page\x0cbreak\x7f", TEXT),
        (b"a\x0bb", "application/octet-stream"),
        (b"a" * 512 + b"\0", TEXT),  # only the first 512 bytes are looked at
    ],
)
def test_detect_content_type(data: bytes, ctype: str) -> None:
    assert detect_content_type(data) == ctype
