"""nginx as the API-server stand-in: TLS with required client certificates and HTTP/2
(as kube-apiserver offers them) on one port, plain HTTP on another for the direct
baseline. Both serve the same canned files and pass watches (chunked, unbuffered) and
exec upgrades on to the upstream program.

nginx runs in the foreground (``daemon off``) from its own prefix directory, so the PID
we started is the master's; stopping it by that PID stops its worker too.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from dataclasses import dataclass
from pathlib import Path

from .pki import Pki
from .procs import Child, ProcessSet

__all__ = ["Nginx", "free_port", "start_nginx", "wait_port"]

_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections 16384; }}
http {{
    access_log off;
    types {{ }}
    default_type application/json;
    sendfile on;
    tcp_nodelay on;
    # kube-apiserver keeps connections open indefinitely; nginx's default of closing
    # after 1,000 requests would make proxies redo TLS handshakes mid-run.
    keepalive_timeout 600s;
    keepalive_requests 100000000;
    # kube-apiserver's limit since 1.29 (and 1.25-1.28 patch releases): 100 streams per
    # HTTP/2 connection; 1,000 is the default only for aggregated API servers.
    http2_max_concurrent_streams {h2_streams};
    gzip off;
    gzip_static on;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    ssl_certificate {pki.server_cert};
    ssl_certificate_key {pki.server_key};
    ssl_client_certificate {pki.ca};
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench:10m;

    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 32;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        listen 127.0.0.1:{plain_port};
        root {root};
        location / {{
            try_files $uri =404;
        }}
        location /api/v1/watch/ {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
        location ~ /exec$ {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    child: Child
    tls_port: int
    plain_port: int

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def plain_url(self) -> str:
        return f"http://127.0.0.1:{self.plain_port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_port(port: int, child: Child, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if not child.alive:
                raise RuntimeError(f"{child.name} exited ({child.proc.returncode}): {child.log_tail()}") from None
            if loop.time() > deadline:
                raise RuntimeError(f"{child.name} is not listening on {port}: {child.log_tail()}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


async def start_nginx(
    procs: ProcessSet,
    prefix: Path,
    root: Path,
    pki: Pki,
    upstream_port: int,
    cpus: set[int] | None,
    h2_streams: int = 100,
) -> Nginx:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    tls_port, plain_port = free_port(), free_port()
    conf = prefix / "nginx.conf"
    # nginx cannot raise its descriptor limit past the hard limit without privileges
    # containers rarely grant; ask for what the hard limit allows.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    conf.write_text(
        _CONF.format(
            prefix=prefix,
            pki=pki,
            root=root,
            upstream_port=upstream_port,
            tls_port=tls_port,
            plain_port=plain_port,
            nofile=nofile,
            h2_streams=h2_streams,
        )
    )
    child = await procs.start(
        "nginx",
        ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"],
        cpus=cpus,
    )
    try:
        await wait_port(tls_port, child)
        await wait_port(plain_port, child)
    except RuntimeError as exc:
        # With -e, nginx writes its complaints to error.log rather than stderr.
        log = prefix / "error.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise RuntimeError(f"{exc}\nnginx error.log: {tail}") from None
    return Nginx(child, tls_port, plain_port)
