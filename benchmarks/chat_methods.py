"""How fast is a training step of each causal LM method? Ratios measured in one run.

    python benchmarks/chat_methods.py --model models/bloom-small [--rounds 20] [--threads 1] [--vocab_size 250880]

Every method trains the same random-init model copy on the recipe's five Spanish pairs (batch 1,
as in the tutorial). The methods take turns, one epoch (five forward+backward passes through
`trainer.training_step`) each per round, in a rotating order, so load from other jobs on the
machine hits them alike; the median epoch time per method is reported, with its ratio to
copy-labels. Methods:
- copy_labels: `Trainer`, labels = input_ids;
- masked (full logits): `Trainer`, human text -100, the model computes logits everywhere;
- masked (target logits): `TargetLossTrainer`, logits only where a label is learned;
- completion_only: TRL `SFTTrainer` with prompt-completion data.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

from hf_finetune.core.model.loading import load_causal_lm, load_tokenizer  # noqa: E402
from hf_finetune.core.model.trainers import TargetLossTrainer  # noqa: E402
from hf_finetune.methods.chat.arguments import sft_config_from  # noqa: E402
from hf_finetune.methods.chat.conversations import ChatForm  # noqa: E402
from hf_finetune.methods.chat.encoding import COPY_LABELS, MASKED, encode_for_trainer, prompt_completion_records  # noqa: E402
from hf_finetune.recipes import spanish_chat  # noqa: E402


def batches(dataset, collator) -> list[dict]:
    return [collator([example]) for example in dataset]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="folder of a causal LM (e.g. from python -m hf_finetune.tiny)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--vocab_size", type=int, help="grow the (random) embeddings and LM head to this size, e.g. 250880 as Bloom's"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from trl import SFTTrainer

    form = ChatForm()
    tokenizer = load_tokenizer(args.model)
    base = load_causal_lm(args.model, tokenizer)
    base.config.use_cache = False
    if args.vocab_size:  # the head's cost, not its words: the tokenizer still only uses its own ids
        base.resize_token_embeddings(args.vocab_size, mean_resizing=False)
    scratch = tempfile.mkdtemp()
    training_args = TrainingArguments(output_dir=scratch, report_to="none", use_cpu=True, per_device_train_batch_size=1)
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)

    steps: dict[str, tuple] = {}
    for name, method, trainer_class in (
        ("copy_labels", COPY_LABELS, Trainer),
        ("masked (full logits)", MASKED, Trainer),
        ("masked (target logits)", MASKED, TargetLossTrainer),
    ):
        data, counts = encode_for_trainer(spanish_chat.DEMO, method, form, tokenizer, None)
        trainer = trainer_class(model=copy.deepcopy(base), args=training_args, train_dataset=data,
                                data_collator=collator, processing_class=tokenizer)
        steps[name] = (trainer, batches(data, collator), counts["loss_tokens"], counts["tokens"])
    sft = SFTTrainer(
        model=copy.deepcopy(base),
        args=sft_config_from(training_args, None, messages=False),
        train_dataset=prompt_completion_records(spanish_chat.DEMO, form, tokenizer),
        processing_class=tokenizer,
    )
    labels = sft.train_dataset["labels"]
    steps["completion_only (TRL)"] = (
        sft,
        batches(sft.train_dataset, sft.data_collator),
        sum(sum(1 for label in row[1:] if label != -100) for row in labels),
        sum(len(row) for row in labels),
    )

    for trainer, *_ in steps.values():
        trainer.create_optimizer_and_scheduler(num_training_steps=1)
        trainer.current_gradient_accumulation_steps = 1  # set by train() otherwise
        trainer.model.train()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for round_index in range(args.rounds + 1):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            trainer, epoch, *_ = steps[name]
            started = time.perf_counter()
            for inputs in epoch:
                trainer.training_step(trainer.model, inputs)
                trainer.model.zero_grad(set_to_none=True)
            if round_index:  # round 0 warms up
                times[name].append(time.perf_counter() - started)

    total = base.num_parameters()
    print(f"model {args.model}: {total:,} parameters, LM head over {base.get_output_embeddings().out_features} "
          f"words, {args.threads} thread(s), "
          f"{args.rounds} rounds of 5 steps (batch 1) per method")
    reference = statistics.median(times["copy_labels"])
    print(f"{'method':<24} {'loss tokens/epoch':>18} {'median epoch (s)':>17} {'vs copy_labels':>15}")
    for name, (_, _, loss_tokens, tokens) in steps.items():
        median = statistics.median(times[name])
        print(f"{name:<24} {f'{loss_tokens} of {tokens}':>18} {median:>17.4f} {reference / median:>14.2f}x")


if __name__ == "__main__":
    main()
