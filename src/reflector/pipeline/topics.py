"""Topics and summaries of a transcript: the `TextAnalyzer` seam both backends implement, the
boundary search the offline backend uses (TextTiling on sentence embeddings), and the repair
that turns any list of topic starts into topics that tile the transcript.

Backends: `reflector.pipeline.offline_text.OfflineAnalyzer` (extractive, no network) and
`reflector.pipeline.llm.LLMAnalyzer` (an OpenAI-compatible chat API, falling back to the
offline one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from reflector.pipeline.types import Progress, Segment, Speaker, Summary, Topic


class TextAnalyzer(Protocol):
    """Turns a transcript into topics, then a summary.

    `topics` returns topics in time order that tile the transcript: the first starts at the
    first segment's start, each ends where the next starts, the last ends at the last
    segment's end; no segments gives no topics. `summarize` takes those topics (it may be
    given none) and never fails on empty input. Both are blocking and CPU- or network-bound:
    call them from a worker thread."""

    name: str

    def topics(
        self, segments: list[Segment], speakers: list[Speaker], *, progress: Progress
    ) -> list[Topic]: ...

    def summarize(
        self,
        segments: list[Segment],
        speakers: list[Speaker],
        topics: list[Topic],
        *,
        progress: Progress,
    ) -> Summary: ...


@dataclass(frozen=True, slots=True)
class TopicDraft:
    """A topic as a backend proposes it: where it starts, what it is about."""

    start: float
    title: str
    summary: str


def tile_topics(drafts: Sequence[TopicDraft], start: float, end: float) -> list[Topic]:
    """Topics covering [start, end] exactly from drafts in any order with any times.

    Starts are clamped into the range and sorted (stable, so equal starts keep their order);
    a draft starting where an earlier one starts is merged into it, since a topic of zero
    length says nothing; the first topic is stretched back to `start` and each topic ends
    where the next begins."""
    end = max(end, start)
    ordered = sorted(
        (TopicDraft(min(max(d.start, start), end), d.title, d.summary) for d in drafts),
        key=lambda d: d.start,
    )
    merged: list[TopicDraft] = []
    for draft in ordered:
        if merged and (draft.start <= merged[-1].start or draft.start >= end):
            last = merged[-1]
            summary = " ".join(s for s in (last.summary, draft.summary) if s)
            merged[-1] = TopicDraft(last.start, last.title or draft.title, summary)
        else:
            merged.append(draft)
    if not merged:
        return []
    merged[0] = TopicDraft(start, merged[0].title, merged[0].summary)
    topics = []
    for i, draft in enumerate(merged):
        stop = merged[i + 1].start if i + 1 < len(merged) else end
        topics.append(Topic(title=draft.title, summary=draft.summary, start=draft.start, end=stop))
    return topics


@dataclass(frozen=True, slots=True)
class TilingParams:
    # Words on each side of a gap that are compared: about 35 s of speech, enough to average
    # out one-line remarks ("Good.", "Right.") that carry no topic.
    window_words: int = 90
    # Topics shorter than this are not worth a heading; long meetings get longer ones.
    min_topic_s: float = 60.0
    min_topic_fraction: float = 1 / 40
    min_sentences: int = 3
    # One topic per this many seconds at most, and never more than max_topics.
    seconds_per_topic: float = 90.0
    max_topics: int = 30
    # Depth (on the centred-cosine scale, 0 to 4) below which a dip is noise.
    min_depth: float = 0.3
    # A cut's plain similarity must fall to this fraction of the median across the meeting:
    # measured on MiniLM, about 0.5 at real changes of subject, above 0.7 inside one.
    max_relative_similarity: float = 0.65


def max_topics_for(duration: float, params: TilingParams) -> int:
    return max(1, min(params.max_topics, 1 + int(duration // params.seconds_per_topic)))


def find_boundaries(
    embeddings: NDArray[np.float32],
    word_counts: Sequence[int],
    starts: Sequence[float],
    end: float,
    params: TilingParams = TilingParams(),
) -> list[int]:
    """Indexes of the sentences that begin a new topic (never 0), in order.

    TextTiling on sentence embeddings: for each gap between sentences, the similarity of
    the ~`window_words` words before it with those after it (embedding means weighted by the
    square root of sentence length, so long sentences count more without drowning the rest);
    smoothed; each local minimum scores its depth below the peaks on either side; the deepest
    are cut first while every topic stays long enough, up to a cap that grows with duration.
    Dips are found on embeddings centred on the transcript's mean (all sentences of a meeting
    share a large common direction that flattens the dips), but a cut must also be a clear drop
    in plain similarity compared with the meeting's median, or a meeting about one thing would
    be cut up by noise."""
    n = len(word_counts)
    if n < 2 * params.min_sentences or embeddings.shape[0] != n:
        return []
    t0 = starts[0]
    duration = end - t0
    min_topic_s = max(params.min_topic_s, duration * params.min_topic_fraction)
    cap = max_topics_for(duration, params)
    if cap < 2 or duration < 2 * min_topic_s:
        return []

    raw = embeddings.astype(np.float64)
    centred = raw - raw.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    centred /= np.where(norms > 0, norms, 1.0)
    counts = np.asarray(word_counts, dtype=np.float64)
    sims = _window_similarities(centred, counts, params.window_words)
    if sims.size >= 3:
        sims = np.convolve(np.pad(sims, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    # Centring finds the dips but also invents them in a meeting about one thing (after
    # removing the mean, what is left of one topic is noise). A cut must also be a real drop
    # on the absolute scale: adjacent windows of one topic stay about as similar as usual.
    plain = _window_similarities(raw, counts, params.window_words)
    usual = float(np.median(plain))

    depths = _depths(sims)
    if not depths:
        return []
    threshold = max(params.min_depth, float(np.mean(list(depths.values()))))
    chosen: list[int] = []
    for k in sorted(depths, key=lambda k: (-depths[k], k)):
        if depths[k] < threshold or len(chosen) >= cap - 1:
            break
        sentence = k + 1
        at = starts[sentence]
        if float(plain[max(k - 1, 0) : k + 2].min()) > params.max_relative_similarity * usual:
            continue
        if (
            sentence < params.min_sentences
            or n - sentence < params.min_sentences
            or at - t0 < min_topic_s
            or end - at < min_topic_s
        ):
            continue
        if all(
            abs(at - starts[c]) >= min_topic_s and abs(sentence - c) >= params.min_sentences
            for c in chosen
        ):
            chosen.append(sentence)
    return sorted(chosen)


def _window_similarities(
    vectors: NDArray[np.float64], counts: NDArray[np.float64], window_words: int
) -> NDArray[np.float64]:
    """Cosine similarity, for each gap g (before sentence g, 1 <= g < n), of the weighted mean
    of the ~`window_words` words before it and of those after it. Cumulative sums make each
    window O(1), so the whole is linear in sentences."""
    n = len(counts)
    weighted = vectors * np.sqrt(np.maximum(counts, 1.0))[:, None]
    cum = np.vstack([np.zeros((1, vectors.shape[1])), np.cumsum(weighted, axis=0)])
    cum_words = np.concatenate([[0.0], np.cumsum(counts)])
    gaps = np.arange(1, n)
    lefts = np.searchsorted(cum_words, cum_words[gaps] - window_words, side="right") - 1
    lefts = np.clip(lefts, 0, gaps - 1)
    rights = np.searchsorted(cum_words, cum_words[gaps] + window_words, side="left")
    rights = np.clip(rights, gaps + 1, n)
    left = cum[gaps] - cum[lefts]
    right = cum[rights] - cum[gaps]
    denom = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    sims: NDArray[np.float64] = np.einsum("ij,ij->i", left, right) / np.where(denom > 0, denom, 1.0)
    return sims


def _depths(sims: NDArray[np.float64]) -> dict[int, float]:
    """Depth of each local minimum of `sims`: how far it lies below the highest point reached
    climbing uphill on each side. Climbs from neighbouring minima cover disjoint stretches, so
    this is linear in the number of gaps."""
    depths: dict[int, float] = {}
    m = len(sims)
    for k in range(m):
        if (k > 0 and sims[k] > sims[k - 1]) or (k + 1 < m and sims[k] >= sims[k + 1]):
            continue
        j = k
        while j > 0 and sims[j - 1] >= sims[j]:
            j -= 1
        r = k
        while r + 1 < m and sims[r + 1] >= sims[r]:
            r += 1
        depth = float(sims[j] + sims[r] - 2 * sims[k])
        if depth > 0:
            depths[k] = depth
    return depths
