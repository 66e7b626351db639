"""Joins the transcription (what was said, word by word) with the diarization (who spoke when)
into speaker-labelled words and readable segments.

Each word takes the speaker whose turns overlap its [start, end] the most (overlap summed per
speaker; a tie goes to the previous word's speaker, then to the lowest id). A zero-length word
takes a turn that contains it; a word that touches no turn takes the nearest turn in time, the
earlier one on a tie. Without any turns every word is speaker 0.

Diarization boundaries jitter by a few hundred milliseconds, which flips single words inside
one person's speech to whoever spoke just before or after. So a short run (at most
`_SMOOTH_MAX_WORDS` words spanning under `_SMOOTH_MAX_S`) between two runs of one other
speaker, with no real pause on either side, is given to that speaker. A run set off by pauses
is left alone: that is how a genuine "Yes." between someone else's sentences looks.

Segments are consecutive words of one speaker: a speaker change, or a gap between words longer
than `merge_gap`, starts a new one. A segment longer than `max_segment` seconds is cut at the
latest sentence end that keeps it under the limit (failing that a clause end, failing that a
word boundary) so the reader can navigate a monologue.

Speaker ids are then renumbered 0, 1, ... in order of first appearance in the words, and named
"Speaker N" (N = id + 1). Words keep the transcription's order. The result depends only on the
inputs.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from reflector.pipeline.types import (
    Assembly,
    Diarization,
    Segment,
    Speaker,
    SpeakerTurn,
    Transcription,
    Word,
)

MERGE_GAP_S = 1.0
MAX_SEGMENT_S = 30.0

_SMOOTH_MAX_WORDS = 2
_SMOOTH_MAX_S = 0.5
# Words inside one person's fluent speech sit closer than this; a turn change usually does not.
_SMOOTH_MAX_GAP_S = 0.5
# Overlaps within this of each other are a tie: float sums of the same turns differ in the last
# bits depending on order.
_TIE_S = 1e-9

# Written as escapes: the CJK full-width marks and typographic quotes look like ASCII ones.
_SENTENCE_ENDS = (".", "?", "!", "\u2026", "\u3002", "\uff1f", "\uff01")
_CLAUSE_ENDS = (",", ";", ":", "\u2014", "\u2013", "\u3001", "\uff0c", "\uff1b")
# Closing quotes and brackets after the punctuation mark: `"Stop."` still ends a sentence.
_CLOSERS = "\"')]}\u00bb\u201d\u2019"


def default_speaker_name(speaker: int) -> str:
    return f"Speaker {speaker + 1}"


def ends_sentence(text: str) -> bool:
    return text.rstrip().rstrip(_CLOSERS).endswith(_SENTENCE_ENDS)


def _ends_clause(text: str) -> bool:
    return text.rstrip().rstrip(_CLOSERS).endswith(_CLAUSE_ENDS)


def assemble(
    transcription: Transcription,
    diarization: Diarization,
    *,
    merge_gap: float = MERGE_GAP_S,
    max_segment: float = MAX_SEGMENT_S,
) -> Assembly:
    if merge_gap < 0:
        raise ValueError(f"merge_gap must be >= 0, not {merge_gap}")
    if max_segment <= 0:
        raise ValueError(f"max_segment must be > 0, not {max_segment}")
    words = transcription.words
    speakers = _attribute(words, diarization.turns)
    _smooth(words, speakers)
    ids: dict[int, int] = {}
    for speaker in speakers:
        ids.setdefault(speaker, len(ids))
    labelled = [
        word.model_copy(update={"speaker": ids[speaker]})
        for word, speaker in zip(words, speakers, strict=True)
    ]
    segments = [
        _segment(part)
        for run in _runs(labelled, merge_gap)
        for part in _split_long(run, max_segment)
    ]
    return Assembly(
        words=labelled,
        segments=segments,
        speakers=[Speaker(id=i, name=default_speaker_name(i)) for i in range(len(ids))],
    )


def _attribute(words: Sequence[Word], turns: Sequence[SpeakerTurn]) -> list[int]:
    """The diarized speaker of each word, before smoothing."""
    # A turn without duration says nothing about who spoke.
    usable = sorted(
        (t for t in turns if t.end > t.start), key=lambda t: (t.start, t.end, t.speaker)
    )
    if not usable:
        return [0] * len(words)
    overlaps = _overlaps(words, usable)
    starts = [t.start for t in usable]
    by_end = sorted(usable, key=lambda t: (t.end, t.start, t.speaker))
    ends = [t.end for t in by_end]
    result: list[int] = []
    previous: int | None = None
    for word, overlap in zip(words, overlaps, strict=True):
        if overlap:
            speaker = _best(overlap, previous)
        else:
            speaker = _nearest(word, usable, starts, by_end, ends)
        result.append(speaker)
        previous = speaker
    return result


def _overlaps(words: Sequence[Word], turns: list[SpeakerTurn]) -> list[dict[int, float]]:
    """Per word, seconds of overlap with each speaker's turns; a zero-length word counts the
    turns containing it with a nominal overlap.

    One sweep over words in start order with the turns that can still overlap, so a long
    recording costs O(words x concurrent turns) rather than O(words x turns)."""
    order = sorted(range(len(words)), key=lambda i: (words[i].start, words[i].end))
    result: list[dict[int, float]] = [{} for _ in words]
    active: list[SpeakerTurn] = []
    upcoming = 0
    for i in order:
        word = words[i]
        while upcoming < len(turns) and turns[upcoming].start <= word.end:
            active.append(turns[upcoming])
            upcoming += 1
        # Later words start no earlier, so a turn ended before this one starts is done for good.
        active = [t for t in active if t.end >= word.start]
        overlap = result[i]
        for turn in active:
            seconds = min(word.end, turn.end) - max(word.start, turn.start)
            if seconds > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + seconds
        if not overlap:
            middle = (word.start + word.end) / 2
            for turn in active:
                if turn.start <= middle <= turn.end:
                    overlap[turn.speaker] = _TIE_S
    return result


def _best(overlap: dict[int, float], previous: int | None) -> int:
    top = max(overlap.values())
    tied = sorted(s for s, seconds in overlap.items() if top - seconds <= _TIE_S)
    if previous in tied:
        return previous
    return tied[0]


def _nearest(
    word: Word,
    turns: list[SpeakerTurn],
    starts: list[float],
    by_end: list[SpeakerTurn],
    ends: list[float],
) -> int:
    before = bisect.bisect_right(ends, word.start) - 1
    after = bisect.bisect_left(starts, word.end)
    if before >= 0 and (
        after >= len(turns) or word.start - by_end[before].end <= turns[after].start - word.end
    ):
        return by_end[before].speaker
    # Only a word with end < start can find neither; any turn is as good as another for it.
    return turns[min(after, len(turns) - 1)].speaker


def _smooth(words: Sequence[Word], speakers: list[int]) -> None:
    runs: list[list[int]] = []  # [speaker, first index, end index]
    for i, speaker in enumerate(speakers):
        if runs and runs[-1][0] == speaker:
            runs[-1][2] = i + 1
        else:
            runs.append([speaker, i, i + 1])
    for i in range(1, len(runs) - 1):
        before, run, after = runs[i - 1], runs[i], runs[i + 1]
        if before[0] != after[0] or run[0] == before[0]:
            continue
        first, last = words[run[1]], words[run[2] - 1]
        if (
            run[2] - run[1] <= _SMOOTH_MAX_WORDS
            and last.end - first.start < _SMOOTH_MAX_S
            and first.start - words[before[2] - 1].end < _SMOOTH_MAX_GAP_S
            and words[after[1]].start - last.end < _SMOOTH_MAX_GAP_S
        ):
            run[0] = before[0]
            speakers[run[1] : run[2]] = [before[0]] * (run[2] - run[1])


def _runs(words: list[Word], merge_gap: float) -> list[list[Word]]:
    runs: list[list[Word]] = []
    for word in words:
        if runs:
            last = runs[-1][-1]
            if word.speaker == last.speaker and word.start - last.end <= merge_gap:
                runs[-1].append(word)
                continue
        runs.append([word])
    return runs


def _split_long(words: list[Word], max_segment: float) -> list[list[Word]]:
    parts: list[list[Word]] = []
    first = 0
    while words[-1].end - words[first].start > max_segment:
        limit = words[first].start + max_segment
        sentence: int | None = None
        clause: int | None = None
        # A single word longer than the limit still makes a part of its own.
        fits = first
        for k in range(first, len(words) - 1):
            if words[k].end > limit:
                break
            fits = k
            if ends_sentence(words[k].text):
                sentence = k
            elif _ends_clause(words[k].text):
                clause = k
        cut = sentence if sentence is not None else clause if clause is not None else fits
        parts.append(words[first : cut + 1])
        first = cut + 1
    parts.append(words[first:])
    return parts


def _segment(words: list[Word]) -> Segment:
    speaker = words[0].speaker
    assert speaker is not None
    return Segment(
        speaker=speaker,
        start=words[0].start,
        end=max(w.end for w in words),
        text=" ".join(t for t in (w.text.strip() for w in words) if t),
    )
