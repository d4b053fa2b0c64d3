"""What a method supplies to the run skeleton: `Method` and its hooks, in the order the skeleton
calls them (skeleton.py). docs/architecture.md lists them with an example of each."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, Trainer, TrainingArguments

from hf_finetune.core.arguments import ModelArguments, RunArguments
from hf_finetune.core.config_file import config_snapshot
from hf_finetune.core.model.loading import load_causal_lm, load_tokenizer
from hf_finetune.core.model.lora import LoraArguments
from hf_finetune.core.model.precision import as_configured


class Method:
    """The parts of a training run that are particular to one method.

    The skeleton calls each hook once, in the order they are listed here. Hooks that load or
    prepare keep what they make on `self` for the later ones. Only the hooks that raise
    NotImplementedError must be written; the others have defaults that suit most methods.
    """

    description = ""  # the plan's "method" line
    # Parts of evaluation figures' names left off the console's line per evaluation (run.log keeps them):
    # figures that others on the line sum up.
    console_leaves_out: tuple[str, ...] = ()

    def __init__(
        self,
        model_args: ModelArguments,
        run_args: RunArguments,
        training_args: TrainingArguments,
        lora_args: LoraArguments | None,
        options: tuple = (),
    ):
        self.model_args = model_args
        self.run_args = run_args
        self.training_args = training_args
        self.lora_args = lora_args or LoraArguments()
        self.options = options  # the method's own argument dataclasses, saved in config.yaml
        self.series: Path | None = None  # the folder of the series (--seeds, chat --compare) this run is one of
        self._tokenizer = None

    # Before anything loads: flags.

    def check_arguments(self) -> None:
        """Refuse flags that cannot work for this method (one sentence each), before anything loads.
        Reads the arguments; changes none of them (see `required_training_arguments`)."""

    def required_training_arguments(self) -> dict[str, object]:
        """TrainingArguments values this method needs whatever the user passed (e.g. prediction_loss_only:
        evaluation needs only the loss). The skeleton applies them, with its own settings, in one place."""
        return {}

    def config(self) -> dict:
        """The flags of the run, for config.yaml (reusable with --config); a precision the run chose for
        the hardware stays unset, to be chosen again wherever the file is used."""
        snapshot = config_snapshot(self.model_args, *self.options, self.run_args, self.training_args, self.lora_args)
        return {**snapshot, **as_configured(self.training_args)}

    # Data.

    def load_data(self) -> None:
        """Load and check the data (the main process first: it downloads), before any model loads."""
        raise NotImplementedError

    def split_texts(self) -> dict[str, list[str]] | None:
        """After `load_data`: the texts of each split (train, validation, test) that the leakage check
        compares, as a person would read them; None: this method's data has no texts to compare."""
        return None

    def split_labels(self) -> dict[str, list[str]] | None:
        """After `load_data`: the class name of each text of `split_texts()` (classifiers), so that the
        leakage check counts leaked texts per class; None: the texts have no classes."""
        return None

    # Tokenizer and model.

    def load_tokenizer(self):
        """The model's tokenizer (pad token set, right padding for training), loaded once per run:
        a hook that needs it early (e.g. data written with the tokenizer's special tokens) gets the
        same object the skeleton uses afterwards."""
        if self._tokenizer is None:
            model_args = self.model_args
            self._tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
        return self._tokenizer

    def tokenize(self, tokenizer) -> None:
        """Token ids that do not depend on the model (e.g. the label words, or pairs encoded at
        --max_length), before the model loads, so that their mistakes cost seconds."""

    def load_model(self, tokenizer) -> PreTrainedModel:
        """The model to train; a causal LM by default (the head method loads a classifier)."""
        return load_causal_lm(self.model_args.model_name_or_path, tokenizer, self.model_args.trust_remote_code)

    def encode(self, tokenizer, model) -> None:
        """Turn the data into model inputs fitted to the model (the main process first: it fills the
        tokenization cache)."""
        raise NotImplementedError

    def frozen_cache_sequences(self) -> list[list[int]] | None:
        """After `encode`: every token sequence training and evaluation will feed the model, for
        --cache_frozen (the frozen layers' output of each is computed once); None: not supported."""
        return None

    def plan(self) -> dict[str, object]:
        """Lines of the plan printed before training: data, sizes, lengths."""
        raise NotImplementedError

    # Training.

    def build_trainer(self, model, tokenizer) -> Trainer:
        """The Trainer, with its datasets, collator, metrics and callbacks."""
        raise NotImplementedError

    def before_training(self, trainer: Trainer) -> None:
        """Anything measured on the untrained model (e.g. its validation loss, its answers)."""

    # Results.

    def evaluate(self, trainer: Trainer, train_result, results: dict) -> dict:
        """Every process: the final figures, added to `results` (training time and loss, what trained)."""
        raise NotImplementedError

    def evaluate_on_main_process(self, trainer: Trainer, results: dict) -> dict:
        """The main process alone, after the model is saved: figures one process measures with the whole
        model (e.g. greedy answers to the test prompts, scored); returns `results` with them."""
        return results

    def write_results(self, trainer: Trainer, results: dict, config: dict) -> None:
        """The main process: the run folder's files (report, plots), all_results.json last."""
        raise NotImplementedError

    def card(self, trainer: Trainer, results: dict) -> str:
        """The model card pushed with --push_to_hub (the main process only)."""
        raise NotImplementedError

    def headline(self, results: dict) -> dict[str, str]:
        """The figures the run's closing summary leads with (e.g. test accuracy), read from `results`."""
        return {}

    def report_path(self) -> Path | None:
        """The report a person reads first, named in the closing summary (None: this run writes none)."""
        return Path(self.training_args.output_dir) / "report.md"
