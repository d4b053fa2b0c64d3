"""Every relative link in README.md and docs/*.md points to a file that exists, and a `#section`
anchor to a heading of that file (GitHub's heading ids)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import PROJECT

PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, where a link is a link."""
    lines, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def heading_ids(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated id suffixed -1, -2, ..."""
    ids: set[str] = set()
    for line in prose_lines(text):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        base = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        anchor, count = base, 0
        while anchor in ids:
            count += 1
            anchor = f"{base}-{count}"
        ids.add(anchor)
    return ids


def broken_links(page: Path) -> list[str]:
    broken = []
    text = page.read_text(encoding="utf-8")
    for line in prose_lines(text):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not a file here
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in heading_ids(linked.read_text(encoding="utf-8")):
                broken.append(f"{target}: no heading with that anchor in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(PROJECT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page):
    assert broken_links(page) == []


def test_a_missing_file_and_a_wrong_anchor_are_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Set up (`pip`)\n\n## Set up (`pip`)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#set-up-pip-1) [top](#title) [web](https://example.org/x.md)\n"
        "```bash\n[not a link](nowhere.md)\n```\n"
        "# Title\n[gone](missing.md) [bad anchor](other.md#setup)\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#setup: no heading with that anchor in other.md",
    ]
