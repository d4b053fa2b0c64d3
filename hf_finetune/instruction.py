"""Alpaca-style instruction fine-tuning, end to end.

`train_instructions` runs the story: entries -> prompt format -> token ids and labels ->
Trainer (dynamic padding, loss only where labels are) -> a response to one fixed validation
example at every evaluation -> greedy answers to the whole test split -> ROUGE-L (and an
optional judge) -> run folder. recipes/instruction.py only chooses its defaults.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback, TrainingArguments

from .arguments import ModelArguments, RunArguments, config_snapshot, parse_arguments
from .cards import instruction_card
from .errors import UserError, run_cli
from .generate import DEFAULT_MAX_NEW_TOKENS, generate_responses
from .hub import defer_push_to_end, prepare_hub_push, push_run, repo_creation_reported
from .instruction_data import InstructionData, format_prompt, prepare_instructions
from .instruction_encoding import InstructionCollator, encode_instructions
from .instruction_results import rouge_l, write_instruction_results
from .judge import judge_responses
from .lora import LoraArguments, apply_lora, describe_lora, save_trained_model
from .modeling import TrainablePolicy, apply_causal_lm_policy, count_parameters, load_causal_lm, load_tokenizer
from .results import history_from_log
from .reliability import train_reliably
from .sources import load_source
from .target_loss import TargetLossTrainer
from .training import EvaluateAtEpochEnd, device_name, guard_output_dir, precision_name, prepare_training_args, print_plan


@dataclass
class InstructionArguments:
    dataset: str = field(
        default="instruction_data",
        metadata={
            "help": "instruction_data (the book's 1100 entries, downloaded and checksum-verified), a local "
            "json/jsonl file or folder, a save_to_disk folder, or a Hub dataset id (e.g. tatsu-lab/alpaca); "
            "entries need instruction and output, and optionally input."
        },
    )
    dataset_url: str | None = field(default=None, metadata={"help": "Download instruction_data from this URL."})
    cache_dir: str | None = field(default=None, metadata={"help": "Download cache (default ~/.cache/hf_finetune)."})
    split: str = field(
        default="0.85,0.05,0.10",
        metadata={"help": "train,validation,test fractions for one-split data, cut in file order (train, test, "
                  "validation) without shuffling, as the book does."},
    )
    max_length: int = field(
        default=1024,
        metadata={"help": "Longest training example in tokens; longer prompts are cut first, never the response."},
    )
    mask_prompt: bool = field(
        default=False, metadata={"help": "Train on the response only (instruction and input labels set to -100)."}
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Most tokens generated per test response."}
    )
    sample_max_new_tokens: int = field(
        default=64, metadata={"help": "Most tokens generated for the fixed validation example at each evaluation."}
    )
    generation_batch_size: int = field(default=16, metadata={"help": "Test prompts generated per batch."})
    train_eval_samples: int = field(
        default=40, metadata={"help": "Training examples whose loss is measured at each evaluation."}
    )
    report_examples: int = field(default=5, metadata={"help": "Test responses shown in report.md."})
    judge_url: str | None = field(
        default=None,
        metadata={"help": "Ollama (http://localhost:11434) or OpenAI-compatible (http://host/v1) server that "
                  "scores each test response 0-100. Without it nothing is sent anywhere."},
    )
    judge_model: str = field(default="llama3", metadata={"help": "Model name the judge server runs."})


INSTRUCTION_ARGUMENTS = (ModelArguments, InstructionArguments, RunArguments, TrainingArguments, LoraArguments)

class LogValidationResponse(TrainerCallback):
    """Generate the response to one fixed validation example before training and at every
    evaluation, as the book prints it each epoch."""

    def __init__(self, entry: dict, tokenizer, max_new_tokens: int):
        self.entry = entry
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.samples: list[dict] = []

    def _sample(self, state, model) -> None:
        if not state.is_world_process_zero:
            return
        [response] = generate_responses(model, self.tokenizer, [self.entry], max_new_tokens=self.max_new_tokens)
        epoch = round(float(state.epoch or 0), 4)
        self.samples.append({"step": state.global_step, "epoch": epoch, "prompt": format_prompt(
            self.entry["instruction"], self.entry["input"]), "response": response})
        print(f"[step {state.global_step}, epoch {epoch:.2f}] validation response: {response!r}", flush=True)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self._sample(state, model)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if state.global_step > 0 and (not self.samples or self.samples[-1]["step"] != state.global_step):
            self._sample(state, model)


def load_instruction_data(data_args: InstructionArguments, training_args: TrainingArguments) -> InstructionData:
    with training_args.main_process_first(desc="loading data"):
        source = load_source(data_args.dataset, url=data_args.dataset_url, cache_dir=data_args.cache_dir)
    data = prepare_instructions(source, data_args.split)
    data.notes.insert(0, source.origin)
    return data


def last_evaluation(history: list[dict], step: int) -> dict | None:
    """The losses of the evaluation at `step` (the end of training), if one ran there."""
    for point in reversed(history):
        if point["step"] == step and "eval_validation_loss" in point:
            return point
    return None


def check_arguments(data_args: InstructionArguments, training_args: TrainingArguments) -> None:
    for name in ("max_length", "max_new_tokens", "sample_max_new_tokens", "generation_batch_size"):
        if getattr(data_args, name) < 1:
            raise UserError(f"--{name} must be at least 1 (got {getattr(data_args, name)}).")
    # Eval needs only the loss; keeping full-vocabulary logits is the classic out-of-memory.
    training_args.prediction_loss_only = True


def train_instructions(
    model_args: ModelArguments,
    data_args: InstructionArguments,
    run_args: RunArguments,
    training_args: TrainingArguments,
    lora_args: LoraArguments | None = None,
) -> dict:
    lora_args = lora_args or LoraArguments()
    guard_output_dir(training_args.output_dir, run_args.overwrite_output_dir)
    prepare_training_args(training_args)
    prepare_hub_push(training_args)
    check_arguments(data_args, training_args)
    # Before the Trainer exists: building the reference TrainingArguments resets accelerate's state.
    config = config_snapshot(model_args, data_args, training_args, lora_args)
    policy = TrainablePolicy.parse(model_args.trainable)
    data = load_instruction_data(data_args, training_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
    model = load_causal_lm(model_args.model_name_or_path, tokenizer, model_args.trust_remote_code)
    if lora_args.use_peft:
        model = apply_lora(model, lora_args)
        what_trains = describe_lora(model)
    else:
        what_trains = apply_causal_lm_policy(model, policy)
    model.config.use_cache = False
    trainable, total = count_parameters(model)

    with training_args.main_process_first(desc="tokenizing"):
        encoded, counts = encode_instructions(data.splits, tokenizer, data_args.max_length, data_args.mask_prompt)
    touched = ", ".join(
        f"{split}: {c['truncated']} prompts cut, {c['dropped']} dropped" for split, c in counts.items()
    )
    train_sample = encoded["train"].select(range(min(data_args.train_eval_samples, len(encoded["train"]))))
    tokens_per_epoch = sum(len(ids) for ids in encoded["train"]["input_ids"])
    validation_entry = data.splits["validation"][0]

    print_plan(
        {
            "method": "instruction tuning, Alpaca prompt format, labels on "
            + ("the response only (--mask_prompt)" if data_args.mask_prompt else "prompt and response")
            + " + end-of-text",
            "model": f"{model_args.model_name_or_path} ({model.__class__.__name__})",
            "data": "; ".join(data.notes),
            "sizes": ", ".join(f"{k} {v}" for k, v in data.sizes().items()),
            "max length": f"{data_args.max_length} tokens ({touched})",
            "trainable": f"{trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%): {what_trains}",
            "device": device_name(training_args),
            "precision": precision_name(training_args),
            "judge": data_args.judge_url or "none (nothing is sent anywhere)",
            "output": training_args.output_dir,
        },
        training_args,
    )

    sampler = LogValidationResponse(validation_entry, tokenizer, data_args.sample_max_new_tokens)
    with repo_creation_reported(training_args):
        trainer = TargetLossTrainer(
            model=model,
            args=training_args,
            train_dataset=encoded["train"],
            eval_dataset={"validation": encoded["validation"], "train": train_sample},
            processing_class=tokenizer,
            data_collator=InstructionCollator(tokenizer.pad_token_id),
            callbacks=[EvaluateAtEpochEnd(), sampler],
        )
    defer_push_to_end(trainer)
    initial = trainer.evaluate() if training_args.eval_strategy != "no" else {}
    started = time.time()
    train_result = train_reliably(trainer, training_args, run_args.skip_nonfinite_batches)
    training_seconds = time.time() - started
    history = history_from_log(trainer.state.log_history, len(encoded["train"]))
    final = last_evaluation(history, trainer.state.global_step)
    if final is None:
        final = trainer.evaluate() if training_args.eval_strategy != "no" else {}
        history = history_from_log(trainer.state.log_history, len(encoded["train"]))
    if initial:
        history.insert(0, {"step": 0, "epoch": 0.0, "examples_seen": 0,
                           **{k: v for k, v in initial.items() if k.endswith("_loss")}})
    save_trained_model(trainer, training_args.output_dir, model_args.model_name_or_path, lora_args)

    results: dict = {
        "train_runtime_seconds": round(training_seconds, 2),
        "train_loss": train_result.training_loss,
        "train_tokens_per_epoch": tokens_per_epoch,
        "initial_train_loss": initial.get("eval_train_loss"),
        "initial_validation_loss": initial.get("eval_validation_loss"),
        "final_train_loss": final.get("eval_train_loss"),
        "final_validation_loss": final.get("eval_validation_loss"),
        "truncation": counts,
        "sizes": data.sizes(),
    }
    if trainer.is_world_process_zero():
        answered = answer_test_split(trainer.model, tokenizer, data.splits["test"], data_args)
        responses = answered.pop("responses")
        results.update(answered)
        write_instruction_results(
            Path(training_args.output_dir),
            results,
            history,
            responses,
            sampler.samples,
            tokens_per_epoch,
            config=config,
            title=f"{model_args.model_name_or_path} instruction-tuned on {data_args.dataset}",
            report_examples=data_args.report_examples,
        )
    if training_args.push_to_hub:  # every process: Trainer saves collectively, the main process uploads
        card = (
            instruction_card(model_args.model_name_or_path, data, results, what_trains, data_args.mask_prompt, training_args)
            if trainer.is_world_process_zero()
            else ""  # only the main process writes and uploads it
        )
        push_run(trainer, card)
    return results


def answer_test_split(model, tokenizer, test, data_args: InstructionArguments) -> dict:
    """Greedy answers to the test entries, their ROUGE-L (and judge) scores, and the time taken."""
    entries = [dict(row) for row in test]
    started = time.time()
    answers = generate_responses(
        model, tokenizer, entries, max_new_tokens=data_args.max_new_tokens, batch_size=data_args.generation_batch_size
    )
    figures: dict = {"test_generation_seconds": round(time.time() - started, 2)}
    responses = [{**entry, "model_response": answer} for entry, answer in zip(entries, answers)]
    scores, how = rouge_l(answers, [entry["output"] for entry in entries])
    for row, score in zip(responses, scores):
        row["rougeL"] = round(score, 4)
    figures.update(test_rougeL=sum(scores) / len(scores), rouge_implementation=how)
    if data_args.judge_url:
        judged, summary = judge_responses(data_args.judge_url, data_args.judge_model, responses)
        for row, score in zip(responses, judged):
            row["judge_score"] = score
        figures.update(summary)
    print(f"test ROUGE-L {figures['test_rougeL']:.4f} ({how})", flush=True)
    return {**figures, "responses": responses}


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, data_args, run_args, training_args, lora_args = parse_arguments(INSTRUCTION_ARGUMENTS, argv, defaults)
    return train_instructions(model_args, data_args, run_args, training_args, lora_args)


if __name__ == "__main__":
    run_cli(main)
