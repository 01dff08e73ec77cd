"""kproxy.proxy.static.listing: Go's dirList page, hrefs and HTML escaping, as tables."""

from __future__ import annotations

import pytest

from kproxy.proxy.static.listing import dir_list, href, html_escape

HEAD = b'<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'


@pytest.mark.parametrize(
    ("name", "link", "text"),
    [
        (b"<x>.txt", b"%3Cx%3E.txt", b"&lt;x&gt;.txt"),
        (b"q?.txt", b"q%3F.txt", b"q?.txt"),
        (b"sp ace/", b"sp%20ace/", b"sp ace/"),
        (b"a&b", b"a&b", b"a&amp;b"),
        (b'it\'s "q"', b"it%27s%20%22q%22", b"it&#39;s &#34;q&#34;"),
        (b"c:d", b"./c:d", b"c:d"),
        (b"#frag%", b"%23frag%25", b"#frag%"),
        (b"$&+,;=@~-_.", b"$&+,;=@~-_.", b"$&amp;+,;=@~-_."),
        ("é".encode(), b"%C3%A9", "é".encode()),
        (b"*", b"*", b"*"),
        (b"dir:x/", b"./dir:x/", b"dir:x/"),
        (b"a/b:c", b"a/b:c", b"a/b:c"),  # a colon past the first segment cannot read as a scheme
        (b"\xff", b"%FF", b"\xff"),  # a name that is not UTF-8 keeps its bytes
    ],
)
def test_href_and_html(name: bytes, link: bytes, text: bytes) -> None:
    assert (href(name), html_escape(name)) == (link, text)


@pytest.mark.parametrize(
    ("entries", "items"),
    [
        ([], b""),
        # sorted by name as bytes (upper case first); directories get a slash
        (
            [(b"b", False), (b"a", True), (b"Z", False), (b"<c>", False)],
            b'<a href="%3Cc%3E">&lt;c&gt;</a>\n<a href="Z">Z</a>\n<a href="a/">a/</a>\n<a href="b">b</a>\n',
        ),
        ([(b"c:d", True)], b'<a href="./c:d/">c:d/</a>\n'),
    ],
)
def test_dir_list(entries: list[tuple[bytes, bool]], items: bytes) -> None:
    assert dir_list(entries) == HEAD + items + b"</pre>\n"
