"""The final figures on a large training split from a stated, seeded sample (--final_train_sample)."""

from __future__ import annotations

import json

import datasets
import pytest

from hf_finetune.methods.classify.final_sample import DEFAULT_SAMPLE, final_figure_splits, sample_note


def encoded(train_size: int) -> datasets.DatasetDict:
    split = lambda size: datasets.Dataset.from_dict({"input_ids": [[i] for i in range(size)]})  # noqa: E731
    return datasets.DatasetDict(train=split(train_size), validation=split(7), test=split(9))


def test_a_large_training_split_is_scored_on_a_seeded_sample_in_file_order():
    splits, scored = final_figure_splits(encoded(8530), DEFAULT_SAMPLE, seed=42)
    ids = [row[0] for row in splits["train"]["input_ids"]]
    assert scored == {"train_examples": DEFAULT_SAMPLE} and len(ids) == DEFAULT_SAMPLE == 2000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len(splits["validation"]) == 7 and len(splits["test"]) == 9  # always whole
    again, _ = final_figure_splits(encoded(8530), DEFAULT_SAMPLE, seed=42)
    other, _ = final_figure_splits(encoded(8530), DEFAULT_SAMPLE, seed=43)
    assert again["train"]["input_ids"] == splits["train"]["input_ids"] != other["train"]["input_ids"]
    assert sample_note(scored, 8530) == (
        "## Training split\n\nIts figures come from a seeded sample of 2,000 of its 8,530 texts "
        "(`--final_train_sample`; 0 scores every one); validation and test are scored whole.",)


@pytest.mark.parametrize("train_size, sample", [(1045, 2000), (2000, 2000), (8530, 0)])
def test_a_split_no_larger_than_the_sample_or_sample_0_is_scored_whole(train_size, sample):
    splits, scored = final_figure_splits(encoded(train_size), sample, seed=1)
    assert len(splits["train"]) == train_size and scored == {"train_examples": train_size}
    assert sample_note(scored, train_size) == ()


@pytest.mark.slow
def test_the_report_and_results_say_how_many_training_texts_were_scored(tiny_gpt2, sms_zip, tmp_path):
    from hf_finetune.methods.classify.head import train as head

    output = tmp_path / "run"
    results = head.main(["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--balance",
                         "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
                         "--final_train_sample", "100", "--output_dir", str(output), "--disable_tqdm", "true"])  # fmt: skip
    assert results["train_examples"] == 100 and sum(map(sum, results["train_confusion_matrix"])) == 100
    assert sum(map(sum, results["test_confusion_matrix"])) == 300
    report = (output / "report.md").read_text()
    assert "| train | 100 |" in report and "a seeded sample of 100 of its 1,045 texts" in report
    # It opens with the command, the data, and the headline against the chance level (issue 24).
    opening = report.split("\n| split |")[0]
    assert "Command:\n\n```bash\n" in opening and "--final_train_sample 100 --output_dir" in opening
    assert opening.index("Command:") < opening.index("Data: ") < opening.index("**Test accuracy")
    chance = results["test_chance_accuracy"]
    assert chance == max(sum(row) for row in results["test_confusion_matrix"]) / 300  # rows: the true classes
    assert f"against a chance level of {chance:.4f}: always answering '" in opening
    assert json.loads((output / "all_results.json").read_text())["train_examples"] == 100
