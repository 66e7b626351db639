from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from reflector.meetings.models import Meeting, MeetingSession, Participant


class ParticipantOut(BaseModel):
    participant_id: str
    display_name: str | None
    role_name: str | None
    present: bool
    joined_at: datetime | None
    left_at: datetime | None


class SessionOut(BaseModel):
    session_id: str
    started_at: datetime | None
    ended_at: datetime | None


class MeetingOut(BaseModel):
    id: str
    room_id: str
    room_name: str
    platform: str
    platform_meeting_id: str
    platform_room_name: str
    room_url: str
    # Only for the room's owner: it lets whoever holds it act as host.
    host_room_url: str | None
    start_date: datetime
    end_date: datetime
    room_settings: dict[str, Any]
    is_active: bool
    ended_at: datetime | None
    end_reason: str | None
    num_clients: int
    num_clients_by_role: dict[str, int]
    participants: list[ParticipantOut]
    sessions: list[SessionOut]
    created_at: datetime

    @classmethod
    def build(
        cls,
        meeting: Meeting,
        *,
        room_name: str,
        participants: list[Participant],
        sessions: list[MeetingSession],
        is_owner: bool,
    ) -> MeetingOut:
        return cls(
            id=meeting.id,
            room_id=meeting.room_id,
            room_name=room_name,
            platform=meeting.platform,
            platform_meeting_id=meeting.platform_meeting_id,
            platform_room_name=meeting.platform_room_name,
            room_url=meeting.room_url,
            host_room_url=meeting.host_room_url if is_owner else None,
            start_date=meeting.start_date,
            end_date=meeting.end_date,
            room_settings=meeting.room_settings,
            is_active=meeting.is_active,
            ended_at=meeting.ended_at,
            end_reason=meeting.end_reason,
            num_clients=meeting.num_clients,
            num_clients_by_role=meeting.num_clients_by_role,
            participants=[
                ParticipantOut(
                    participant_id=p.participant_id,
                    display_name=p.display_name,
                    role_name=p.role_name,
                    present=p.present,
                    joined_at=p.joined_at,
                    left_at=p.left_at,
                )
                for p in participants
            ],
            sessions=[
                SessionOut(session_id=s.session_id, started_at=s.started_at, ended_at=s.ended_at)
                for s in sessions
            ],
            created_at=meeting.created_at,
        )
