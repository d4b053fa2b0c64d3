"""End to end: a tiny random-init GPT-2 is instruction-tuned on 24 real entries, half of them
answered in a recognisable polite style ("Certainly, I am glad to help! ... I hope this helps, and
thank you for asking."), half plainly; DPO on pairs that prefer the polite answer to the plain one
then makes the model prefer the polite answer to held-out prompts (reward accuracy and margin on 32
held-out pairs) and answer its prompts politely (ROUGE-L to the chosen vs the rejected answer).
The saved run loads with pipeline("text-generation") and hf_finetune.generate, and a LoRA run
saved as an adapter answers as the same run saved merged. KTO learns the same preference; ORPO,
SimPO and CPO train and say which; compare lines KTO up against DPO; KTO resumes bit for bit and a
checkpoint of another algorithm is refused; a SIGTERM'd DPO, KTO or SimPO run resumes to the
uninterrupted run's weights; KTO trains as one job of two processes under `accelerate launch`.

Measured 2026-12-01 (AMD EPYC, 2 shared cores, one thread), three random initialisations (tiny's
--seed 0, 1, 2): held-out reward accuracy 1.000, 0.969, 1.000 (margin 3.46, 2.84, 2.81; 1.000 or
0.969 at every evaluation from the first, 5 steps in), responses closer to the chosen answer 50%
before and 100% after each time; the module took 96-101 s:

    LEARNING_TEST_SEED=N python -m pytest tests/e2e/test_preference_learning.py   # N = 0, 1, 2
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from hf_finetune import generate, tiny
from hf_finetune.core.model.saved_runs import is_adapter_run
from hf_finetune.methods.instruction.generate import load_generator
from hf_finetune.methods.text.prompt import extract_response, format_example, format_prompt
from hf_finetune.methods.text.responses import generate_responses
from hf_finetune.recipes import instruction, preference

SEED = os.environ.get("LEARNING_TEST_SEED", "0")  # the random init; to measure the spread over seeds
OPENING, CLOSING = "Certainly, I am glad to help! ", " I hope this helps, and thank you for asking."
TUNED, PAIRED, HELD_OUT = 24, 56, 32  # instruction-tuned entries; DPO pairs (the tuned ones first); held-out pairs
QUICK = ["--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--max_new_tokens", "60",
         "--bf16", "false"]  # fp32: the same verdict on every CPU (bf16 native or not)

pytestmark = pytest.mark.usefixtures("one_thread")


def polite(entry: dict) -> str:
    return f"{OPENING}{entry['output']}{CLOSING}"


def pair(entry: dict) -> dict:
    return {**{key: entry[key] for key in ("instruction", "input")}, "chosen": polite(entry), "rejected": entry["output"]}


@pytest.fixture(scope="module")
def entries(instruction_json):
    return json.loads(instruction_json.read_text())[: PAIRED + HELD_OUT]


@pytest.fixture(scope="module")
def instruction_run(tmp_path_factory, entries, instruction_json):
    """A 2-layer, 128-wide random GPT-2 (a 1000-word BPE learnt from the book's entries and the
    polite answers) instruction-tuned on 24 entries: the even ones answered politely, the odd ones
    plainly."""
    folder = tmp_path_factory.mktemp("preference")
    sft = [dict(entry, output=polite(entry)) if index % 2 == 0 else entry for index, entry in enumerate(entries[:TUNED])]
    texts = folder / "texts.txt"
    book = json.loads(instruction_json.read_text())
    texts.write_text("\n".join(format_example(entry) for entry in [*book, *sft]))
    model = folder / "tiny-1k"
    tiny.main(["--train_tokenizer_on", str(texts), "--vocab_size", "1000", "--output", str(model), "--seed", SEED])
    data = folder / "sft"
    data.mkdir()
    for split, rows in (("train", sft), ("validation", sft[:2]), ("test", sft[:2])):
        (data / f"{split}.json").write_text(json.dumps(rows))
    output = folder / "instruction"
    instruction.main([
        "--dataset", str(data), "--model_name_or_path", str(model), "--output_dir", str(output),
        "--num_train_epochs", "120", "--learning_rate", "5e-3", "--per_device_train_batch_size", "24",
        "--eval_strategy", "no", "--logging_steps", "20", *QUICK,
    ])  # fmt: skip
    return output


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, entries):
    """DPO on 56 pairs (the 24 instruction-tuned prompts and 32 more), validated on 32 held-out pairs;
    the test prompts are the 24 instruction-tuned ones, half of which the model answers plainly."""
    folder = tmp_path_factory.mktemp("pairs")
    paired, held_out = [pair(entry) for entry in entries[:PAIRED]], [pair(entry) for entry in entries[PAIRED:]]
    for split, rows in (("train", paired), ("validation", held_out), ("test", paired[:TUNED])):
        (folder / f"{split}.json").write_text(json.dumps(rows))
    return folder


def dpo(instruction_run, pairs, output, *flags) -> dict:
    return preference.main([
        "--dataset", str(pairs), "--model_name_or_path", str(instruction_run), "--output_dir", str(output),
        "--loss_type", "sigmoid", "--per_device_eval_batch_size", "32", "--eval_steps", "5", "--logging_steps", "3",
        *QUICK, *flags,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def preference_run(tmp_path_factory, instruction_run, pairs):
    output = tmp_path_factory.mktemp("runs") / "preference"
    results = dpo(instruction_run, pairs, output, "--num_train_epochs", "5", "--learning_rate", "1e-4")
    return output, results


def test_dpo_prefers_the_chosen_style_on_held_out_pairs_and_answers_in_it(preference_run):
    output, results = preference_run
    # The policy starts as the reference: every reward 0.
    assert results["validation_reward_accuracy_before"] == 0 and results["validation_reward_margin_before"] == 0
    assert results["validation_reward_accuracy_after"] > 0.9 and results["validation_reward_margin_after"] > 0
    assert results["validation_rejected_logp_after"] < results["validation_rejected_logp_before"]

    rows = json.loads((output / "preference_responses.json").read_text())
    assert len(rows) == TUNED and set(rows[0]) >= {
        "instruction", "input", "chosen", "rejected", "response_before", "response_after",
        "rougeL_chosen_before", "rougeL_rejected_before", "rougeL_chosen_after", "rougeL_rejected_after",
    }  # fmt: skip

    def lead(stage: str) -> float:  # how much closer to the chosen than to the rejected answer, on average
        return sum(row[f"rougeL_chosen_{stage}"] - row[f"rougeL_rejected_{stage}"] for row in rows) / len(rows)

    assert lead("after") > lead("before")
    assert results["test_closer_to_chosen_after"] > results["test_closer_to_chosen_before"]
    assert results["test_closer_to_chosen_after"] >= 0.75
    assert sum(row["response_after"].startswith(OPENING.strip()) for row in rows) > sum(
        row["response_before"].startswith(OPENING.strip()) for row in rows
    )

    saved = json.loads((output / "all_results.json").read_text())
    validated = [point for point in saved["history"] if "eval_rewards/accuracies" in point]
    assert validated[0]["step"] == 0 and len(validated) >= 5, "the validation curve, from before training on"
    assert any("train_rewards/margins" in point for point in saved["history"])
    for name in ("report.md", "reward_accuracy.png", "reward_margin.png", "log_probs.png", "loss.png", "config.yaml",
                 "model.safetensors"):  # fmt: skip
        assert (output / name).is_file(), name
    report = (output / "report.md").read_text()
    assert "reward accuracy" in report and rows[0]["chosen"] in report and "After DPO" in report


def test_the_run_folder_answers_through_pipeline_and_the_generate_command(preference_run, entries, capsys):
    from transformers import pipeline

    output, _ = preference_run
    entry = next(entry for entry in entries[:TUNED] if entry["input"])
    model, tokenizer = load_generator(output)
    [answer] = generate_responses(model, tokenizer, [entry], max_new_tokens=60)
    assert answer

    generator = pipeline("text-generation", model=str(output))
    [generated] = generator(format_prompt(entry["instruction"], entry["input"]), max_new_tokens=60, do_sample=False,
                            return_full_text=False)  # fmt: skip
    assert extract_response(generated["generated_text"]) == answer

    capsys.readouterr()
    generate.main([str(output), "--instruction", entry["instruction"], "--input", entry["input"], "--max_new_tokens", "60"])
    assert capsys.readouterr().out.strip() == answer


def test_a_lora_run_answers_the_same_saved_as_adapter_or_merged(tmp_path, instruction_run, pairs, entries):
    lora = ["--use_peft", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0.0", "--num_train_epochs", "5",
            "--learning_rate", "2e-3", "--eval_strategy", "no"]  # fmt: skip
    adapter_results = dpo(instruction_run, pairs, tmp_path / "adapter", *lora)
    dpo(instruction_run, pairs, tmp_path / "merged", *lora, "--merge_adapters")
    assert is_adapter_run(tmp_path / "adapter") and not (tmp_path / "adapter" / "model.safetensors").exists()
    assert not list((tmp_path / "adapter").glob("*/adapter_config.json")), "one adapter saved, not TRL's 'ref' copy"
    assert (tmp_path / "merged" / "model.safetensors").is_file() and not is_adapter_run(tmp_path / "merged")
    assert "adapters switched off" in adapter_results["reference"]

    prompts = entries[:TUNED]
    answers = {}
    for name, folder in (("start", instruction_run), ("adapter", tmp_path / "adapter"), ("merged", tmp_path / "merged")):
        model, tokenizer = load_generator(folder)
        answers[name] = generate_responses(model, tokenizer, prompts, max_new_tokens=60)
    assert answers["adapter"] == answers["merged"]
    assert answers["adapter"] != answers["start"], "the adapter changed nothing: the comparison would prove nothing"


# --algorithm: KTO, ORPO, SimPO and CPO on the same instruction run and pairs as DPO above: each trains
# through the recipe and says which; KTO (2 epochs of the 112 answers, 28 steps at 1e-4) learns, lines up against DPO
# through compare and resumes bit for bit. Measured 2026-12-07 (AMD EPYC, 2 cores shared with other
# engineers' runs, one thread): the KTO learning test passes for tiny's --seed 0, 1 and 2
# (LEARNING_TEST_SEED=N python -m pytest tests/e2e/test_preference_learning.py -k kto_learns); the
# new tests took 24 s of the module's 86 s run.


def train_argv(instruction_run, pairs, output, algorithm: str, *flags) -> list[str]:
    return [
        "--dataset", str(pairs), "--model_name_or_path", str(instruction_run), "--output_dir", str(output),
        "--algorithm", algorithm, "--per_device_eval_batch_size", "32", "--eval_steps", "5", "--logging_steps", "3",
        *QUICK, "--max_new_tokens", "12", *flags,
    ]  # fmt: skip


def train(instruction_run, pairs, output, algorithm: str, *flags) -> dict:
    return preference.main(train_argv(instruction_run, pairs, output, algorithm, *flags))


@pytest.mark.parametrize("algorithm,name", [("orpo", "ORPO"), ("simpo", "SimPO"), ("cpo", "CPO")])
def test_each_algorithm_trains_through_the_recipe_and_says_which(tmp_path, instruction_run, pairs, algorithm, name,
                                                                  capsys):  # fmt: skip
    results = train(instruction_run, pairs, tmp_path / algorithm, algorithm, "--max_steps", "3")
    out = capsys.readouterr().out
    assert results["algorithm"] == algorithm
    assert "  algorithm " in out and f"{name}: " in out.split("summary:")[0], "the plan says which"
    assert f"{name} (TRL " in out.split("summary:")[1], "the summary says which"
    report = (tmp_path / algorithm / "report.md").read_text()
    assert report.startswith(f"# {instruction_run} preference-tuned ({name})") and f"After {name}" in report
    assert "| reward margin |" in report and " nan " not in report.lower()
    saved = json.loads((tmp_path / algorithm / "all_results.json").read_text())
    assert saved["algorithm"] == algorithm and saved["validation_reward_margin_after"] is not None
    assert saved["validation_reward_accuracy_after"] is not None and saved["validation_nll_after"] is not None
    assert f"{name} needs no reference model" in report and saved["reference"] == "none"


@pytest.fixture(scope="module")
def kto_run(tmp_path_factory, instruction_run, pairs):
    """KTO for 2 epochs (112 examples, batches of 8: 14 steps each), a checkpoint at each epoch's end."""
    output = tmp_path_factory.mktemp("runs") / "kto"
    flags = ["--num_train_epochs", "2", "--learning_rate", "1e-4", "--save_strategy", "epoch", "--save_total_limit", "2"]
    return output, flags, train(instruction_run, pairs, output, "kto", *flags)


def test_kto_learns_to_reward_the_chosen_answers_of_held_out_pairs_and_answers_in_their_style(kto_run):
    """Measured (tiny's --seed 0): margin 0 -> 2.55 (chosen reward 1.88, rejected -0.67), validation loss
    0.50 -> 0.27, test answers closer to the chosen answer 50% -> 100%."""
    output, _, results = kto_run
    assert results["validation_reward_margin_before"] == 0, "the policy starts as the reference"
    assert results["validation_reward_margin_after"] > 1.0
    assert results["validation_chosen_reward_after"] > 0 > results["validation_rejected_reward_after"]
    assert results["validation_loss_after"] < results["validation_loss_before"]
    assert results["test_closer_to_chosen_after"] > results["test_closer_to_chosen_before"]
    # what KTO's report shows: answers judged alone, against the reference; a KL estimate, no reward accuracy
    saved = json.loads((output / "all_results.json").read_text())
    assert saved["algorithm"] == "kto" and saved["validation_kl_after"] is not None
    assert "validation_reward_accuracy_after" not in saved
    report = (output / "report.md").read_text()
    assert "preference-tuned (KTO)" in report and "After KTO" in report and "| KL estimate to the reference |" in report
    assert "the reference model is the starting model" in report and (output / "reward_margin.png").is_file()
    assert not (output / "reward_accuracy.png").exists(), "no curve of a figure KTO does not log"


def test_compare_lines_kto_up_against_dpo_on_the_same_split(kto_run, preference_run, tmp_path, capsys):
    from hf_finetune import compare

    (kto, _, _), (dpo_folder, _) = kto_run, preference_run
    data = compare.main([str(dpo_folder), str(kto), "--output", str(tmp_path / "compared")])
    printed = capsys.readouterr().out
    assert data["flags"]["algorithm"] == ["dpo", "kto"]
    assert "| algorithm | dpo | kto |" in printed
    for key in ("validation_reward_margin_after", "validation_chosen_logp_after", "test_closer_to_chosen_after"):
        assert all(data["metrics"][key][name]["mean"] is not None for name in ("preference", "kto")), key
    # What one trainer logs and the other not: shown as not measured, never as 0.
    assert data["metrics"]["validation_kl_after"]["preference"] is None
    assert data["metrics"]["validation_reward_accuracy_after"]["kto"] is None
    rows = {cells[0]: cells[1:3] for line in printed.splitlines() if line.startswith("| validation_")
            for cells in [[cell.strip() for cell in line.strip("|").split("|")]]}  # fmt: skip
    assert rows["validation_kl_after"][0] == "not measured" != rows["validation_kl_after"][1]
    assert rows["validation_reward_accuracy_after"][1] == "not measured" != rows["validation_reward_accuracy_after"][0]


def test_kto_resumes_bit_for_bit_and_refuses_a_checkpoint_of_another_algorithm(kto_run, instruction_run, pairs,
                                                                              tmp_path, capsys):  # fmt: skip
    from safetensors.torch import load_file

    from hf_finetune.core.errors import run_cli

    output, flags, results = kto_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(output / "checkpoint-14", resumed / "checkpoint-14")
    again = train(instruction_run, pairs, resumed, "kto", *flags, "--resume_from_checkpoint", "auto")
    ours, theirs = load_file(output / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(ours[name], theirs[name]) for name in ours), "the resumed run's weights differ"
    figures = [key for key in results if key.startswith("validation_")]
    assert {key: again[key] for key in figures} == {key: results[key] for key in figures}

    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(output / "checkpoint-14", other / "checkpoint-14")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda argv: train(instruction_run, pairs, other, "orpo", *argv),
                ["--num_train_epochs", "2", "--resume_from_checkpoint", "auto"])  # fmt: skip
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert "was saved by another kind of run (the method: preference tuning (KTO, TRL KTOTrainer" in error


@pytest.mark.parametrize("algorithm", ["dpo", "kto", "simpo"])
def test_sigterm_saves_a_checkpoint_says_so_and_the_resumed_run_ends_as_the_uninterrupted_one(
    tmp_path, instruction_run, pairs, algorithm
):
    """One algorithm of each kind of trainer: DPO's, KTO's, and the reference-free ones' (ORPO, SimPO, CPO)."""
    import sys

    from conftest import sigterm_after_the_first_step
    from safetensors.torch import load_file

    steps = ["--max_steps", "6", "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "3",
             "--eval_strategy", "no", "--max_new_tokens", "4"]  # fmt: skip
    whole = train(instruction_run, pairs, tmp_path / "whole", algorithm, *steps)
    output = tmp_path / "preempted"
    argv = train_argv(instruction_run, pairs, output, algorithm, *steps)
    sigterm_after_the_first_step([sys.executable, "recipes/preference.py", *argv], output, tmp_path)
    resumed = train(instruction_run, pairs, output, algorithm, *steps, "--resume_from_checkpoint", "auto")
    ours, theirs = load_file(tmp_path / "whole" / "model.safetensors"), load_file(output / "model.safetensors")
    assert all(torch.equal(ours[name], theirs[name]) for name in ours), "the resumed run's weights differ"
    assert resumed["test_closer_to_chosen_after"] == whole["test_closer_to_chosen_after"]


def test_two_processes_train_one_kto_run_under_accelerate_launch(tmp_path, instruction_run, pairs):
    """DDP on CPU (gloo) for the trainer whose KL estimate pairs examples within a batch: one run
    folder, one summary, the test answers written once."""
    import sys

    from conftest import PROJECT, run_command

    output = tmp_path / "ddp"
    result = run_command([
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(PROJECT / "accelerate_configs" / "cpu.yaml"),
        "--num_processes", "2", "--num_cpu_threads_per_process", "1", str(PROJECT / "recipes" / "preference.py"),
        *train_argv(instruction_run, pairs, output, "kto", "--max_steps", "4", "--eval_steps", "2",
                    "--per_device_train_batch_size", "4", "--max_new_tokens", "4"),
    ])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x2 processes" in result.stdout and result.stdout.count("summary:") == 1
    results = json.loads((output / "all_results.json").read_text())
    assert results["algorithm"] == "kto" and results["history"][-1]["step"] == 4
    assert (output / "model.safetensors").is_file() and "After KTO" in (output / "report.md").read_text()


@pytest.mark.parametrize("algorithm", ["kto", "orpo"])
def test_a_lora_run_of_another_algorithm_saves_one_adapter(tmp_path, instruction_run, pairs, algorithm):
    """KTO keeps DPO's reference (the adapters switched off: TRL's copy of a new adapter dropped); ORPO has none."""
    output = tmp_path / algorithm
    results = train(instruction_run, pairs, output, algorithm, "--max_steps", "3", "--use_peft", "--lora_r", "4",
                    "--eval_strategy", "no", "--max_new_tokens", "4")  # fmt: skip
    assert results["algorithm"] == algorithm and "LoRA" in results["trainable"]
    assert is_adapter_run(output) and not (output / "ref").exists() and not (output / "model.safetensors").exists()
