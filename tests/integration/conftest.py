"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.recording_upstream import RecordingUpstream


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    """An upstream that records every request it receives, byte for byte (h11)."""
    async with RecordingUpstream() as upstream:
        yield upstream
