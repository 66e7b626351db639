"""assemble: words to speakers by turn overlap, jitter smoothing, segments, renumbering."""

from __future__ import annotations

import pytest

from reflector.pipeline.assemble import assemble
from reflector.pipeline.types import Diarization, SpeakerTurn, Transcription, Word


def word(text: str, start: float, end: float) -> Word:
    return Word(text=text, start=start, end=end)


def transcription(words: list[Word]) -> Transcription:
    return Transcription(
        language="en", duration=max((w.end for w in words), default=0.0), words=words, backend="t"
    )


def diarization(*turns: tuple[float, float, int]) -> Diarization:
    ordered = sorted(turns)
    return Diarization(
        turns=[SpeakerTurn(start=s, end=e, speaker=k) for s, e, k in ordered],
        speakers=len({k for _, _, k in ordered}),
        backend="d",
    )


def spaced(text: str, start: float, step: float = 0.5, length: float = 0.4) -> list[Word]:
    """One word every `step` seconds from `start`."""
    return [
        word(t, start + i * step, start + i * step + length) for i, t in enumerate(text.split())
    ]


def speakers_of(words: list[Word]) -> list[int | None]:
    return [w.speaker for w in words]


def test_words_follow_turns_and_speakers_are_renumbered_by_first_appearance() -> None:
    words = spaced("Hello everyone.", 0.0) + spaced("Hi there.", 2.0) + spaced("So, budget.", 4.0)
    result = assemble(transcription(words), diarization((0, 1.2, 7), (1.8, 3.0, 2), (3.8, 5, 7)))

    assert speakers_of(result.words) == [0, 0, 1, 1, 0, 0]
    assert [(s.speaker, s.start, s.end, s.text) for s in result.segments] == [
        (0, 0.0, 0.9, "Hello everyone."),
        (1, 2.0, 2.9, "Hi there."),
        (0, 4.0, 4.9, "So, budget."),
    ]
    assert [(s.id, s.name, s.named_from) for s in result.speakers] == [
        (0, "Speaker 1", None),
        (1, "Speaker 2", None),
    ]
    # Everything but the speaker is the transcription's word.
    assert [w.model_copy(update={"speaker": None}) for w in result.words] == words


def test_a_diarized_speaker_without_words_gets_no_entry() -> None:
    words = spaced("one two", 10.0)
    result = assemble(transcription(words), diarization((0, 5, 0), (9, 12, 1)))
    assert speakers_of(result.words) == [0, 0]
    assert [s.name for s in result.speakers] == ["Speaker 1"]


def test_overlapping_turns_give_the_word_to_the_larger_overlap() -> None:
    # Both turns cover part of each word; the speaker with more of the word wins.
    words = [word("alpha", 1.0, 2.0), word("beta", 2.0, 3.0)]
    result = assemble(transcription(words), diarization((0, 1.7, 0), (1.2, 3.5, 1)))
    # alpha: 0.7 s of speaker 0 against 0.8 s of speaker 1.
    assert speakers_of(result.words) == [0, 0]  # renumbered: speaker 1 came first
    assert len(result.speakers) == 1

    words = [word("alpha", 1.0, 2.0), word("beta", 5.0, 6.0)]
    result = assemble(transcription(words), diarization((0, 1.8, 4), (1.5, 6, 9)))
    # alpha: 0.8 s of 4 against 0.5 s of 9.
    assert speakers_of(result.words) == [0, 1]


def test_overlap_is_summed_over_a_speakers_turns() -> None:
    words = [word("long", 0.0, 1.0)]
    # Speaker 5 has two pieces (0.3 + 0.3) that beat speaker 6's single 0.4.
    result = assemble(transcription(words), diarization((0, 0.3, 5), (0.3, 0.7, 6), (0.7, 1.0, 5)))
    assert len(result.speakers) == 1
    assert result.segments[0].speaker == 0
    assert speakers_of(result.words) == [0]
    other = assemble(transcription(words), diarization((0, 0.3, 5), (0.3, 1.0, 6)))
    assert speakers_of(other.words) == [0]


def test_words_outside_every_turn_take_the_nearest_turn_earlier_on_a_tie() -> None:
    words = [
        word("before", 0.0, 0.5),  # before any turn: the first turn
        word("closer-to-a", 3.2, 3.4),  # 0.2 after A ends, 1.6 before B starts
        word("tie", 3.8, 4.2),  # 0.8 either side: the earlier turn
        word("closer-to-b", 4.5, 4.8),  # 1.5 after A ends, 0.2 before B starts
        word("after", 9.0, 9.5),  # after every turn: the last turn
    ]
    result = assemble(transcription(words), diarization((1, 3, 0), (5, 7, 1)))
    names = dict(zip([w.text for w in words], speakers_of(result.words), strict=True))
    assert names == {"before": 0, "closer-to-a": 0, "closer-to-b": 1, "tie": 0, "after": 1}


def test_a_zero_length_word_takes_the_turn_it_is_in() -> None:
    words = [word("a", 0.0, 0.5), word("b", 2.5, 2.5), word("c", 4.0, 4.5)]
    result = assemble(transcription(words), diarization((0, 1, 0), (2, 3, 1), (3.9, 5, 0)))
    assert speakers_of(result.words) == [0, 1, 0]


def test_without_turns_every_word_is_speaker_0() -> None:
    words = spaced("nobody diarized this", 0.0)
    result = assemble(transcription(words), diarization())
    assert speakers_of(result.words) == [0, 0, 0]
    assert [s.text for s in result.segments] == ["nobody diarized this"]
    assert [s.name for s in result.speakers] == ["Speaker 1"]


def test_no_words_no_segments_no_speakers() -> None:
    result = assemble(transcription([]), diarization((0, 5, 0)))
    assert (result.words, result.segments, result.speakers) == ([], [], [])


def test_a_single_word_flipped_by_jitter_goes_back_to_the_surrounding_speaker() -> None:
    words = spaced("we should ship it on friday then", 0.0, step=0.3, length=0.25)
    # The diarizer slips a 0.3 s turn of speaker 1 under "it".
    turns = diarization((0, 0.9, 0), (0.9, 1.2, 1), (1.2, 3.0, 0))
    result = assemble(transcription(words), turns)
    assert speakers_of(result.words) == [0] * 7
    assert [s.text for s in result.segments] == ["we should ship it on friday then"]
    assert len(result.speakers) == 1


def test_two_flipped_words_are_smoothed_but_three_are_not() -> None:
    words = spaced("one two three four five six seven", 0.0, step=0.2, length=0.15)
    two = assemble(transcription(words), diarization((0, 0.6, 0), (0.6, 1.0, 1), (1.0, 2, 0)))
    assert speakers_of(two.words) == [0] * 7
    three = assemble(transcription(words), diarization((0, 0.6, 0), (0.6, 1.2, 1), (1.2, 2, 0)))
    assert speakers_of(three.words) == [0, 0, 0, 1, 1, 1, 0]


def test_a_short_reply_set_off_by_pauses_is_a_real_turn() -> None:
    words = [
        *spaced("Are we agreed?", 0.0),
        word("Yes.", 2.2, 2.5),  # a pause either side: someone answering
        *spaced("Good, moving on.", 3.5),
    ]
    result = assemble(transcription(words), diarization((0, 1.5, 0), (2.0, 2.8, 1), (3.3, 5, 0)))
    assert speakers_of(result.words) == [0, 0, 0, 1, 0, 0, 0]
    assert [s.text for s in result.segments] == ["Are we agreed?", "Yes.", "Good, moving on."]


def test_a_short_run_between_two_different_speakers_is_kept() -> None:
    words = spaced("a b c d e", 0.0, step=0.2, length=0.15)
    result = assemble(transcription(words), diarization((0, 0.4, 0), (0.4, 0.6, 1), (0.6, 2, 2)))
    assert speakers_of(result.words) == [0, 0, 1, 2, 2]


def test_same_speaker_words_merge_across_gaps_up_to_merge_gap() -> None:
    words = [
        word("first.", 0.0, 0.5),
        word("within", 1.5, 2.0),  # 1.0 s gap: merged
        word("gap.", 2.0, 2.5),
        word("beyond", 3.6, 4.0),  # 1.1 s gap: new segment
    ]
    turns = diarization((0, 5, 0))
    assert [s.text for s in assemble(transcription(words), turns).segments] == [
        "first. within gap.",
        "beyond",
    ]
    wide = assemble(transcription(words), turns, merge_gap=2.0)
    assert [s.text for s in wide.segments] == ["first. within gap. beyond"]
    tight = assemble(transcription(words), turns, merge_gap=0.0)
    assert [s.text for s in tight.segments] == ["first.", "within gap.", "beyond"]


def test_a_speaker_change_always_starts_a_segment() -> None:
    words = spaced("one two three four", 0.0)
    result = assemble(transcription(words), diarization((0, 0.95, 0), (0.95, 3, 1)))
    assert [(s.speaker, s.text) for s in result.segments] == [(0, "one two"), (1, "three four")]


def test_long_monologues_are_split_at_sentence_ends_under_the_limit() -> None:
    # 80 words over 40 s, a sentence end every 8 words (every 4 s).
    texts = [f"w{i}." if i % 8 == 7 else f"w{i}" for i in range(80)]
    words = spaced(" ".join(texts), 0.0)
    result = assemble(transcription(words), diarization((0, 41, 0)))

    assert len(result.segments) == 2
    first, second = result.segments
    # The latest sentence end that keeps the first part within 30 s: word 55 ends at 27.9 s.
    assert first.text.endswith("w55.")
    assert first.end - first.start <= 30
    assert second.text.startswith("w56")
    assert " ".join(s.text for s in result.segments) == " ".join(texts)


def test_long_unpunctuated_speech_is_split_at_clause_or_word_boundaries() -> None:
    words = spaced(" ".join(f"w{i}" for i in range(150)), 0.0)  # 75 s, no punctuation
    result = assemble(transcription(words), diarization((0, 80, 0)))
    assert [len(s.text.split()) for s in result.segments] == [60, 60, 30]
    assert all(s.end - s.start <= 30 for s in result.segments)

    with_comma = [
        word(w.text + ("," if i == 20 else ""), w.start, w.end) for i, w in enumerate(words)
    ]
    result = assemble(transcription(with_comma), diarization((0, 80, 0)))
    assert result.segments[0].text.endswith("w20,")

    short = assemble(transcription(words), diarization((0, 80, 0)), max_segment=10.0)
    assert all(s.end - s.start <= 10 for s in short.segments)
    assert " ".join(s.text for s in short.segments) == " ".join(w.text for w in words)


def test_a_single_word_longer_than_the_limit_is_a_segment_of_its_own() -> None:
    words = [word("a", 0.0, 0.5), word("loooong", 0.6, 40.0), word("b.", 40.1, 40.5)]
    result = assemble(transcription(words), diarization((0, 41, 0)), max_segment=30.0)
    assert [s.text for s in result.segments] == ["a", "loooong", "b."]


def test_segment_text_is_single_spaced() -> None:
    words = [word(" Hello", 0.0, 0.4), word("", 0.4, 0.5), word("world! ", 0.5, 0.9)]
    result = assemble(transcription(words), diarization((0, 1, 0)))
    assert result.segments[0].text == "Hello world!"
    assert len(result.words) == 3


def test_many_words_and_turns_stay_fast_with_a_turn_spanning_everything() -> None:
    # A one-hour meeting's worth; an all-covering turn must not make the sweep quadratic.
    words = spaced(" ".join(["word"] * 10_000), 0.0, step=0.36, length=0.3)
    turns = [(i * 3.6, i * 3.6 + 3.0, i % 4) for i in range(1000)]
    result = assemble(transcription(words), diarization((0.0, 3600.0, 9), *turns))
    assert len(result.words) == 10_000
    assert all(w.speaker is not None for w in result.words)


def test_deterministic() -> None:
    words = spaced("a b c d e f g h", 0.0, step=0.4, length=0.4)
    turns = diarization((0, 1.0, 3), (0.8, 2.2, 1), (2.0, 3.4, 3))
    assert assemble(transcription(words), turns) == assemble(transcription(words), turns)


def test_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError, match="merge_gap"):
        assemble(transcription([]), diarization(), merge_gap=-1)
    with pytest.raises(ValueError, match="max_segment"):
        assemble(transcription([]), diarization(), max_segment=0)
