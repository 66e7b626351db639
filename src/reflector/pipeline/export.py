"""A transcript document as a file: JSON, WebVTT and SubRip subtitles, Markdown, plain text.

Subtitles get one cue per readable piece of a segment: a segment is cut between words (using
the word times in `doc.words`) so that no cue runs past `MAX_CUE_S` or `MAX_CUE_CHARS`, and a
cue that is already half full ends at a sentence end. When the words do not match a segment's
text (an edited segment, a document without words) the segment's time is shared among its
words by length. Segments are listed in start order. A speaker id missing from
`doc.speakers` reads "Speaker N".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from reflector.pipeline.assemble import default_speaker_name, ends_sentence
from reflector.pipeline.types import Segment, TranscriptDocument, Word

MAX_CUE_S = 7.0
# Two lines of 42 characters, the usual subtitle line length.
MAX_CUE_CHARS = 84

# Word times and segment times are the same floats when both come from the assembly; the margin
# only forgives rounding in documents that went through other tools.
_WORD_MARGIN_S = 0.001


@dataclass(frozen=True)
class ExportFormat:
    render: Callable[[TranscriptDocument], str]
    media_type: str
    extension: str  # without the dot


def to_json(doc: TranscriptDocument) -> str:
    return doc.model_dump_json(indent=2) + "\n"


def to_vtt(doc: TranscriptDocument) -> str:
    blocks = ["WEBVTT"]
    for cue in _cues(doc):
        blocks.append(
            f"{_timestamp(cue.start_ms, '.')} --> {_timestamp(cue.end_ms, '.')}\n"
            f"<v {_vtt_escape(cue.name)}>{_vtt_escape(cue.text)}"
        )
    return "\n\n".join(blocks) + "\n"


def to_srt(doc: TranscriptDocument) -> str:
    blocks = [
        f"{n}\n{_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')}\n"
        f"{cue.name}: {cue.text}"
        for n, cue in enumerate(_cues(doc), start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def to_markdown(doc: TranscriptDocument) -> str:
    names = _speaker_names(doc)
    blocks = [f"# {_md_inline(doc.title) or 'Transcript'}"]
    if doc.short_summary.strip():
        blocks.append(_md_paragraph(doc.short_summary))
    if doc.action_items:
        items = ["## Action items", ""]
        for item in doc.action_items:
            line = f"- [ ] {_md_inline(item.text)}"
            if item.owner and item.owner.strip():
                line += f" \u2014 {_md_inline(item.owner)}"
            if item.start is not None:
                line += f" [{_clock(item.start)}]"
            items.append(line)
        blocks.append("\n".join(items))
    if doc.topics:
        blocks.append("## Topics")
        for topic in doc.topics:
            blocks.append(
                f"### [{_clock(topic.start)}-{_clock(topic.end)}] {_md_inline(topic.title)}"
            )
            if topic.summary.strip():
                blocks.append(_md_paragraph(topic.summary))
    if doc.long_summary.strip():
        # Already Markdown, written for this place in the document.
        blocks += ["## Summary", doc.long_summary.strip()]
    segments = _in_order(doc.segments)
    if segments:
        blocks.append("## Transcript")
        blocks += [
            f"**{_md_inline(names(s.speaker))}** [{_clock(s.start)}] {_md_inline(s.text)}"
            for s in segments
        ]
    return "\n\n".join(blocks) + "\n"


def to_text(doc: TranscriptDocument) -> str:
    names = _speaker_names(doc)
    blocks = [_one_line(doc.title) or "Transcript"]
    if doc.short_summary.strip():
        blocks.append(doc.short_summary.strip())
    lines = [
        f"[{_clock(s.start)}] {names(s.speaker)}: {_one_line(s.text)}"
        for s in _in_order(doc.segments)
    ]
    if lines:
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "json": ExportFormat(to_json, "application/json", "json"),
    "vtt": ExportFormat(to_vtt, "text/vtt; charset=utf-8", "vtt"),
    "srt": ExportFormat(to_srt, "application/x-subrip; charset=utf-8", "srt"),
    "md": ExportFormat(to_markdown, "text/markdown; charset=utf-8", "md"),
    "txt": ExportFormat(to_text, "text/plain; charset=utf-8", "txt"),
}


def export(doc: TranscriptDocument, fmt: str) -> str:
    spec = EXPORT_FORMATS.get(fmt.strip().lower())
    if spec is None:
        raise ValueError(
            f"unknown export format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}"
        )
    return spec.render(doc)


@dataclass(frozen=True)
class _Cue:
    start_ms: int
    end_ms: int
    name: str
    text: str


@dataclass(frozen=True)
class _Token:
    text: str
    start: float
    end: float


def _cues(doc: TranscriptDocument) -> list[_Cue]:
    names = _speaker_names(doc)
    words = sorted(doc.words, key=lambda w: w.start)
    starts = [w.start for w in words]
    cues: list[_Cue] = []
    for segment in _in_order(doc.segments):
        name = names(segment.speaker)
        for chunk in _chunks(_tokens(segment, words, starts)):
            start_ms = max(0, round(chunk[0].start * 1000))
            # Players drop cues that end where they start.
            end_ms = max(start_ms + 1, round(max(t.end for t in chunk) * 1000))
            text = " ".join(t.text for t in chunk)
            cues.append(_Cue(start_ms, end_ms, name, text))
    return cues


def _tokens(segment: Segment, words: list[Word], starts: list[float]) -> list[_Token]:
    """The segment's words with their times."""
    text = _one_line(segment.text)
    if not text:
        return []
    first = bisect.bisect_left(starts, segment.start - _WORD_MARGIN_S)
    tokens: list[_Token] = []
    for word in words[first:]:
        if word.start > segment.end + _WORD_MARGIN_S:
            break
        if (
            word.speaker in (segment.speaker, None)
            and word.end <= segment.end + _WORD_MARGIN_S
            and word.text.strip()
        ):
            tokens.append(_Token(_one_line(word.text), word.start, word.end))
    if " ".join(t.text for t in tokens) == text:
        return tokens
    per_char = (segment.end - segment.start) / len(text)
    tokens = []
    done = 0
    for part in text.split(" "):
        end = done + len(part)
        tokens.append(_Token(part, segment.start + done * per_char, segment.start + end * per_char))
        done = end + 1
    return tokens


def _chunks(tokens: list[_Token]) -> list[list[_Token]]:
    chunks: list[list[_Token]] = []
    current: list[_Token] = []
    length = 0
    for token in tokens:
        if current and (
            token.end - current[0].start > MAX_CUE_S or length + 1 + len(token.text) > MAX_CUE_CHARS
        ):
            chunks.append(current)
            current, length = [], 0
        length += len(token.text) + (1 if current else 0)
        current.append(token)
        if ends_sentence(token.text) and (
            token.end - current[0].start >= MAX_CUE_S / 2 or length >= MAX_CUE_CHARS / 2
        ):
            chunks.append(current)
            current, length = [], 0
    if current:
        chunks.append(current)
    return chunks


def _speaker_names(doc: TranscriptDocument) -> Callable[[int], str]:
    known: dict[int, str] = {}
    for speaker in doc.speakers:
        known.setdefault(speaker.id, _one_line(speaker.name))

    def name(speaker: int) -> str:
        return known.get(speaker) or default_speaker_name(speaker)

    return name


def _in_order(segments: list[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: s.start)


def _one_line(text: str) -> str:
    # A line break inside a cue or a transcript line would end it (or the cue) early.
    return " ".join(text.split())


def _timestamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _clock(seconds: float) -> str:
    """[mm:ss], or h:mm:ss from an hour on; truncated, so a moment reads as the second it is in."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])|&(?=#?\w+;)")
_MD_BLOCK_START = re.compile(r"^(?:([#+=-])|(\d+)([.)]))")


def _md_inline(text: str) -> str:
    """Spoken or generated text shown literally: no emphasis, links, HTML or entities."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), _one_line(text))


def _md_paragraph(text: str) -> str:
    """Like _md_inline, for text that starts a block, where "# ", "- " or "1." would turn it
    into a heading or a list."""
    return _MD_BLOCK_START.sub(
        lambda m: "\\" + m.group(1) if m.group(1) else f"{m.group(2)}\\{m.group(3)}",
        _md_inline(text),
    )
