"""Token ids of preference pairs, in the form TRL's DPOTrainer trains on: prompt_ids, chosen_ids,
rejected_ids (its collator joins the prompt to each answer and learns the answers only).

The prompt is the instruction method's, id for id (request, then the response header, tokenized
apart, as it trains and generates); each answer ends with end-of-text, as the instruction method's
responses do, so the preferred answer's ending is learned too. Too long a pair loses the end of
its request, never a token of an answer.
"""

from __future__ import annotations

import datasets

from hf_finetune.core.data.tokenize_cache import map_once
from hf_finetune.core.errors import UserError
from hf_finetune.methods.text.prompt import prompt_ids

ENCODED = ("prompt_ids", "chosen_ids", "rejected_ids")


def answer_ids(tokenizer, answer: str) -> list[int]:
    return tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def encode_pair(tokenizer, entry: dict, max_length: int, limit: str) -> tuple[dict[str, list[int]], bool]:
    """The pair's ids, and whether its request was cut to fit `max_length` (`limit` says where that
    length comes from, for the message when even a cut request leaves no room for the answers)."""
    request, header = prompt_ids(tokenizer, entry["instruction"], entry["input"])
    chosen, rejected = answer_ids(tokenizer, entry["chosen"]), answer_ids(tokenizer, entry["rejected"])
    longer = max(len(chosen), len(rejected))
    overflow = len(request) + len(header) + longer - max_length
    if overflow >= len(request):  # not even one token of the request would be left
        flag_set = limit.startswith("--max_length")  # else the model's positions: no larger length exists
        raise UserError(
            f"{'--max_length' if flag_set else '--dataset'}: {entry['place']}: the prompt "
            f"({len(request) + len(header)} tokens) and its longer answer ({longer} tokens) do not fit in {limit}, even with the request cut; "
            + ("raise --max_length, or shorten or leave out that pair." if flag_set else
               "shorten or leave out that pair (the model has no more positions).")  # fmt: skip
        )
    cut = overflow > 0
    if cut:
        request = request[: len(request) - overflow]
    return {"prompt_ids": request + header, "chosen_ids": chosen, "rejected_ids": rejected}, cut


def encode_pairs(
    splits: datasets.DatasetDict, tokenizer, max_length: int, limit: str
) -> tuple[datasets.DatasetDict, dict[str, int]]:
    """Encode every split (map_once: cached, the main process first); returns the encoded splits and,
    per split, how many requests were cut."""
    if tokenizer.eos_token_id is None:
        raise UserError("--model_name_or_path: the tokenizer has no end-of-text token, so answers cannot end.")

    def encode(batch):
        out: dict[str, list] = {name: [] for name in (*ENCODED, "cut")}
        for position in range(len(batch["chosen"])):
            entry = {name: values[position] for name, values in batch.items()}
            encoded, cut = encode_pair(tokenizer, entry, max_length, limit)
            for name in ENCODED:
                out[name].append(encoded[name])
            out["cut"].append(cut)
        return out

    encoded = map_once(splits, encode, batched=True, remove_columns=splits["train"].column_names, desc="tokenizing")
    cut = {name: sum(split["cut"]) for name, split in encoded.items()}
    return encoded.remove_columns("cut"), cut
