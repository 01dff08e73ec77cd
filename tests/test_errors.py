"""kproxy.errors.fresh: a stored error raised again as a copy, without its traceback."""

from __future__ import annotations

import pytest

from kproxy.errors import UpstreamError, fresh
from kproxy.upstream.h2_connection import StreamRefused


@pytest.mark.parametrize("error", [UpstreamError("cut short", "reset"), StreamRefused("refused", "protocol")])
def test_a_fresh_error_is_the_same_error_without_its_traceback(error: UpstreamError) -> None:
    try:
        raise error
    except UpstreamError as raised:
        assert raised.__traceback__ is not None
    copy = fresh(error)
    assert copy is not error and type(copy) is type(error)
    assert (copy.message, copy.cause, copy.status, str(copy)) == (error.message, error.cause, 502, str(error))
    assert copy.__traceback__ is None
