"""Every entry point's `--help` and `--help-all` work (issue 13): the recipes, `python -m
hf_finetune.classify|sft|predict|generate|chat_answer|tiny` and every `hf-finetune` command. A
training command shows its own flags first, then the common ones in sections, with the defaults
it really uses, in a page that fits an 80-column terminal's screen (issue 24); `--help-all` shows
every flag, every TrainingArguments flag included, and the command's whole description. Pages are
read at a fixed terminal width (COLUMNS), so the line counts are the same everywhere."""

from __future__ import annotations

import math
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

COLUMNS = 80
HELP_ROWS = 60  # rows of an 80-column terminal: a line longer than 80 characters takes several
OVERVIEW_LINES = 30
COMMON_SECTIONS = ["model", "training", "LoRA", "logging"]

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
# Training commands: the titles of their own sections (the classifiers': data) and their recipe defaults.
TRAINING = {
    "recipes/spam.py": (("data",), spam.DEFAULTS),
    "recipes/instruction.py": (("instruction method",), instruction.DEFAULTS),
    "recipes/spanish_chat.py": (("chat method",), spanish_chat.DEFAULTS),
    "recipes/preference.py": (("preference method",), preference.DEFAULTS),
    "recipes/reward.py": (("reward method",), reward.DEFAULTS),
    "recipes/grpo.py": (("GRPO method",), grpo.DEFAULTS),
    "python -m hf_finetune.classify": (("classifier", "data"), classify.DEFAULTS),
}


@pytest.fixture(autouse=True)
def terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", str(COLUMNS))  # argparse wraps help at the terminal's width


def help_page(entry_point: str, capsys, flag: str = "--help") -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(ENTRY_POINTS[entry_point], [flag])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    assert "Traceback" not in err and "error" not in err, err
    return out


SECTION_HEADING = r"^(\S[^\n]*):\n(?=  -)"  # a line ending with ':' and followed by a flag


def sections(page: str) -> dict[str, str]:
    """Each section's heading and text (the description above may end lines with ':' too)."""
    parts = re.split(SECTION_HEADING, page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def description(page: str) -> str:
    """The text between the usage line and the first section."""
    return re.split(SECTION_HEADING, page.split("\n\n", 1)[1], maxsplit=1, flags=re.MULTILINE)[0].strip("\n")


def rows(page: str) -> int:
    return sum(max(1, math.ceil(len(line) / COLUMNS)) for line in page.splitlines())


def flag_entry(page: str, flag: str) -> str:
    """A flag's line(s) in the help page, joined: its name, value, help and default."""
    match = re.search(rf"^  {re.escape(flag)}\b.*?(?=^  -|^\S|\Z)", page, re.MULTILINE | re.DOTALL)
    assert match, f"{flag} is not in the help page"
    return " ".join(match[0].split())


@pytest.mark.parametrize("flag", ["--help", "--help-all"])
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_help_page_opens(entry_point, flag, capsys):
    page = help_page(entry_point, capsys, flag)
    assert page.startswith("usage: ") and "--help-all" in page
    if flag == "--help-all":
        assert "--traceback" in page


@pytest.mark.parametrize("name", cli.COMMANDS)
def test_every_commands_help_fits_an_80_column_screen(name, capsys):
    page = help_page(f"hf-finetune {name}", capsys)
    assert rows(page) <= HELP_ROWS, f"{rows(page)} rows at {COLUMNS} columns:\n{page}"


@pytest.mark.parametrize("entry_point", TRAINING)
def test_training_help_has_its_own_flags_first_then_the_common_sections_in_order(entry_point, capsys):
    own, _ = TRAINING[entry_point]
    assert list(sections(help_page(entry_point, capsys))) == [*own, *COMMON_SECTIONS]
    # --help-all also has the sections of rare flags only, and every other TrainingArguments flag
    every = list(sections(help_page(entry_point, capsys, "--help-all")))
    assert every[-3:] == ["hub", "logging", "more training flags (TrainingArguments)"], every


@pytest.mark.parametrize("entry_point", TRAINING)
def test_help_shows_the_opening_and_examples_and_help_all_the_whole_story(entry_point, capsys):
    page, every = help_page(entry_point, capsys), help_page(entry_point, capsys, "--help-all")
    short, whole = description(page), description(every)
    assert whole.startswith(short) and len(whole) > len(short)
    assert short.splitlines()[-1].startswith("    ")  # ends with its examples
    for line in short.split("\n\n")[0].splitlines():  # prose is wrapped to the terminal
        assert len(line) <= COLUMNS - 2, line


# The chat's flags by section: those --help shows, and those it leaves to --help-all.
SHOWN = {
    "chat method": ["--method", "--compare", "--dataset", "--heldout_question"],
    "model": ["--model_name_or_path", "--trainable"],
    "training": ["--output_dir", "--learning_rate", "--num_train_epochs", "--max_steps", "--seeds",
                 "--per_device_train_batch_size", "--gradient_accumulation_steps", "--eval_strategy", "--eval_steps",
                 "--resume_from_checkpoint"],
    "LoRA": ["--use_peft", "--lora_r"],
    "logging": ["--logging_steps", "--log_level"],
}  # fmt: skip
LEFT_TO_HELP_ALL = {
    "chat method": ["--completion_format", "--human_tag", "--max_new_tokens", "--report_examples"],
    "data": ["--train_sampling_strategy"],
    "training": ["--warmup_steps", "--weight_decay", "--bf16", "--save_strategy", "--save_total_limit",
                 "--per_device_eval_batch_size", "--overwrite_output_dir"],
    "LoRA": ["--merge_adapters", "--lora_target_modules"],
    "hub": ["--push_to_hub", "--hub_model_id"],
    "logging": ["--report_to", "--traceback"],
}  # fmt: skip


def test_each_flag_is_in_its_section_and_the_rare_ones_only_in_help_all(capsys):
    shown = sections(help_page("recipes/spanish_chat.py", capsys))
    every = sections(help_page("recipes/spanish_chat.py", capsys, "--help-all"))
    for title, flags in SHOWN.items():
        for flag in flags:
            assert re.search(rf"^  {flag}\b", shown[title], re.MULTILINE), f"{flag} is not under {title}"
    for title, flags in LEFT_TO_HELP_ALL.items():
        for flag in flags:
            assert not re.search(rf"^  {flag}\b", shown.get(title, ""), re.MULTILINE), f"{flag} is in --help"
            assert re.search(rf"^  {flag}\b", every[title], re.MULTILINE), f"{flag} is not under {title}"


def test_a_shared_dataclasss_rare_flags_stay_rare_in_a_method_that_extends_it(capsys):
    # PairDataArguments leaves --input_column to --help-all; reward's and preference's dataclasses extend it.
    for entry_point in ("recipes/reward.py", "recipes/preference.py"):
        assert "--input_column" not in help_page(entry_point, capsys)
        assert "--input_column" in help_page(entry_point, capsys, "--help-all")


@pytest.mark.parametrize("entry_point", TRAINING)
def test_training_help_shows_the_recipe_defaults(entry_point, capsys):
    _, defaults = TRAINING[entry_point]
    page, every = help_page(entry_point, capsys), help_page(entry_point, capsys, "--help-all")
    for name, value in defaults.items():
        entry = flag_entry(page if re.search(rf"^  --{name}\b", page, re.MULTILINE) else every, f"--{name}")
        shown = repr(value) if isinstance(value, str) and value != value.strip() else value
        assert f"(default: {shown})" in entry, entry


def test_a_default_that_differs_from_trainingarguments_is_the_recipes(capsys):
    # TrainingArguments says 3 epochs, lr schedule linear, seed 42: the recipes say otherwise.
    assert "(default: 5)" in flag_entry(help_page("recipes/spam.py", capsys), "--num_train_epochs")
    every = help_page("recipes/instruction.py", capsys, "--help-all")
    assert "(default: constant)" in flag_entry(every, "--lr_scheduler_type")
    assert "(default: 1)" in flag_entry(help_page("recipes/spanish_chat.py", capsys), "--seed")


@pytest.mark.parametrize("entry_point", TRAINING)
def test_help_fits_the_budget_and_help_all_lists_every_trainingarguments_flag(entry_point, capsys):
    page = help_page(entry_point, capsys)
    every = help_page(entry_point, capsys, "--help-all")
    assert rows(page) <= HELP_ROWS, f"{rows(page)} rows"
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
    every = " ".join(help_page("recipes/spanish_chat.py", capsys, "--help-all").split())
    assert "{% generation %}" in every
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
    parser = ArgumentParser(real_training_arguments(types), prog=page.split()[1], description=description(page))
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
