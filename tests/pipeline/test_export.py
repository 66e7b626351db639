"""Exports: exact output for a small document, escaping, long cues, hour-long times, formats."""

from __future__ import annotations

import json
import re

import pytest

from reflector.pipeline.export import (
    EXPORT_FORMATS,
    MAX_CUE_CHARS,
    MAX_CUE_S,
    export,
    to_json,
    to_markdown,
    to_srt,
    to_text,
    to_vtt,
)
from reflector.pipeline.types import (
    ActionItem,
    Segment,
    Speaker,
    Topic,
    TranscriptDocument,
    Word,
)


def words_of(speaker: int, text: str, start: float, step: float = 0.5) -> list[Word]:
    return [
        Word(text=t, start=start + i * step, end=start + i * step + step * 0.8, speaker=speaker)
        for i, t in enumerate(text.split())
    ]


def segment_of(words: list[Word]) -> Segment:
    assert words[0].speaker is not None
    return Segment(
        speaker=words[0].speaker,
        start=words[0].start,
        end=words[-1].end,
        text=" ".join(w.text for w in words),
    )


def document(
    *speech: list[Word], speakers: list[Speaker] | None = None, **fields: object
) -> TranscriptDocument:
    values: dict[str, object] = {
        "duration": max((w[-1].end for w in speech), default=0.0),
        "language": "en",
        "title": "",
        "short_summary": "",
        "long_summary": "",
        "action_items": [],
        "topics": [],
        "speakers": speakers if speakers is not None else [],
        "segments": [segment_of(w) for w in speech],
        "words": [w for ws in speech for w in ws],
    }
    values.update(fields)
    return TranscriptDocument.model_validate(values)


@pytest.fixture
def doc() -> TranscriptDocument:
    return document(
        words_of(0, "Hello everyone.", 0.0),
        words_of(1, "Hi Zoë! Shall we start?", 1.5),
        words_of(0, "The budget is due.", 3725.5),
        speakers=[Speaker(id=0, name="Alice"), Speaker(id=1, name="Zoë", named_from="x")],
        title="Weekly sync",
        short_summary="Alice and Zoë went over the budget.",
        long_summary="- The budget is due.\n- Nobody objected.",
        action_items=[
            ActionItem(text="Send the report", owner="Zoë", start=3726.0),
            ActionItem(text="Book a room"),
        ],
        topics=[
            Topic(title="Greetings", summary="Hellos.", start=0.0, end=3.9),
            Topic(title="Budget", summary="It is due.", start=3725.5, end=3727.3),
        ],
    )


VTT = """\
WEBVTT

00:00:00.000 --> 00:00:00.900
<v Alice>Hello everyone.

00:00:01.500 --> 00:00:03.900
<v Zoë>Hi Zoë! Shall we start?

01:02:05.500 --> 01:02:07.400
<v Alice>The budget is due.
"""

SRT = """\
1
00:00:00,000 --> 00:00:00,900
Alice: Hello everyone.

2
00:00:01,500 --> 00:00:03,900
Zoë: Hi Zoë! Shall we start?

3
01:02:05,500 --> 01:02:07,400
Alice: The budget is due.
"""

MARKDOWN = """\
# Weekly sync

Alice and Zoë went over the budget.

## Action items

- [ ] Send the report \u2014 Zoë [1:02:06]
- [ ] Book a room

## Topics

### [00:00-00:03] Greetings

Hellos.

### [1:02:05-1:02:07] Budget

It is due.

## Summary

- The budget is due.
- Nobody objected.

## Transcript

**Alice** [00:00] Hello everyone.

**Zoë** [00:01] Hi Zoë! Shall we start?

**Alice** [1:02:05] The budget is due.
"""

TEXT = """\
Weekly sync

Alice and Zoë went over the budget.

[00:00] Alice: Hello everyone.
[00:01] Zoë: Hi Zoë! Shall we start?
[1:02:05] Alice: The budget is due.
"""


_TIMING = re.compile(
    r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
)
_ENTITY = re.compile(r"&(amp|lt|gt);")


def _unescape(text: str) -> str:
    assert "&" not in _ENTITY.sub("", text), text
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_vtt(text: str) -> list[tuple[float, float, str, str]]:
    """(start, end, voice, text) per cue, asserting the WebVTT structure this module writes."""
    assert text.startswith("WEBVTT\n")
    assert text.endswith("\n")
    assert "\r" not in text
    blocks = text[: -len("\n")].split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    last_start = 0.0
    for block in blocks[1:]:
        timing, *payload = block.split("\n")
        match = _TIMING.fullmatch(timing)
        assert match, timing
        n = [int(g) for g in match.groups()]
        start = n[0] * 3600 + n[1] * 60 + n[2] + n[3] / 1000
        end = n[4] * 3600 + n[5] * 60 + n[6] + n[7] / 1000
        assert last_start <= start < end
        last_start = start
        assert payload
        assert all(line.strip() for line in payload)
        assert not any("-->" in line for line in payload)
        voice = re.fullmatch(r"<v ([^<>\n]+)>([^<>]+)", "\n".join(payload))
        assert voice, payload
        cues.append((start, end, _unescape(voice.group(1)), _unescape(voice.group(2))))
    return cues


def test_vtt(doc: TranscriptDocument) -> None:
    assert to_vtt(doc) == VTT
    assert parse_vtt(VTT) == [
        (0.0, 0.9, "Alice", "Hello everyone."),
        (1.5, 3.9, "Zoë", "Hi Zoë! Shall we start?"),
        (3725.5, 3727.4, "Alice", "The budget is due."),
    ]


def test_srt(doc: TranscriptDocument) -> None:
    assert to_srt(doc) == SRT


def test_markdown(doc: TranscriptDocument) -> None:
    assert to_markdown(doc) == MARKDOWN


def test_text(doc: TranscriptDocument) -> None:
    assert to_text(doc) == TEXT


def test_json_is_the_document_in_field_order_without_escaping(doc: TranscriptDocument) -> None:
    text = to_json(doc)
    assert text.endswith("}\n")
    assert '"name": "Zoë"' in text
    assert "\\u" not in text
    assert list(json.loads(text)) == list(TranscriptDocument.model_fields)
    assert json.loads(text)["segments"][2] == {
        "speaker": 0,
        "start": 3725.5,
        "end": 3727.4,
        "text": "The budget is due.",
    }
    assert TranscriptDocument.model_validate_json(text) == doc
    assert to_json(doc) == text


def test_vtt_escapes_names_and_text() -> None:
    doc = document(
        words_of(0, "x < y && y > z --> w", 0.0),
        speakers=[Speaker(id=0, name="R&D <Team>")],
    )
    vtt = to_vtt(doc)
    assert vtt.splitlines()[3] == "<v R&amp;D &lt;Team&gt;>x &lt; y &amp;&amp; y &gt; z --&gt; w"
    assert parse_vtt(vtt) == [(0.0, 4.4, "R&D <Team>", "x < y && y > z --> w")]


def test_line_breaks_in_names_and_text_cannot_end_a_cue() -> None:
    doc = document(speakers=[Speaker(id=0, name="Ann\n\nLee")]).model_copy(
        update={"segments": [Segment(speaker=0, start=0, end=2, text="one\n\ntwo")]}
    )
    assert parse_vtt(to_vtt(doc)) == [(0.0, 2.0, "Ann Lee", "one two")]
    assert to_srt(doc) == "1\n00:00:00,000 --> 00:00:02,000\nAnn Lee: one two\n"
    assert to_text(doc).endswith("[00:00] Ann Lee: one two\n")


def test_long_segments_become_several_cues_at_word_times() -> None:
    spoken = words_of(0, " ".join(f"w{i}" for i in range(30)), 10.0)  # 15 s
    cues = parse_vtt(to_vtt(document(spoken)))
    # Word 13 ends 6.9 s after word 0 starts; word 14 would reach 7.4 s.
    assert [c[3] for c in cues] == [
        " ".join(f"w{i}" for i in range(0, 14)),
        " ".join(f"w{i}" for i in range(14, 28)),
        "w28 w29",
    ]
    assert [(c[0], c[1]) for c in cues] == [(10.0, 16.9), (17.0, 23.9), (24.0, 24.9)]
    assert all(end - start <= MAX_CUE_S for start, end, _, _ in cues)
    srt = to_srt(document(spoken))
    assert [line for line in srt.splitlines() if line.isdigit()] == ["1", "2", "3"]
    assert srt.splitlines()[2] == "Speaker 1: w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13"


def test_cues_stay_within_two_lines_of_text() -> None:
    spoken = words_of(0, " ".join(["internationalization"] * 9), 0.0, step=0.3)
    cues = parse_vtt(to_vtt(document(spoken)))
    assert [len(c[3].split()) for c in cues] == [4, 4, 1]
    assert all(len(c[3]) <= MAX_CUE_CHARS for c in cues)


def test_a_half_full_cue_ends_at_a_sentence_end() -> None:
    spoken = words_of(0, "We will need the numbers before the end of the month. Then we decide.", 0)
    cues = parse_vtt(to_vtt(document(spoken)))
    assert [c[3] for c in cues] == [
        "We will need the numbers before the end of the month.",
        "Then we decide.",
    ]


def test_cue_times_are_shared_by_length_when_words_do_not_match() -> None:
    edited = document().model_copy(
        update={
            "segments": [
                Segment(speaker=0, start=0.0, end=20.0, text=" ".join(["abcd"] * 20)),
            ]
        }
    )
    cues = parse_vtt(to_vtt(edited))
    assert " ".join(c[3] for c in cues) == " ".join(["abcd"] * 20)
    assert (cues[0][0], cues[-1][1]) == (0.0, 20.0)
    assert all(end - start <= MAX_CUE_S for start, end, _, _ in cues)


def test_unknown_speaker_ids_read_speaker_n(doc: TranscriptDocument) -> None:
    anonymous = doc.model_copy(update={"speakers": [Speaker(id=1, name="Zoë")]})
    assert "<v Speaker 1>Hello everyone." in to_vtt(anonymous)
    assert "Speaker 1: Hello everyone." in to_srt(anonymous)
    assert "**Speaker 1** [00:00] Hello everyone." in to_markdown(anonymous)
    assert "[00:00] Speaker 1: Hello everyone." in to_text(anonymous)


def test_hour_long_times(doc: TranscriptDocument) -> None:
    late = document(
        words_of(0, "still here", 100 * 3600 + 59 * 60 + 59.9996, step=0.001),
        speakers=[Speaker(id=0, name="Alice")],
    )
    assert to_vtt(late).splitlines()[2] == "101:00:00.000 --> 101:00:00.001"
    assert to_srt(late).splitlines()[1] == "101:00:00,000 --> 101:00:00,001"
    assert to_text(late).splitlines()[-1] == "[100:59:59] Alice: still here"


def test_markdown_shows_spoken_text_literally() -> None:
    doc = document(
        words_of(0, "see [the docs](http://x) *now* <b>", 0.0),
        speakers=[Speaker(id=0, name="_Ann_")],
        title="Q&A *notes*",
        short_summary="# not a heading",
        topics=[Topic(title="1. Intro", summary="2) more", start=0, end=1)],
    )
    md = to_markdown(doc)
    assert md.startswith("# Q&A \\*notes\\*\n\n\\# not a heading\n")
    assert "### [00:00-00:01] 1. Intro\n\n2\\) more\n" in md
    assert "**\\_Ann\\_** [00:00] see \\[the docs\\](http://x) \\*now\\* \\<b\\>" in md


def test_an_empty_document() -> None:
    empty = document()
    assert to_vtt(empty) == "WEBVTT\n"
    assert to_srt(empty) == ""
    assert to_markdown(empty) == "# Transcript\n"
    assert to_text(empty) == "Transcript\n"
    assert json.loads(to_json(empty))["segments"] == []


def test_formats(doc: TranscriptDocument) -> None:
    assert {k: (f.media_type, f.extension) for k, f in EXPORT_FORMATS.items()} == {
        "json": ("application/json", "json"),
        "vtt": ("text/vtt; charset=utf-8", "vtt"),
        "srt": ("application/x-subrip; charset=utf-8", "srt"),
        "md": ("text/markdown; charset=utf-8", "md"),
        "txt": ("text/plain; charset=utf-8", "txt"),
    }
    assert export(doc, "vtt") == VTT
    assert export(doc, "SRT") == SRT
    assert export(doc, "md") == MARKDOWN
    assert export(doc, "txt") == TEXT
    assert export(doc, "json") == to_json(doc)


def test_unknown_format(doc: TranscriptDocument) -> None:
    with pytest.raises(ValueError, match=r"'docx'.*json, vtt, srt, md, txt"):
        export(doc, "docx")
