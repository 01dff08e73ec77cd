"""Audit-IDs for the requests kproxy sends upstream without one of the client's.

kube-apiserver takes a request's ``Audit-ID`` header as the audit ID of the request (and
echoes it in the answer; it makes one up when there is none: k8s.io/apiserver
``WithAuditInit``). kproxy sends one with every request, so that the same id finds the
request in kproxy's access log and in the API server's audit log.

In: a source of random bytes (``os.urandom``; the caller passes it). Out: header lines
``Audit-Id: xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx\\r\\n\\r\\n`` that end a request head, each a
different version-4 UUID (RFC 9562 §5.4). They are made 256 at a time: 114 random bits
per batch, and the last two hex digits count through the batch. Unique, not guessable
without seeing one, and cheap where it matters: on the fast path, where the head is
otherwise reused as it is, taking the next line is one ``list.pop`` (:attr:`AuditIds.take`).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["AUDIT_HEADER", "LINE_LENGTH", "AuditIds", "id_of"]

AUDIT_HEADER = b"audit-id"  # lowercase, for comparisons
_NAME = b"Audit-Id: "  # Go's canonical form of the API server's "Audit-ID"
# The whole line a fresh id adds at the end of a head, the head's final CRLF included.
LINE_LENGTH = len(_NAME) + 36 + 4
# The last two hex digits of the ids of a batch, with the end of the line.
_TAILS = tuple(b"%02x\r\n\r\n" % i for i in range(256))


class AuditIds:
    """Fresh Audit-Id lines (see the module docstring).

    ``line()`` gives the next one. The hot path calls ``take()`` itself (a bound
    ``list.pop``, no Python frame) and, when it raises ``IndexError`` because a batch is
    used up, ``refill()``, which makes the next batch and gives its first line.
    """

    __slots__ = ("_lines", "_random", "take")

    def __init__(self, random: Callable[[int], bytes]) -> None:
        self._random = random
        self._lines: list[bytes] = []
        self.take = self._lines.pop

    def line(self) -> bytes:
        try:
            return self.take()
        except IndexError:
            return self.refill()

    def refill(self) -> bytes:
        h = self._random(16).hex()
        # 8-4-4-4-12: the version nibble is 4, the variant's top bits 10.
        variant = "89ab"[int(h[15], 16) & 3]
        head = _NAME + f"{h[0:8]}-{h[8:12]}-4{h[12:15]}-{variant}{h[16:19]}-{h[19:29]}".encode()
        self._lines[:] = [head + tail for tail in _TAILS]  # in place: ``take`` stays bound to it
        return self.take()


def id_of(line: bytes) -> bytes:
    """The id in a line from :class:`AuditIds` (or in a head that such a line ends)."""
    return line[-40:-4]
