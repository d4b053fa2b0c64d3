"""The reward method's encoding, figures and refusals, and the score command: the pairs as the
preference method encodes them, joined into the sequences TRL's RewardTrainer scores; scores that do
not depend on padding and equal the trainer's; one sentence for each kind of bad pair, flag or run
folder, before any model loads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, pipeline
from trl.trainer.reward_trainer import DataCollatorForPreference

from hf_finetune import score
from hf_finetune.core.errors import run_cli
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.methods.reward.encoding import answer_sequences, encode_reward_pairs
from hf_finetune.methods.reward.report import pair_figures
from hf_finetune.methods.reward.saved import REWARD_LABEL, is_reward_run
from hf_finetune.methods.reward.scoring import sequence_scores
from hf_finetune.methods.text import INSTRUCTION_RUN
from hf_finetune.methods.text.pair_encoding import encode_pair
from hf_finetune.methods.text.pairs import load_preference_data
from hf_finetune.methods.text.prompt import format_prompt
from hf_finetune.recipes import reward

BOOK_FILE = ("data", "llms_from_scratch_instruction", "instruction-data-with-preference.json")


@pytest.fixture(scope="module")
def book_json():
    from conftest import shared_path

    return shared_path(*BOOK_FILE)


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
    return load_tokenizer(str(gpt2_tokenizer_dir))


@pytest.fixture(scope="module")
def untrained_reward_run(tmp_path_factory, tiny_gpt2, tokenizer):
    """A reward run folder as the method saves one, with the tiny model's random head: what the score
    command and pipeline() read."""
    folder = tmp_path_factory.mktemp("reward") / "run"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_gpt2, num_labels=1, id2label={0: REWARD_LABEL}, label2id={REWARD_LABEL: 0}, problem_type="regression"
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "config.yaml").write_text("learning_rate: 1.0e-05\n")  # a run's flags: the tools tell a run from a model
    return folder


def test_a_pair_is_scored_as_prompt_then_answer_then_end_of_text(book_json, tokenizer):
    data = load_preference_data(str(book_json), None, None, drop_identical_pairs=True)
    encoded, cut = encode_reward_pairs(data.splits, tokenizer, 1024, "--max_length 1024 tokens")
    assert cut == {"train": 0, "validation": 0, "test": 0}
    assert encoded["train"].column_names == ["chosen_ids", "rejected_ids"]
    entry = data.splits["train"][0]
    pair, _ = encode_pair(tokenizer, entry, 1024, "--max_length 1024 tokens")
    assert encoded["train"][0]["chosen_ids"] == pair["prompt_ids"] + pair["chosen_ids"]
    assert tokenizer.decode(encoded["train"][0]["rejected_ids"]) == (
        format_prompt(entry["instruction"], entry["input"]) + entry["rejected"] + "<|endoftext|>"
    )
    [sequence] = answer_sequences(tokenizer, entry["instruction"], entry["input"], [entry["chosen"]], 1024, "x")
    assert sequence == encoded["train"][0]["chosen_ids"], "the score command encodes as training does"


def test_the_scores_do_not_depend_on_padding_and_equal_the_trainers(book_json, tokenizer, tiny_gpt2):
    data = load_preference_data(str(book_json), None, None, drop_identical_pairs=True)
    encoded, _ = encode_reward_pairs(data.splits, tokenizer, 1024, "--max_length 1024 tokens")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2, num_labels=1).eval()
    model.config.pad_token_id = tokenizer.pad_token_id
    pairs = [encoded["validation"][index] for index in range(4)]
    sequences = [pair["chosen_ids"] for pair in pairs] + [pair["rejected_ids"] for pair in pairs]
    batched = sequence_scores(model, tokenizer.pad_token_id, sequences, batch_size=8)
    alone = sequence_scores(model, tokenizer.pad_token_id, sequences, batch_size=1)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(pairs)  # what RewardTrainer feeds
    with torch.no_grad():
        trained_on = model(**batch).logits[:, 0].numpy()  # chosen first, then rejected, as TRL chunks them
    np.testing.assert_allclose(batched, trained_on, atol=1e-5)
    assert not model.training


def test_the_pair_figures_equal_the_values_worked_out_by_hand():
    chosen, rejected = np.array([2.0, 0.5, 1.0, -1.0]), np.array([1.0, 1.5, 1.0, -3.0])  # margins 1, -1, 0, 2
    figures = pair_figures(chosen, rejected, "test", "after")
    assert figures["test_pairwise_accuracy_after"] == 0.5  # a tie is not ranked right
    assert figures["test_margin_mean_after"] == pytest.approx(0.5)
    assert figures["test_margin_median_after"] == pytest.approx(0.5)
    nll = -(math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.exp(1))) + math.log(0.5)
            + math.log(1 / (1 + math.exp(-2)))) / 4  # fmt: skip
    assert figures["test_pairwise_nll_after"] == pytest.approx(nll)
    # Confidence max(p, 1 - p): 0.731 right, 0.731 wrong (same bin); 0.5 (a tie: argmax picks "rejected",
    # wrong); 0.881 right. ECE = (2 |0.5 - 0.731| + |0 - 0.5| + |1 - 0.881|) / 4.
    p1, p2 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))
    assert figures["test_pairwise_ece_after"] == pytest.approx((2 * abs(0.5 - p1) + 0.5 + (1 - p2)) / 4)


def test_a_saved_reward_run_is_told_apart_from_other_classifiers(untrained_reward_run, tiny_gpt2):
    assert is_reward_run(untrained_reward_run)
    assert not is_reward_run(tiny_gpt2)


def test_score_prints_each_answers_score_as_pipeline_gives_it(untrained_reward_run, capsys):
    prompt, answers = "Name the capital of France.", ["Paris.", "I do not know.", ""]
    scores = score.main([str(untrained_reward_run), prompt, *answers])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{value:.4f}\t{answer}" for value, answer in zip(scores, answers)]
    assert len(set(scores)) == 3
    # pipeline() reads the folder's tokenizer and model: the raw score (problem_type regression), no sigmoid.
    scorer = pipeline("text-classification", model=str(untrained_reward_run))
    for answer, value in zip(answers[:2], scores):
        [result] = scorer(format_prompt(prompt) + answer)
        assert result["label"] == REWARD_LABEL and result["score"] == pytest.approx(value, abs=1e-4)
    score.main([str(untrained_reward_run), prompt, "Paris.", "--input", "France", "--json"])
    [line] = capsys.readouterr().out.splitlines()
    assert set(json.loads(line)) == {"answer", "score"}


def refusal(main, argv: list, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [str(token) for token in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-2000:]
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def test_score_refuses_what_it_cannot_score_in_one_sentence(untrained_reward_run, tiny_gpt2, tmp_path, capsys):
    run = str(untrained_reward_run)
    assert refusal(score.main, [tmp_path / "none", "p", "a"], capsys) == (
        f"error: {tmp_path / 'none'} does not exist; pass the --output_dir of a finished run."
    )
    assert f"{tiny_gpt2} holds a model (GPT2LMHeadModel) that no run of hf-finetune trained" in \
        refusal(score.main, [tiny_gpt2, "p", "a"], capsys)  # a plain model, not a run  # fmt: skip
    assert refusal(score.main, [run, "  ", "a"], capsys) == (
        "error: the prompt is empty; give the instruction the answers reply to."
    )
    assert "too long for the model's 1024 positions" in refusal(score.main, [run, "p", "word " * 1100], capsys)
    assert "the following arguments are required: answers" in refusal(score.main, [run, "p"], capsys)


def test_predict_points_a_reward_run_to_score(untrained_reward_run, capsys):
    from hf_finetune import predict

    assert refusal(predict.main, [untrained_reward_run, "text"], capsys) == (
        f"error: {untrained_reward_run} holds a reward model (reward method), which python -m hf_finetune.predict "
        f"cannot use; use hf-finetune score {untrained_reward_run}."
    )


def book_pairs(book_json, count=40) -> list[dict]:
    return [entry for entry in json.loads(book_json.read_text())[:count] if entry["chosen"] != entry["rejected"]]


def write(folder, entries) -> list[str]:
    (folder / "pairs.json").write_text(json.dumps(entries, indent=1))
    return ["--dataset", str(folder / "pairs.json")]


@pytest.mark.parametrize(
    "change, flags, message",
    [
        (None, ["--scoring_batch_size", "0"], "--scoring_batch_size must be at least 1 (got 0)."),
        (None, ["--report_examples", "-1"], "--report_examples must not be negative (got -1)."),
        (None, ["--center_rewards_coefficient=-0.5"], "--center_rewards_coefficient must be a number of at least 0"),
        (None, ["--center_rewards_coefficient", "nan"], "--center_rewards_coefficient: nan is not a finite number"),
        (None, ["--max_length", "0"], "--max_length must be at least 1 (got 0)."),
        (None, ["--rejected_column", "chosen"], "--chosen_column and --rejected_column both name 'chosen'"),
        (None, ["--chosen_column", "better"], "--chosen_column: {d}/pairs.json has no 'better' column"),
        (None, ["--train_sampling_strategy", "group_by_length"], "a reward pair has two lengths"),
        (None, ["--max_length", "24"], "--max_length: {d}/pairs.json, entry 1: the prompt (54 tokens) and its longer"),
        (lambda book: book[6].update(rejected=None), [], "--dataset: {d}/pairs.json, entry 7: 'rejected' is missing"),
        (lambda book: book[3].update(chosen=book[3]["rejected"]), [],
         "--dataset: {d}/pairs.json, entry 4: 'chosen' and 'rejected' are the same text"),
        (lambda book: book[1].update(chosen=[1, 2]), [], "--dataset: {d}/pairs.json, entry 2: 'chosen' is a list"),
    ],
)
def test_bad_flags_and_data_give_one_sentence_before_the_model_loads(change, flags, message, book_json,
                                                                     gpt2_tokenizer_dir, tmp_path, capsys, monkeypatch):  # fmt: skip
    def model_loaded(*args, **kwargs):
        raise AssertionError("the model loaded: the mistake was found too late")

    monkeypatch.setattr("hf_finetune.methods.reward.train.load_classifier", model_loaded)
    book = book_pairs(book_json)
    if change:
        change(book)
    output = tmp_path / "run"
    argv = ["--model_name_or_path", gpt2_tokenizer_dir, "--output_dir", output, *write(tmp_path, book), *flags]
    line = refusal(reward.main, argv, capsys)
    assert message.format(d=tmp_path) in line, line
    assert not output.exists() or not any(output.iterdir()), "nothing may be written for bad input"


def test_the_recipe_says_to_train_the_instruction_run_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no outputs/instruction here
    assert refusal(reward.main, ["--output_dir", tmp_path / "run"], capsys) == (
        f"error: --model_name_or_path: {INSTRUCTION_RUN} does not exist; train the instruction run first "
        f"(hf-finetune instruction), or start from another model with --model_name_or_path."
    )
