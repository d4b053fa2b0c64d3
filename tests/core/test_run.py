"""The run skeleton: a method is a Method subclass, and run() calls its hooks in the story's order."""

from __future__ import annotations

import json

import datasets
import pytest
from transformers import TrainingArguments

from hf_finetune.core.arguments import ModelArguments, RunArguments
from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.trainers import TargetLossTrainer
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.skeleton import run

TEXTS = ["one two three", "four five", "six seven eight nine", "ten"]


class CopyTextMethod(Method):
    """The smallest method: learn a few texts token for token, and record every hook call."""

    description = "copy the texts (a test method)"

    def __init__(self, model_args, run_args, training_args, fail_in: str | None = None):
        super().__init__(model_args, run_args, training_args, None)
        self.calls: list[str] = []
        self.fail_in = fail_in

    def record(self, hook: str) -> None:
        self.calls.append(hook)
        if hook == self.fail_in:
            raise UserError(f"{hook} refused")

    def check_arguments(self) -> None:
        self.record("check_arguments")

    def required_training_arguments(self) -> dict[str, object]:
        self.record("required_training_arguments")
        return {"prediction_loss_only": True}

    def load_data(self) -> None:
        self.record("load_data")
        self.texts = TEXTS
        self.early_tokenizer = self.load_tokenizer()  # a hook may need it before the skeleton loads it

    def tokenize(self, tokenizer) -> None:
        self.record("tokenize")

    def load_model(self, tokenizer):
        self.record("load_model")
        assert tokenizer is self.early_tokenizer, "the tokenizer is loaded once per run"
        return super().load_model(tokenizer)

    def encode(self, tokenizer, model) -> None:
        self.record("encode")
        ids = [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] for text in self.texts]
        self.dataset = datasets.Dataset.from_dict({"input_ids": ids, "labels": ids})

    def plan(self) -> dict[str, object]:
        self.record("plan")
        return {"data": f"{len(self.texts)} texts"}

    def build_trainer(self, model, tokenizer):
        self.record("build_trainer")
        return TargetLossTrainer(model=model, args=self.training_args, train_dataset=self.dataset,
                                 processing_class=tokenizer, data_collator=padding_collator(tokenizer))  # fmt: skip

    def before_training(self, trainer) -> None:
        self.record("before_training")

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        self.record("evaluate")
        return {**results, "steps": trainer.state.global_step}

    def evaluate_on_main_process(self, trainer, results: dict) -> dict:
        self.record("evaluate_on_main_process")
        return {**results, "measured_by_the_main_process": True}

    def write_results(self, trainer, results: dict, config: dict) -> None:
        self.record("write_results")
        atomic_write_json(f"{self.training_args.output_dir}/{FINISHED_MARKER}", {**results, "config": config})

    def card(self, trainer, results: dict) -> str:
        raise AssertionError("no card without --push_to_hub")


def method_for(tiny_gpt2, output, fail_in=None, method_class=CopyTextMethod, **flags) -> CopyTextMethod:
    args = TrainingArguments(output_dir=str(output), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
                             save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, **flags)  # fmt: skip
    model_args = ModelArguments(model_name_or_path=str(tiny_gpt2), trainable="all")
    return method_class(model_args, RunArguments(), args, fail_in)


def test_run_calls_the_hooks_in_order_and_saves_a_loadable_model(tiny_gpt2, tmp_path, capsys):
    method = method_for(tiny_gpt2, tmp_path / "run")
    results = run(method)
    assert method.calls == ["check_arguments", "required_training_arguments", "load_data", "tokenize", "load_model",
                            "encode", "plan", "build_trainer", "before_training", "evaluate",
                            "evaluate_on_main_process", "write_results"]  # fmt: skip
    assert results["steps"] == 2 and results["trainable"] == "all parameters"
    assert results["measured_by_the_main_process"] is True
    assert {"train_runtime_seconds", "train_cpu_seconds", "train_loss"} <= set(results)
    assert "copy the texts (a test method)" in capsys.readouterr().out  # the plan
    saved = json.loads((tmp_path / "run" / FINISHED_MARKER).read_text())
    assert saved["config"]["model_name_or_path"] == str(tiny_gpt2)
    # The method's needs are applied by the skeleton, before the snapshot.
    assert method.training_args.prediction_loss_only and saved["config"]["prediction_loss_only"] is True
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "tokenizer.json").is_file()


@pytest.mark.parametrize("hook", ["check_arguments", "load_data"])
def test_a_refusal_before_the_model_loads_stops_the_run_with_nothing_written(tiny_gpt2, tmp_path, hook):
    method = method_for(tiny_gpt2, tmp_path / "run", fail_in=hook)
    with pytest.raises(UserError, match=f"{hook} refused"):
        run(method)
    assert "load_model" not in method.calls
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_a_finished_run_is_not_replaced(tiny_gpt2, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / FINISHED_MARKER).write_text("{}")
    method = method_for(tiny_gpt2, tmp_path / "run")
    with pytest.raises(UserError, match="holds a finished run"):
        run(method)
    assert method.calls == []


@pytest.mark.parametrize("log_level", ["passive", "info", "warning"])
def test_log_level_quietens_the_messages_but_not_the_plan_or_summary(tiny_gpt2, tmp_path, capsys, log_level):
    method = method_for(tiny_gpt2, tmp_path / "run", log_level=log_level, resume_from_checkpoint="auto")
    run(method)
    out = capsys.readouterr().out
    assert "plan:" in out and "summary:" in out
    message = f"resume: no complete checkpoint in {tmp_path / 'run'} yet, starting from the beginning"
    assert (message in out) == (log_level != "warning")
