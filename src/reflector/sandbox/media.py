"""The recording file: black 320x180 h264 video at one frame per second plus the audio file
re-encoded to AAC, in mp4 (or Matroska), lasting exactly as long as the audio.

Blocking (CPU and file I/O): call it from a worker thread."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

WIDTH = 320
HEIGHT = 180
_MS = Fraction(1, 1000)
_CONTAINER_FORMATS = {"mp4": "mp4", "mkv": "matroska"}
CONTENT_TYPES = {"mp4": "video/mp4", "mkv": "video/x-matroska"}


class MediaError(Exception):
    """The audio file cannot be read or has no audio stream."""


def encode_recording(audio_file: Path, file_format: str = "mp4") -> bytes:
    """The bytes of a recording file made from `audio_file`."""
    try:
        source = av.open(str(audio_file))
    except (OSError, av.FFmpegError) as exc:
        raise MediaError(f"cannot open audio file {audio_file}: {exc}") from exc
    with source:
        if not source.streams.audio:
            raise MediaError(f"{audio_file} has no audio stream")
        buffer = io.BytesIO()
        with av.open(buffer, "w", format=_CONTAINER_FORMATS[file_format]) as output:
            # Both streams must exist before the first packet writes the header.
            audio_out = _add_audio_stream(output, source.streams.audio[0])
            video_out = _add_video_stream(output)
            seconds = _encode_audio(output, audio_out, source.decode(source.streams.audio[0]))
            _encode_video(output, video_out, seconds)
    return buffer.getvalue()


def _add_audio_stream(output: OutputContainer, source: AudioStream) -> AudioStream:
    rate = source.codec_context.sample_rate or 48_000
    layout = "stereo" if source.codec_context.layout.nb_channels >= 2 else "mono"
    return output.add_stream("aac", rate=rate, layout=layout)


def _add_video_stream(output: OutputContainer) -> VideoStream:
    stream = output.add_stream(
        "libx264", rate=1, options={"preset": "ultrafast", "tune": "zerolatency"}
    )
    stream.width = WIDTH
    stream.height = HEIGHT
    stream.pix_fmt = "yuv420p"
    # Millisecond ticks let the last frame be cut to end with the audio.
    stream.codec_context.time_base = _MS
    return stream


def _encode_audio(
    output: OutputContainer, stream: AudioStream, frames: Iterable[AudioFrame]
) -> float:
    """Encode all frames; the duration in seconds."""
    codec = stream.codec_context
    rate = codec.sample_rate
    resampler = av.AudioResampler(
        format="fltp", layout=codec.layout, rate=rate, frame_size=codec.frame_size
    )
    samples = 0

    def encode(chunks: list[AudioFrame]) -> None:
        nonlocal samples
        for chunk in chunks:
            # Fresh, gapless timestamps: the source's may start late or jump.
            chunk.pts = samples
            chunk.time_base = Fraction(1, rate)
            samples += chunk.samples
            output.mux(stream.encode(chunk))

    for frame in frames:
        encode(resampler.resample(frame))
    encode(resampler.resample(None))
    output.mux(stream.encode(None))
    if samples == 0:
        raise MediaError("the audio file holds no audio")
    return samples / rate


def _encode_video(output: OutputContainer, stream: VideoStream, seconds: float) -> None:
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma, blue, red = frame.planes
    luma.update(bytes([16]) * luma.buffer_size)  # black in limited-range YUV
    blue.update(bytes([128]) * blue.buffer_size)
    red.update(bytes([128]) * red.buffer_size)
    packets = []
    for second in range(max(1, math.ceil(seconds))):
        frame.pts = second * 1000
        frame.time_base = _MS
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    last = packets[-1]
    if last.pts is not None and last.time_base is not None:
        end = round(seconds / last.time_base)
        last.duration = max(1, end - last.pts)
    output.mux(packets)
