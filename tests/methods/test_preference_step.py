"""The DPO step: the reference scored once before training by default, and on CPU the LM head at the
answer tokens only, with the outputs and gradients of TRL's own fused head."""

from __future__ import annotations

import copy

import datasets
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments
from trl.trainer.utils import add_fused_lm_head

from hf_finetune.methods.preference.arguments import PreferenceArguments, dpo_config_from
from hf_finetune.methods.preference.trainer import build_preference_trainer, score_answers_only


def tiny_lm() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=60, n_embd=16, n_layer=2, n_head=2, n_positions=32, pad_token_id=0,
                        bos_token_id=1, eos_token_id=1)  # fmt: skip
    return GPT2LMHeadModel(config).eval()  # no dropout: two models give the same numbers


def batch():
    """[chosen, rejected] as TRL's collator builds them: prompt + answer, the answer's tokens labelled."""
    input_ids = torch.tensor([[5, 6, 7, 8, 9, 10], [5, 6, 7, 20, 21, 0], [11, 12, 13, 14, 0, 0], [11, 12, 30, 31, 32, 33]])
    mask = (input_ids != 0).long()
    completion = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]])
    return input_ids, mask, input_ids.masked_fill(completion == 0, -100)


def test_the_answer_only_head_gives_trls_outputs_and_gradients():
    trl_model, ours = tiny_lm(), tiny_lm()
    add_fused_lm_head(trl_model, outputs=("log_probs", "entropy", "mean_logits", "is_top1", "log_sum_sq_probs"))
    add_fused_lm_head(ours, outputs=("log_probs", "entropy", "mean_logits", "is_top1", "log_sum_sq_probs"))
    score_answers_only(ours)
    input_ids, mask, labels = batch()
    expected = trl_model(input_ids=input_ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    got = ours(input_ids=input_ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    for name in ("log_probs", "entropy", "mean_logits", "log_sum_sq_probs", "label_mask"):
        torch.testing.assert_close(getattr(got, name).float(), getattr(expected, name).float(), rtol=1e-5, atol=1e-5,
                                   msg=name)  # fmt: skip
    assert torch.equal(got.is_top1.bool(), expected.is_top1.bool())
    got.log_probs.sum().backward()
    expected.log_probs.sum().backward()
    for (name, parameter), reference in zip(ours.named_parameters(), trl_model.parameters()):
        torch.testing.assert_close(parameter.grad, reference.grad, rtol=1e-4, atol=1e-6, msg=name)
    # every other call is the model's own forward
    plain = ours(input_ids=input_ids, attention_mask=mask).logits
    assert plain.shape == (4, 6, 60)


def pairs() -> datasets.Dataset:
    return datasets.Dataset.from_list([{"prompt_ids": [5, 6, 7], "chosen_ids": [8, 9, 1], "rejected_ids": [20, 1]},
                                       {"prompt_ids": [11, 12], "chosen_ids": [13, 14, 1], "rejected_ids": [30, 31, 1]}])


@pytest.mark.parametrize("precompute", [True, False])
def test_the_reference_is_scored_once_by_default_and_a_frozen_copy_only_when_asked(tmp_path, gpt2_tokenizer_dir,
                                                                                   precompute):
    from hf_finetune.core.model.loading import load_tokenizer

    assert PreferenceArguments().precompute_ref_log_probs is True  # the default
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_train_batch_size=2,
                             disable_tqdm=True)  # fmt: skip
    preference = PreferenceArguments(precompute_ref_log_probs=precompute)
    model = tiny_lm()
    model.resize_token_embeddings(len(tokenizer))
    trainer = build_preference_trainer(copy.deepcopy(model), dpo_config_from(args, preference, 32), pairs(), None,
                                       tokenizer, callbacks=[])  # fmt: skip
    assert (trainer.ref_model is None) == precompute
    batch = next(iter(trainer.get_train_dataloader()))
    assert ("ref_chosen_logps" in batch) == precompute  # scored before training, carried with the batch
