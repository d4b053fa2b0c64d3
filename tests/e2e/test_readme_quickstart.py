"""The README's offline quick start runs as written.

The command block after `<!-- offline quick start -->` in README.md is run command by command, as
a user would paste it, from a temporary folder laid out like a clone beside ../shared: `recipes/`
links to this checkout's recipes and `../shared` to the shared folder, so `models/` and
`outputs/` land in the temporary folder and the checkout is left as it was. HF_HUB_OFFLINE=1
(set by conftest) makes it a machine without the Hub. One torch thread per process keeps the
runs quick on a shared 2-core machine.
"""

from __future__ import annotations

import re

from conftest import PROJECT, run_command, shared_path

MARKER = "<!-- offline quick start -->"


def quick_start_commands(readme: str) -> list[str]:
    """The commands of the fenced bash block right after MARKER, continuation lines joined, comments dropped."""
    found = re.search(re.escape(MARKER) + r"\s*```bash\n(.*?)\n```", readme, re.DOTALL)
    assert found, f"README.md has no ```bash block right after {MARKER}"
    joined = found.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_quick_start_block_is_found_and_joined():
    readme = f"intro\n{MARKER}\n```bash\n# a comment\npython a.py --x 1 \\\n    --y 2\n\npython b.py\n```\nafter\n"
    assert quick_start_commands(readme) == ["python a.py --x 1      --y 2", "python b.py"]


def test_offline_quick_start_runs_as_written(tmp_path):
    commands = quick_start_commands((PROJECT / "README.md").read_text(encoding="utf-8"))
    (tmp_path / "shared").symlink_to(shared_path(), target_is_directory=True)
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "recipes").symlink_to(PROJECT / "recipes", target_is_directory=True)
    cache = str(tmp_path / "cache")

    outputs = {}
    for command in commands:
        result = run_command(["bash", "-c", command], cwd=clone, OMP_NUM_THREADS="1", HF_FINETUNE_CACHE=cache)
        assert result.returncode == 0, f"{command}\nexited with {result.returncode}:\n{result.stderr[-3000:]}"
        outputs[command] = result.stdout

    assert (clone / "models" / "tiny-gpt2" / "config.json").is_file()
    run_folders = sorted(path.parent for path in (clone / "outputs").rglob("all_results.json"))
    assert len(run_folders) == 4, run_folders  # one finished run per method
    for folder in run_folders:  # the chat recipe's report is its comparison table
        assert any((folder / name).is_file() for name in ("report.md", "comparison.md")), folder

    def printed(tool_and_folder: str) -> list[str]:
        return next(out.splitlines() for command, out in outputs.items() if tool_and_folder in command)

    spam = printed("hf_finetune.predict outputs/quick/spam")
    assert len(spam) == 2 and all(line.split("\t")[0] in ("ham", "spam") for line in spam), spam
    review = printed("hf_finetune.predict outputs/quick/classify")
    assert len(review) == 1 and review[0].split("\t")[0] in ("neg", "pos"), review
    assert len(printed("hf_finetune.chat_answer outputs/quick/chat")) == 1
