"""`python -m hf_finetune.sft` end to end on local copies of rotten_tomatoes, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import python_module

from hf_finetune import sft
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model import precision

QUICK = ["--max_steps", "4", "--eval_steps", "2", "--per_device_train_batch_size", "8", "--train_eval_samples", "16",
         "--logging_steps", "1", "--save_strategy", "no", "--disable_tqdm", "true", "--class_names", "neg,pos"]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def write_rows(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def both_classes(rows: list[dict], count: int) -> list[dict]:
    """`count` rows, half from each class, interleaved (the files hold one class, then the other)."""
    positive = [row for row in rows if row["label"] == 1][: count // 2]
    negative = [row for row in rows if row["label"] == 0][: count // 2]
    return [row for pair in zip(positive, negative) for row in pair]


@pytest.fixture(scope="module")
def small_rt(rt_folder, tmp_path_factory) -> Path:
    """64 / 32 / 32 real rotten_tomatoes examples as a folder of split files."""
    folder = tmp_path_factory.mktemp("data") / "rt_small"
    for name, count in (("train", 64), ("validation", 32), ("test", 32)):
        write_rows(folder, name, both_classes(read_rows(rt_folder / f"{name}.jsonl"), count))
    return folder


def assert_metrics_count_their_split(results: dict, sizes: dict[str, int]) -> None:
    """Each split's accuracy is the share of its confusion matrix's diagonal, over all its rows."""
    for split, size in sizes.items():
        matrix = results[f"{split}_confusion_matrix"]
        assert sum(map(sum, matrix)) == size, (split, matrix)
        assert results[f"{split}_accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / size), split


SPLIT_SIZES = {"train": 64, "eval": 32, "test": 32}  # small_rt: the final figures score every row


def test_label_token_cli_end_to_end_with_checkpointing(tmp_path, tiny_gpt2, small_rt):
    output = tmp_path / "run"
    done = python_module(
        "hf_finetune.sft", "--dataset", str(small_rt), "--model_name_or_path", str(tiny_gpt2),
        "--output_dir", str(output), "--trainable", "last_block", "--gradient_checkpointing", *QUICK,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "label-token" in done.stdout and "neg -> 'neg'" in done.stdout
    results = json.loads((output / "all_results.json").read_text())
    assert_metrics_count_their_split(results, SPLIT_SIZES)
    assert any("eval_validation_accuracy" in point for point in results["history"])
    for name in ("loss.png", "loss.pdf", "accuracy.png", "accuracy.pdf", "report.md", "config.yaml",
                 "model.safetensors", "tokenizer.json", "label_token.json"):
        assert (output / name).is_file(), name
    assert "Format adherence" in (output / "report.md").read_text()
    saved = json.loads((output / "label_token.json").read_text())
    assert saved["label_words"] == ["neg", "pos"] and saved["label_names"] == ["neg", "pos"]

    predicted = python_module("hf_finetune.predict", str(output), "a gorgeous, moving film", "dull and lifeless",
                              "--json")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["a gorgeous, moving film", "dull and lifeless"]
    assert all(line["label"] in ("neg", "pos") and 0.5 <= line["probability"] <= 1.0 for line in lines)


def test_bf16_trains_where_the_cpu_has_native_bf16_and_is_refused_in_one_sentence_elsewhere(
    tmp_path, tiny_gpt2, small_rt, capsys
):
    # The same detection the run makes: a machine with AVX512-BF16/AMX trains, an AVX2-only one refuses.
    instructions = precision.cpu_bf16_instructions()
    output = tmp_path / "run"
    argv = ["--dataset", str(small_rt), "--model_name_or_path", str(tiny_gpt2), "--output_dir", str(output),
            "--trainable", "last_block", "--bf16", *QUICK]  # fmt: skip
    if instructions is not None:
        run_cli(sft.main, argv)
        assert f"bf16 mixed precision (autocast on cpu, {instructions}" in capsys.readouterr().out
        assert_metrics_count_their_split(json.loads((output / "all_results.json").read_text()), SPLIT_SIZES)
        return
    with pytest.raises(SystemExit) as exit_info:
        run_cli(sft.main, argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: --bf16: this CPU "), error
    assert "no native bf16 instructions" in error and "train in fp32" in error and "Traceback" not in error
    assert not output.exists()


def test_head_method_on_the_same_command(tmp_path, tiny_gpt2, small_rt):
    output = tmp_path / "head"
    results = sft.main(
        ["--method", "head", "--dataset", str(small_rt), "--model_name_or_path", str(tiny_gpt2),
         "--output_dir", str(output), "--trainable", "all", *QUICK]
    )
    assert_metrics_count_their_split(results, SPLIT_SIZES)
    assert not (output / "label_token.json").exists()
    assert (output / "all_results.json").is_file()


@pytest.fixture(scope="module")
def bad_label_folder(rt_folder, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "rt_bad_label"
    rows = both_classes(read_rows(rt_folder / "train.jsonl"), 8)
    rows[4] = {**rows[4], "label": 5}
    write_rows(folder, "train", rows)
    return folder


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--text_column", "review"], "has no column 'review'"),
        (["--label_words", "neg,"], "a label word is empty"),
        (["--label_words", "good,good"], "tokenize to the same tokens"),
        (["--method", "verbalizer"], "--method: 'verbalizer' is not a method"),
        (["--max_length", "2"], "--max_length: 2 tokens leave no room"),
    ],
)
def test_clear_errors(tmp_path, tiny_gpt2, small_rt, flags, message):
    with pytest.raises(UserError, match=message):
        sft.main(["--dataset", str(small_rt), "--model_name_or_path", str(tiny_gpt2),
                  "--output_dir", str(tmp_path / "run"), *QUICK, *flags])
    assert not (tmp_path / "run" / "all_results.json").exists()


def test_label_outside_the_label_set_exits_2_naming_file_line_and_column(tmp_path, tiny_gpt2, bad_label_folder,
                                                                         capsys):
    argv = ["--dataset", str(bad_label_folder), "--model_name_or_path", str(tiny_gpt2),
            "--output_dir", str(tmp_path / "run"), *QUICK]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(sft.main, argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    [line] = [line for line in error.splitlines() if line.startswith("error:")]
    assert "train.jsonl, line 5, column 'label': label '5' is not one of neg, pos" in line, error
    assert "Traceback" not in error
    assert not (tmp_path / "run").exists()
