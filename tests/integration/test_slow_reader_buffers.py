"""What the real kproxy process holds of an answer its client does not read (issue 12).

An API server stand-in over TLS (the suite's PKI) answers with 32 MiB, written only as
fast as it is taken. A client asks for it through kproxy, reads the head and then nothing,
with a small receive buffer. Once the stand-in can send no more, every byte it sent is
somewhere on the way: in the kernel (the send and receive queues of the four sockets,
which ``/proc/net/tcp`` shows for every socket on the machine) or in kproxy's own
memory. So what kproxy holds is what was sent, less what the client read, less what the
kernel holds — counted from the outside, without asking kproxy.

kproxy's bound (``docs/upstream-connections.md`` §7): 64 KiB waiting for the client in
the upstream connection plus one 64 KiB decrypted read, 16 KiB encrypted in the TLS layer
plus one 32 KiB socket read, one TLS record's worth inside OpenSSL, and the client's write
buffer (64 KiB high-water mark plus one 64 KiB piece). Before the TLS reads were bounded,
each read after a pause could take 256 KiB from the socket and decrypt all of it.

Only bounds, no timing assertions: every wait is a hang guard.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import sys
from pathlib import Path

import pytest

from kproxy.testing.certs import TestPKI
from tests.conftest import StartKproxy
from tests.loopback import LoopbackServer

GUARD = 60.0  # seconds; hang guards only
ANSWER = 32 << 20
PIECE = 16 * 1024
KIB = 1024
# The sum of the bounds above, and a TLS record of slack for the unit conversion
# (the kernel's queues count encrypted bytes, the stand-in counts plain ones).
BOUND = (64 + 64) * KIB + (16 + 32) * KIB + 16 * KIB + (64 + 64) * KIB + 16 * KIB

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net/tcp (Linux)")


class Answering(LoopbackServer):
    """Any request gets a 32 MiB answer over TLS; ``sent`` counts the body bytes the TLS
    layer took, ``transport`` is kept to ask what still waits in it."""

    def __init__(self, pki: TestPKI) -> None:
        self._pki = pki
        self.sent = 0
        self.transport: asyncio.BaseTransport | None = None

    def _context(self) -> ssl.SSLContext:
        return self._pki.server_ssl_context(client_certs=False)

    def kubeconfig(self, directory: Path) -> Path:
        ca = base64.b64encode(self._pki.ca_pem).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "clusters": [
                {"name": "c", "cluster": {"server": f"https://127.0.0.1:{self.port}", "certificate-authority-data": ca}}
            ],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        }
        path = directory / "kubeconfig"
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        piece = b"x" * PIECE
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.transport = writer.transport
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n")
            writer.write(b"Content-Length: %d\r\n\r\n" % ANSWER)
            for _ in range(ANSWER // PIECE):
                writer.write(piece)
                self.sent += PIECE
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def tcp_queues() -> dict[tuple[int, int], tuple[int, int]]:
    """(local port, remote port) → (send queue, receive queue) of established IPv4
    sockets on loopback, from ``/proc/net/tcp``."""
    queues = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, tx_rx = fields[1], fields[2], fields[3], fields[4]
        if state != "01" or not local.startswith("0100007F:"):  # ESTABLISHED, 127.0.0.1
            continue
        tx, rx = (int(n, 16) for n in tx_rx.split(":"))
        queues[(int(local.split(":")[1], 16), int(remote.split(":")[1], 16))] = (tx, rx)
    return queues


async def until_stalled(answering: Answering) -> None:
    """Until the stand-in has sent nothing for a second (checked every 0.1 s)."""
    last, still = -1, 0
    for _ in range(int(GUARD / 0.1)):
        await asyncio.sleep(0.1)
        still = still + 1 if answering.sent == last else 0
        last = answering.sent
        if still >= 10:
            return
    raise AssertionError("the API server stand-in never stopped sending")


async def test_an_unread_answer_stalls_the_api_server_with_little_held_in_kproxy(
    pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    async with Answering(pki) as answering:
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(answering.kubeconfig(tmp_path)))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before connecting: a fixed buffer (no autotuning) takes little of the answer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KIB)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, ("127.0.0.1", kp.port))
            await loop.sock_sendall(
                sock, b"GET /api/v1/namespaces/default/configmaps/big HTTP/1.1\r\nHost: localhost\r\n\r\n"
            )
            received = b""
            while b"\r\n\r\n" not in received:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4 * KIB), GUARD)
                assert data, "kproxy closed the connection before the head"
                received += data
            head, _, body = received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            await until_stalled(answering)

            assert 0 < answering.sent < ANSWER  # held back: the answer did not all leave
            client_port = sock.getsockname()[1]
            queues = tcp_queues()
            upstream = [ports for ports in queues if ports[1] == answering.port]
            assert len(upstream) == 1, upstream  # kproxy's one connection to the stand-in
            kproxy_up = upstream[0]
            server_side = (answering.port, kproxy_up[0])
            kproxy_down = (kp.port, client_port)
            client = (client_port, kp.port)
            in_kernel = (
                queues[server_side][0]  # sent by the stand-in, not yet taken by kproxy's kernel
                + queues[kproxy_up][1]  # arrived, not yet read by kproxy
                + queues[kproxy_down][0]  # written by kproxy, not yet taken by the client's kernel
                + queues[client][1]  # arrived, not yet read by the client
            )
            assert answering.transport is not None
            in_stand_in = answering.transport.get_write_buffer_size()  # type: ignore[attr-defined]
            held = answering.sent - in_stand_in - in_kernel - len(body)
            assert held <= BOUND, (held, answering.sent, in_stand_in, in_kernel, len(body))
        finally:
            sock.close()
