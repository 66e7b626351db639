"""Whereby as a VideoPlatform: meetings through the REST client, webhooks through signature.py
and events.py."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

import httpx

from reflector.logs import get_logger
from reflector.platforms.base import (
    BadSignature,
    CreatedMeeting,
    MalformedSignature,
    MeetingRequest,
    MissingSignature,
    PlatformEvent,
    PlatformSession,
    StaleSignature,
    WebhookSecretMissing,
)
from reflector.platforms.whereby import signature
from reflector.platforms.whereby.client import WherebyClient, WherebyError
from reflector.platforms.whereby.events import iso_ms, parse_event
from reflector.settings import Settings

_log = get_logger("reflector.whereby")


def meeting_body(request: MeetingRequest, settings: Settings) -> dict[str, Any]:
    """The POST /meetings body for a room, as ../shared/whereby-api.md describes it."""
    recording: dict[str, Any] = {
        "type": request.recording_type,
        "startTrigger": request.recording_trigger,
    }
    if request.recording_type == "cloud":
        recording["destination"] = {
            "provider": "s3",
            "bucket": settings.RECORDING_STORAGE_AWS_BUCKET_NAME,
            "accessKeyId": _secret(settings.AWS_WHEREBY_ACCESS_KEY_ID),
            "accessKeySecret": _secret(settings.AWS_WHEREBY_ACCESS_KEY_SECRET),
            "fileFormat": "mp4",
        }
    return {
        "isLocked": request.is_locked,
        "roomMode": request.room_mode,
        # Whereby allows 39 characters of prefix; a 39-character room name keeps its full
        # name and loses only the separator.
        "roomNamePrefix": (request.room_name + "-")[:39],
        "roomNamePattern": "uuid",
        "endDate": iso_ms(request.end_date),
        "fields": ["hostRoomUrl"],
        "recording": recording,
    }


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


class WherebyPlatform:
    name = "whereby"

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = WherebyClient(
            http,
            api_key=_secret(settings.WHEREBY_API_KEY),
            base_url=str(settings.WHEREBY_API_URL),
            max_retries=settings.WHEREBY_MAX_RETRIES,
            retry_after_max=settings.WHEREBY_RETRY_AFTER_MAX_SECONDS,
        )
        secret = settings.WHEREBY_WEBHOOK_SECRET
        self._webhook_secret = secret.get_secret_value() if secret else None

    async def create_meeting(self, request: MeetingRequest) -> CreatedMeeting:
        meeting = await self.client.create_meeting(meeting_body(request, self.settings))
        await self._brand(meeting.room_name)
        return CreatedMeeting(
            platform_meeting_id=meeting.meeting_id,
            room_name=meeting.room_name,
            room_url=meeting.room_url,
            host_room_url=meeting.host_room_url,
            start_date=meeting.start_date,
            end_date=meeting.end_date,
        )

    async def _brand(self, room_name: str) -> None:
        """Apply the configured logo and colours. A failure here leaves an unbranded but
        working room, so it is logged rather than raised."""
        settings = self.settings
        try:
            if settings.WHEREBY_BRAND_LOGO_PATH is not None:
                path = settings.WHEREBY_BRAND_LOGO_PATH
                content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                await self.client.set_room_logo(
                    room_name, path.read_bytes(), path.name, content_type
                )
            colors = (
                settings.WHEREBY_BRAND_COLOR_PRIMARY,
                settings.WHEREBY_BRAND_COLOR_SECONDARY,
                settings.WHEREBY_BRAND_COLOR_FOCUS,
            )
            if any(colors):
                await self.client.set_room_colors(
                    room_name, primary=colors[0], secondary=colors[1], focus=colors[2]
                )
        except (WherebyError, OSError) as exc:
            _log.warning("could not brand the Whereby room", room=room_name, error=str(exc))

    async def end_meeting(self, platform_meeting_id: str) -> None:
        await self.client.delete_meeting(platform_meeting_id)

    async def list_sessions(self, room_name: str) -> list[PlatformSession]:
        return [
            PlatformSession(
                session_id=session.room_session_id,
                started_at=session.started_at,
                ended_at=session.ended_at,
            )
            for session in await self.client.room_sessions(room_name)
        ]

    def verify_webhook(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        if self._webhook_secret is None:
            raise WebhookSecretMissing(
                "WHEREBY_WEBHOOK_SECRET is not set, so Whereby webhooks cannot be verified; "
                "set it to the secret shown in Whereby's dashboard for this webhook."
            )
        result = signature.verify(
            body,
            headers.get(signature.HEADER),
            self._webhook_secret,
            now,
            self.settings.WHEREBY_WEBHOOK_TOLERANCE_SECONDS,
        )
        verdict = result.verdict
        if verdict is signature.Verdict.missing:
            raise MissingSignature(
                f"The {signature.HEADER} header is missing; only signed Whereby webhooks are "
                "accepted here."
            )
        if verdict is signature.Verdict.malformed:
            raise MalformedSignature(
                f"The {signature.HEADER} header is not in the form t=<unix seconds>,v1=<hex>."
            )
        if verdict is signature.Verdict.mismatch:
            raise BadSignature(
                "The signature does not match the body; check that WHEREBY_WEBHOOK_SECRET is "
                "the secret of this webhook and that nothing rewrites the body on the way."
            )
        if verdict in (signature.Verdict.too_old, signature.Verdict.too_new):
            tolerance = self.settings.WHEREBY_WEBHOOK_TOLERANCE_SECONDS
            raise StaleSignature(
                f"The signature's time is more than {tolerance} s from this server's clock "
                f"({'in the past' if verdict is signature.Verdict.too_old else 'in the future'}"
                "); check the server clock (NTP) or WHEREBY_WEBHOOK_TOLERANCE_SECONDS."
            )

    def parse_webhook(self, body: bytes) -> PlatformEvent:
        return parse_event(body)

    async def check_api(self) -> str:
        if self.settings.WHEREBY_API_KEY is None:
            return "not_configured"
        try:
            return "ok" if await self.client.check_key() else "unauthorized"
        except WherebyError as exc:
            _log.warning("Whereby API check failed", error=exc.detail)
            return "unreachable"
