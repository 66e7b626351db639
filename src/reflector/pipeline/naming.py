"""Puts participants' names on diarized voices, using nothing but the times each participant
was in the meeting. A wrong name is worse than none, so a voice keeps "Speaker N" unless the
presence record leaves one explanation.

The rule, per voice (its speech time is the union of its words' [start, end]):

1. Alone: the voice spoke at least `MIN_SPEECH_S` seconds, and during at least
   `MIN_FRACTION` of its speech exactly one participant was present, always the same one.
   The tolerance absorbs join and leave times logged a little early or late.
2. Elimination: there are other voices and rule 1 matched every one of them, this voice
   spoke at least `MIN_SPEECH_S` seconds, and of the participants not matched to another
   voice exactly one was present for at least `MIN_FRACTION` of its speech. A lone voice is
   never named this way: it may be several people the diarizer could not tell apart.

Two voices that rule 1 matches to the same participant (one person split by the diarizer, or
two people sharing a device) are both left unnamed. Moments when two or more participants were
present never count for rule 1, however often the voice spoke then.

Every participant counts as a possible voice, so the caller leaves recording bots out.
Participants are told apart by `participant_id`; a participant's intervals (rejoins) are
unioned, and its name is the one on its latest interval, whitespace trimmed and collapsed.
Participants with the same name (ignoring case) who were never in the meeting together are
taken as one person who rejoined under a new id; that only pools evidence for a name they
share. Same-named participants present together are different people; if both are matched,
the one who joined later is named "Name (2)", and so on. A participant without a name still
counts as present, but its voice keeps "Speaker N". No two speakers end up with the same
name, ignoring case: a participant name equal to another voice's "Speaker N" is dropped.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from reflector.pipeline.assemble import default_speaker_name
from reflector.pipeline.types import Assembly, PresenceInterval, Speaker

MIN_FRACTION = 0.9
MIN_SPEECH_S = 5.0
NAMED_ALONE = "only participant present while this voice spoke"
NAMED_BY_ELIMINATION = "only participant left, present while this voice spoke; other voices named"

# Interval ends meeting within this are touching, not overlapping: a leave and the rejoin
# under a new id are logged by different events.
_REJOIN_OVERLAP_S = 2.0

Interval = tuple[float, float]


@dataclass
class _Participant:
    name: str
    first_seen: float
    key: str  # smallest participant_id, to order participants deterministically
    intervals: list[Interval] = field(default_factory=list)


@dataclass(frozen=True)
class _Match:
    participant: int
    reason: str


def name_speakers(assembly: Assembly, presence: Sequence[PresenceInterval]) -> Assembly:
    participants = _participants(presence)
    speech = _speech(assembly)
    timeline = _Timeline(participants)
    evidence = {s.id: timeline.measure(speech.get(s.id, [])) for s in assembly.speakers}

    matches: dict[int, _Match] = {}
    claimed: dict[int, list[int]] = {}
    for speaker in assembly.speakers:
        ev = evidence[speaker.id]
        if ev.total < MIN_SPEECH_S:
            continue
        for p, seconds in ev.alone.items():
            if seconds >= MIN_FRACTION * ev.total:
                claimed.setdefault(p, []).append(speaker.id)
    for p, speakers in claimed.items():
        if len(speakers) == 1:
            matches[speakers[0]] = _Match(p, NAMED_ALONE)

    unmatched = [s.id for s in assembly.speakers if s.id not in matches]
    if len(unmatched) == 1 and len(assembly.speakers) > 1:
        ev = evidence[unmatched[0]]
        taken = {m.participant for m in matches.values()}
        present = [
            p
            for p, seconds in ev.present.items()
            if p not in taken and seconds >= MIN_FRACTION * ev.total
        ]
        if ev.total >= MIN_SPEECH_S and len(present) == 1:
            matches[unmatched[0]] = _Match(present[0], NAMED_BY_ELIMINATION)

    names = _names(matches, participants, [s.id for s in assembly.speakers])
    return assembly.model_copy(
        update={
            "speakers": [
                Speaker(id=s.id, name=names[s.id][0], named_from=names[s.id][1])
                if s.id in names
                else Speaker(id=s.id, name=default_speaker_name(s.id))
                for s in assembly.speakers
            ]
        }
    )


def clean_name(name: str) -> str:
    return " ".join(name.split())


def _participants(presence: Sequence[PresenceInterval]) -> list[_Participant]:
    by_id: dict[str, list[PresenceInterval]] = {}
    for interval in presence:
        by_id.setdefault(interval.participant_id, []).append(interval)
    people: list[_Participant] = []
    for pid in sorted(by_id):
        spans = [
            (i.start, math.inf if i.end is None else i.end)
            for i in by_id[pid]
            if i.end is None or i.end > i.start
        ]
        if not spans:
            continue
        latest = max(by_id[pid], key=lambda i: (i.start, bool(clean_name(i.name))))
        people.append(
            _Participant(
                name=clean_name(latest.name),
                first_seen=min(a for a, _ in spans),
                key=pid,
                intervals=_union(spans),
            )
        )
    people.sort(key=lambda p: (p.first_seen, p.key))

    merged: list[_Participant] = []
    for person in people:
        same = None
        if person.name:
            same = next(
                (
                    m
                    for m in merged
                    if m.name.casefold() == person.name.casefold()
                    and _overlap(m.intervals, person.intervals) <= _REJOIN_OVERLAP_S
                ),
                None,
            )
        if same is None:
            merged.append(person)
        else:
            same.intervals = _union(same.intervals + person.intervals)
            # The latest name wins, as within one participant_id.
            same.name = person.name
    return merged


def _union(intervals: list[Interval]) -> list[Interval]:
    result: list[Interval] = []
    for start, end in sorted(intervals):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(result[-1][1], end))
        else:
            result.append((start, end))
    return result


def _overlap(a: list[Interval], b: list[Interval]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def _speech(assembly: Assembly) -> dict[int, list[Interval]]:
    from_words: dict[int, list[Interval]] = {}
    for word in assembly.words:
        if word.speaker is not None and word.end > word.start:
            from_words.setdefault(word.speaker, []).append((word.start, word.end))
    # Segments are coarser (they include short pauses) but are all an assembly may carry.
    from_segments: dict[int, list[Interval]] = {}
    for segment in assembly.segments:
        if segment.end > segment.start:
            from_segments.setdefault(segment.speaker, []).append((segment.start, segment.end))
    return {
        s.id: _union(from_words.get(s.id) or from_segments.get(s.id, [])) for s in assembly.speakers
    }


@dataclass
class _Evidence:
    total: float = 0.0
    alone: dict[int, float] = field(default_factory=dict)  # participant -> s alone
    present: dict[int, float] = field(default_factory=dict)  # participant -> s present


class _Timeline:
    """Who was present between consecutive join and leave times."""

    def __init__(self, participants: list[_Participant]) -> None:
        points = sorted({t for p in participants for span in p.intervals for t in span})
        self._starts = [t for t in points if t != math.inf]
        # Span k runs from _starts[k] to _starts[k + 1], the last one to infinity.
        self._present: list[set[int]] = [set() for _ in self._starts]
        for index, person in enumerate(participants):
            for start, end in person.intervals:
                first = bisect.bisect_left(self._starts, start)
                stop = bisect.bisect_left(self._starts, end)
                for k in range(first, stop):
                    self._present[k].add(index)

    def measure(self, speech: list[Interval]) -> _Evidence:
        ev = _Evidence()
        for start, end in speech:
            ev.total += end - start
            k = max(bisect.bisect_right(self._starts, start) - 1, 0)
            while k < len(self._starts) and self._starts[k] < end:
                span_end = self._starts[k + 1] if k + 1 < len(self._starts) else math.inf
                seconds = min(end, span_end) - max(start, self._starts[k])
                present = self._present[k]
                if seconds > 0:
                    for p in present:
                        ev.present[p] = ev.present.get(p, 0.0) + seconds
                    if len(present) == 1:
                        (p,) = present
                        ev.alone[p] = ev.alone.get(p, 0.0) + seconds
                k += 1
        return ev


def _names(
    matches: dict[int, _Match], participants: list[_Participant], speakers: list[int]
) -> dict[int, tuple[str, str]]:
    """Final (name, reason) per named speaker, unique case-insensitively."""
    by_name: dict[str, list[int]] = {}
    for speaker, match in matches.items():
        name = participants[match.participant].name
        if name:
            by_name.setdefault(name.casefold(), []).append(speaker)
    named: dict[int, tuple[str, str]] = {}
    for same in by_name.values():
        # Participants are ordered by first join, so the first to join keeps the plain name.
        same.sort(key=lambda s: matches[s].participant)
        for n, speaker in enumerate(same, start=1):
            name = participants[matches[speaker].participant].name
            named[speaker] = (name if n == 1 else f"{name} ({n})", matches[speaker].reason)
    # "Speaker 2" is a possible display name; it must not duplicate a voice left unnamed.
    while True:
        taken: dict[str, int] = {}
        clash = None
        for speaker in sorted(named):
            key = named[speaker][0].casefold()
            if key in taken:
                clash = speaker
                break
            taken[key] = speaker
        if clash is None:
            defaults = {default_speaker_name(s).casefold() for s in speakers if s not in named}
            clash = next((s for s in sorted(named) if named[s][0].casefold() in defaults), None)
        if clash is None:
            return named
        del named[clash]
