"""SPDY/3.1 framing of the fake API server (``kproxy.testing.spdy_frames``), without kubectl.

kubectl's exec, attach and port-forward over SPDY (``tests/integration/test_exec.py``)
prove the codec against the real client; this checks the dictionary every peer must
share and that frames survive encoding and decoding split at arbitrary points.
"""

from __future__ import annotations

import zlib

from kproxy.testing.spdy_frames import (
    SPDY3_DICTIONARY,
    Data,
    Frame,
    FrameDecoder,
    FrameEncoder,
    GoAway,
    Headers,
    Ping,
    RstStream,
    SynReply,
    SynStream,
)


def test_spdy_framing_round_trip() -> None:
    assert len(SPDY3_DICTIONARY) == 1423
    assert zlib.adler32(SPDY3_DICTIONARY) == 0xE3C6A7C2  # the DICTID every SPDY/3 peer checks
    encoder, decoder = FrameEncoder(), FrameDecoder()
    frames: list[Frame] = [
        SynStream(1, Headers([("streamtype", "error"), ("port", "80"), ("requestid", "0")])),
        SynStream(3, Headers([("streamtype", "data"), ("x-multi", "a"), ("x-multi", "b")]), fin=True),
        SynReply(1),
        Data(1, b"payload", fin=True),
        Data(3, b""),
        Ping(7),
        RstStream(3, 5),
        GoAway(3),
    ]
    wire = b"".join(encoder.encode(frame) for frame in frames)
    decoded = []
    for i in range(0, len(wire), 7):  # arbitrary splits: frames span reads
        decoded += decoder.feed(wire[i : i + 7])
    assert decoded == frames
    assert decoded[1].headers.getall("x-multi") == ["a", "b"]  # type: ignore[union-attr]
