"""name_speakers: names only where the presence record leaves one explanation."""

from __future__ import annotations

from reflector.pipeline.naming import NAMED_ALONE, NAMED_BY_ELIMINATION, name_speakers
from reflector.pipeline.types import Assembly, PresenceInterval, Segment, Speaker, Word


def assembly(*speech: tuple[int, float, float]) -> Assembly:
    """Speaker k speaking from start to end, as one-second words."""
    words: list[Word] = []
    segments: list[Segment] = []
    for speaker, start, end in sorted(speech, key=lambda s: s[1]):
        t = start
        while t < end:
            words.append(Word(text="word", start=t, end=min(t + 1.0, end), speaker=speaker))
            t += 1.0
        segments.append(Segment(speaker=speaker, start=start, end=end, text="..."))
    ids = sorted({k for k, _, _ in speech})
    return Assembly(
        words=words,
        segments=segments,
        speakers=[Speaker(id=k, name=f"Speaker {k + 1}") for k in ids],
    )


def present(pid: str, name: str, start: float, end: float | None) -> PresenceInterval:
    return PresenceInterval(participant_id=pid, name=name, start=start, end=end)


def names(result: Assembly) -> list[tuple[str, str | None]]:
    return [(s.name, s.named_from) for s in result.speakers]


def test_each_voice_speaking_alone_with_one_participant_is_named() -> None:
    speech = assembly((0, 10, 50), (1, 70, 110))
    presence = [present("a", "Alice", -30, 60), present("b", "Bob", 60, None)]
    assert names(name_speakers(speech, presence)) == [("Alice", NAMED_ALONE), ("Bob", NAMED_ALONE)]


def test_two_participants_present_throughout_name_nobody() -> None:
    speech = assembly((0, 10, 50), (1, 50, 90))
    presence = [present("a", "Alice", 0, None), present("b", "Bob", 0, None)]
    assert names(name_speakers(speech, presence)) == [("Speaker 1", None), ("Speaker 2", None)]


def test_the_last_voice_is_named_by_elimination() -> None:
    # Alice alone for the first minute; Bob joins and both talk. Bob's voice only ever spoke
    # with Alice present, but Alice's voice is already accounted for.
    speech = assembly((0, 5, 55), (1, 70, 110), (0, 112, 115))
    presence = [present("a", "Alice", 0, None), present("b", "Bob", 60, None)]
    assert names(name_speakers(speech, presence)) == [
        ("Alice", NAMED_ALONE),
        ("Bob", NAMED_BY_ELIMINATION),
    ]


def test_no_elimination_when_two_unmatched_participants_were_present() -> None:
    speech = assembly((0, 5, 55), (1, 70, 110))
    presence = [
        present("a", "Alice", 0, None),
        present("b", "Bob", 60, None),
        present("c", "Carol", 60, None),  # never heard from, but could be the voice
    ]
    assert names(name_speakers(speech, presence)) == [("Alice", NAMED_ALONE), ("Speaker 2", None)]


def test_no_elimination_while_another_voice_is_unnamed() -> None:
    speech = assembly((0, 5, 55), (1, 70, 110), (2, 120, 150))
    presence = [present("a", "Alice", 0, None), present("b", "Bob", 60, None)]
    assert names(name_speakers(speech, presence)) == [
        ("Alice", NAMED_ALONE),
        ("Speaker 2", None),
        ("Speaker 3", None),
    ]


def test_a_lone_voice_is_not_named_by_elimination() -> None:
    # Alice was there throughout and Bob for half of it, but one voice may be two people the
    # diarizer could not tell apart: nothing else to eliminate against.
    speech = assembly((0, 0, 100))
    presence = [present("a", "Alice", 0, None), present("b", "Bob", 50, None)]
    assert names(name_speakers(speech, presence)) == [("Speaker 1", None)]


def test_a_participant_who_rejoins_keeps_one_identity() -> None:
    # Alice leaves and comes back; Bob is alone in between. Alice's voice spoke in both stints.
    speech = assembly((0, 5, 25), (1, 35, 55), (0, 65, 95))
    presence = [
        present("a", "Alice", 0, 30),
        present("b", "Bob", 30, 60),
        present("a", "Alice", 60, None),
    ]
    assert names(name_speakers(speech, presence)) == [("Alice", NAMED_ALONE), ("Bob", NAMED_ALONE)]


def test_a_rejoin_under_a_new_id_with_the_same_name_pools_the_evidence() -> None:
    speech = assembly((0, 5, 25), (0, 35, 55))
    presence = [present("a1", "Alice", 0, 30), present("a2", "Alice", 30.5, None)]
    assert names(name_speakers(speech, presence)) == [("Alice", NAMED_ALONE)]


def test_two_participants_with_one_display_name_get_distinct_names() -> None:
    # Two different Alexes, in the meeting together from 50 to 100 s.
    speech = assembly((0, 5, 45), (1, 105, 145))
    presence = [present("x1", "Alex", 0, 100), present("x2", "Alex", 50, None)]
    assert names(name_speakers(speech, presence)) == [
        ("Alex", NAMED_ALONE),
        ("Alex (2)", NAMED_ALONE),
    ]


def test_duplicate_display_names_present_together_name_nobody() -> None:
    speech = assembly((0, 5, 45), (1, 50, 90))
    presence = [present("x1", "Alex", 0, None), present("x2", "alex", 0, None)]
    assert names(name_speakers(speech, presence)) == [("Speaker 1", None), ("Speaker 2", None)]


def test_two_voices_alone_with_one_participant_are_both_left_unnamed() -> None:
    # One device in a meeting room, two people talking into it.
    speech = assembly((0, 5, 45), (1, 50, 90))
    presence = [present("room", "Room 4", 0, None)]
    assert names(name_speakers(speech, presence)) == [("Speaker 1", None), ("Speaker 2", None)]


def test_speech_partly_in_a_two_person_overlap_needs_the_threshold() -> None:
    presence = [present("a", "Alice", 0, 100), present("b", "Bob", 85, None)]
    # 20 s of speech, 15 s of it with Bob there too: 75% alone is not enough.
    mixed = assembly((0, 70, 90))
    assert names(name_speakers(mixed, presence)) == [("Speaker 1", None)]
    # 20 s of speech, 1 s of it with Bob there: 95% alone names her.
    mostly = assembly((0, 66, 86))
    assert names(name_speakers(mostly, presence)) == [("Alice", NAMED_ALONE)]


def test_speech_while_the_participant_was_absent_counts_against() -> None:
    # A voice that spoke for 10 s of its 20 s while only Bob was there is not Alice's.
    speech = assembly((0, 40, 60), (1, 100, 130))
    presence = [present("a", "Alice", 0, 50), present("b", "Bob", 50, None)]
    assert names(name_speakers(speech, presence))[0] == ("Speaker 1", None)


def test_a_few_words_are_not_enough_evidence() -> None:
    speech = assembly((0, 10, 13))
    presence = [present("a", "Alice", 0, None)]
    assert names(name_speakers(speech, presence)) == [("Speaker 1", None)]


def test_no_participants_no_names() -> None:
    speech = assembly((0, 10, 50), (1, 50, 90))
    assert names(name_speakers(speech, [])) == [("Speaker 1", None), ("Speaker 2", None)]


def test_names_are_trimmed_and_a_blank_name_still_counts_as_present() -> None:
    speech = assembly((0, 5, 45))
    assert names(name_speakers(speech, [present("a", "  Alice \n Smith ", 0, None)])) == [
        ("Alice Smith", NAMED_ALONE)
    ]
    # A nameless participant alone: nothing to call the voice.
    assert names(name_speakers(speech, [present("a", "   ", 0, None)])) == [("Speaker 1", None)]
    # A nameless participant alongside Alice: the voice may be theirs.
    crowded = [present("a", "Alice", 0, None), present("n", "", 0, None)]
    assert names(name_speakers(speech, crowded)) == [("Speaker 1", None)]


def test_a_participant_called_like_another_voice_is_not_used() -> None:
    speech = assembly((0, 5, 45), (1, 50, 90))
    presence = [present("a", "Speaker 2", 0, 48), present("b", "Bob", 48, 49)]
    # The voice of speaker 1 (id 0) would be "Speaker 2", the other voice's label.
    assert names(name_speakers(speech, presence)) == [("Speaker 1", None), ("Speaker 2", None)]


def test_a_renamed_participant_is_called_by_the_latest_name() -> None:
    speech = assembly((0, 5, 45))
    presence = [present("a", "Guest", 0, 20), present("a", "Alice", 20, None)]
    assert names(name_speakers(speech, presence)) == [("Alice", NAMED_ALONE)]


def test_words_without_duration_fall_back_to_segments() -> None:
    speech = assembly((0, 5, 45))
    pointlike = speech.model_copy(
        update={"words": [w.model_copy(update={"end": w.start}) for w in speech.words]}
    )
    presence = [present("a", "Alice", 0, None)]
    assert names(name_speakers(pointlike, presence)) == [("Alice", NAMED_ALONE)]


def test_naming_replaces_earlier_names_and_keeps_everything_else() -> None:
    speech = assembly((0, 10, 50), (1, 50, 90))
    presence = [present("a", "Alice", 0, None), present("b", "Bob", 0, None)]
    renamed = speech.model_copy(update={"speakers": [Speaker(id=0, name="Zed", named_from="x")]})
    result = name_speakers(renamed, presence)
    assert names(result) == [("Speaker 1", None)]
    assert (result.words, result.segments) == (speech.words, speech.segments)
    alone = name_speakers(speech, [present("a", "Alice", 0, 50), present("b", "Bob", 50, None)])
    assert name_speakers(alone, [present("a", "Alice", 0, 50)]) == alone.model_copy(
        update={"speakers": [alone.speakers[0], Speaker(id=1, name="Speaker 2")]}
    )
