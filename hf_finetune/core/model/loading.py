"""Model and tokenizer loading (a Hub id, a local folder or a LoRA adapter folder; the pad token
set), and facts about a loaded model: its kind, its position limit."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from hf_finetune.core.data.download import hub_unreachable, offline_way_out
from hf_finetune.core.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"  # what PEFT's save_pretrained writes beside the adapter weights


def is_hub_name(name: str) -> bool:
    """'name' or 'owner/name' that is no local folder; a leading ./ or / or ~, or more slashes, is a path."""
    return not Path(name).expanduser().exists() and not name.startswith((".", "/", "~")) and name.count("/") <= 1


def from_pretrained(auto_class, name: str, **kwargs):
    """`auto_class.from_pretrained(name)`, from the local cache alone when `name` is a Hub name and
    the Hub cannot be reached (huggingface_hub would retry each uncached file for about 23 s)."""
    if is_hub_name(name) and hub_unreachable():
        kwargs["local_files_only"] = True
        if auto_class is not AutoTokenizer:  # transformers 5 does not pass it on to its adapter_config.json lookup
            kwargs["adapter_kwargs"] = {"local_files_only": True}
    return auto_class.from_pretrained(name, **kwargs)


def load_failure(what: str, name: str, error: Exception, flag: str = "--model_name_or_path") -> UserError:
    folder = Path(name).expanduser()
    local = folder.exists()
    offline = offline_way_out() if flag == "--model_name_or_path" else "without network access, pass a local folder"
    flag = f"{flag}: " if flag else ""  # a tool's run folder is no flag
    if not local and not is_hub_name(name):
        return UserError(f"{flag}could not load the {what} '{name}': there is no such folder; check the path.")
    # transformers says "not found" for a name it could not download: say why, and what to do.
    if isinstance(error, OSError) and is_hub_name(name) and (unreachable := hub_unreachable()):
        return UserError(
            f"{flag}could not load the {what} '{name}': {unreachable} and it is not in the local Hugging Face "
            f"cache; {offline}."
        )
    if local and what == "model":
        if error.__class__.__name__ == "SafetensorError":
            return UserError(
                f"{flag}the weights in {name} cannot be read (SafetensorError: a damaged or cut-short "
                f"model.safetensors); copy the model folder again or train again."
            )
        if (folder / "config.json").is_file() and not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            return UserError(
                f"{flag}{name} has a config.json but no weights (model.safetensors): the model was not saved "
                f"completely; copy the model folder again or train again."
            )
    way_out = (
        f"the folder {name} is not a complete {what} (see `python -m hf_finetune.tiny --help` to write one)"
        if local
        else "check the name, or pass a local folder, e.g. one written by `python -m hf_finetune.tiny`"
    )
    return UserError(f"{flag}could not load the {what} '{name}' ({error.__class__.__name__}); {way_out}.")


def load_tokenizer(
    name: str, trust_remote_code: bool = False, padding_side: str = "right", flag: str = "--model_name_or_path"
):
    """Load a tokenizer and make sure it can pad (GPT-2 and friends have no pad token)."""
    try:
        tokenizer = from_pretrained(AutoTokenizer, name, trust_remote_code=trust_remote_code)
    except Exception as error:  # OSError, HTTP errors, ValueError for unknown classes, ...
        raise load_failure("tokenizer", name, error, flag) from None
    # A model folder without tokenizer files loads an empty tokenizer that turns text into no ids.
    if not tokenizer("a b", add_special_tokens=False)["input_ids"]:
        raise UserError(
            f"{flag}: {name} has no usable tokenizer (its vocabulary is empty: tokenizer files are missing); "
            f"copy the tokenizer files (tokenizer.json, tokenizer_config.json) of its base model into it."
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(
                f"{flag}: the tokenizer of '{name}' has neither a pad nor an end-of-text token, "
                f"so batches cannot be padded; add a pad token to its tokenizer_config.json."
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_classifier(name: str, label_names: list[str], tokenizer, trust_remote_code: bool = False) -> PreTrainedModel:
    """A sequence classifier whose class is read at the last real (non-pad) token."""
    if is_adapter_folder(name):  # transformers would attach the adapter to a randomly initialized head
        raise UserError(
            f"--model_name_or_path: {name} is a LoRA adapter run, which a classifier cannot start from; "
            f"start from its base model '{adapter_base(name)}', or train that run again with --merge_adapters."
        )
    try:
        model = from_pretrained(
            AutoModelForSequenceClassification,
            name,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={label: index for index, label in enumerate(label_names)},
            trust_remote_code=trust_remote_code,
        )
    except Exception as error:
        raise load_failure("model", name, error) from None
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def is_adapter_folder(name: str | Path) -> bool:
    """A local folder holding a causal LM's LoRA adapter only (a LoRA run saved without --merge_adapters)."""
    return (Path(name).expanduser() / ADAPTER_CONFIG).is_file()


def adapter_base(name: str | Path) -> str:
    """The base model an adapter folder was trained on."""
    path = Path(name).expanduser() / ADAPTER_CONFIG
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as error:
        raise UserError(f"{path} is not a readable adapter config ({error.__class__.__name__}); train that run again.") from None
    if not isinstance(base, str) or not base:
        raise UserError(f"{path} names no base model (base_model_name_or_path); train that run again.")
    return base


def load_causal_lm_weights(name: str, trust_remote_code: bool = False, flag: str = "--model_name_or_path") -> PreTrainedModel:
    """The causal LM saved in `name`: a full model, or a LoRA adapter folder, loaded as its base
    model with the adapter merged into the weights (a plain model that any --trainable policy or
    a new LoRA trains further; transformers alone would attach the adapter unmerged, which PEFT
    cannot wrap again)."""
    if not is_adapter_folder(name):
        try:
            return from_pretrained(AutoModelForCausalLM, name, trust_remote_code=trust_remote_code)
        except Exception as error:
            raise load_failure("model", name, error, flag) from None
    from peft import PeftModel

    base = adapter_base(name)
    try:
        model = from_pretrained(AutoModelForCausalLM, base, trust_remote_code=trust_remote_code)
    except Exception as error:
        raise UserError(
            f"{Path(name) / ADAPTER_CONFIG}: cannot load its base model '{base}' ({error.__class__.__name__}); "
            f"make the base model available there, or train that run again with --merge_adapters."
        ) from None
    try:
        return PeftModel.from_pretrained(model, name).merge_and_unload()
    except Exception as error:  # a damaged adapter file, an adapter of another architecture
        raise UserError(
            f"{flag + ': ' if flag else ''}the LoRA adapter in {name} does not load onto its base '{base}' ({error.__class__.__name__}); "
            f"train that run again."
        ) from None


def describe_model_source(name: str) -> str | None:
    """For the plan: where the weights of an adapter folder come from; None for a full model."""
    if not is_adapter_folder(name):
        return None
    return f"LoRA adapter run: base {adapter_base(name)} with the adapter merged in, then trained as flags say"


def load_causal_lm(name: str, tokenizer, trust_remote_code: bool = False) -> PreTrainedModel:
    """A causal LM (keeps its LM head) whose config knows the tokenizer's pad token."""
    model = load_causal_lm_weights(name, trust_remote_code)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise UserError(
            f"--model_name_or_path: the tokenizer of {name} has {len(tokenizer)} tokens but the model embeds only "
            f"{model.get_input_embeddings().num_embeddings}; put the tokenizer of that model beside it."
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def is_sequence_classifier(model: nn.Module) -> bool:
    """A model (or the model inside a PEFT wrapper) with a class head instead of an LM head."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.__class__.__name__.endswith("ForSequenceClassification")


def position_limit(config) -> int | None:
    """The most positions the model has embeddings for; None without a fixed limit (Bloom's ALiBi)."""
    limits = [getattr(config, name, None) for name in ("n_positions", "max_position_embeddings", "seq_length")]
    known = [int(limit) for limit in limits if limit]
    return min(known) if known else None


def fitted_max_length(max_length: int | None, model) -> tuple[int | None, str]:
    """`--max_length` fitted to the model's positions (longer examples cannot run), and a note for
    the plan saying what was chosen; no --max_length means the position limit."""
    limit = position_limit(model.config)
    if limit is None:
        return max_length, ""
    if max_length is None:
        return limit, " (the model's position limit: no --max_length given)"
    if max_length > limit:
        return limit, f" (the model's position limit: --max_length {max_length} is above it)"
    return max_length, ""
