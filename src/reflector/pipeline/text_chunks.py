"""Transcript text helpers shared by the topic and summary backends: cleaning segments,
splitting them into sentences with estimated times, rendering timestamped lines for a prompt and
cutting those lines into chunks of bounded size.

No NLTK here: its sentence model is not installed, and Whisper output is punctuated and
capitalised well enough for a rule-based splitter."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reflector.pipeline.types import Segment, Speaker

# Unpunctuated speech (some ASR output) would otherwise make one "sentence" of a whole turn,
# which breaks extractive summaries and makes LexRank's cost unpredictable.
MAX_SENTENCE_WORDS = 40
_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_ENDS_SENTENCE = re.compile(r"[.!?…]+[\"'\u201d\u2019)\]]*$")
_STARTS_SENTENCE = re.compile(r"^[\"'\u201c\u2018(\[]*[A-Z0-9¿¡]")
# Abbreviations whose period does not end a sentence.
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "approx.", "no."}
)


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a segment. Times are interpolated inside the segment by character
    position: segments carry times, sentences inside them do not."""

    speaker: int
    start: float
    end: float
    text: str


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def clean_segments(segments: Iterable[Segment]) -> list[Segment]:
    """Segments in time order, without the ones that hold no words, with end >= start."""
    kept = []
    for segment in segments:
        if not _WORD.search(segment.text):
            continue
        if segment.end < segment.start:
            segment = segment.model_copy(update={"end": segment.start})
        kept.append(segment)
    kept.sort(key=lambda s: (s.start, s.end))
    return kept


def split_text(text: str, max_words: int = MAX_SENTENCE_WORDS) -> list[str]:
    """Sentences of `text`, each at most `max_words` whitespace-separated tokens."""
    tokens = text.split()
    sentences: list[str] = []
    current: list[str] = []
    for i, token in enumerate(tokens):
        current.append(token)
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        ends = (
            _ENDS_SENTENCE.search(token) is not None
            and token.lower() not in _ABBREVIATIONS
            and (following is None or _STARTS_SENTENCE.match(following) is not None)
        )
        if ends or len(current) >= max_words:
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return [s for s in sentences if _WORD.search(s)]


def split_segment(segment: Segment, max_words: int = MAX_SENTENCE_WORDS) -> list[Sentence]:
    parts = split_text(segment.text, max_words)
    total = sum(len(p) + 1 for p in parts) or 1
    duration = max(segment.end - segment.start, 0.0)
    sentences = []
    offset = 0
    for part in parts:
        start = segment.start + duration * offset / total
        offset += len(part) + 1
        end = segment.start + duration * offset / total
        sentences.append(Sentence(segment.speaker, start, end, part))
    return sentences


def split_sentences(segments: Sequence[Segment]) -> list[Sentence]:
    """Every sentence of `segments` (already cleaned), in order."""
    return [s for segment in segments for s in split_segment(segment)]


def speaker_names(speakers: Iterable[Speaker]) -> dict[int, str]:
    return {speaker.id: speaker.name for speaker in speakers}


def speaker_name(names: dict[int, str], speaker: int) -> str:
    return names.get(speaker) or f"Speaker {speaker + 1}"


def format_time(seconds: float) -> str:
    """`mm:ss`, minutes unbounded (`75:03`): one shape for every length, easy to copy back."""
    whole = max(int(seconds), 0)
    return f"{whole // 60:02d}:{whole % 60:02d}"


_TIME = re.compile(r"^\[?\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*\]?$")


def parse_time(value: object) -> float | None:
    """Seconds from a number, a numeric string, `mm:ss` or `h:mm:ss` (brackets allowed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().removesuffix("s").strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _TIME.match(text)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True, slots=True)
class Line:
    """One rendered transcript line for a prompt."""

    start: float
    end: float
    text: str  # "[mm:ss] Name: words"


def transcript_lines(
    segments: Sequence[Segment], speakers: Iterable[Speaker], max_chars: int
) -> list[Line]:
    """One line per segment; a segment whose line would exceed `max_chars` is split at
    sentences, and a sentence that alone exceeds it at words (then characters), so that every
    line fits in a chunk and nothing is dropped."""
    names = speaker_names(speakers)
    lines = []
    for segment in segments:
        name = speaker_name(names, segment.speaker)
        prefix_len = len(f"[{format_time(segment.end)}] {name}: ")
        whole = f"[{format_time(segment.start)}] {name}: {segment.text.strip()}"
        if len(whole) <= max_chars:
            lines.append(Line(segment.start, segment.end, whole))
            continue
        budget = max(max_chars - prefix_len, 1)
        for sentence in split_segment(segment):
            for piece in _pieces(sentence.text, budget):
                lines.append(
                    Line(
                        sentence.start,
                        sentence.end,
                        f"[{format_time(sentence.start)}] {name}: {piece}",
                    )
                )
    return lines


def _pieces(text: str, budget: int) -> list[str]:
    if len(text) <= budget:
        return [text]
    pieces: list[str] = []
    current = ""
    for token in text.split():
        while len(token) > budget:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(token[:budget])
            token = token[budget:]
        candidate = f"{current} {token}" if current else token
        if len(candidate) > budget:
            pieces.append(current)
            current = token
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def chunk_lines(lines: Sequence[Line], max_chars: int) -> list[list[Line]]:
    """Consecutive lines grouped so that each group joined by newlines has at most
    `max_chars` characters (a line longer than that alone forms its own group)."""
    chunks: list[list[Line]] = []
    current: list[Line] = []
    size = 0
    for line in lines:
        extra = len(line.text) + (1 if current else 0)
        if current and size + extra > max_chars:
            chunks.append(current)
            current, size = [], 0
            extra = len(line.text)
        current.append(line)
        size += extra
    if current:
        chunks.append(current)
    return chunks


def render(lines: Sequence[Line]) -> str:
    return "\n".join(line.text for line in lines)
