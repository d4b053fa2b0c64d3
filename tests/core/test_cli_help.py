"""Every entry point's `--help` and `--help-all` work (issue 13): the recipes, `python -m
hf_finetune.classify|sft|predict|generate|chat_answer|tiny` and every `hf-finetune` command. A
training command shows its own flags first, then the common ones in sections, with the defaults
it really uses, in a page that fits a budget; `--help-all` shows every TrainingArguments flag.
Pages are read at a fixed terminal width (COLUMNS), so the line counts are the same everywhere."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields

import pytest
from transformers import HfArgumentParser, TrainingArguments

from hf_finetune import chat_answer, classify, cli, compare, generate, predict, score, sft, tiny
from hf_finetune.core.errors import run_cli
from hf_finetune.core.parsing import ArgumentParser, parse_arguments
from hf_finetune.core.training_flags import CommonTrainingArguments, real_training_arguments
from hf_finetune.methods.chat.arguments import ARGUMENTS as CHAT_ARGUMENTS
from hf_finetune.methods.classify.arguments import CLASSIFY_ARGUMENTS
from hf_finetune.methods.classify.head.train import ARGUMENTS as HEAD_ARGUMENTS
from hf_finetune.methods.grpo.arguments import ARGUMENTS as GRPO_ARGUMENTS
from hf_finetune.methods.instruction.arguments import ARGUMENTS as INSTRUCTION_ARGUMENTS
from hf_finetune.methods.preference.arguments import ARGUMENTS as PREFERENCE_ARGUMENTS
from hf_finetune.methods.reward.arguments import ARGUMENTS as REWARD_ARGUMENTS
from hf_finetune.recipes import grpo, instruction, preference, reward, spam, spanish_chat

HELP_LINES = 120  # at 100 columns
OVERVIEW_LINES = 30
COMMON_SECTIONS = ["data", "model", "training", "LoRA", "hub", "logging"]

ENTRY_POINTS = {
    "recipes/spam.py": spam.main,
    "recipes/instruction.py": instruction.main,
    "recipes/spanish_chat.py": spanish_chat.main,
    "recipes/preference.py": preference.main,
    "recipes/reward.py": reward.main,
    "recipes/grpo.py": grpo.main,
    "python -m hf_finetune.score": score.main,
    "python -m hf_finetune.classify": classify.main,
    "python -m hf_finetune.sft": sft.main,
    "python -m hf_finetune.predict": predict.main,
    "python -m hf_finetune.generate": generate.main,
    "python -m hf_finetune.chat_answer": chat_answer.main,
    "python -m hf_finetune.tiny": tiny.main,
    "python -m hf_finetune.compare": compare.main,
    **{f"hf-finetune {name}": (lambda argv, name=name: cli.main([name, *argv])) for name in cli.COMMANDS},
}
# The entry point each `hf-finetune` command runs.
SAME_AS = {
    "spam": "recipes/spam.py",
    "classify": "python -m hf_finetune.classify",
    "instruction": "recipes/instruction.py",
    "chat": "recipes/spanish_chat.py",
    "preference": "recipes/preference.py",
    "reward": "recipes/reward.py",
    "grpo": "recipes/grpo.py",
    "score": "python -m hf_finetune.score",
    "predict": "python -m hf_finetune.predict",
    "generate": "python -m hf_finetune.generate",
    "chat-answer": "python -m hf_finetune.chat_answer",
    "tiny": "python -m hf_finetune.tiny",
    "compare": "python -m hf_finetune.compare",
}
# Training commands: the titles of their own sections (none: no flags of their own) and their recipe defaults.
TRAINING = {
    "recipes/spam.py": ((), spam.DEFAULTS),
    "recipes/instruction.py": (("instruction method",), instruction.DEFAULTS),
    "recipes/spanish_chat.py": (("chat method",), spanish_chat.DEFAULTS),
    "recipes/preference.py": (("preference method",), preference.DEFAULTS),
    "recipes/reward.py": (("reward method",), reward.DEFAULTS),
    "recipes/grpo.py": (("GRPO method",), grpo.DEFAULTS),
    "python -m hf_finetune.classify": (("classifier", "label-token method"), classify.DEFAULTS),
}


@pytest.fixture(autouse=True)
def terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help at the terminal's width


def help_page(entry_point: str, capsys, flag: str = "--help") -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(ENTRY_POINTS[entry_point], [flag])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    assert "Traceback" not in err and "error" not in err, err
    return out


def sections(page: str) -> dict[str, str]:
    """Each section's heading and text, from `options:` on (the description above may end lines with ':')."""
    parts = re.split(r"^(\S[^:\n]*):\n", page[page.index("\noptions:\n") + 1 :], flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def flag_entry(page: str, flag: str) -> str:
    """A flag's line(s) in the help page, joined: its name, value, help and default."""
    match = re.search(rf"^  {re.escape(flag)}\b.*?(?=^  -|^\S|\Z)", page, re.MULTILINE | re.DOTALL)
    assert match, f"{flag} is not in the help page"
    return " ".join(match[0].split())


@pytest.mark.parametrize("flag", ["--help", "--help-all"])
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_help_page_opens(entry_point, flag, capsys):
    page = help_page(entry_point, capsys, flag)
    assert page.startswith("usage: ") and "--traceback" in page


@pytest.mark.parametrize("entry_point", TRAINING)
def test_training_help_has_its_own_flags_first_then_the_common_sections_in_order(entry_point, capsys):
    own, _ = TRAINING[entry_point]
    assert list(sections(help_page(entry_point, capsys))) == ["options", *own, *COMMON_SECTIONS]


def test_each_flag_is_in_its_section(capsys):
    found = sections(help_page("recipes/spanish_chat.py", capsys))
    expected = {
        "chat method": ["--method", "--compare", "--completion_format"],
        "data": ["--train_sampling_strategy"],
        "model": ["--model_name_or_path", "--trainable"],
        "training": ["--output_dir", "--learning_rate", "--num_train_epochs", "--max_steps", "--warmup_steps",
                     "--per_device_train_batch_size", "--gradient_accumulation_steps", "--bf16", "--eval_strategy",
                     "--save_total_limit", "--resume_from_checkpoint", "--overwrite_output_dir"],
        "LoRA": ["--use_peft", "--lora_r", "--merge_adapters"],
        "hub": ["--push_to_hub", "--hub_model_id"],
        "logging": ["--logging_steps", "--report_to", "--traceback"],
    }  # fmt: skip
    for title, flags in expected.items():
        for flag in flags:
            assert re.search(rf"^  {flag}\b", found[title], re.MULTILINE), f"{flag} is not under {title}"


@pytest.mark.parametrize("entry_point", TRAINING)
def test_training_help_shows_the_recipe_defaults(entry_point, capsys):
    _, defaults = TRAINING[entry_point]
    page = help_page(entry_point, capsys)
    for name, value in defaults.items():
        entry = flag_entry(page, f"--{name}")
        shown = repr(value) if isinstance(value, str) and value != value.strip() else value
        assert f"(default: {shown})" in entry, entry


def test_a_default_that_differs_from_trainingarguments_is_the_recipes(capsys):
    # TrainingArguments says 3 epochs, lr schedule linear, seed 42: the recipes say otherwise.
    assert "(default: 5)" in flag_entry(help_page("recipes/spam.py", capsys), "--num_train_epochs")
    assert "(default: constant)" in flag_entry(help_page("recipes/instruction.py", capsys), "--lr_scheduler_type")
    assert "(default: 1)" in flag_entry(help_page("recipes/spanish_chat.py", capsys), "--seed")


@pytest.mark.parametrize("entry_point", TRAINING)
def test_help_fits_the_budget_and_help_all_lists_every_trainingarguments_flag(entry_point, capsys):
    page = help_page(entry_point, capsys)
    every = help_page(entry_point, capsys, "--help-all")
    assert len(page.splitlines()) <= HELP_LINES, f"{len(page.splitlines())} lines"
    assert "--help-all" in page
    assert "--adam_beta1" not in page and re.search(r"^  --adam_beta1 FLOAT", every, re.MULTILINE)
    missing = [item.name for item in fields(TrainingArguments)
               if item.init and not re.search(rf"^  --{item.name}\b", every, re.MULTILINE)]  # fmt: skip
    assert not missing
    assert "--learning-rate" not in every  # each flag once, not also as its --dash-form alias


def test_flags_left_out_of_help_still_work(tmp_path):
    parsed = parse_arguments(
        HEAD_ARGUMENTS, ["--adam_beta1", "0.8", "--no_dataloader_pin_memory", "--output_dir", str(tmp_path / "run")]
    )
    training_args = next(item for item in parsed if isinstance(item, TrainingArguments))
    assert training_args.adam_beta1 == 0.8 and training_args.dataloader_pin_memory is False


def test_a_percent_sign_in_a_help_text_is_printed_as_written(capsys):
    # argparse %-formats help texts: the chat's `{% generation %}` crashed --help with a TypeError.
    assert "{% generation %}" in " ".join(help_page("recipes/spanish_chat.py", capsys).split())
    every = " ".join(help_page("recipes/spanish_chat.py", capsys, "--help-all").split())
    assert "throughput by ~20% and" in every and "%%" not in every  # transformers writes "~20%%"


@pytest.mark.parametrize(
    "entry_point, flag, default",
    [
        ("python -m hf_finetune.generate", "--max_new_tokens", "256"),
        ("python -m hf_finetune.chat_answer", "--max_new_tokens", "32"),
        ("python -m hf_finetune.tiny", "--shape", "tiny"),
        ("python -m hf_finetune.tiny", "--context", "1024"),
        ("python -m hf_finetune.tiny", "--vocab_size", "2000"),
    ],
)
def test_tools_show_their_defaults(entry_point, flag, default, capsys):
    assert f"(default: {default})" in flag_entry(help_page(entry_point, capsys), flag)


def test_examples_keep_their_line_breaks(capsys):
    page = help_page("recipes/spam.py", capsys)
    assert "\n    hf-finetune spam [flags]" in page
    assert "\n    hf-finetune predict outputs/spam" in page


@pytest.mark.parametrize("name", cli.COMMANDS)
def test_each_command_shows_the_help_of_the_entry_point_it_runs(name, capsys):
    page = help_page(f"hf-finetune {name}", capsys)
    assert page.startswith(f"usage: hf-finetune {name} ")
    # Past the usage line(s), which name the program, the page is the entry point's own.
    assert page.split("\n\n", 1)[1] == help_page(SAME_AS[name], capsys).split("\n\n", 1)[1]


def test_a_command_fails_as_its_entry_point_does(tmp_path, capsys):
    outcomes = []
    for main in (spam.main, lambda argv: cli.main(["spam", *argv])):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main, ["--learning_rate", "abc", "--output_dir", str(tmp_path / "run")])
        outcomes.append((exit_info.value.code, capsys.readouterr()))
    assert outcomes[0] == outcomes[1]
    code, (_, err) = outcomes[0]
    assert code == 2 and err.startswith("error: --learning_rate") and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_overview_fits_one_screen_and_names_every_command(capsys):
    run_cli(cli.main, ["--help"])  # returns: exit status 0
    out, _ = capsys.readouterr()
    assert len(out.splitlines()) < OVERVIEW_LINES
    for name in cli.COMMANDS:
        assert re.search(rf"^  {name} ", out, re.MULTILINE), name
    assert "--help-all" in out and "accelerate launch -m hf_finetune" in out


def test_an_unknown_command_is_one_sentence_naming_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cli.main, ["spma", "--help"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.startswith("error: 'spma' is not a command") and "spam, classify" in err and len(err.splitlines()) == 1


def test_the_help_pages_list_of_trainingarguments_flags_is_trainingarguments_own():
    # --help shows these flags without importing transformers: each must be the real flag, as
    # HfArgumentParser makes it from TrainingArguments (type, default, choices, switch or not).
    def actions(dataclass_type):
        return {action.dest: action for action in HfArgumentParser([dataclass_type])._actions}

    real, curated = actions(TrainingArguments), actions(CommonTrainingArguments)
    for item in fields(CommonTrainingArguments):
        ours, theirs = curated[item.name], real[item.name]
        assert (ours.option_strings, ours.nargs, ours.const, ours.default) == (
            theirs.option_strings, theirs.nargs, theirs.const, theirs.default), item.name  # fmt: skip
        assert getattr(ours.type, "__name__", None) == getattr(theirs.type, "__name__", None), item.name
        assert (list(ours.choices) if ours.choices else None) == (list(theirs.choices) if theirs.choices else None)


@pytest.mark.parametrize("entry_point", TRAINING)
def test_help_without_torch_is_the_page_transformers_trainingarguments_give(entry_point, capsys):
    # The same page as the one built from the real TrainingArguments (its other flags hidden).
    page = help_page(entry_point, capsys)
    types = {"recipes/spam.py": HEAD_ARGUMENTS, "recipes/spanish_chat.py": CHAT_ARGUMENTS,
             "python -m hf_finetune.classify": CLASSIFY_ARGUMENTS, "recipes/instruction.py": INSTRUCTION_ARGUMENTS,
             "recipes/preference.py": PREFERENCE_ARGUMENTS, "recipes/reward.py": REWARD_ARGUMENTS,
             "recipes/grpo.py": GRPO_ARGUMENTS}[entry_point]  # fmt: skip
    defaults = TRAINING[entry_point][1]
    description = page.split("\n\n", 1)[1].split("\noptions:\n")[0]
    parser = ArgumentParser(real_training_arguments(types), prog=page.split()[1], description=description)
    parser.set_defaults(**{"bf16": None, "fp16": None, **defaults})
    assert parser.format_help().split("\n\n", 1)[1] == page.split("\n\n", 1)[1]


def test_help_imports_neither_torch_nor_transformers():
    # In a fresh interpreter (this one has torch): every command's --help, then what was imported.
    script = (
        "import sys\n"
        "from hf_finetune import cli\n"
        "for name in cli.COMMANDS:\n"
        "    try:\n"
        "        cli.main([name, '--help'])\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code in (0, None), (name, stop.code)\n"
        "heavy = ('torch', 'transformers', 'datasets', 'peft', 'trl', 'matplotlib', 'sklearn', 'pandas')\n"
        "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
