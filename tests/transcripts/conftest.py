"""The transcripts tests run the app with its job queue faked at the seam."""

from __future__ import annotations

import pytest

from tests.fakes.jobs import RecordingJobQueue


@pytest.fixture
def jobs() -> RecordingJobQueue:
    return RecordingJobQueue()
