"""Reading the operator docs the way the tests need: troubleshooting entries by their anchor,
fenced blocks by language, links and the anchors they may point at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
DOCS = REPO / "docs"
TROUBLESHOOTING = DOCS / "troubleshooting.md"

_CHECK = re.compile(r"<!-- check: ([a-z0-9-]+) -->")
_FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# [text](target) but not ![image](...); targets have no spaces in these docs.
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
_EXPLICIT_ID = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")


@dataclass(frozen=True)
class Entry:
    """One troubleshooting entry: its id, its quoted message and its whole text."""

    id: str
    message: str
    text: str


def without_fences(text: str) -> str:
    """The text with fenced code blocks blanked out (their `#` lines are not headings)."""
    return _FENCE.sub("", text)


def entries(path: Path = TROUBLESHOOTING) -> dict[str, Entry]:
    """Every `<!-- check: id -->` entry with the first ```text block after its marker."""
    text = path.read_text()
    marks = list(_CHECK.finditer(text))
    found: dict[str, Entry] = {}
    for index, mark in enumerate(marks):
        entry_id = mark.group(1)
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        # An entry ends at the next entry's marker or at the next section heading.
        section = text[mark.end() : end]
        heading = re.search(r"^## ", section, re.MULTILINE)
        if heading:
            section = section[: heading.start()]
        if entry_id in found:
            raise AssertionError(f"{path.name}: two entries are marked {entry_id!r}")
        block = next((m.group(2) for m in _FENCE.finditer(section) if m.group(1) == "text"), None)
        if block is None:
            raise AssertionError(f"{path.name}: entry {entry_id!r} quotes no ```text message")
        found[entry_id] = Entry(entry_id, block.rstrip("\n"), section)
    return found


def message(entry_id: str) -> str:
    """The message the entry `entry_id` quotes; fails when the doc has no such entry."""
    found = entries()
    if entry_id not in found:
        raise AssertionError(f"docs/troubleshooting.md has no entry <!-- check: {entry_id} -->")
    return found[entry_id].message


def fenced(path: Path, language: str) -> list[str]:
    """The contents of the fenced blocks of `language`, in order."""
    return [m.group(2) for m in _FENCE.finditer(path.read_text()) if m.group(1) == language]


def links(path: Path) -> list[str]:
    """Link targets outside code blocks and inline code."""
    text = re.sub(r"`[^`\n]*`", "", without_fences(path.read_text()))
    return _LINK.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    plain = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    plain = re.sub(r"[^\w\- ]", "", plain)
    return plain.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Anchors a link may name in `path`: explicit ids and heading slugs (with GitHub's -1,
    -2 suffixes for repeated headings)."""
    text = without_fences(path.read_text())
    found = set(_EXPLICIT_ID.findall(text))
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found
