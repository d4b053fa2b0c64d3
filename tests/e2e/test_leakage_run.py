"""The leakage report in real runs with a tiny GPT-2, one per method family: the plan printed at
start, report.md (comparison.md for chat) and all_results.json; and --dedupe's note and effect.
The spam recipe on the real data states the recipe split's figure: 40 of its 300 test texts (33
spam) are also in train, once normalised."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pytest

from hf_finetune.recipes import instruction, spam, spanish_chat

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
         "--disable_tqdm", "true"]  # fmt: skip


def plan_of(capsys) -> str:
    return capsys.readouterr().out.split("summary:")[0]


@pytest.fixture(scope="module")
def spam_runs(tiny_gpt2, sms_zip, tmp_path_factory):
    runs = {}
    for name, extra in (("plain", []), ("dedupe", ["--dedupe"])):
        output = tmp_path_factory.mktemp("spam") / name
        argv = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--output_dir", str(output),
                "--per_device_eval_batch_size", "64", "--train_eval_samples", "0", *QUICK, *extra]  # fmt: skip
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            results = spam.main(argv)
        runs[name] = output, results, printed.getvalue().split("summary:")[0]
    return runs


def test_the_spam_run_reports_the_test_texts_also_in_train(spam_runs):
    output, results, plan = spam_runs["plain"]
    assert "  leakage " in plan and "40 of 300 test texts also in train (33 spam, 7 ham) + 28 near" in plan
    test_in_train = next(item for item in results["leakage"]["across"] if (item["split"], item["in"]) == ("test", "train"))
    assert (test_in_train["texts"], test_in_train["exact"], test_in_train["exact_by_class"]) == (300, 40, {"spam": 33, "ham": 7})
    saved = json.loads((output / "all_results.json").read_text())
    assert saved["leakage"] == results["leakage"]
    report = (output / "report.md").read_text()
    assert "## Leakage: duplicate texts" in report
    assert "| test | 300 | train | 40 (33 spam, 7 ham) | 28 (28 spam) |" in report


def test_the_spam_run_with_dedupe_says_what_it_dropped_and_trains_on_distinct_texts(spam_runs):
    output, results, plan = spam_runs["dedupe"]
    assert "--dedupe dropped 590 duplicate texts (444 exact, 146 near): 5572 -> 4982" in plan
    assert "no text repeats within or across train, validation, test (exact or near)" in plan
    assert results["leakage"]["sizes"] == {"train": 715, "validation": 102, "test": 205}
    assert all(item["exact"] == item["near"] == 0 for item in results["leakage"]["across"])
    assert "dedupe: true" in (output / "config.yaml").read_text()  # the run can be repeated with --config


def test_an_instruction_run_reports_and_drops_its_duplicate_entries(tiny_gpt2, tmp_path, capsys):
    rng = random.Random(0)
    words = ["river", "lamp", "violin", "copper", "meadow", "quartz", "harbor", "pepper", "glacier", "tunnel",
             "orchid", "saddle", "comet", "walnut", "basket", "thunder", "marble", "falcon"]  # fmt: skip
    entries = [{"instruction": " ".join(rng.sample(words, 6)).capitalize() + "?", "input": "",
                "output": " ".join(rng.sample(words, 4)) + "."} for _ in range(20)]  # fmt: skip
    entries[17] = {**entries[3], "output": entries[3]["output"].upper()}  # in test, a copy of a train entry
    data = tmp_path / "entries.json"
    data.write_text(json.dumps(entries), encoding="utf-8")
    argv = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(data), "--max_new_tokens", "2",
            "--sample_max_new_tokens", "2", "--train_eval_samples", "2", *QUICK]  # fmt: skip
    results = instruction.main([*argv, "--output_dir", str(tmp_path / "plain")])
    assert "1 of 2 test texts also in train + 0 near" in plan_of(capsys)  # 20 entries: train 17, test 2, validation 1
    assert next(item for item in results["leakage"]["across"] if item["split"] == "test" and item["in"] == "train")["exact"] == 1
    assert "| test | 2 | train | 1 | 0 |" in (tmp_path / "plain" / "report.md").read_text()

    results = instruction.main([*argv, "--output_dir", str(tmp_path / "dedupe"), "--dedupe"])
    plan = plan_of(capsys)
    assert "--dedupe dropped 1 duplicate entries (1 exact, 0 near): 20 -> 19" in plan
    assert all(item["exact"] == item["near"] == 0 for item in results["leakage"]["across"])
    saved = json.loads((tmp_path / "dedupe" / "all_results.json").read_text())
    assert saved["leakage"]["sizes"] == {"train": 16, "validation": 2, "test": 1}  # 19 cut in file order


def test_a_chat_run_compares_the_held_out_exchange_with_the_training_conversations(tiny_gpt2, tmp_path, capsys):
    output = tmp_path / "chat"
    argv = ["--model_name_or_path", str(tiny_gpt2), "--output_dir", str(output), "--num_train_epochs", "1",
            "--answers_every_epoch", "false", "--max_new_tokens", "2", "--report_to", "none", "--disable_tqdm", "true",
            "--heldout_question", 'How do you say "dog" in Spanish?', "--heldout_answer", "perro"]  # fmt: skip
    [row] = spanish_chat.main(argv)
    assert "1 of 1 held-out texts also in train + 0 near" in plan_of(capsys)
    assert row["leakage"]["across"][0]["exact"] == 1
    report = (output / "comparison.md").read_text()
    assert "| held-out | 1 | train | 1 | 0 |" in report
    assert json.loads((output / "all_results.json").read_text())["methods"][0]["leakage"] == row["leakage"]
