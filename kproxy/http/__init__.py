"""The client-facing HTTP/1.1 server; it imports nothing of kproxy's proxying.

``server`` (the factory and graceful shutdown), ``connection`` (one connection's phases,
parsing, dispatch and writing), ``messages`` (requests, bodies, and the contract a
handler may use), ``responses`` (answers), ``framing`` (the bytes of heads and bodies,
pure) and ``flow`` (backpressure both ways). The names below are what the rest of
kproxy uses.
"""

from kproxy.http.connection import ClientConnection, Phase
from kproxy.http.messages import Attachment, Body, BrokenBody, Connection, RawSink, Request, Resume
from kproxy.http.responses import (
    TEXT_PLAIN,
    Answer,
    Response,
    Sent,
    StreamResponse,
    http_date,
    http_error,
    status_line,
)
from kproxy.http.server import Admission, FastPath, Handler, HTTPServer, door_answer

__all__ = [
    "TEXT_PLAIN",
    "Admission",
    "Answer",
    "Attachment",
    "Body",
    "BrokenBody",
    "ClientConnection",
    "Connection",
    "FastPath",
    "HTTPServer",
    "Handler",
    "Phase",
    "RawSink",
    "Request",
    "Response",
    "Resume",
    "Sent",
    "StreamResponse",
    "door_answer",
    "http_date",
    "http_error",
    "status_line",
]
