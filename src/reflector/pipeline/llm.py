"""The LLM text backend: topics and summaries from any OpenAI-compatible chat completions API
(vLLM, Ollama, llama.cpp's server, a hosted API), with the offline backend as the safety net.

Every request asks for one JSON object, described in the prompt (and `response_format:
json_object` while the server accepts it); replies are validated with pydantic. An invalid
reply is retried with a message saying what was wrong; a timeout, a refused connection, a 429
or a 5xx is retried after a short pause; after `max_retries` retries, or at once on another
4xx (a wrong key or model name does not heal), the whole call goes to `fallback` and a warning
is logged (the summary's `backend` says so).

Long transcripts go in chunks of at most `chunk_chars` characters of transcript: topics chunk by
chunk, action items chunk by chunk, then the title and summaries from the topic summaries
(map/reduce); nothing is cut off. Lines carry `[mm:ss]` times and speaker names, so topics come
back with real times; those are snapped to the transcript's lines, clamped to its range and
put in order.

Transport: plain httpx rather than the `openai` client. Servers that claim OpenAI
compatibility agree on the JSON of /chat/completions far more than they do with the client
library's validation of it, and this module owns the retry policy (the client's own retries
and its API-key discovery from the environment would have to be switched off), so the one
POST is clearer written out."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reflector.logs import get_logger
from reflector.pipeline.offline_text import OfflineAnalyzer
from reflector.pipeline.summarize import (
    ACTION_ITEMS_MAX,
    NameMatcher,
    clean_title,
    empty_summary,
    render_long_summary,
    time_range,
)
from reflector.pipeline.text_chunks import (
    Line,
    chunk_lines,
    clean_segments,
    parse_time,
    render,
    speaker_name,
    speaker_names,
    transcript_lines,
)
from reflector.pipeline.topics import (
    TextAnalyzer,
    TilingParams,
    TopicDraft,
    max_topics_for,
    tile_topics,
)
from reflector.pipeline.types import (
    ActionItem,
    Progress,
    Segment,
    Speaker,
    Summary,
    Topic,
    no_progress,
)

_log = get_logger("reflector.pipeline.llm")

MIN_CHUNK_CHARS = 200
# Longest pause before a retry, whatever Retry-After says: the step has a job to finish.
_MAX_PAUSE_S = 30.0
# Of an invalid reply, this much is shown back to the model with the complaint.
_ECHO_CHARS = 4_000
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_NO_OWNER = frozenset({"", "null", "none", "n/a", "na", "unknown", "unassigned", "nobody", "tbd"})

_SYSTEM = (
    "You analyse meeting transcripts for the people who attended. You answer with exactly one "
    "JSON object and nothing else: no prose before or after it, no Markdown code fences. Write "
    "in the language of the transcript. Use only what the transcript says."
)


# --- reply schemas ----------------------------------------------------------------------------


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class _TopicReply(_Reply):
    start: float
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=1)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: object) -> float:
        seconds = parse_time(value)
        if seconds is None:
            raise ValueError("expected a time like 12:34 (minutes:seconds) or seconds")
        return seconds


class _TopicsReply(_Reply):
    topics: list[_TopicReply] = Field(min_length=1)


class _ActionItemReply(_Reply):
    text: str = Field(min_length=1)
    owner: str | None = None
    start: float | None = None

    @field_validator("owner", mode="before")
    @classmethod
    def _owner(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip().casefold() in _NO_OWNER):
            return None
        if isinstance(value, list):  # "owner": ["Alice"] from a model that hedges
            return ", ".join(str(v) for v in value) or None
        return value

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: object) -> float | None:
        # A missing or unreadable time is no reason to throw the item away.
        return parse_time(value) if value not in (None, "") else None


class _ActionItemsReply(_Reply):
    action_items: list[_ActionItemReply] = Field(default_factory=list)


class _SummaryReply(_Reply):
    title: str = Field(min_length=1, max_length=300)
    short_summary: str = Field(min_length=1)
    long_summary: str = Field(min_length=1)
    action_items: list[_ActionItemReply] = Field(default_factory=list)


class _SectionReply(_Reply):
    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(min_length=1)


_TOPICS_SCHEMA = """{"topics": [{"start": "mm:ss", "title": "string", "summary": "string"}]}
- topics: in the order they were discussed; the first one starts at the first line.
- start: the [mm:ss] time of the line where the topic begins, copied from the transcript.
- title: 2 to 8 words naming the subject, no trailing period.
- summary: 1 to 3 sentences on what was said or decided, naming who said it."""

_ACTION_ITEMS_SCHEMA = """{"action_items": [{"text": "string", "owner": "name or null", \
"start": "mm:ss or null"}]}
- action_items: tasks someone took on or was asked to do; an empty list when there are none.
- text: the task as an imperative sentence ("Send the budget report to finance by Friday").
- owner: the participant who will do it, as named in the transcript; null when nobody is.
- start: the [mm:ss] time of the line where it was said."""

_SUMMARY_SCHEMA = """{"title": "string", "short_summary": "string", "long_summary": "string", \
"action_items": [{"text": "string", "owner": "name or null", "start": "mm:ss or null"}]}
- title: 3 to 10 words naming what the meeting was about, no trailing period.
- short_summary: one paragraph of 2 to 4 sentences.
- long_summary: Markdown, a few paragraphs or bullet lists on the discussion, decisions and \
open questions; headings, if any, start with ###; do not repeat the title.
- action_items: tasks someone took on or was asked to do (owner: the participant named, or \
null; start: the [mm:ss] time it was said, or null); an empty list when there are none."""

_SECTION_SCHEMA = """{"title": "string", "summary": "string"}
- title: 2 to 8 words, no trailing period.
- summary: 2 to 4 sentences covering all of the topics listed."""


# --- the analyzer -----------------------------------------------------------------------------


class LLMUnusable(Exception):
    """The API gave no usable answer; str() says why, for the log and the summary's backend."""


class _Transient(Exception):
    def __init__(self, reason: str, pause: float | None = None) -> None:
        super().__init__(reason)
        self.pause = pause


T = TypeVar("T", bound=_Reply)


@dataclass(frozen=True, slots=True)
class _Chunk:
    lines: list[Line]

    @property
    def start(self) -> float:
        return self.lines[0].start

    @property
    def end(self) -> float:
        return max(line.end for line in self.lines)

    @property
    def text(self) -> str:
        return render(self.lines)


class LLMAnalyzer:
    """Topics and summaries from an OpenAI-compatible chat API; see the module docstring.

    `base_url` is the API root that `/chat/completions` is appended to
    (`http://127.0.0.1:8080/v1`); `api_key` is sent as a Bearer token when given; `timeout_s`
    bounds each request (httpx applies it to connecting and to each wait for data; a
    non-streaming chat request sends nothing until it is done, so this is the time to answer);
    `max_retries` is per request; `chunk_chars` bounds the transcript text of one request;
    `fallback` answers a call the API could not; `backoff_s` is the first pause before a
    transport retry (doubling after each)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        chunk_chars: int = 12_000,
        fallback: TextAnalyzer | None = None,
        *,
        backoff_s: float = 1.0,
    ) -> None:
        if chunk_chars < MIN_CHUNK_CHARS:
            raise ValueError(f"chunk_chars must be at least {MIN_CHUNK_CHARS}")
        if timeout_s <= 0 or max_retries < 0:
            raise ValueError("timeout_s must be positive and max_retries not negative")
        self.name = f"llm:{model}"
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._model = model
        self._timeout = timeout_s
        self._max_retries = max_retries
        self._chunk_chars = chunk_chars
        self._fallback: TextAnalyzer = fallback if fallback is not None else OfflineAnalyzer()
        self._backoff = backoff_s
        # Cleared for good once the server answers 400 with `response_format` and 200 without
        # it (older llama.cpp builds and some proxies); the prompt asks for JSON either way.
        self._json_mode = True

    # --- topics -----------------------------------------------------------------------------

    def topics(
        self, segments: list[Segment], speakers: list[Speaker], *, progress: Progress = no_progress
    ) -> list[Topic]:
        cleaned = clean_segments(segments)
        if not cleaned:
            progress(1.0)
            return []
        try:
            with self._client() as client:
                return self._topics(client, cleaned, speakers, progress)
        except LLMUnusable as error:
            _log.warning(
                "LLM unusable, topics from the fallback backend",
                reason=str(error),
                fallback=self._fallback.name,
            )
            return self._fallback.topics(segments, speakers, progress=progress)

    def _topics(
        self,
        client: httpx.Client,
        segments: list[Segment],
        speakers: list[Speaker],
        progress: Progress,
    ) -> list[Topic]:
        chunks = self._chunks(segments, speakers)
        participants = self._participants(segments, speakers)
        drafts: list[TopicDraft] = []
        for i, chunk in enumerate(chunks):
            most = max_topics_for(chunk.end - chunk.start, TilingParams())
            where = (
                "the whole meeting"
                if len(chunks) == 1
                else f"part {i + 1} of {len(chunks)} of a meeting"
            )
            prompt = (
                f"Split this transcript of {where} into its topics (at most {most}). Each line "
                "is `[mm:ss] Speaker: words`, mm:ss being when it was said. "
                f"Participants: {participants}.\n\n"
                f"Reply with JSON of this shape:\n{_TOPICS_SCHEMA}\n\n"
                f"<transcript>\n{chunk.text}\n</transcript>"
            )
            reply = self._ask(client, prompt, _TopicsReply)
            drafts.extend(_chunk_drafts(reply.topics, chunk))
            progress((i + 1) / len(chunks))
        return tile_topics(drafts, segments[0].start, max(s.end for s in segments))

    # --- summary ----------------------------------------------------------------------------

    def summarize(
        self,
        segments: list[Segment],
        speakers: list[Speaker],
        topics: list[Topic],
        *,
        progress: Progress = no_progress,
    ) -> Summary:
        cleaned = clean_segments(segments)
        if not cleaned:
            progress(1.0)
            return empty_summary(self.name)
        if not topics:
            topics = self.topics(cleaned, speakers, progress=_scaled(progress, 0.0, 0.5))
            progress = _scaled(progress, 0.5, 1.0)
        try:
            with self._client() as client:
                return self._summarize(client, cleaned, speakers, topics, progress)
        except LLMUnusable as error:
            _log.warning(
                "LLM unusable, summary from the fallback backend",
                reason=str(error),
                fallback=self._fallback.name,
            )
            summary = self._fallback.summarize(segments, speakers, topics, progress=progress)
            return summary.model_copy(
                update={"backend": f"{summary.backend} (LLM fallback: {error})"}
            )

    def _summarize(
        self,
        client: httpx.Client,
        segments: list[Segment],
        speakers: list[Speaker],
        topics: list[Topic],
        progress: Progress,
    ) -> Summary:
        start, end = segments[0].start, max(s.end for s in segments)
        chunks = self._chunks(segments, speakers)
        participants = self._participants(segments, speakers)
        names = NameMatcher(speakers)

        if len(chunks) == 1:
            prompt = (
                "Summarise this meeting. Each transcript line is `[mm:ss] Speaker: words`. "
                f"Participants: {participants}. The topics found in it:\n"
                f"{_topic_lines(topics)}\n\n"
                f"Reply with JSON of this shape:\n{_SUMMARY_SCHEMA}\n\n"
                f"<transcript>\n{chunks[0].text}\n</transcript>"
            )
            reply = self._ask(client, prompt, _SummaryReply)
            items = _action_items(reply.action_items, names, start, end)
            progress(1.0)
            return self._summary(reply, topics, items)

        found: list[_ActionItemReply] = []
        for i, chunk in enumerate(chunks):
            prompt = (
                f"This is part {i + 1} of {len(chunks)} of a meeting transcript. Each line is "
                f"`[mm:ss] Speaker: words`. Participants: {participants}. List the action "
                "items in this part.\n\n"
                f"Reply with JSON of this shape:\n{_ACTION_ITEMS_SCHEMA}\n\n"
                f"<transcript>\n{chunk.text}\n</transcript>"
            )
            found.extend(self._ask(client, prompt, _ActionItemsReply).action_items)
            progress(0.8 * (i + 1) / len(chunks))
        sections = self._sections(client, topics)
        prompt = (
            "Summarise a meeting from the summaries of its parts, in order, each with its "
            f"[mm:ss\N{EN DASH}mm:ss] time range. Participants: {participants}.\n"
            f"{_topic_lines(sections)}\n\n"
            f"Reply with JSON of this shape:\n{_SUMMARY_SCHEMA}\n"
            "Leave action_items empty: they were collected separately."
        )
        reply = self._ask(client, prompt, _SummaryReply)
        progress(1.0)
        return self._summary(reply, topics, _action_items(found, names, start, end))

    def _sections(self, client: httpx.Client, topics: list[Topic]) -> list[Topic]:
        """Topics, merged into sections by the model until their list fits in one request:
        a summary of a long meeting's topic summaries must not be truncated either."""
        items = topics
        while len(_topic_lines(items)) > self._chunk_chars and len(items) > 1:
            groups = _group(items, self._chunk_chars)
            if len(groups) >= len(items):
                break  # each topic alone is over budget; send them as they are
            merged = []
            for group in groups:
                prompt = (
                    "Summarise these consecutive topics of a meeting as one section, each "
                    "given with its [mm:ss\N{EN DASH}mm:ss] time range:\n"
                    f"{_topic_lines(group)}\n\n"
                    f"Reply with JSON of this shape:\n{_SECTION_SCHEMA}"
                )
                reply = self._ask(client, prompt, _SectionReply)
                merged.append(
                    Topic(
                        title=clean_title(reply.title),
                        summary=" ".join(reply.summary.split()),
                        start=group[0].start,
                        end=group[-1].end,
                    )
                )
            items = merged
        return items

    def _summary(
        self, reply: _SummaryReply, topics: list[Topic], items: list[ActionItem]
    ) -> Summary:
        short = " ".join(reply.short_summary.split())
        overview = _demote_headings(reply.long_summary.strip())
        return Summary(
            title=clean_title(reply.title),
            short_summary=short,
            long_summary=render_long_summary(overview, topics, items, overview_is_markdown=True),
            action_items=items,
            backend=self.name,
        )

    # --- requests ---------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        return httpx.Client(timeout=httpx.Timeout(self._timeout), headers=headers)

    def _chunks(self, segments: list[Segment], speakers: list[Speaker]) -> list[_Chunk]:
        lines = transcript_lines(segments, speakers, self._chunk_chars)
        return [_Chunk(group) for group in chunk_lines(lines, self._chunk_chars)]

    @staticmethod
    def _participants(segments: list[Segment], speakers: list[Speaker]) -> str:
        names = speaker_names(speakers)
        ids = sorted({s.speaker for s in segments})
        return ", ".join(speaker_name(names, i) for i in ids)

    def _ask(self, client: httpx.Client, prompt: str, schema: type[T]) -> T:
        """One validated reply to `prompt`, retrying up to max_retries times; LLMUnusable when
        there is none."""
        base: list[dict[str, str]] = [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": prompt},
        ]
        messages = base
        reason = "no attempt made"
        attempts = self._max_retries + 1
        for attempt in range(attempts):
            try:
                content, cut_off = self._complete(client, messages)
            except _Transient as error:
                reason = str(error)
                if attempt + 1 < attempts:
                    pause = error.pause if error.pause is not None else self._backoff * 2**attempt
                    time.sleep(min(pause, _MAX_PAUSE_S))
                continue
            parsed, problem = _parse(content, schema)
            if parsed is not None:
                return parsed
            if cut_off:
                problem += " (the reply was cut off at the length limit: be more concise)"
            reason = f"invalid reply: {problem}"
            _log.info("LLM reply rejected, asking again", problem=problem, attempt=attempt + 1)
            messages = [
                *base,
                {"role": "assistant", "content": content[:_ECHO_CHARS]},
                {
                    "role": "user",
                    "content": f"That reply could not be used: {problem}. Reply again with "
                    "only the JSON object, following the shape given above exactly.",
                },
            ]
        raise LLMUnusable(f"{reason}; gave up after {attempts} attempts")

    def _complete(self, client: httpx.Client, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """The reply's text and whether it was cut off at the length limit."""
        body: dict[str, Any] = {"model": self._model, "messages": messages, "temperature": 0}
        if self._json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            response = client.post(self._url, json=body)
            if response.status_code in (400, 422) and "response_format" in body:
                # Perhaps `response_format` is what the server does not understand: ask once
                # more without it, and stop sending it if that was the reason.
                del body["response_format"]
                retry = client.post(self._url, json=body)
                if retry.status_code == 200:
                    _log.info("LLM server refused response_format; asking without it from now")
                    self._json_mode = False
                response = retry
        except httpx.TimeoutException as error:
            raise _Transient(f"timed out after {self._timeout:g} s") from error
        except httpx.TransportError as error:
            raise _Transient(f"cannot reach the LLM server: {error!r}") from error
        if response.status_code in _RETRYABLE_STATUS:
            raise _Transient(
                f"HTTP {response.status_code}: {_excerpt(response.text)}",
                _retry_after(response),
            )
        if response.status_code != 200:
            raise LLMUnusable(f"HTTP {response.status_code}: {_excerpt(response.text)}")
        try:
            choice = response.json()["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _Transient(f"not a chat completion: {_excerpt(response.text)}") from error
        if not isinstance(content, str):
            raise _Transient("the chat completion has no text content")
        return content, choice.get("finish_reason") == "length"


# --- helpers ----------------------------------------------------------------------------------


def _parse(content: str, schema: type[T]) -> tuple[T | None, str]:
    """The reply as `schema`, or None and what is wrong with it, in words for the model."""
    text = re.sub(r"<think>.*?</think>", "", content, flags=re.S).strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    if fenced:
        text = fenced.group(1).strip()
    first, last = text.find("{"), text.rfind("}")
    if first < 0:
        return None, "it contains no JSON object"
    try:
        data = json.loads(text[first : last + 1] if last > first else text[first:])
    except json.JSONDecodeError as error:
        return None, f"it is not valid JSON ({error.msg} at character {error.pos})"
    try:
        return schema.model_validate(data), ""
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'the object'}: {e['msg']}"
            for e in error.errors()[:5]
        ]
        return None, "it does not follow the shape asked for: " + "; ".join(problems)


def _chunk_drafts(topics: Sequence[_TopicReply], chunk: _Chunk) -> list[TopicDraft]:
    """The chunk's topics in time order, starts snapped to its lines. A start past the chunk's
    end is made up: that topic's summary joins the topic before it."""
    inside = sorted(
        (t for t in topics if t.start <= chunk.end), key=lambda t: _snap(t.start, chunk)
    )
    beyond = [t for t in topics if t.start > chunk.end]
    if not inside:
        inside, beyond = beyond[:1], beyond[1:]
    drafts = [
        TopicDraft(_snap(t.start, chunk), clean_title(t.title), " ".join(t.summary.split()))
        for t in inside
    ]
    for extra in beyond:
        last = drafts[-1]
        summary = " ".join([last.summary, *extra.summary.split()])
        drafts[-1] = TopicDraft(last.start, last.title, summary)
    return drafts


def _snap(seconds: float, chunk: _Chunk) -> float:
    """The start of the chunk's line nearest to `seconds`: models copy times rounded to the
    second (or make them up), the topic starts where the line does."""
    if seconds <= chunk.start:
        return chunk.start
    return min(chunk.lines, key=lambda line: (abs(line.start - seconds), line.start)).start


def _topic_lines(topics: Sequence[Topic]) -> str:
    return "\n".join(f"[{time_range(t.start, t.end)}] {t.title}: {t.summary}" for t in topics)


def _group(topics: Sequence[Topic], max_chars: int) -> list[list[Topic]]:
    groups: list[list[Topic]] = []
    size = 0
    for topic in topics:
        length = len(_topic_lines([topic])) + 1
        if groups and size + length <= max_chars:
            groups[-1].append(topic)
            size += length
        else:
            groups.append([topic])
            size = length
    return groups


def _action_items(
    found: Sequence[_ActionItemReply], names: NameMatcher, start: float, end: float
) -> list[ActionItem]:
    """Owners matched to speaker names (a name the model wrote otherwise is kept: it may be
    someone mentioned who did not speak), times clamped into the meeting, duplicates dropped,
    in time order."""
    items: list[ActionItem] = []
    seen: set[str] = set()
    for item in found:
        key = " ".join(item.text.split()).casefold()
        if key in seen:
            continue
        seen.add(key)
        owner = names.match(item.owner) or item.owner
        when = min(max(item.start, start), end) if item.start is not None else None
        items.append(ActionItem(text=" ".join(item.text.split()), owner=owner, start=when))
    items.sort(key=lambda i: (i.start is None, i.start or 0.0))
    return items[:ACTION_ITEMS_MAX]


def _demote_headings(markdown: str) -> str:
    """Headings inside the model's text sit under our `## Overview`: make them `###` or
    deeper, and drop a leading heading that only repeats a title."""
    lines = markdown.splitlines()
    if lines and re.match(r"^#\s", lines[0]):
        lines = lines[1:]
    demoted = [re.sub(r"^#{1,2}(?=\s)", "###", line) for line in lines]
    return "\n".join(demoted).strip()


def _scaled(progress: Progress, low: float, high: float) -> Progress:
    def report(fraction: float) -> None:
        progress(low + (high - low) * fraction)

    return report


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
