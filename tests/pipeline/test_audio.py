"""decode_audio on real recorded speech: every container, the three outputs, the files it must
refuse, re-runs after a crash, and memory on a long recording."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import wave
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from reflector.pipeline.audio import (
    MARKER_NAME,
    PARTIAL_SUFFIX,
    PLAYBACK_NAME,
    WAV_NAME,
    AudioError,
    DecodedAudio,
    decode_audio,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MEDIA = FIXTURES / "media"
CLIP = FIXTURES / "speech" / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.wav"
FORMATS = ["mp4", "webm", "mkv", "m4a", "mp3", "ogg"]
TALK_SECONDS = 24.7


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DecodedAudio]:
    root = tmp_path_factory.mktemp("decoded")
    return {fmt: decode_audio(MEDIA / f"talk.{fmt}", root / fmt) for fmt in FORMATS}


def wav_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            16_000,
        )
        assert reader.getcomptype() == "NONE"
        return reader.getnframes()


def write_wav(path: Path, pcm: bytes, *, channels: int = 1, rate: int = 16_000) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)


def stamps(workdir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(workdir.iterdir())}


# --- formats and outputs ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_16k_mono_wav(decoded: dict[str, DecodedAudio], fmt: str) -> None:
    result = decoded[fmt]
    assert result.wav_path.name == WAV_NAME
    frames = wav_frames(result.wav_path)
    assert result.duration == frames / 16_000
    assert result.duration == pytest.approx(TALK_SECONDS, abs=0.2)


def test_formats_agree_on_the_sample_count(decoded: dict[str, DecodedAudio]) -> None:
    counts = {fmt: wav_frames(result.wav_path) for fmt, result in decoded.items()}
    # The AAC fixtures carry the encoder's 1024 priming samples (no edit list to trim them)
    # and a padded last frame: about 46 ms more than the Opus and MP3 ones.
    assert max(counts.values()) - min(counts.values()) <= 800, counts


@pytest.mark.parametrize("fmt", FORMATS)
def test_peaks_are_a_fixed_number_of_values_in_range(
    decoded: dict[str, DecodedAudio], fmt: str
) -> None:
    peaks = decoded[fmt].peaks
    assert len(peaks) == 1000
    assert all(0.0 <= value <= 1.0 for value in peaks)
    assert max(peaks) > 0.2


@pytest.mark.parametrize("fmt", FORMATS)
def test_playback_copy_is_mono_aac_as_long_as_the_wav(
    decoded: dict[str, DecodedAudio], fmt: str
) -> None:
    result = decoded[fmt]
    assert result.playback_path.name == PLAYBACK_NAME
    with av.open(str(result.playback_path)) as container:
        (stream,) = container.streams
        assert stream.type == "audio"
        assert stream.codec_context.name == "aac"
        assert stream.codec_context.layout.nb_channels == 1
        samples = sum(frame.samples for frame in container.decode(stream))
        seconds = samples / stream.codec_context.sample_rate
    assert seconds == pytest.approx(result.duration, abs=0.05)
    assert 30_000 < result.playback_path.stat().st_size * 8 / seconds < 80_000


def test_playback_copy_has_its_index_first(decoded: dict[str, DecodedAudio]) -> None:
    # A browser can start playing before the whole file has arrived.
    boxes = top_level_boxes(decoded["mp4"].playback_path)
    assert boxes.index("moov") < boxes.index("mdat")


def top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    names, position = [], 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position : position + 4], "big")
        names.append(data[position + 4 : position + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[position + 8 : position + 16], "big")
        if size < 8:
            break
        position += size
    return names


def test_a_16k_mono_wav_passes_through_sample_for_sample(tmp_path: Path) -> None:
    # The clip's header names no channel layout, a case the resamplers trip over.
    result = decode_audio(CLIP, tmp_path / "work")
    with wave.open(str(CLIP), "rb") as source, wave.open(str(result.wav_path), "rb") as output:
        assert output.readframes(output.getnframes()) == source.readframes(source.getnframes())


def test_peaks_tell_silence_from_speech(tmp_path: Path) -> None:
    with wave.open(str(CLIP), "rb") as reader:
        speech = reader.readframes(reader.getnframes())  # 2.99 s
    silence = bytes(2 * 16_000 * 2)
    source = tmp_path / "gaps.wav"
    write_wav(source, silence + speech + silence)

    peaks = decode_audio(source, tmp_path / "work", peaks=70).peaks  # about 0.1 s each

    assert len(peaks) == 70
    assert max(peaks[:19]) == 0.0
    assert min(max(peaks[20 + 10 * i : 30 + 10 * i]) for i in range(3)) > 0.1
    assert max(peaks[-19:]) == 0.0


def test_peaks_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        decode_audio(MEDIA / "talk.mp3", tmp_path / "work", peaks=0)


# --- files it must refuse ---------------------------------------------------------------


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text_named_mp4(path: Path) -> Path:
    path.write_text("Minutes of the meeting\n\n- nothing decided\n" * 20)
    return path


def video_only_mp4(path: Path) -> Path:
    return black_video(path, with_audio_stream=False)


def audio_track_without_sound(path: Path) -> Path:
    # Matroska keeps a declared track that never receives a packet; MP4 drops it.
    return black_video(path.with_suffix(".mkv"), with_audio_stream=True)


def black_video(path: Path, *, with_audio_stream: bool) -> Path:
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=5)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        if with_audio_stream:
            output.add_stream("aac", rate=16_000, layout="mono")
        for index in range(5):
            frame = av.VideoFrame(64, 64, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.pts = index
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
    return path


def ogg_page_header_only(path: Path) -> Path:
    target = path.with_suffix(".ogg")
    target.write_bytes(b"OggS")
    return target


def first_30_percent(fmt: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        data = (MEDIA / f"talk.{fmt}").read_bytes()
        target = path.with_suffix(f".{fmt}")
        target.write_bytes(data[: len(data) * 3 // 10])
        return target

    return make


@pytest.mark.parametrize(
    ("make", "problem", "sentence"),
    [
        (empty, "empty", r"^The file is empty\.$"),
        (text_named_mp4, "not_media", r"^This is not a media file FFmpeg can read\.$"),
        (video_only_mp4, "no_audio", r"^The file has no audio track\.$"),
        (audio_track_without_sound, "no_sound", r"^The audio track holds no sound"),
        # The MP4 keeps its index at the end: without it nothing can be read at all.
        (first_30_percent("mp4"), "incomplete", r"^The file looks like an MP4 .* incomplete"),
        (first_30_percent("webm"), "truncated", r"^The file stops at 7\.\d s of 24\.7 s"),
        (first_30_percent("mp3"), "truncated", r"^The file stops at 7\.\d s of 24\.7 s"),
        (ogg_page_header_only, "incomplete", r"^The file looks like an Ogg file"),
    ],
    ids=["empty", "text", "video-only", "silent-track", "cut-mp4", "cut-webm", "cut-mp3", "ogg-4b"],
)
def test_unusable_files_raise_a_sentence_and_leave_nothing(
    tmp_path: Path, make: Callable[[Path], Path], problem: str, sentence: str
) -> None:
    source = make(tmp_path / "upload.mp4")
    workdir = tmp_path / "work"

    with pytest.raises(AudioError) as caught:
        decode_audio(source, workdir)

    assert caught.value.problem == problem
    assert re.search(sentence, str(caught.value)), str(caught.value)
    assert not workdir.exists() or list(workdir.iterdir()) == []


def test_a_failure_also_removes_stale_outputs(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    decode_audio(MEDIA / "talk.mp3", workdir)
    with pytest.raises(AudioError):
        decode_audio(first_30_percent("webm")(tmp_path / "cut"), workdir)
    assert list(workdir.iterdir()) == []


# --- re-runs ----------------------------------------------------------------------------


def test_a_rerun_reuses_complete_outputs(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    first = decode_audio(MEDIA / "talk.ogg", workdir)
    before = stamps(workdir)
    assert set(before) == {WAV_NAME, PLAYBACK_NAME, MARKER_NAME}

    again = decode_audio(MEDIA / "talk.ogg", workdir)

    assert again == first
    assert stamps(workdir) == before


def test_a_rerun_with_another_peak_count_reads_them_from_the_wav(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    decode_audio(MEDIA / "talk.ogg", workdir)
    before = stamps(workdir)

    again = decode_audio(MEDIA / "talk.ogg", workdir, peaks=200)

    assert stamps(workdir) == before
    assert again.peaks == decode_audio(MEDIA / "talk.ogg", tmp_path / "fresh", peaks=200).peaks


def test_leftover_partial_files_do_not_fool_a_rerun(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    # What a crash in the middle of the first run leaves behind.
    for name in (WAV_NAME, PLAYBACK_NAME, MARKER_NAME):
        (workdir / (name + PARTIAL_SUFFIX)).write_bytes(b"RIFF half written")

    result = decode_audio(MEDIA / "talk.ogg", workdir)

    assert sorted(p.name for p in workdir.iterdir()) == sorted(
        [WAV_NAME, PLAYBACK_NAME, MARKER_NAME]
    )
    assert wav_frames(result.wav_path) / 16_000 == pytest.approx(TALK_SECONDS, abs=0.2)


@pytest.mark.parametrize("damage", ["cut-wav", "cut-playback", "no-marker", "bad-marker"])
def test_a_rerun_redoes_outputs_that_do_not_match_the_marker(tmp_path: Path, damage: str) -> None:
    workdir = tmp_path / "work"
    first = decode_audio(MEDIA / "talk.ogg", workdir)
    wav_size = first.wav_path.stat().st_size
    if damage == "cut-wav":
        os.truncate(first.wav_path, wav_size // 2)
    elif damage == "cut-playback":
        os.truncate(first.playback_path, 1000)
    elif damage == "no-marker":
        (workdir / MARKER_NAME).unlink()
    else:
        (workdir / MARKER_NAME).write_text('{"version": 1, "source": ')
    before = stamps(workdir)

    again = decode_audio(MEDIA / "talk.ogg", workdir)

    assert again == first
    assert again.wav_path.stat().st_size == wav_size
    assert again.wav_path.stat().st_mtime_ns != before[WAV_NAME]
    assert json.loads((workdir / MARKER_NAME).read_text())["wav_bytes"] == wav_size


def test_a_rerun_on_another_source_redoes_the_work(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    decode_audio(MEDIA / "talk.ogg", workdir)
    clip = decode_audio(CLIP, workdir)
    assert clip.duration == pytest.approx(2.99, abs=0.01)
    assert wav_frames(clip.wav_path) == 47_840


# --- memory -----------------------------------------------------------------------------

MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from reflector.pipeline.audio import decode_audio

    source, short, workdir = (Path(arg) for arg in sys.argv[1:4])
    decode_audio(short, workdir / "warm-up")  # codecs, encoders and imports at their size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = decode_audio(source, workdir / "long")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kib": after - before, "duration": result.duration}))
    """
)


def test_memory_stays_flat_on_a_ten_minute_recording(tmp_path: Path) -> None:
    source = tmp_path / "ten-minutes.wav"
    write_looped_talk(source, seconds=600)  # 48 kHz stereo: 115 MB on disk

    completed = subprocess.run(
        [sys.executable, "-c", MEASURE, str(source), str(MEDIA / "talk.ogg"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    assert measured["duration"] == pytest.approx(600, abs=0.1)
    # Holding the 16 kHz PCM alone would take 19.2 MB, the decoded source 230 MB.
    assert measured["growth_kib"] < 10 * 1024, measured


def write_looped_talk(path: Path, *, seconds: int) -> None:
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48_000)
    with av.open(str(MEDIA / "talk.ogg")) as container:
        chunks = [
            bytes(out.planes[0])[: out.samples * 4]
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    talk = b"".join(chunks)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(48_000)
        remaining = seconds * 48_000 * 4
        while remaining > 0:
            writer.writeframesraw(talk[:remaining])
            remaining -= min(len(talk), remaining)
