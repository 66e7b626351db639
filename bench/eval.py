"""Accuracy of the speech models on the recorded fixtures: word error rate of the transcriber
and diarization error rate of senko, each against its target, with the time each step took.

    make eval        (or .venv/bin/python bench/eval.py)

Word error rate after Whisper's English text normalisation (eval_normalise.py). Diarization
error rate from pyannote.metrics with overlapping speech scored and no forgiveness collar,
over each whole file. Exits 1 when a figure misses its target.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import jiwer
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from eval_normalise import normalise
from reflector.logs import configure_logging
from reflector.pipeline.diarize import SenkoDiarizer
from reflector.pipeline.transcribe import WhisperTranscriber
from reflector.pipeline.types import Diarization, Transcription, no_progress

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
LIBRIVOX = FIXTURES / "speech" / "librivox"
PHONE = FIXTURES / "speech" / "phone-call" / "sample"
AMI = FIXTURES / "meetings" / "ami"

WER_LIBRIVOX = 0.02
WER_PHONE = 0.15
DER_PHONE = 0.20
DER_AMI = 0.40

T = TypeVar("T")
misses: list[str] = []


def report(label: str, value: float, target: float | None, extra: str = "") -> None:
    verdict = ""
    if target is not None:
        verdict = f"  target <= {target:.0%}  " + ("PASS" if value <= target else "MISS")
        if value > target:
            misses.append(label)
    print(f"{label:<58} {value:7.2%}{verdict}{extra}", flush=True)


def run(step: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = step()
    return result, time.monotonic() - started


def seconds(wav: Path) -> float:
    with wave.open(str(wav), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def text(transcription: Transcription) -> str:
    return " ".join(word.text for word in transcription.words)


def wer(reference: str, hypothesis: str) -> tuple[float, str]:
    words = jiwer.process_words(normalise(reference), normalise(hypothesis))
    detail = (
        f"  ({words.substitutions} sub, {words.deletions} del, {words.insertions} ins "
        f"of {words.hits + words.substitutions + words.deletions} words)"
    )
    return float(words.wer), detail


def read_rttm(path: Path) -> Annotation:
    annotation = Annotation(uri=path.stem)
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            annotation[Segment(start, start + duration)] = fields[7]
    return annotation


def as_annotation(diarization: Diarization, uri: str) -> Annotation:
    annotation = Annotation(uri=uri)
    for turn in diarization.turns:
        annotation[Segment(turn.start, turn.end)] = turn.speaker
    return annotation


def join_wavs(clips: list[Path], target: Path) -> None:
    with wave.open(str(target), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        for clip in clips:
            with wave.open(str(clip), "rb") as reader:
                writer.writeframes(reader.readframes(reader.getnframes()))


def evaluate_transcription(workdir: Path) -> None:
    print("Transcription: faster-whisper, bundled tiny.en, int8, beam 5, VAD on", flush=True)
    whisper = WhisperTranscriber()
    clips = sorted(LIBRIVOX.glob("*.wav"))
    references = [clip.with_suffix(".txt").read_text() for clip in clips]
    joined = workdir / "librivox.wav"
    join_wavs(clips, joined)
    # The first call loads the model; time it apart from the transcription itself.
    _, load_s = run(lambda: whisper.transcribe(clips[-1], language="en", progress=no_progress))

    result, took = run(lambda: whisper.transcribe(joined, language=None, progress=no_progress))
    value, detail = wer(" ".join(references), text(result))
    report(
        f"WER librivox: 5 clips as one {result.duration:.1f} s recording",
        value,
        WER_LIBRIVOX,
        detail,
    )
    print(
        f"  first call (model load + {seconds(clips[-1]):.1f} s clip): {load_s:.1f} s; "
        f"librivox: {took:.1f} s = {took / result.duration:.3f} s per audio second",
        flush=True,
    )

    started = time.monotonic()
    separately = [whisper.transcribe(clip, language=None, progress=no_progress) for clip in clips]
    value, detail = wer(" ".join(references), " ".join(text(t) for t in separately))
    report("WER librivox: each clip on its own (no target)", value, None, detail)
    print(f"  5 clips: {time.monotonic() - started:.1f} s", flush=True)

    stm = PHONE.with_suffix(".stm").read_text().splitlines()
    reference = " ".join(" ".join(line.split()[5:]) for line in stm if line.strip())
    result, took = run(
        lambda: whisper.transcribe(PHONE.with_suffix(".wav"), language=None, progress=no_progress)
    )
    value, detail = wer(reference, text(result))
    report(f"WER phone call ({result.duration:.0f} s, 2 speakers)", value, WER_PHONE, detail)
    print(f"  phone call: {took:.1f} s", flush=True)


def der(
    diarizer: SenkoDiarizer, wav: Path, count: int | None, metric: DiarizationErrorRate
) -> float:
    diarization = diarizer.diarize(wav, num_speakers=count, progress=no_progress)
    uem = Timeline([Segment(0.0, seconds(wav))])
    reference = read_rttm(wav.with_suffix(".rttm"))
    return float(metric(reference, as_annotation(diarization, wav.stem), uem=uem))


def new_metric() -> DiarizationErrorRate:
    return DiarizationErrorRate(collar=0.0, skip_overlap=False)


def evaluate_diarization() -> None:
    print("Diarization: senko on CPU torch (collar 0, overlap scored)", flush=True)
    senko = SenkoDiarizer()
    wav = PHONE.with_suffix(".wav")
    # The first call loads the models; time it apart.
    _, load_s = run(lambda: senko.diarize(wav, num_speakers=None, progress=no_progress))
    print(f"  first call (load + {seconds(wav):.0f} s phone call): {load_s:.1f} s", flush=True)

    value, took = run(lambda: der(senko, wav, None, new_metric()))
    report("DER phone call, speaker count found (no target)", value, None, f"  [{took:.1f} s]")
    value, took = run(lambda: der(senko, wav, 2, new_metric()))
    label = "DER phone call, speaker count known (2): the target"
    report(label, value, DER_PHONE, f"  [{took:.1f} s]")

    wavs = sorted(AMI.glob("*.wav"))
    audio = sum(seconds(wav) for wav in wavs)
    for known in (True, False):
        metric = new_metric()
        started = time.monotonic()
        per_file = []
        for wav in wavs:
            count = len(read_rttm(wav.with_suffix(".rttm")).labels()) if known else None
            per_file.append(f"{wav.stem} {der(senko, wav, count, metric):.0%}")
        took = time.monotonic() - started
        extra = f"  [{took:.1f} s for {audio:.0f} s]"
        if known:
            label = "DER AMI, 6 excerpts, speaker count known (from rttm)"
            report(label, abs(metric), DER_AMI, extra)
        else:
            report("DER AMI, 6 excerpts, speaker count found (no target)", abs(metric), None, extra)
        print(f"  per file: {', '.join(per_file)}", flush=True)


def main() -> int:
    # Nothing may be fetched at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    configure_logging("WARNING")  # the models' step logs would bury the figures
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reflector-eval-") as workdir:
        evaluate_transcription(Path(workdir))
    evaluate_diarization()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Total {time.monotonic() - started:.1f} s; peak RSS {peak:.0f} MB (both models loaded)")
    if misses:
        print(f"MISS: {', '.join(misses)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
