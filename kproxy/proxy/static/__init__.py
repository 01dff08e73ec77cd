"""Static files for ``--www``: Go's ``http.StripPrefix(p, http.FileServer(http.Dir(root)))``.

In: a :class:`~kproxy.http.server.Request` and its percent-decoded path, www prefix
stripped (the router has already answered unclean escaped paths). Out: kubectl 1.32's
answer (Go 1.23 ``net/http/fs.go``), kept inside the root. By responsibility:

* :mod:`~kproxy.proxy.static.file_server`: :class:`StaticFiles`, from the path to the
  answer: cleaning, redirects, opening, errors, index.html, ``serveContent``'s choices;
* :mod:`~kproxy.proxy.static.content_type`: the extension table and content sniffing;
* :mod:`~kproxy.proxy.static.conditional`: RFC 9110 §13 preconditions and If-Range;
* :mod:`~kproxy.proxy.static.byte_ranges`: RFC 9110 §14 Range and multipart/byteranges;
* :mod:`~kproxy.proxy.static.listing`: a directory's HTML (Go's ``dirList``);
* :mod:`~kproxy.proxy.static.file_response`: streaming the chosen bytes.

The four in the middle are pure: strings and bytes in, decisions out.
"""

from kproxy.proxy.static.file_server import StaticFiles

__all__ = ["StaticFiles"]
