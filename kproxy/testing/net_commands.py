"""``curl`` and ``wget`` for the fake's containers: HTTP GETs inside the fake cluster.

What a real container's curl reaches — ``http://nginx/``, ``http://nginx.default.svc``,
a cluster IP, a pod IP, ``localhost`` — is resolved by the server's
:class:`~kproxy.testing.pod_network.PodNetwork` to the stand-in server on loopback; any
other name does not resolve (there is no way out of the fake cluster). Options::

    curl [-s] [-S] [-f] [-i] [-I] [-L] [-o FILE] [-X METHOD] URL
    wget [-q] [-O FILE|-] URL        (busybox's; -O - writes to stdout)

Errors and exit codes are curl's (6 unresolved, 7 refused, 22 with ``-f`` on a 4xx/5xx)
and busybox wget's (1, ``bad address``, ``server returned error``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from kproxy.testing.process import Process

__all__ = ["curl", "wget"]

_TIMEOUT = aiohttp.ClientTimeout(total=10)


async def _fetch(p: Process, url: str, method: str) -> tuple[int, str, dict[str, str], bytes] | tuple[int, str]:
    """(status, reason, headers, body), or (curl exit code, message) on failure."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname or ""
    if parts.scheme != "http":
        return 1, f'Protocol "{parts.scheme}" not supported'
    port = parts.port or 80
    target = await p.network.lookup(host, port, p.namespace, p.pod) if p.network is not None else None
    if target is None:
        known = p.network is not None and await p.network.lookup(host, 80, p.namespace, p.pod) is not None
        if known or host in ("localhost", "127.0.0.1"):
            return 7, f"Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server"
        return 6, f"Could not resolve host: {host}"
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    headers = {"Host": parts.netloc, "User-Agent": "curl/8.11.1", "Accept": "*/*"}
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT, auto_decompress=False) as session,
            session.request(
                method, f"http://{target[0]}:{target[1]}{path}", headers=headers, allow_redirects=False
            ) as resp,
        ):
            return resp.status, resp.reason or "", dict(resp.headers), await resp.read()
    except (aiohttp.ClientError, OSError):
        return 7, f"Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server"


async def curl(p: Process) -> int:
    args = list(p.argv[1:])
    flags: set[str] = set()
    output = ""
    method = "GET"
    url = ""
    while args:
        arg = args.pop(0)
        if arg in ("-o", "--output") and args:
            output = args.pop(0)
        elif arg in ("-X", "--request") and args:
            method = args.pop(0).upper()
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            flags.update(arg[1:])
        elif arg.startswith("--"):
            flags.add({"--silent": "s", "--fail": "f", "--include": "i", "--head": "I"}.get(arg, ""))
        else:
            url = arg
    if not url:
        await p.err("curl: no URL specified\n")
        return 2
    result = await _fetch(p, url, "HEAD" if "I" in flags else method)
    if len(result) == 2:
        code, message = result
        if "s" not in flags or "S" in flags:
            await p.err(f"curl: ({code}) {message}\n")
        return code
    status, reason, headers, body = result
    if "f" in flags and status >= 400:
        if "s" not in flags or "S" in flags:
            await p.err(f"curl: (22) The requested URL returned error: {status}\n")
        return 22
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    out = (head.encode() if flags & {"i", "I"} else b"") + (b"" if "I" in flags else body)
    if output:
        p.fs.write(output, out)
    else:
        await p.stdout.write(out)
    return 0


async def wget(p: Process) -> int:
    args = list(p.argv[1:])
    output = ""
    quiet = False
    url = ""
    while args:
        arg = args.pop(0)
        if arg == "-O" and args:
            output = args.pop(0)
        elif arg.startswith("-") and len(arg) > 1:
            quiet = quiet or "q" in arg
            if arg.endswith("O") and args:
                output = args.pop(0)
        else:
            url = arg
    if not url:
        await p.err("BusyBox v1.37.0 multi-call binary.\n\nUsage: wget [-q] [-O FILE] URL\n")
        return 1
    result = await _fetch(p, url, "GET")
    host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
    if len(result) == 2:
        code, _ = result
        await p.err(f"wget: bad address '{host}'\n" if code == 6 else f"wget: can't connect to remote host: {_}\n")
        return 1
    status, reason, _, body = result
    if status >= 400:
        await p.err(f"wget: server returned error: HTTP/1.1 {status} {reason}\n")
        return 1
    name = output or (urlsplit(url).path.rsplit("/", 1)[-1] or "index.html")
    if name == "-":
        await p.stdout.write(body)
    else:
        p.fs.write(name if name.startswith("/") else "/" + name, body)
        if not quiet:
            await p.err(f"saving to '{name}'\n{name} 100% |********************************| {len(body)} 0:00:00 ETA\n")
    return 0
