"""Batched greedy generation with left padding gives each prompt the answer it gets alone."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from hf_finetune.core.generation import greedy_generate
from hf_finetune.core.modeling import load_tokenizer

PROMPTS = ["The capital of France is", "Hi", "A much longer prompt that needs left padding in a batch of short ones"]


def test_batched_answers_equal_one_by_one_answers_in_order(tiny_gpt2):
    tokenizer = load_tokenizer(str(tiny_gpt2))  # right padding, as while training
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).train()
    model.config.use_cache = False
    prompts = [tokenizer(text)["input_ids"] for text in PROMPTS]
    batched = greedy_generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=2)
    alone = [greedy_generate(model, tokenizer, [prompt], max_new_tokens=8)[0] for prompt in prompts]
    assert batched == alone
    assert all(answer for answer in batched)
    assert model.training and model.config.use_cache is False  # left as training had it


def test_answers_stop_at_end_of_text(tiny_gpt2):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    eos = tokenizer.eos_token_id
    with torch.no_grad():  # make end-of-text the only token the model writes
        model.lm_head.weight.zero_()
        model.lm_head.weight[eos] = 1.0
        model.transformer.ln_f.bias.fill_(1.0)
    assert greedy_generate(model, tokenizer, [tokenizer("Hi")["input_ids"]], max_new_tokens=5) == [""]


def test_a_prompt_near_the_context_limit_gets_only_the_tokens_that_fit(tiny_gpt2):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    prompt = tokenizer("word " * 2000)["input_ids"][: model.config.n_positions - 2]
    calls = []
    generate = model.generate
    model.generate = lambda **kwargs: calls.append(kwargs["max_new_tokens"]) or generate(**kwargs)
    greedy_generate(model, tokenizer, [prompt], max_new_tokens=50)  # 50 would run past GPT-2's positions
    assert calls == [2]
