"""The metrics tests run the app with its job queue faked at the seam, and S3/SQS on moto."""

from __future__ import annotations

import pytest

from tests.fakes.jobs import RecordingJobQueue
from tests.recordings.conftest import moto_server, notified_bucket

__all__ = ["moto_server", "notified_bucket"]


@pytest.fixture
def jobs() -> RecordingJobQueue:
    return RecordingJobQueue()
