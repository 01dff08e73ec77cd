"""kproxy.policy.audit_id: fresh Audit-Id lines, each a different version-4 UUID."""

from __future__ import annotations

import re
import uuid

import pytest

from kproxy.policy.audit_id import LINE_LENGTH, AuditIds, id_of

_LINE = re.compile(rb"Audit-Id: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\r\n\r\n")


@pytest.mark.parametrize("seed", [bytes(16), b"\xff" * 16, bytes(range(16)), bytes(range(100, 116))])
def test_lines_are_uuid4_and_unique(seed: bytes) -> None:
    draws = iter(bytes([n]) + seed[1:] for n in range(256))
    ids = AuditIds(lambda size: next(draws)[:size])
    lines = [ids.line() for _ in range(1000)]  # four batches
    assert all(_LINE.fullmatch(line) and len(line) == LINE_LENGTH for line in lines)
    parsed = [uuid.UUID(id_of(line).decode()) for line in lines]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(parsed)) == 1000


def test_a_batch_counts_through_its_last_two_digits_and_the_next_is_drawn_afresh() -> None:
    draws: list[int] = []

    def random(size: int) -> bytes:
        draws.append(size)
        return bytes([len(draws)]) * size

    ids = AuditIds(random)
    first = [id_of(ids.line()) for _ in range(256)]
    assert draws == [16] and sorted(i[-2:] for i in first) == [b"%02x" % n for n in range(256)]
    assert len({i[:-2] for i in first}) == 1
    after = id_of(ids.line())
    assert draws == [16, 16] and after[:-2] != first[0][:-2]


def test_take_and_refill_are_what_line_does() -> None:
    draws = iter(range(1, 10))
    ids = AuditIds(lambda size: bytes([next(draws)]) * size)
    with pytest.raises(IndexError):
        ids.take()  # nothing drawn yet
    first = ids.refill()
    assert ids.take() != first and len({ids.line() for _ in range(300)}) == 300
