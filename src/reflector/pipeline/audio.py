"""The first pipeline step: decode a recording's first audio track, in one streaming pass, into
a 16 kHz mono 16-bit WAV for the speech models, a compressed mono AAC copy for playback in a
browser, and waveform peaks for the page.

Outputs under `workdir` have fixed names: `audio.wav`, `playback.m4a` and `audio.json` (the
marker). Each is written under a `.partial` name and renamed when complete; the marker is
written last and records the source's size and a hash of its ends, the sizes of both outputs,
the duration and the peaks. A re-run whose marker matches the source and both files returns
the recorded result without decoding (the pipeline re-runs steps after a crash); anything
else (no marker, a size that differs, leftover `.partial` files) starts over from scratch.
One run at a time per workdir.

Blocking and CPU-bound: call it from a worker thread or process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import av
from av.audio.frame import AudioFrame
from av.audio.layout import AudioLayout
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet

from reflector.logs import get_logger

WAV_NAME = "audio.wav"
PLAYBACK_NAME = "playback.m4a"
MARKER_NAME = "audio.json"
PARTIAL_SUFFIX = ".partial"
SAMPLE_RATE = 16_000
PLAYBACK_RATE = 48_000
PLAYBACK_BIT_RATE = 64_000

# Bump when the outputs change, so markers written by older code stop matching.
_MARKER_VERSION = 1
# Demuxers a recording can plausibly need. Others (playlists, concat lists, text renderers)
# would let a crafted upload make FFmpeg read other files, or turn a text file into "video".
_DEMUXERS = "mov,matroska,webm,mp3,ogg,wav,w64,aac,flac,caf,aiff,asf,avi,mpegts,amr"
# Header durations and the last packets' ends disagree by up to a frame or so in sound files.
_TRUNCATION_TOLERANCE_S = 1.0
# A few undecodable packets (a glitch in a live recording) cost a few tens of ms; more means
# the file is damaged.
_BAD_PACKET_BUDGET = 25
# Bytes hashed at each end of the source: cheap, and a re-download of the same object matches.
_FINGERPRINT_BYTES = 1 << 20
# Peaks are measured on each sample's high byte: one C-speed translate instead of a Python
# loop per sample, at a precision (1/127) finer than a waveform drawing can show.
_HIGH_BYTE = 1 if sys.byteorder == "little" else 0
_MAGNITUDE = bytes(v if v < 128 else 255 - v for v in range(256))
_FULL_SCALE = 127
# Fine blocks kept per output bucket, so a bucket's edges are off by at most 1/16 of it.
_BLOCKS_PER_PEAK = 16

_log = get_logger("reflector.pipeline.audio")

Problem = Literal[
    "empty", "not_media", "incomplete", "no_audio", "no_sound", "truncated", "damaged"
]


class AudioError(Exception):
    """A file we cannot use. str() is a sentence for the user; `problem` is a stable code."""

    def __init__(self, message: str, problem: Problem) -> None:
        super().__init__(message)
        self.problem: Problem = problem


@dataclass(frozen=True)
class DecodedAudio:
    wav_path: Path  # 16 kHz mono 16-bit PCM WAV
    duration: float  # seconds
    playback_path: Path  # mono AAC in .m4a, for playback in a browser
    peaks: list[float]  # max |sample| per equal slice of the recording, 0..1


def decode_audio(source: Path, workdir: Path, *, peaks: int = 1000) -> DecodedAudio:
    """Decode `source` into `workdir`, or return the outputs a previous run completed there.

    `peaks` is the number of waveform values: each the largest |sample| of its equal slice of
    the recording, in steps of 1/127. Raises AudioError for a file we cannot use, having
    removed this step's files from `workdir`; FileNotFoundError when `source` is missing;
    OSError when the outputs cannot be written (worth a retry, unlike AudioError)."""
    if peaks < 1:
        raise ValueError("peaks must be at least 1")
    fingerprint = _fingerprint(source)
    paths = _Paths(workdir)
    reused = _reuse(paths, fingerprint, peaks)
    if reused is not None:
        _log.info("audio.reused", source=str(source), seconds=round(reused.duration, 3))
        return reused
    started = time.monotonic()
    paths.clear()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        samples, peak_values = _transcode(source, paths, peaks)
    except BaseException:
        paths.clear_partials()
        raise
    result = _commit(paths, fingerprint, samples, peak_values)
    _log.info(
        "audio.decoded",
        source=str(source),
        seconds=round(result.duration, 3),
        elapsed=round(time.monotonic() - started, 3),
    )
    return result


# --- outputs and the marker -------------------------------------------------------------


@dataclass(frozen=True)
class _Paths:
    workdir: Path

    @property
    def wav(self) -> Path:
        return self.workdir / WAV_NAME

    @property
    def playback(self) -> Path:
        return self.workdir / PLAYBACK_NAME

    @property
    def marker(self) -> Path:
        return self.workdir / MARKER_NAME

    @staticmethod
    def partial(path: Path) -> Path:
        return path.with_name(path.name + PARTIAL_SUFFIX)

    def finals(self) -> tuple[Path, Path, Path]:
        # The marker first: once it is gone, no later state can be mistaken for complete.
        return (self.marker, self.wav, self.playback)

    def clear(self) -> None:
        for path in self.finals():
            path.unlink(missing_ok=True)
        self.clear_partials()

    def clear_partials(self) -> None:
        for path in self.finals():
            self.partial(path).unlink(missing_ok=True)


def _fingerprint(source: Path) -> dict[str, Any]:
    size = source.stat().st_size
    if size == 0:
        raise AudioError("The file is empty.", "empty")
    digest = hashlib.sha256()
    with source.open("rb") as file:
        digest.update(file.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            file.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            digest.update(file.read())
    return {"size": size, "sha256_of_ends": digest.hexdigest()}


def _reuse(paths: _Paths, fingerprint: dict[str, Any], peaks: int) -> DecodedAudio | None:
    try:
        record = json.loads(paths.marker.read_text())
        complete = (
            record["version"] == _MARKER_VERSION
            and record["source"] == fingerprint
            and paths.wav.stat().st_size == record["wav_bytes"]
            and paths.playback.stat().st_size == record["playback_bytes"]
        )
        if not complete:
            return None
        values = [float(v) for v in record["peaks"]]
        if len(values) != peaks:
            values = _peaks_of_wav(paths.wav, peaks)
        return DecodedAudio(paths.wav, float(record["duration"]), paths.playback, values)
    except (OSError, ValueError, KeyError, TypeError, wave.Error):
        return None


def _commit(
    paths: _Paths, fingerprint: dict[str, Any], samples: int, peaks: list[float]
) -> DecodedAudio:
    os.replace(paths.partial(paths.wav), paths.wav)
    os.replace(paths.partial(paths.playback), paths.playback)
    duration = samples / SAMPLE_RATE
    record = {
        "version": _MARKER_VERSION,
        "source": fingerprint,
        "wav_bytes": paths.wav.stat().st_size,
        "playback_bytes": paths.playback.stat().st_size,
        "duration": duration,
        "peaks": peaks,
    }
    partial = paths.partial(paths.marker)
    partial.write_text(json.dumps(record, separators=(",", ":")))
    _fsync(partial)
    os.replace(partial, paths.marker)
    _fsync(paths.workdir)
    return DecodedAudio(paths.wav, duration, paths.playback, peaks)


def _fsync(path: Path) -> None:
    # Without it a power cut after the rename can leave a complete-looking name on no data.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the decoding pass ------------------------------------------------------------------


def _transcode(source: Path, paths: _Paths, peaks: int) -> tuple[int, list[float]]:
    meter = _PeakMeter(peaks)
    with _open_source(source) as container:
        stream = _audio_stream(container)
        ends = _EndTracker()
        with (
            _WavSink(paths.partial(paths.wav), meter) as wav,
            _PlaybackSink(paths.partial(paths.playback)) as playback,
        ):
            _pump(container, stream, (wav, playback), ends)
            wav.finish()
            if wav.samples == 0:
                raise AudioError("The audio track holds no sound FFmpeg could decode.", "no_sound")
            playback.finish()
        _check_complete(container, ends, wav.samples)
    return wav.samples, meter.peaks()


def _open_source(source: Path) -> InputContainer:
    try:
        # "file:" keeps a name like "x:y" from being read as another protocol.
        return av.open(
            f"file:{source}",
            options={"format_whitelist": _DEMUXERS, "protocol_whitelist": "file"},
        )
    except av.FFmpegError as exc:
        if isinstance(exc, OSError):
            raise  # the file system's trouble (permissions, a directory), not the file's
        raise _unreadable(source) from exc


_SIGNATURES = (
    (4, b"ftyp", "an MP4 or M4A file"),
    (0, b"\x1a\x45\xdf\xa3", "a WebM or Matroska file"),
    (0, b"OggS", "an Ogg file"),
    (0, b"RIFF", "a WAV file"),
    (0, b"ID3", "an MP3 file"),
)


def _unreadable(source: Path) -> AudioError:
    with source.open("rb") as file:
        head = file.read(16)
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return AudioError(
                f"The file looks like {kind} but FFmpeg cannot open it: it is probably "
                "incomplete (cut off before the end) or damaged.",
                "incomplete",
            )
    return AudioError("This is not a media file FFmpeg can read.", "not_media")


def _audio_stream(container: InputContainer) -> AudioStream:
    if not container.streams.audio:
        raise AudioError("The file has no audio track.", "no_audio")
    return container.streams.audio[0]


def _pump(
    container: InputContainer,
    stream: AudioStream,
    sinks: tuple[_WavSink, _PlaybackSink],
    ends: _EndTracker,
) -> None:
    # All streams are demuxed so that a file cut short is told from an audio track that
    # legitimately ends before the video.
    packets = container.demux()
    bad_packets = 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            raise _damaged(sinks[0].samples) from exc
        ends.see(packet)
        if packet.stream.index != stream.index:
            continue
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            bad_packets += 1
            _log.warning("audio.bad_packet", pts=packet.pts, error=str(exc))
            if bad_packets > _BAD_PACKET_BUDGET:
                raise _damaged(sinks[0].samples) from exc
            continue
        for frame in frames:
            if isinstance(frame, AudioFrame):
                known = _with_known_layout(frame)
                for sink in sinks:
                    sink.push(known)


def _damaged(samples: int) -> AudioError:
    return AudioError(
        f"Decoding stopped at {samples / SAMPLE_RATE:.1f} s: the file is damaged there.",
        "damaged",
    )


def _with_known_layout(frame: AudioFrame) -> AudioFrame:
    """The frame, or a copy with the usual layout for its channel count when it has none
    (a WAV without a channel mask): a resampler fed such a frame rewrites its layout in
    place, and the next resampler then refuses it."""
    channels = frame.layout.nb_channels
    if frame.layout != AudioLayout(f"{channels} channels"):
        return frame
    copy = AudioFrame(format=frame.format.name, layout=f"{channels}c", samples=frame.samples)
    for target, plane in zip(copy.planes, frame.planes, strict=True):
        target.update(bytes(memoryview(plane)[: target.buffer_size]))
    copy.sample_rate = frame.sample_rate
    copy.pts = frame.pts
    copy.time_base = frame.time_base
    return copy


class _EndTracker:
    """The latest packet end seen, in seconds, over all streams."""

    def __init__(self) -> None:
        self.end = 0.0
        self._time_bases: dict[int, float] = {}

    def see(self, packet: Packet[Any]) -> None:
        if packet.pts is None:
            return
        index = packet.stream.index
        time_base = self._time_bases.get(index)
        if time_base is None:
            # Fraction arithmetic per packet would cost seconds on a long recording.
            time_base = float(packet.time_base or 0)
            self._time_bases[index] = time_base
        self.end = max(self.end, (packet.pts + (packet.duration or 0)) * time_base)


def _check_complete(container: InputContainer, ends: _EndTracker, samples: int) -> None:
    if container.duration is None:
        return  # a live recording's file may carry no duration: nothing to compare with
    expected = container.duration / av.time_base
    reached = ends.end - (container.start_time or 0) / av.time_base
    if reached < expected - _TRUNCATION_TOLERANCE_S:
        decoded = samples / SAMPLE_RATE
        raise AudioError(
            f"The file stops at {decoded:.1f} s of {expected:.1f} s: it is truncated or damaged.",
            "truncated",
        )


# --- sinks ------------------------------------------------------------------------------


class _Converter:
    """An AudioResampler that follows a change of input format in the middle of a stream
    (a plain one raises), as some live recordings switch sample rate or channels."""

    def __init__(self, fmt: str, rate: int) -> None:
        self._fmt = fmt
        self._rate = rate
        self._resampler = self._new()
        self._input: tuple[str, str, int] | None = None

    def _new(self) -> AudioResampler:
        return AudioResampler(format=self._fmt, layout="mono", rate=self._rate)

    def convert(self, frame: AudioFrame | None) -> list[AudioFrame]:
        if frame is None:
            return self._resampler.resample(None)
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        flushed: list[AudioFrame] = []
        if self._input is not None and shape != self._input:
            flushed = self._resampler.resample(None)
            self._resampler = self._new()
        self._input = shape
        return flushed + self._resampler.resample(frame)


class _WavSink:
    """16 kHz mono s16 PCM into a WAV file, feeding the peak meter on the way."""

    def __init__(self, path: Path, meter: _PeakMeter) -> None:
        self._meter = meter
        self._converter = _Converter("s16", SAMPLE_RATE)
        self._file = path.open("wb")
        # The sink owns both handles and closes them in __exit__.
        self._wave = wave.open(self._file, "wb")  # noqa: SIM115
        self._wave.setnchannels(1)
        self._wave.setsampwidth(2)
        self._wave.setframerate(SAMPLE_RATE)
        self.samples = 0

    def push(self, frame: AudioFrame | None) -> None:
        for chunk in self._converter.convert(frame):
            # Planes are padded for alignment: only the first samples * 2 bytes are audio.
            pcm = memoryview(chunk.planes[0])[: chunk.samples * 2]
            self._wave.writeframesraw(pcm)
            self._meter.add(pcm)
            self.samples += chunk.samples

    def finish(self) -> None:
        self.push(None)
        self._wave.close()  # patches the header's lengths
        self._file.flush()
        os.fsync(self._file.fileno())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # After a failure the file is deleted: a header that cannot be patched is no news.
        with contextlib.suppress(wave.Error, OSError):
            self._wave.close()
        self._file.close()


class _PlaybackSink:
    """Mono AAC in an M4A whose index comes first, so a browser can start playing at once."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._converter = _Converter("fltp", PLAYBACK_RATE)
        self._container = av.open(
            f"file:{path}", "w", format="ipod", options={"movflags": "+faststart"}
        )
        self._stream = self._container.add_stream("aac", rate=PLAYBACK_RATE, layout="mono")
        self._stream.bit_rate = PLAYBACK_BIT_RATE
        # FFmpeg's default "twoloop" coder takes over twice as long, for no audible gain on
        # speech at this bit rate.
        self._stream.options = {"aac_coder": "fast"}
        self._time_base = Fraction(1, PLAYBACK_RATE)
        self._samples = 0

    def push(self, frame: AudioFrame | None) -> None:
        for chunk in self._converter.convert(frame):
            # Gapless timestamps, counted in samples: the source's may start late or jump,
            # and the copy must line up with the WAV sample for sample.
            chunk.pts = self._samples
            chunk.time_base = self._time_base
            self._samples += chunk.samples
            self._container.mux(self._stream.encode(chunk))

    def finish(self) -> None:
        self.push(None)
        self._container.mux(self._stream.encode(None))
        self._container.close()  # writes the index and moves it to the front
        _fsync(self._path)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self._container.close()
            return
        # Writing the trailer of a file about to be deleted may fail; keep the first error.
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()


# --- peaks ------------------------------------------------------------------------------


class _PeakMeter:
    """Max |sample| over blocks of equal length, reduced to `buckets` values at the end.

    The total length is unknown until the end, so blocks start one sample long and double
    (merging neighbours) whenever there are 16 per bucket: memory stays a few kB whatever
    the length, and each bucket still spans at least 8 blocks."""

    def __init__(self, buckets: int) -> None:
        self._buckets = buckets
        self._limit = _BLOCKS_PER_PEAK * buckets
        self._block = 1
        self._maxima = bytearray()
        self._current = 0
        self._filled = 0

    def add(self, pcm: bytes | memoryview) -> None:
        magnitudes = bytes(memoryview(pcm)[_HIGH_BYTE::2]).translate(_MAGNITUDE)
        position, length = 0, len(magnitudes)
        while position < length:
            take = min(self._block - self._filled, length - position)
            self._current = max(self._current, max(magnitudes[position : position + take]))
            self._filled += take
            position += take
            if self._filled == self._block:
                self._close_block()

    def _close_block(self) -> None:
        self._maxima.append(self._current)
        self._current = 0
        self._filled = 0
        # The limit is even, so blocks always merge in pairs and the open block (shorter than
        # the old length) stays valid at the new one.
        if len(self._maxima) >= self._limit:
            pairs = zip(self._maxima[0::2], self._maxima[1::2], strict=True)
            self._maxima = bytearray(max(pair) for pair in pairs)
            self._block *= 2

    def peaks(self) -> list[float]:
        maxima = self._maxima + bytes([self._current] if self._filled else [])
        count = len(maxima)
        if count == 0:
            return [0.0] * self._buckets
        values = []
        for bucket in range(self._buckets):
            low = bucket * count // self._buckets
            high = max(low + 1, (bucket + 1) * count // self._buckets)
            values.append(round(max(maxima[low:high]) / _FULL_SCALE, 4))
        return values


def _peaks_of_wav(path: Path, buckets: int) -> list[float]:
    meter = _PeakMeter(buckets)
    with wave.open(str(path), "rb") as reader:
        while chunk := reader.readframes(1 << 16):
            meter.add(chunk)
    return meter.peaks()
