"""The README names every command `hf-finetune` has, in the right group, and as many methods as
there are training commands: a command added to cli.py's table without the README fails here."""

from __future__ import annotations

import re
from pathlib import Path

from hf_finetune import cli

README = Path(__file__).resolve().parents[2] / "README.md"
NUMBERS = dict(zip("two three four five six seven eight nine ten eleven twelve".split(), range(2, 13)))


def readme() -> str:
    return " ".join(README.read_text(encoding="utf-8").split())  # lines joined: a listing may wrap


def test_readme_lists_every_command_in_its_group():
    listings = [group.split("|") for group in re.findall(r"`hf-finetune ([\w-]+(?:\|[\w-]+)+)`", readme())]
    assert list(cli.TRAINING_COMMANDS) in listings, listings
    assert list(cli.TOOLS) in listings, listings


def test_readme_counts_one_method_per_training_command():
    text = readme()
    count = re.search(r"\b(\w+) classic methods\b", text, re.IGNORECASE)
    assert count and NUMBERS.get(count[1].lower()) == len(cli.TRAINING_COMMANDS), count and count[0]
    methods = README.read_text(encoding="utf-8").split("\n## The methods\n", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^### ", methods, re.MULTILINE)) == len(cli.TRAINING_COMMANDS)
