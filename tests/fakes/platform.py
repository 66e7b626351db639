"""A VideoPlatform fake at the Protocol seam: meetings in memory, Whereby's webhook format."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from reflector.platforms.base import (
    CreatedMeeting,
    MeetingRequest,
    PlatformEvent,
    PlatformSession,
)
from reflector.platforms.whereby.platform import WherebyPlatform


class FakePlatform:
    """Creates meetings without a network; webhooks are checked exactly as Whereby's are."""

    def __init__(self, webhooks: WherebyPlatform, *, create_delay: float = 0.0) -> None:
        self.name = "whereby"
        self.webhooks = webhooks
        self.create_delay = create_delay
        self.created: list[MeetingRequest] = []
        self.ended: list[str] = []
        self.sessions: dict[str, list[PlatformSession]] = {}
        self.fail_sessions = False

    async def create_meeting(self, request: MeetingRequest) -> CreatedMeeting:
        self.created.append(request)
        await asyncio.sleep(self.create_delay)
        meeting_id = str(len(self.created) + 1000)
        room_name = f"/{request.room_name}-{uuid.uuid4()}"
        url = f"https://fake.whereby.test{room_name}"
        return CreatedMeeting(
            platform_meeting_id=meeting_id,
            room_name=room_name,
            room_url=url,
            host_room_url=url + "?roomKey=host",
            start_date=datetime.now(UTC),
            end_date=request.end_date,
        )

    async def end_meeting(self, platform_meeting_id: str) -> None:
        self.ended.append(platform_meeting_id)

    async def list_sessions(self, room_name: str) -> list[PlatformSession]:
        if self.fail_sessions:
            raise RuntimeError("platform unreachable")
        return self.sessions.get(room_name, [])

    def verify_webhook(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        self.webhooks.verify_webhook(body, headers, now)

    def parse_webhook(self, body: bytes) -> PlatformEvent:
        return self.webhooks.parse_webhook(body)

    async def check_api(self) -> str:
        return "ok"
