"""Transcript operations, scoped to what the caller may see (transcripts.access). Callers own
the session and commit.

Someone else's transcript is "not found", never "forbidden": its existence is not told."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from reflector.auth.models import User
from reflector.db.base import utcnow
from reflector.errors import AppError, Conflict, InvalidInput
from reflector.pagination import keyset_page
from reflector.pipeline.types import Segment, TranscriptDocument
from reflector.recordings.storage import Storage
from reflector.rooms import service as rooms
from reflector.rooms.models import Room
from reflector.transcripts.access import owned_transcript
from reflector.transcripts.models import Transcript, TranscriptStatus
from reflector.transcripts.processing import delete_objects
from reflector.transcripts.schemas import SpeakerMerge, SpeakerRename, TranscriptUpdate
from reflector.transcripts.search import drop_from_index, index_transcript

RENAMED_BY_OWNER = "renamed by the owner"
# Optimistic concurrency: a PATCH that raced another is redone on the fresh row this often.
_EDIT_ATTEMPTS = 3


async def get_transcript(session: AsyncSession, user: User, transcript_id: str) -> Transcript:
    """The caller's own transcript (NotFound otherwise); access.readable_transcript also
    accepts shared ones."""
    return await owned_transcript(session, user, transcript_id)


async def room_of(session: AsyncSession, user: User, ref: str, field: str) -> Room:
    """One of the caller's rooms by id or name, for a parameter named `field` (422 if none)."""
    try:
        return await rooms.get_room(session, user, ref)
    except AppError:
        raise InvalidInput(
            f"Invalid request: {field}: no room '{ref}' among yours; give the id or the name "
            "of one of your rooms (GET /v1/rooms lists them)."
        ) from None


async def list_transcripts(
    session: AsyncSession,
    user: User,
    *,
    room: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Transcript], str | None]:
    """The caller's transcripts, newest first; `since` inclusive, `until` exclusive (on
    created_at)."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput(
            f"Invalid request: since ({since.isoformat()}) must be before until "
            f"({until.isoformat()})."
        )
    # The document is the bulk of a row, and a listing does not show it.
    query = (
        select(Transcript).options(defer(Transcript.document)).where(Transcript.owner_id == user.id)
    )
    if room is not None:
        query = query.where(Transcript.room_id == (await room_of(session, user, room, "room")).id)
    if status is not None:
        query = query.where(Transcript.status == status)
    if since is not None:
        query = query.where(Transcript.created_at >= since)
    if until is not None:
        query = query.where(Transcript.created_at < until)
    return await keyset_page(
        session, query, Transcript, limit=limit, cursor=cursor, newest_first=True
    )


async def delete_transcript(
    session: AsyncSession, user: User, transcript_id: str, derived: Storage
) -> None:
    """Delete one of the caller's transcripts (remove_transcript). DELETE
    /v1/transcripts/{id} goes through retention.deletion, which also applies the raw
    recording's retention policy."""
    transcript = await owned_transcript(session, user, transcript_id)
    await remove_transcript(session, transcript, derived)


async def remove_transcript(
    session: AsyncSession, transcript: Transcript, derived: Storage
) -> None:
    """Remove the transcript's derived objects (audio, step outputs, exports, an uploaded
    source), its search entry and its row; the one way a transcript goes (by its owner or by
    retention). A room recording it came from stays in its bucket."""
    # Objects first: if this stops half way, the row is still there to delete again.
    await delete_objects(derived, transcript)
    await drop_from_index(await session.connection(), transcript.id)
    await session.delete(transcript)
    await session.flush()


async def update_transcript(
    session: AsyncSession, user: User, transcript_id: str, data: TranscriptUpdate
) -> Transcript:
    """Apply a PATCH: title, share mode, speaker renames and merges, written at once."""
    for _attempt in range(_EDIT_ATTEMPTS):
        transcript = await owned_transcript(session, user, transcript_id)
        values: dict[str, object] = {}
        if data.share_mode is not None:
            values["share_mode"] = data.share_mode
        edits_document = data.title is not None or data.speakers or data.merge
        doc: TranscriptDocument | None = None
        if edits_document:
            doc = _ended_document(transcript)
            doc = edit_document(doc, title=data.title, renames=data.speakers, merges=data.merge)
            values["document"] = doc.model_dump_json()
            values["title"] = doc.title
        if not values:
            return transcript
        values["updated_at"] = utcnow()
        written = await session.execute(
            update(Transcript)
            .where(Transcript.id == transcript.id, Transcript.updated_at == transcript.updated_at)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if written.rowcount == 0:  # type: ignore[attr-defined]
            # Another change landed between our read and our write: start again from it.
            await session.rollback()
            continue
        if doc is not None:
            await index_transcript(await session.connection(), transcript.id, user.id, doc)
        await session.refresh(transcript)
        return transcript
    raise Conflict(
        f"Transcript '{transcript_id}' kept changing while this edit was applied; send it again."
    )


def _ended_document(transcript: Transcript) -> TranscriptDocument:
    if transcript.status != TranscriptStatus.ended.value or not transcript.document:
        state = (
            "failed, so it has no content to edit"
            if transcript.status == TranscriptStatus.error.value
            else "is still being processed; edit it once its status is 'ended'"
        )
        raise Conflict(
            f"Transcript '{transcript.id}' {state}. Its share_mode can be changed meanwhile."
        )
    return TranscriptDocument.model_validate_json(transcript.document)


def edit_document(
    doc: TranscriptDocument,
    *,
    title: str | None = None,
    renames: Iterable[SpeakerRename] | None = None,
    merges: Iterable[SpeakerMerge] | None = None,
) -> TranscriptDocument:
    """The document with a new title, speakers renamed, and speakers merged.

    A merge moves every word and segment of `from` onto `into`, joins segments that became
    neighbours of one speaker, and drops `from` from the speakers. Merges chain (1 into 2 and
    2 into 3: both into 3). A renamed speaker gets `named_from` "renamed by the owner"; an
    action item owned by a speaker's old name follows the rename or merge. Raises
    InvalidInput with a sentence for ids that are not the document's speakers, a speaker merged
    into itself or into two others, a merge cycle, and a rename of a merged speaker to a name
    other than the one it ends up with."""
    renames = list(renames or ())
    merges = list(merges or ())
    known = {speaker.id: speaker for speaker in doc.speakers}
    listed = ", ".join(str(i) for i in sorted(known)) or "none"

    def check_known(speaker_id: int, where: str) -> None:
        if speaker_id not in known:
            raise InvalidInput(
                f"Invalid request: {where}: there is no speaker {speaker_id} in this "
                f"transcript; its speakers are {listed}."
            )

    new_names: dict[int, str] = {}
    for n, rename in enumerate(renames):
        check_known(rename.id, f"speakers.{n}.id")
        if new_names.get(rename.id, rename.name) != rename.name:
            raise InvalidInput(
                f"Invalid request: speakers.{n}: speaker {rename.id} is given two names "
                f"({new_names[rename.id]!r} and {rename.name!r}); give one."
            )
        new_names[rename.id] = rename.name

    target: dict[int, int] = {}
    for n, merge in enumerate(merges):
        check_known(merge.from_, f"merge.{n}.from")
        check_known(merge.into, f"merge.{n}.into")
        if merge.from_ == merge.into:
            raise InvalidInput(
                f"Invalid request: merge.{n}: speaker {merge.from_} cannot be merged into "
                "itself; name two different speakers."
            )
        if target.get(merge.from_, merge.into) != merge.into:
            raise InvalidInput(
                f"Invalid request: merge.{n}: speaker {merge.from_} is merged into both "
                f"{target[merge.from_]} and {merge.into}; choose one."
            )
        target[merge.from_] = merge.into

    def final(speaker_id: int) -> int:
        seen = {speaker_id}
        while speaker_id in target:
            speaker_id = target[speaker_id]
            if speaker_id in seen:
                raise InvalidInput(
                    "Invalid request: merge: the merges form a cycle "
                    f"({' -> '.join(str(i) for i in sorted(seen))}); every chain of merges "
                    "must end in a speaker that is kept."
                )
            seen.add(speaker_id)
        return speaker_id

    into = {speaker_id: final(speaker_id) for speaker_id in known}

    def name_of(speaker_id: int) -> str:
        return new_names.get(speaker_id, known[speaker_id].name)

    for n, rename in enumerate(renames):
        kept = into[rename.id]
        if kept != rename.id and rename.name != name_of(kept):
            raise InvalidInput(
                f"Invalid request: speakers.{n}: speaker {rename.id} is merged into speaker "
                f"{kept}, so it cannot also be renamed to {rename.name!r}; rename speaker "
                f"{kept} instead."
            )

    # Old name -> new name, for action items ("owner" is a name, not an id).
    owner_names: dict[str, str] = {}
    for speaker_id, speaker in known.items():
        kept_name = name_of(into[speaker_id])
        if kept_name != speaker.name:
            owner_names.setdefault(speaker.name, kept_name)

    speakers = [
        speaker.model_copy(update={"name": new_names[speaker.id], "named_from": RENAMED_BY_OWNER})
        if speaker.id in new_names
        else speaker
        for speaker in doc.speakers
        if into[speaker.id] == speaker.id
    ]
    words = [
        word.model_copy(update={"speaker": into[word.speaker]})
        if word.speaker is not None and into.get(word.speaker, word.speaker) != word.speaker
        else word
        for word in doc.words
    ]
    action_items = [
        item.model_copy(update={"owner": owner_names[item.owner]})
        if item.owner is not None and item.owner in owner_names
        else item
        for item in doc.action_items
    ]
    return doc.model_copy(
        update={
            "title": title if title is not None else doc.title,
            "speakers": speakers,
            "words": words,
            "segments": _merged_segments(doc.segments, into) if target else doc.segments,
            "action_items": action_items,
        }
    )


def _merged_segments(segments: list[Segment], into: dict[int, int]) -> list[Segment]:
    """Segments with their speakers mapped; neighbours that now share a speaker, and did not
    before, become one (neighbours of one speaker that the assembly kept apart stay apart)."""
    merged: list[Segment] = []
    last_original: int | None = None
    for segment in sorted(segments, key=lambda s: (s.start, s.end)):
        speaker = into.get(segment.speaker, segment.speaker)
        if (
            merged
            and merged[-1].speaker == speaker
            and last_original is not None
            and last_original != segment.speaker
        ):
            previous = merged[-1]
            merged[-1] = Segment(
                speaker=speaker,
                start=previous.start,
                end=max(previous.end, segment.end),
                text=" ".join(t for t in (previous.text.strip(), segment.text.strip()) if t),
            )
        else:
            merged.append(segment.model_copy(update={"speaker": speaker}))
        last_original = segment.speaker
    return merged
