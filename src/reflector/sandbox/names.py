"""Room name suffixes for `roomNamePattern: human-short`: short, readable and random."""

from __future__ import annotations

import secrets

_ADJECTIVES = (
    "amber", "brave", "calm", "clever", "eager", "gentle", "golden", "happy", "jolly", "kind",
    "lively", "lucky", "merry", "noble", "proud", "quiet", "rapid", "silver", "sunny", "swift",
)  # fmt: skip
_NOUNS = (
    "badger", "cedar", "comet", "falcon", "harbor", "heron", "island", "lagoon", "maple",
    "meadow", "otter", "pebble", "pine", "river", "robin", "summit", "thistle", "valley",
    "willow", "wren",
)  # fmt: skip


def human_short_name() -> str:
    """e.g. `quiet-otter-4821`"""
    adjective = secrets.choice(_ADJECTIVES)
    noun = secrets.choice(_NOUNS)
    return f"{adjective}-{noun}-{secrets.randbelow(10_000):04d}"
