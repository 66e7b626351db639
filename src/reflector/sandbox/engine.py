"""The sandbox's behaviour: meetings are created and deleted, people join and leave, sessions
start and end, the cloud recorder comes and goes, and each step sends the webhook Whereby would.

Rules acted out (the Whereby guide's, and the sandbox's choices where it is silent):
- Sessions count people, not the recorder: one starts when two or more people are in the room
  and ends `session_end_delay_seconds` after fewer than two remain (at once on DELETE).
- The recorder (roleName `recorder`) joins on the first join (`automatic`), on the second
  (`automatic-2nd-participant`) or by control call; it is counted in numClients. It leaves when
  the last person leaves, when the meeting is deleted or by control call; the file is then
  encoded and stored in the background and `recording.finished` follows."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path
from typing import Any

from reflector.logs import get_logger
from reflector.sandbox.activity import Activity
from reflector.sandbox.config import SandboxConfig
from reflector.sandbox.errors import bad_request, conflict
from reflector.sandbox.media import encode_recording
from reflector.sandbox.meeting_request import MeetingRequest
from reflector.sandbox.names import human_short_name
from reflector.sandbox.state import (
    PARTICIPANT_ROLES,
    RECORDER,
    Meeting,
    Participant,
    Recording,
    SandboxState,
    Theme,
)
from reflector.sandbox.storage import store_recording
from reflector.sandbox.times import utcnow
from reflector.sandbox.webhooks import WebhookSender

ROOM_CAPACITY = {"normal": 4, "group": 200}
RECORDER_NAME = "Recorder"

_log = get_logger("reflector.sandbox")


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.state = SandboxState()
        self.activity = Activity()
        self.webhooks: WebhookSender | None = None
        if config.webhook_url and config.webhook_secret:
            self.webhooks = WebhookSender(
                config.webhook_url,
                config.webhook_secret,
                config.webhook_timeout_seconds,
                self.activity,
            )

    # Meetings

    def create_meeting(self, request: MeetingRequest) -> Meeting:
        state = self.state
        room_name = self._new_room_name(request)
        meeting = Meeting(
            meeting_id=state.new_meeting_id(),
            seq=state.next_seq(),
            room_name=room_name,
            room_url=self.config.base_url + room_name,
            start_date=utcnow(),
            request=request,
            host_room_key=secrets.token_urlsafe(24),
            viewer_room_key=secrets.token_urlsafe(24),
        )
        state.add_meeting(meeting)
        return meeting

    def _new_room_name(self, request: MeetingRequest) -> str:
        while True:
            if request.room_name_pattern == "human-short":
                suffix = human_short_name()
            else:
                suffix = str(uuid.uuid4())
            name = f"/{request.room_name_prefix}{suffix}"
            if name not in self.state.rooms:
                return name

    def delete_meeting(self, meeting_id: str) -> bool:
        """End a meeting at once (everyone leaves); False when the id was never known."""
        meeting = self.state.live_meeting(meeting_id)
        if meeting is None:
            return meeting_id in self.state.deleted_meeting_ids
        for person in meeting.people:
            self._leave(meeting, person, immediate=True)
        if meeting.recording is not None:
            self._stop_recording(meeting)
        if meeting.session is not None:
            self._end_session(meeting)
        self.state.forget_meeting(meeting)
        return True

    # Participants

    def join(
        self,
        meeting: Meeting,
        display_name: str,
        role_name: str = "visitor",
        external_id: str | None = None,
        metadata: str | None = None,
        is_dial_in: bool = False,
    ) -> Participant:
        if role_name == RECORDER:
            raise bad_request("Start the recorder with the recording route, not as a participant")
        if role_name not in PARTICIPANT_ROLES:
            raise bad_request(
                f'"roleName" must be one of {", ".join(sorted(PARTICIPANT_ROLES))} '
                f"(got {role_name!r})"
            )
        capacity = ROOM_CAPACITY[meeting.request.room_mode]
        if len(meeting.people) >= capacity:
            raise conflict(f"The room is full ({meeting.request.room_mode} rooms hold {capacity})")
        participant = self._add(meeting, display_name, role_name, external_id, metadata, is_dial_in)
        started = False
        if len(meeting.people) >= 2:
            self._cancel_session_end(meeting)
            if meeting.session is None:
                self.state.open_session(meeting, utcnow())
                started = True
        self._emit_client(meeting, "room.client.joined", participant)
        if started:
            self._emit_session(meeting, "room.session.started")
        self._autostart_recording(meeting)
        return participant

    def leave(self, meeting: Meeting, participant_id: str) -> Participant | None:
        """Make a participant leave; None when no such participant is in the room."""
        participant = meeting.participants.get(participant_id)
        if participant is None:
            return None
        if participant.is_recorder:
            self._stop_recording(meeting)
        else:
            self._leave(meeting, participant, immediate=False)
        return participant

    def _add(
        self,
        meeting: Meeting,
        display_name: str,
        role_name: str,
        external_id: str | None,
        metadata: str | None,
        is_dial_in: bool,
    ) -> Participant:
        participant = Participant(
            participant_id=str(uuid.uuid4()),
            display_name=display_name,
            role_name=role_name,
            external_id=external_id,
            metadata=metadata,
            is_dial_in=is_dial_in,
            joined_at=utcnow(),
        )
        meeting.participants[participant.participant_id] = participant
        return participant

    def _leave(self, meeting: Meeting, participant: Participant, *, immediate: bool) -> None:
        del meeting.participants[participant.participant_id]
        self._emit_client(meeting, "room.client.left", participant)
        if meeting.session is not None and len(meeting.people) < 2:
            self._schedule_session_end(meeting, immediate=immediate)
        if not meeting.people and meeting.recording is not None:
            self._stop_recording(meeting)

    # Sessions

    def _schedule_session_end(self, meeting: Meeting, *, immediate: bool) -> None:
        delay = self.config.session_end_delay_seconds
        if immediate or delay <= 0:
            self._end_session(meeting)
        elif meeting.session_end_timer is None:
            loop = asyncio.get_running_loop()
            meeting.session_end_timer = loop.call_later(delay, self._session_end_due, meeting)

    def _session_end_due(self, meeting: Meeting) -> None:
        meeting.session_end_timer = None
        if meeting.session is not None and len(meeting.people) < 2 and not meeting.deleted:
            self._end_session(meeting)

    def _cancel_session_end(self, meeting: Meeting) -> None:
        if meeting.session_end_timer is not None:
            meeting.session_end_timer.cancel()
            meeting.session_end_timer = None

    def _end_session(self, meeting: Meeting) -> None:
        self._cancel_session_end(meeting)
        session = meeting.session
        if session is None:
            return
        session.ended_at = utcnow()
        self._emit_session(meeting, "room.session.ended")
        meeting.session = None

    # Recording

    def start_recording(self, meeting: Meeting) -> Recording:
        if not meeting.request.recording.cloud:
            raise conflict(
                'This meeting does not record to the cloud (recording.type is not "cloud")'
            )
        if meeting.recording is not None:
            raise conflict("A recording is already running in this meeting")
        if not meeting.people:
            raise conflict("Nobody is in the room to record")
        return self._start_recording(meeting)

    def stop_recording(self, meeting: Meeting) -> Recording:
        if meeting.recording is None:
            raise conflict("No recording is running in this meeting")
        return self._stop_recording(meeting)

    def set_audio_file(self, meeting: Meeting, path: Path) -> None:
        # Resolved now: encoding happens later, and the working directory may change.
        path = path.expanduser().resolve()
        if not path.is_file():
            raise bad_request(f"{path} is not a file")
        meeting.audio_file = path

    def _autostart_recording(self, meeting: Meeting) -> None:
        spec = meeting.request.recording
        if not spec.cloud or meeting.recording is not None:
            return
        people = len(meeting.people)
        if (spec.start_trigger == "automatic" and people == 1) or (
            spec.start_trigger == "automatic-2nd-participant" and people == 2
        ):
            self._start_recording(meeting)

    def _start_recording(self, meeting: Meeting) -> Recording:
        recorder = self._add(meeting, RECORDER_NAME, RECORDER, None, None, False)
        recording = Recording(
            recording_id=str(uuid.uuid4()),
            meeting_id=meeting.meeting_id,
            room_name=meeting.room_name,
            recorder_id=recorder.participant_id,
            started_at=recorder.joined_at,
            audio_file=meeting.audio_file or self.config.audio_file,
            destination=meeting.request.recording.destination,
        )
        meeting.recording = recording
        self.state.recordings.append(recording)
        self._emit_client(meeting, "room.client.joined", recorder)
        return recording

    def _stop_recording(self, meeting: Meeting) -> Recording:
        recording = meeting.recording
        assert recording is not None
        meeting.recording = None
        recording.ended_at = utcnow()
        recording.status = "processing"
        recorder = meeting.participants.pop(recording.recorder_id, None)
        if recorder is not None:
            self._emit_client(meeting, "room.client.left", recorder)
        self.activity.spawn(self._finish_recording(recording))
        return recording

    async def _finish_recording(self, recording: Recording) -> None:
        destination = recording.destination
        extension = destination.extension if destination is not None else "mp4"
        try:
            data = await asyncio.to_thread(encode_recording, recording.audio_file, extension)
            stored = await asyncio.to_thread(
                store_recording,
                self.config,
                destination,
                recording.room_name,
                recording.started_at,
                data,
            )
        except Exception as exc:
            recording.status = "failed"
            recording.error = f"{exc.__class__.__name__}: {exc}"
            _log.warning(
                "sandbox recording failed",
                recording_id=recording.recording_id,
                error=recording.error,
            )
            return
        recording.status = "completed"
        recording.bucket = stored.bucket
        recording.key = stored.key
        recording.location = stored.location
        self._emit(
            recording.meeting_id,
            "recording.finished",
            {
                "recordingId": recording.recording_id,
                "filename": stored.filename,
                "roomName": recording.room_name,
                "status": "completed",
                "meetingId": recording.meeting_id,
            },
        )

    # Room theme

    def theme(self, meeting: Meeting) -> Theme:
        return self.state.themes.setdefault(meeting.room_name, Theme())

    # Webhooks

    def _emit(self, meeting_id: str, event_type: str, data: dict[str, Any]) -> None:
        if self.webhooks is not None:
            self.webhooks.enqueue(meeting_id, event_type, data)

    def _emit_client(self, meeting: Meeting, event_type: str, participant: Participant) -> None:
        session = meeting.session
        self._emit(
            meeting.meeting_id,
            event_type,
            {
                "meetingId": meeting.meeting_id,
                "roomName": meeting.room_name,
                "roomSessionId": session.room_session_id if session is not None else None,
                "participantId": participant.participant_id,
                "displayName": participant.display_name,
                "externalId": participant.external_id,
                "metadata": participant.metadata,
                "roleName": participant.role_name,
                "numClients": len(meeting.participants),
                "numClientsByRoleName": meeting.role_counts(),
                "isDialIn": participant.is_dial_in,
                "subdomain": self.config.subdomain,
            },
        )

    def _emit_session(self, meeting: Meeting, event_type: str) -> None:
        assert meeting.session is not None
        self._emit(
            meeting.meeting_id,
            event_type,
            {
                "meetingId": meeting.meeting_id,
                "roomName": meeting.room_name,
                "roomSessionId": meeting.session.room_session_id,
                "subdomain": self.config.subdomain,
            },
        )

    # Lifecycle

    async def wait_idle(self, within: float) -> bool:
        """True once every queued webhook is delivered (or given up) and every recording is
        stored; False when `within` seconds pass first. Pending session ends are not waited
        for."""
        return await self.activity.wait_idle(within)

    async def reset(self) -> None:
        """Forget all meetings, requests, recordings and deliveries; stop work in progress."""
        await self._cancel_work()
        if self.webhooks is not None:
            self.webhooks.deliveries.clear()
        self.state.reset()

    async def aclose(self) -> None:
        await self._cancel_work()
        if self.webhooks is not None:
            await self.webhooks.aclose()

    async def _cancel_work(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.cancel()
        await self.activity.cancel_all()
        self.activity.clear()
