"""Batched greedy generation with left padding gives each prompt the answer it gets alone."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from hf_finetune.core.model.generation import greedy_generate, prompt_room
from hf_finetune.core.model.loading import load_tokenizer

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


def test_a_prompt_too_long_for_the_answer_loses_its_start_and_the_answer_keeps_its_room(tiny_gpt2, capsys):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    limit = model.config.n_positions
    prompt = tokenizer("word " * 2000)["input_ids"][: limit + 300]  # longer than the whole context
    calls = []
    generate = model.generate
    model.generate = lambda **kwargs: calls.append((kwargs["input_ids"][0].tolist(), kwargs["max_new_tokens"])) or generate(**kwargs)
    greedy_generate(model, tokenizer, [prompt, prompt[:10]], max_new_tokens=50, batch_size=1)
    (kept, new_tokens) = calls[1]  # shortest first
    assert new_tokens == 50 and len(kept) == limit - 50
    assert kept == prompt[-(limit - 50):], "the end of the prompt, where the answer starts, is kept"
    assert "1 prompt(s) longer than 974 tokens lost their first tokens" in capsys.readouterr().err
    assert prompt_room(limit, max_new_tokens=5000) == limit // 2  # a question is always left
    assert prompt_room(None, 50) is None
