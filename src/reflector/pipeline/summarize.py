"""Summary pieces both backends share: the honest answer for a recording without speech, the
Markdown long summary built around the topics, title clean-up, matching names to speakers, and
the offline backend's action items (found by cue phrases, with an owner where one is said or
evident)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reflector.pipeline.text_chunks import Sentence, format_time, speaker_name, words
from reflector.pipeline.types import ActionItem, Speaker, Summary, Topic

UNTITLED = "Untitled recording"
NO_SPEECH = "No speech was found in this recording."
TITLE_MAX_CHARS = 80
ACTION_ITEMS_MAX = 50


def empty_summary(backend: str) -> Summary:
    return Summary(
        title=UNTITLED,
        short_summary=NO_SPEECH,
        long_summary=NO_SPEECH,
        action_items=[],
        backend=backend,
    )


def clean_title(text: str, max_chars: int = TITLE_MAX_CHARS) -> str:
    """One line, no quotes or "Title:" prefix, no trailing period, at most `max_chars` (cut at
    a word). Empty in, UNTITLED out."""
    title = " ".join(text.split())
    title = re.sub(r"^(?:#+\s*)?(?:title\s*:\s*)?", "", title, flags=re.I)
    title = title.strip(" \"'`*\u201c\u201d\u2018\u2019")
    if len(title) > max_chars:
        title = title[:max_chars].rsplit(" ", 1)[0] if " " in title[:max_chars] else title
        title = title[:max_chars].rstrip(",;:-\N{EN DASH} ")
    title = title.rstrip(". ")
    if not title:
        return UNTITLED
    return title[0].upper() + title[1:]


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def escape_markdown(text: str) -> str:
    """Transcript words as literal Markdown text (speech can contain `*`, `#`, `<`)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def time_range(start: float, end: float) -> str:
    return f"{format_time(start)}\N{EN DASH}{format_time(end)}"


def render_long_summary(
    overview: str,
    topics: Sequence[Topic],
    action_items: Sequence[ActionItem],
    *,
    overview_is_markdown: bool = False,
) -> str:
    """The long summary: an overview, then `## Topics` (one bullet per topic with its time
    range), then `## Action items` when there are any."""
    parts = [
        "## Overview",
        overview.strip() if overview_is_markdown else escape_markdown(overview.strip()),
    ]
    if topics:
        parts.append("## Topics")
        parts.append(
            "\n".join(
                f"- **{escape_markdown(t.title)}** ({time_range(t.start, t.end)}): "
                f"{escape_markdown(t.summary)}".rstrip()
                for t in topics
            )
        )
    if action_items:
        parts.append("## Action items")
        parts.append("\n".join(_action_line(item) for item in action_items))
    return "\n\n".join(parts) + "\n"


def _action_line(item: ActionItem) -> str:
    line = "- "
    if item.owner:
        line += f"**{escape_markdown(item.owner)}**: "
    line += escape_markdown(item.text)
    if item.start is not None:
        line += f" ({format_time(item.start)})"
    return line


def duration_phrase(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 60:
        return "under a minute"
    if minutes < 60:
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    hours, rest = divmod(minutes, 60)
    text = "1 hour" if hours == 1 else f"{hours} hours"
    if rest:
        text += f" {rest} minute" + ("" if rest == 1 else "s")
    return text


def join_phrases(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_GENERIC_NAME = re.compile(r"^speaker\s*\d+$", re.I)


def is_generic_name(name: str) -> bool:
    return _GENERIC_NAME.match(name.strip()) is not None


class NameMatcher:
    """Maps a name as spoken or written ("bob", "Bob Smith") to a speaker's display name.
    First names count when no two speakers share them; generic "Speaker N" names match only
    in full."""

    def __init__(self, speakers: Iterable[Speaker]) -> None:
        self._names: dict[str, str] = {}
        firsts: dict[str, list[str]] = {}
        for speaker in speakers:
            name = speaker.name.strip()
            if not name:
                continue
            self._names[name.casefold()] = name
            if not is_generic_name(name):
                first = name.split()[0].casefold()
                firsts.setdefault(first, []).append(name)
        for first, names in firsts.items():
            if len(set(names)) == 1:
                self._names.setdefault(first, names[0])

    def match(self, text: str | None) -> str | None:
        if not text:
            return None
        key = " ".join(text.split()).strip(" .,:;!?\"'").casefold()
        return self._names.get(key)

    def words(self) -> set[str]:
        """Every word of every name, lower case (for stripping names from keyword input)."""
        return {w.casefold() for name in self._names.values() for w in words(name)}


# --- offline action items -------------------------------------------------------------------

# Conversation fillers removed from the front of a sentence before it is shown.
_LEADING_FILLER = re.compile(
    r"^(?:(?:so|and|but|well|um+|uh+|erm|oh|okay|ok|yeah|yes|right|alright|all right|"
    r"great|good|sure|then|also|now|anyway|like|actually|basically|i mean|you know)\b[,.]?\s*)+",
    re.I,
)
_ADVERB = re.compile(
    r"^(?:(?:also|just|please|then|maybe|quickly|definitely|probably|still|really|"
    r"actually|go ahead and|try to|make sure to|make sure we)\s+)+",
    re.I,
)
_COMMIT = re.compile(
    r"\b(?:I\s+will|I'll|I\s+am\s+going\s+to|I'm\s+going\s+to|I'm\s+gonna|I\s+can|"
    r"let\s+me)\s+(?P<rest>.+)",
    re.I,
)
_REQUEST = re.compile(
    r"\b(?:(?:can|could|would|will)\s+you|please)\s+(?P<rest>.+)",
    re.I,
)
_GROUP = re.compile(
    r"\b(?:we\s+need\s+to|we\s+have\s+to|we\s+must|we\s+should|we'll\s+need\s+to|"
    r"let's|let\s+us)\s+(?P<rest>.+)",
    re.I,
)
_EXPLICIT = re.compile(
    r"\b(?:action\s+items?|to-?dos?|follow[- ]?up|deadline|"
    r"by\s+(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|tonight|"
    r"next\s+week|eod|eow|(?:the\s+)?end\s+of\s+(?:the\s+)?(?:day|week|month|quarter)))\b",
    re.I,
)
# What follows a cue but is talk about the conversation, not work to do.
_NOT_WORK = re.compile(
    r"^(?:be\s+honest|say|admit|tell\s+you|move\s+on|talk|start|get\s+started|begin|discuss|"
    r"see|hear|imagine|understand|think|recap|summari[sz]e|skip|come\s+back|go\s+back|"
    r"wrap\s+up|keep\s+it|know|be\b|not\b|'t\b|do\s+that\b|do\s+it\b|try\b|guess|agree|"
    r"share\s+my\s+screen|take\s+a\s+look\s+at\s+the\s+next|go\s+ahead\b|go\s+on\b|"
    r"continue|check\s+that\s+everyone|confirm\s+that\s+everyone|hope)",
    re.I,
)
_AFFIRMATIVE = re.compile(
    r"^(?:sure|yes|yeah|yep|ok|okay|will\s+do|no\s+problem|absolutely|of\s+course|"
    r"definitely|on\s+it|i\s+can|i\s+will|i'll|got\s+it|sounds\s+good)\b",
    re.I,
)
# A name said to someone: "Bob, can you ...", "Okay so Bob, ...", "... by Friday, Bob?". The
# fillers before it are matched in any case, the name only capitalised.
_FILLERS_BEFORE_NAME = (
    r"(?i:okay|ok|so|and|well|um|uh|hey|yeah|yes|right|great|good|alright|then|perfect|thanks|"
    r"sure|cool|also)"
)
_NAME = r"(?P<name>[A-Z][\w'\u2019-]*(?:\s+[A-Z][\w'\u2019-]*)?)"
_VOCATIVE_START = re.compile(rf"^(?:{_FILLERS_BEFORE_NAME}[,.]?\s+)*{_NAME}\s*,")
_VOCATIVE_END = re.compile(rf",\s*{_NAME}\s*[?.!]*$")
_MIN_ACTION_WORDS = 3
_REPLY_LOOKAHEAD = 4


def clean_sentence(text: str) -> str:
    """A spoken sentence made presentable: leading fillers off, first letter upper-case."""
    cleaned = _LEADING_FILLER.sub("", text.strip()).strip()
    if not words(cleaned):
        cleaned = text.strip()
    return cleaned[:1].upper() + cleaned[1:]


def _task(rest: str) -> str | None:
    """The task in what follows a cue ("also send the report by Friday?" -> "Send the report
    by Friday"), or None when it is conversation ("move on to hiring")."""
    rest = _ADVERB.sub("", rest.strip())
    rest = re.sub(r"[\s?!.,;:]+$", "", rest)
    if _NOT_WORK.match(rest) or len(words(rest)) < _MIN_ACTION_WORDS:
        return None
    return rest[:1].upper() + rest[1:]


@dataclass(frozen=True, slots=True)
class _Addressee:
    name: str | None  # the speaker addressed, if the name is a speaker's
    said: str | None  # the name as said, speaker or not
    at_end: bool  # "..., Bob?" rather than "Bob, ..."


def _addressee(text: str, names: NameMatcher, speaker: str) -> _Addressee:
    for pattern, at_end in ((_VOCATIVE_START, False), (_VOCATIVE_END, True)):
        match = pattern.search(text)
        if match is None:
            continue
        said = match.group("name")
        name = names.match(said) or names.match(said.split()[0])
        if name == speaker:
            continue
        if name is not None or not at_end:
            return _Addressee(name, said, at_end)
    return _Addressee(None, None, False)


def _without_vocative(task: str, addressee: _Addressee) -> str:
    """The task without the name it ends on: "Book the room, Dana" -> "Book the room"."""
    if addressee.at_end and addressee.said and addressee.name:
        return re.sub(rf",\s*{re.escape(addressee.said)}\s*$", "", task)
    return task


@dataclass(frozen=True, slots=True)
class _Found:
    text: str
    owner: str | None
    start: float


def find_action_items(
    sentences: Sequence[Sentence], speakers: Sequence[Speaker], limit: int = ACTION_ITEMS_MAX
) -> list[ActionItem]:
    """Action items by cue phrase, in the order they were said.

    - "I will / I'll / I'm going to / I can / let me ..." : the speaker's own task;
    - "can you / could you / please ..." : a request, owned by the speaker it names ("Bob,
      can you ...", "... by Friday, Bob?"), else by whoever answers it with "sure", "yes",
      "I'll ..." next, else by the other person when only two speak;
    - "we need to / we should / let's ...": the group's task, no owner unless one is named;
    - "action item", "follow up", "to do", "by Friday", "by the end of the week": the whole
      sentence.
    Talk about the conversation itself ("let's move on", "I'll be honest") is not work, and a
    task of fewer than three words is too vague to list. Near-duplicates by the same owner
    (a request, then its "I will send it by Friday") are kept once."""
    names = NameMatcher(speakers)
    display = {s.id: s.name for s in speakers}
    distinct = sorted({s.id for s in speakers} | {s.speaker for s in sentences})
    found: list[_Found] = []
    answered: set[int] = set()
    for i, sentence in enumerate(sentences):
        if i in answered:
            continue
        who = speaker_name(display, sentence.speaker)
        text = sentence.text.strip()
        item: _Found | None = None
        request = _REQUEST.search(text)
        commit = _COMMIT.search(text)
        group = _GROUP.search(text)
        addressee = _addressee(text, names, who)
        if request and (task := _task(request.group("rest"))):
            owner = addressee.name
            reply = _reply(sentences, i)
            replier = speaker_name(display, sentences[reply].speaker) if reply is not None else None
            if addressee.said is None:
                # Nobody named: whoever agrees next, or with two people, the other one.
                owner = replier
                if owner is None and len(distinct) == 2:
                    other = next(s for s in distinct if s != sentence.speaker)
                    owner = speaker_name(display, other)
            if reply is not None and owner == replier:
                answered.add(reply)
            item = _Found(_without_vocative(task, addressee), owner, sentence.start)
        elif commit and (task := _task(commit.group("rest"))):
            item = _Found(task, who, sentence.start)
        elif group and (task := _task(group.group("rest"))):
            item = _Found(_without_vocative(task, addressee), addressee.name, sentence.start)
        elif _EXPLICIT.search(text):
            cleaned = clean_sentence(text).rstrip(" .")
            if len(words(cleaned)) >= _MIN_ACTION_WORDS:
                item = _Found(cleaned, addressee.name, sentence.start)
        if item is not None and not any(_same_task(item, seen) for seen in found):
            found.append(item)
        if len(found) >= limit:
            break
    return [ActionItem(text=f.text, owner=f.owner, start=f.start) for f in found]


def _reply(sentences: Sequence[Sentence], i: int) -> int | None:
    """The first sentence of the next speaker's turn, when it agrees. A request is often
    followed by its reason in the same turn ("Can you split it by team? The board asks."), so
    a few more sentences of the asker are skipped."""
    for j in range(i + 1, min(i + 1 + _REPLY_LOOKAHEAD, len(sentences))):
        if sentences[j].speaker == sentences[i].speaker:
            continue
        if _AFFIRMATIVE.match(clean_sentence_start(sentences[j].text)):
            return j
        return None
    return None


def clean_sentence_start(text: str) -> str:
    return re.sub(r"^(?:um+|uh+|oh|well|so)[,.]?\s+", "", text.strip(), flags=re.I)


_CONTENT_STOP_TEXT = (
    "a an the to of for on in at by and or with we i you it this that is be will can our my "
    "your please also send"
)
_CONTENT_STOP = frozenset(_CONTENT_STOP_TEXT.split())


def _content(text: str) -> set[str]:
    return {w.casefold() for w in words(text)} - _CONTENT_STOP


def _same_task(a: _Found, b: _Found) -> bool:
    if a.owner != b.owner:
        return False
    wa, wb = _content(a.text), _content(b.text)
    if not wa or not wb:
        return a.text.casefold() == b.text.casefold()
    return len(wa & wb) / min(len(wa), len(wb)) >= 0.6
