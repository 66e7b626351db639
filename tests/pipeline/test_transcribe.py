"""Transcribers: faster-whisper with the bundled tiny.en on recorded speech, and the
OpenAI-compatible client against a small server of our own on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import threading
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from structlog.testing import capture_logs

from reflector.pipeline.transcribe import (
    OpenAITranscriber,
    Transcriber,
    TranscriberError,
    WhisperTranscriber,
)
from reflector.pipeline.types import Transcription, no_progress
from tests.processes import free_port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LIBRIVOX = FIXTURES / "speech" / "librivox"
CLIPS = sorted(LIBRIVOX.glob("*.wav"))
PHONE = FIXTURES / "speech" / "phone-call" / "sample.wav"


def _bench_normaliser() -> Callable[[str], str]:
    # The evaluation's normaliser (Whisper's), so the test and `make eval` score alike.
    path = Path(__file__).resolve().parents[2] / "bench" / "eval_normalise.py"
    spec = importlib.util.spec_from_file_location("eval_normalise", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    normalise: Callable[[str], str] = module.normalise
    return normalise


normalise = _bench_normaliser()


def wav_seconds(source: Path | io.BytesIO) -> float:
    with wave.open(str(source) if isinstance(source, Path) else source, "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def write_wav(path: Path, samples: np.ndarray[Any, np.dtype[np.int16]]) -> Path:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(samples.astype("<i2").tobytes())
    return path


def join_clips(target: Path) -> Path:
    with wave.open(str(target), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        for clip in CLIPS:
            with wave.open(str(clip), "rb") as reader:
                writer.writeframes(reader.readframes(reader.getnframes()))
    return target


class Recorder:
    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


# --- faster-whisper ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return WhisperTranscriber()


@pytest.fixture(scope="module")
def talk(whisper: WhisperTranscriber, tmp_path_factory: pytest.TempPathFactory) -> Transcription:
    """The five LibriVox clips as one recording, as a meeting would be."""
    wav = join_clips(tmp_path_factory.mktemp("talk") / "talk.wav")
    return whisper.transcribe(wav, language=None, progress=no_progress)


def test_whisper_is_a_transcriber(whisper: WhisperTranscriber) -> None:
    transcriber: Transcriber = whisper
    assert transcriber.name == "faster-whisper:tiny.en"


def test_whisper_words_match_the_reading(talk: Transcription) -> None:
    reference = normalise(" ".join(clip.with_suffix(".txt").read_text() for clip in CLIPS))
    hypothesis = normalise(" ".join(word.text for word in talk.words))
    # The reader says "a more a amiable woman"; Whisper drops the slip: 1 word of 71.
    assert jiwer.wer(reference, hypothesis) <= 0.02
    assert "ill-disposed" in [word.text for word in talk.words]  # one word, not "ill -disposed"


def test_whisper_times_and_metadata(talk: Transcription) -> None:
    assert talk.language == "en"
    assert talk.backend == "faster-whisper:tiny.en"
    assert talk.duration == pytest.approx(sum(wav_seconds(clip) for clip in CLIPS), abs=0.01)
    starts = [word.start for word in talk.words]
    assert starts == sorted(starts)
    for word in talk.words:
        assert word.text == word.text.strip()
        assert word.text
        assert 0.0 <= word.start <= word.end <= talk.duration + 0.05
        assert word.probability is not None
        assert 0.0 <= word.probability <= 1.0
    # Each clip's first word starts within half a second of the clip's start in the recording.
    offset = 0.0
    for clip in CLIPS:
        assert min(abs(word.start - offset) for word in talk.words) < 0.5
        offset += wav_seconds(clip)


def test_whisper_progress_rises_to_one(whisper: WhisperTranscriber) -> None:
    progress = Recorder()
    result = whisper.transcribe(PHONE, language="en", progress=progress)
    assert progress.values == sorted(progress.values)
    assert progress.values[-1] == 1.0
    assert len(progress.values) > 2
    assert result.language == "en"
    text = normalise(" ".join(word.text for word in result.words))
    assert "new jersey" in text
    assert "chicago" in text


def test_a_long_recording_goes_in_pieces_with_the_same_words(
    whisper: WhisperTranscriber, talk: Transcription, tmp_path: Path
) -> None:
    # The talk five times (2 min): pieces of at most 61 s make three cuts at quiet moments.
    one = join_clips(tmp_path / "once.wav")
    with wave.open(str(one), "rb") as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    wav = write_wav(tmp_path / "five.wav", np.tile(samples, 5))
    pieces = WhisperTranscriber(piece_seconds=61)
    whole = whisper.transcribe(wav, language=None, progress=no_progress)
    cut = pieces.transcribe(wav, language=None, progress=no_progress)
    assert cut.duration == pytest.approx(5 * wav_seconds(one), abs=0.01)
    starts = [w.start for w in cut.words]
    assert starts == sorted(starts)
    assert starts[-1] > 4 * wav_seconds(one)
    assert cut.language == "en"
    normalise = _bench_normaliser()
    reference = normalise(" ".join(w.text for w in whole.words))
    assert jiwer.wer(reference, normalise(" ".join(w.text for w in cut.words))) < 0.05
    assert len(cut.words) == pytest.approx(5 * len(talk.words), rel=0.05)


def test_english_only_model_refuses_another_language(whisper: WhisperTranscriber) -> None:
    with pytest.raises(TranscriberError, match=r"only English.*TRANSCRIBE_LANGUAGE"):
        whisper.transcribe(CLIPS[0], language="de", progress=no_progress)


def test_model_loads_once_for_concurrent_calls() -> None:
    transcriber = WhisperTranscriber()
    results: list[Transcription] = []
    with capture_logs() as logs:
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    transcriber.transcribe(CLIPS[1], language=None, progress=no_progress)
                )
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 2
    assert results[0].words == results[1].words
    assert [log["event"] for log in logs].count("transcribe.model_loaded") == 1


def test_unknown_model_name_is_not_downloaded() -> None:
    with pytest.raises(TranscriberError, match="set WHISPER_MODEL to the folder"):
        WhisperTranscriber("large-v3")


def test_model_folder_without_model(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(TranscriberError, match=r"no model\.bin"):
        WhisperTranscriber(str(tmp_path))


def test_broken_model_folder_fails_on_first_use(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text("{}")
    transcriber = WhisperTranscriber(str(tmp_path))
    assert transcriber.name == f"faster-whisper:{tmp_path.name}"
    with pytest.raises(TranscriberError, match=r"Could not load the Whisper model.*WHISPER_MODEL"):
        transcriber.transcribe(CLIPS[0], language=None, progress=no_progress)


# --- OpenAI-compatible API --------------------------------------------------------------


@dataclass
class Received:
    headers: Message
    fields: dict[str, str]
    audio: bytes


@dataclass
class FakeApi:
    """Answers POST /v1/audio/transcriptions from a script, one entry per request: a
    (status, body) pair, or a number of seconds to stall before answering nothing."""

    url: str
    script: list[tuple[int, Any] | float] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    audio = b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        if name == "file":
            audio = payload
        else:
            fields[name] = payload.decode()
    return fields, audio


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fields, audio = _parse_form(self.headers["Content-Type"], body)
            fake.received.append(Received(self.headers, fields, audio))
            if self.path != "/v1/audio/transcriptions":
                self._answer(404, {"error": "no such route"})
                return
            step = fake.script.pop(0)
            if isinstance(step, float):
                fake.release.wait(step)
                return
            status, answer = step
            self._answer(status, answer)

        def _answer(self, status: int, answer: Any) -> None:
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def verbose(words: list[tuple[str, float, float]], language: str = "english") -> dict[str, Any]:
    return {
        "task": "transcribe",
        "language": language,
        "duration": 7.1,
        "text": " ".join(word for word, _, _ in words),
        "words": [{"word": word, "start": start, "end": end} for word, start, end in words],
    }


def client(api: FakeApi, **options: Any) -> OpenAITranscriber:
    values: dict[str, Any] = {"api_key": "sk-test", "model": "whisper-large", "backoff": 0.01}
    values.update(options)
    return OpenAITranscriber(api.url, **values)


def test_openai_transcription(api: FakeApi) -> None:
    api.script = [(200, verbose([(" And", 0.5, 0.7), ("Mr.", 0.7, 1.0), (" John ", 1.0, 1.3)]))]
    progress = Recorder()
    result = client(api).transcribe(CLIPS[0], language="en", progress=progress)

    assert [(w.text, w.start, w.end) for w in result.words] == [
        ("And", 0.5, 0.7),
        ("Mr.", 0.7, 1.0),
        ("John", 1.0, 1.3),
    ]
    assert result.language == "en"  # OpenAI names the language; we keep codes
    assert result.backend == "openai:whisper-large"
    assert result.duration == pytest.approx(wav_seconds(CLIPS[0]))
    assert progress.values[-1] == 1.0
    (request,) = api.received
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.fields == {
        "model": "whisper-large",
        "response_format": "verbose_json",
        "timestamp_granularities[]": "word",
        "language": "en",
    }
    assert request.audio == CLIPS[0].read_bytes()


def test_openai_words_inside_segments_and_language_detection(api: FakeApi) -> None:
    answer = {
        "text": "Hallo zusammen",
        "language": "de",
        "segments": [{"words": [{"word": "Hallo", "start": 0.1, "end": 0.4}]}, {"words": None}],
    }
    api.script = [(200, answer)]
    result = client(api, api_key=None).transcribe(CLIPS[0], language=None, progress=no_progress)
    assert [w.text for w in result.words] == ["Hallo"]
    assert result.language == "de"
    (request,) = api.received
    assert "Authorization" not in request.headers
    assert "language" not in request.fields


def test_openai_retries_a_server_error(api: FakeApi) -> None:
    api.script = [(500, {"error": "busy"}), (200, verbose([("Hello", 0.0, 0.4)]))]
    result = client(api).transcribe(CLIPS[0], language=None, progress=no_progress)
    assert [w.text for w in result.words] == ["Hello"]
    assert len(api.received) == 2


def test_openai_gives_up_after_retries(api: FakeApi) -> None:
    api.script = [(503, b"overloaded")] * 3
    with pytest.raises(TranscriberError) as caught:
        client(api, retries=2).transcribe(CLIPS[0], language=None, progress=no_progress)
    message = str(caught.value)
    assert api.url in message
    assert "HTTP 503: overloaded" in message
    assert "3 attempts" in message
    assert "TRANSCRIBE_API_URL" in message
    assert len(api.received) == 3


def test_openai_does_not_retry_a_refused_key(api: FakeApi) -> None:
    api.script = [(401, {"error": {"message": "Incorrect API key provided: sk-te***"}})]
    with pytest.raises(TranscriberError) as caught:
        client(api).transcribe(CLIPS[0], language=None, progress=no_progress)
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "TRANSCRIBE_API_KEY" in message
    assert f"{api.url}/audio/transcriptions" in message
    assert "sk-te" not in message
    assert len(api.received) == 1


def test_openai_bad_request_names_the_model(api: FakeApi) -> None:
    api.script = [(400, {"error": "model not found"})]
    with pytest.raises(TranscriberError, match=r"HTTP 400.*model not found.*TRANSCRIBE_API_MODEL"):
        client(api).transcribe(CLIPS[0], language=None, progress=no_progress)
    assert len(api.received) == 1


def test_openai_wrong_base_url(api: FakeApi) -> None:
    transcriber = OpenAITranscriber(api.url.removesuffix("/v1"), backoff=0.01)
    with pytest.raises(TranscriberError, match=r"HTTP 404.*TRANSCRIBE_API_URL"):
        transcriber.transcribe(CLIPS[0], language=None, progress=no_progress)


def test_openai_answer_without_word_timings(api: FakeApi) -> None:
    api.script = [(200, {"text": "And Mr. John Dashwood", "language": "english"})]
    with pytest.raises(TranscriberError, match=r"without word timings.*timestamp_granularities"):
        client(api).transcribe(CLIPS[0], language=None, progress=no_progress)


def test_openai_answer_that_is_not_a_transcription(api: FakeApi) -> None:
    api.script = [(200, {"words": [{"word": "x"}]})]
    with pytest.raises(TranscriberError, match="not a verbose_json transcription"):
        client(api).transcribe(CLIPS[0], language=None, progress=no_progress)
    api.script = [(200, b"<html>proxy login</html>")]
    with pytest.raises(TranscriberError, match="not JSON"):
        client(api).transcribe(CLIPS[0], language=None, progress=no_progress)


def test_openai_silence_has_no_words(api: FakeApi) -> None:
    api.script = [(200, {"text": "", "language": "english", "words": []})]
    result = client(api).transcribe(CLIPS[0], language=None, progress=no_progress)
    assert result.words == []


def test_openai_timeout_is_not_retried(api: FakeApi) -> None:
    api.script = [5.0, (200, verbose([("late", 0.0, 0.1)]))]
    with pytest.raises(TranscriberError, match=r"did not answer within 0\.3 s"):
        client(api, timeout=0.3).transcribe(CLIPS[0], language=None, progress=no_progress)
    assert len(api.received) == 1


def test_openai_unreachable_server_is_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    transcriber = OpenAITranscriber(url, retries=1, backoff=0.01)
    with pytest.raises(TranscriberError, match=r"could not be reached.*2 attempts.*TRANSCRIBE_API"):
        transcriber.transcribe(CLIPS[0], language=None, progress=no_progress)


def test_openai_long_recording_goes_in_pieces(api: FakeApi, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    # 140 s of noise with a quiet second at 55-56 s, where the first piece should end.
    samples = rng.integers(-8000, 8000, size=140 * 16_000).astype(np.int16)
    samples[55 * 16_000 : 56 * 16_000] = 0
    wav = write_wav(tmp_path / "long.wav", samples)
    api.script = [(200, verbose([(f"w{i}", 1.0, 1.5)])) for i in range(3)]
    progress = Recorder()

    result = client(api, piece_seconds=61).transcribe(wav, language=None, progress=progress)

    lengths = [wav_seconds(io.BytesIO(request.audio)) for request in api.received]
    assert len(lengths) == 3
    assert all(length <= 61 for length in lengths)
    assert sum(lengths) == pytest.approx(140.0)
    assert 55.0 <= lengths[0] <= 56.0
    assert [w.start for w in result.words] == pytest.approx(
        [1.0, 1.0 + lengths[0], 1.0 + lengths[0] + lengths[1]]
    )
    assert result.duration == pytest.approx(140.0)
    assert progress.values == sorted(progress.values)
    assert progress.values[-1] == 1.0
    assert len(progress.values) >= 3
