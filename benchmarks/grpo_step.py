"""What does a GRPO step cost against the SFT step of the same prompts, and where does its time go?
Ratios measured in one run.

    python benchmarks/grpo_step.py [--model DIR] [--prompts 4] [--generations 4] [--new_tokens 64]
                                   [--rounds 3] [--threads N]

A causal LM (--model: a folder; default a random-init GPT-2-shaped model written by
`python -m hf_finetune.tiny --shape gpt2`, with the GPT-2 tokenizer from ../shared), every
parameter trainable, AdamW, fp32 on CPU (or the device torch picks). The prompts are the first
--prompts entries of the book's instruction data in the Alpaca format:
- sft: one optimizer step on the --prompts prompts + their reference answers (loss on the answers);
- grpo: one optimizer step of hf-finetune grpo's trainer (TRL's GRPOTrainer, KL weight 0.04):
  --generations sampled answers of at most --new_tokens tokens per prompt, scored by a reward that
  needs no model (length:1-20), the start model's log-probabilities (the KL's reference), then the
  loss's forward and backward; its time split into generation, rewards, the log-probabilities
  computed without gradients (reference and sampling policy) and the rest (loss forward, backward,
  AdamW);
- generation alone: the same batch of prompts x generations answered greedily by model.generate
  with the KV cache (the default) and without it (use_cache=False), tokens per second each.

The settings take turns, one step each per round after a warm-up round; medians of the wall clock.
Other jobs on the machine change the figures: compare ratios from one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
TOKENIZER = SHARED / "models" / "gpt2-tokenizer"
INSTRUCTIONS = SHARED / "data" / "llms_from_scratch_instruction" / "instruction-data.json"
PARTS = ("_generate", "_calculate_rewards", "_get_per_token_logps_and_entropies")


def timed_parts(trainer) -> dict[str, float]:
    """Wrap the trainer's generation, rewards and log-probability passes to add up their seconds
    (log-probabilities only when computed without gradients: the reference's and the sampler's)."""
    import torch

    spent = {name: 0.0 for name in PARTS}
    for name in PARTS:
        original = getattr(trainer, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            started = time.perf_counter()
            result = _original(*args, **kwargs)
            if _name != PARTS[2] or not torch.is_grad_enabled():
                spent[_name] += time.perf_counter() - started
            return result

        setattr(trainer, name, wrapper)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a causal LM folder (default: a random-init GPT-2 shape)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from hf_finetune import tiny
    from hf_finetune.core.model.loading import load_causal_lm, load_tokenizer
    from hf_finetune.methods.grpo.rewards import named_rewards
    from hf_finetune.methods.text.prompt import format_prompt

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = args.model or str(Path(folder) / "gpt2-shape")
        if not args.model:
            tiny.main(["--shape", "gpt2", "--tokenizer", str(TOKENIZER), "--output", model_dir])
        tokenizer = load_tokenizer(model_dir)
        torch.manual_seed(0)
        policy = load_causal_lm(model_dir, tokenizer)
        sft_model = load_causal_lm(model_dir, tokenizer)
        entries = json.loads(INSTRUCTIONS.read_text())[: args.prompts]
        prompts = [format_prompt(entry["instruction"], entry["input"]) for entry in entries]

        # SFT: prompt + answer, the loss on the answer's tokens.
        texts = [prompt + entry["output"] + tokenizer.eos_token for prompt, entry in zip(prompts, entries)]
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        for row, prompt in enumerate(prompts):
            labels[row, : len(tokenizer(prompt)["input_ids"])] = -100
        optimizer = torch.optim.AdamW(sft_model.parameters(), lr=1e-5)

        def sft_step() -> float:
            started = time.perf_counter()
            sft_model(**batch, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - started

        config = GRPOConfig(output_dir=str(Path(folder) / "grpo"), per_device_train_batch_size=args.prompts * args.generations,
                            num_generations=args.generations, max_completion_length=args.new_tokens, beta=0.04,
                            learning_rate=1e-5, bf16=False, gradient_checkpointing=False, report_to="none",
                            use_cpu=not torch.cuda.is_available(), max_steps=1000)  # fmt: skip
        data = Dataset.from_dict({"prompt": prompts * 10, "reference": [entry["output"] for entry in entries] * 10})
        trainer = GRPOTrainer(model=policy, reward_funcs=named_rewards(["length:1-20"], None), args=config,
                              train_dataset=data, processing_class=tokenizer)  # fmt: skip
        trainer.create_optimizer_and_scheduler(num_training_steps=1000)
        trainer.current_gradient_accumulation_steps = 1
        trainer.model.train()
        spent = timed_parts(trainer)
        loader = iter(trainer.get_train_dataloader())

        def grpo_step() -> dict[str, float]:
            before = dict(spent)
            started = time.perf_counter()
            trainer.training_step(trainer.model, next(loader), None)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            total = time.perf_counter() - started
            parts = {name: spent[name] - before[name] for name in PARTS}
            return {"total": total, **parts, "rest": total - sum(parts.values())}

        left = tokenizer.__class__.from_pretrained(model_dir, padding_side="left")
        left.pad_token = left.eos_token
        questions = left(prompts * args.generations, return_tensors="pt", padding=True)

        def generation(use_cache: bool) -> float:
            started = time.perf_counter()
            with torch.no_grad():
                policy.generate(**questions, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                do_sample=False, use_cache=use_cache, pad_token_id=left.pad_token_id)  # fmt: skip
            return time.perf_counter() - started

        measured: dict[str, list] = {"sft": [], "grpo": [], "cache": [], "no cache": []}
        for number in range(args.rounds + 1):
            results = {"sft": sft_step(), "grpo": grpo_step(), "cache": generation(True), "no cache": generation(False)}
            if number:  # round 0 warms up
                for name, value in results.items():
                    measured[name].append(value)

    sft = statistics.median(measured["sft"])
    grpo = {part: statistics.median(step[part] for step in measured["grpo"]) for part in measured["grpo"][0]}
    tokens = args.prompts * args.generations * args.new_tokens
    cache, no_cache = statistics.median(measured["cache"]), statistics.median(measured["no cache"])
    print(f"{args.prompts} prompts, {args.generations} answers each of at most {args.new_tokens} tokens; "
          f"{torch.get_num_threads()} threads; medians of {args.rounds} rounds")  # fmt: skip
    print(f"sft step                {sft:8.3f} s")
    print(f"grpo step               {grpo['total']:8.3f} s   {grpo['total'] / sft:6.1f}x the sft step")
    labels = {"_generate": "generation", "_calculate_rewards": "rewards",
              "_get_per_token_logps_and_entropies": "log-probabilities without gradients", "rest": "loss, backward, AdamW"}
    for part, label in labels.items():
        print(f"  {label:<37} {grpo[part]:8.3f} s   {grpo[part] / grpo['total']:6.1%}")
    print(f"generation, KV cache     {cache:8.3f} s   {tokens / cache:8.1f} tokens/s")
    print(f"generation, no KV cache  {no_cache:8.3f} s   {tokens / no_cache:8.1f} tokens/s   "
          f"(the cache: {no_cache / cache:.1f}x faster)")  # fmt: skip


if __name__ == "__main__":
    main()
