"""The Alpaca prompt format of instruction tuning, as in Stanford Alpaca and chapter 7 of "Build
a Large Language Model (From Scratch)"; an entry with an empty input has no input section:

    Below is an instruction that describes a task. Write a response that appropriately completes the request.

    ### Instruction:
    {instruction}

    ### Input:
    {input}

    ### Response:
    {output}
"""

from __future__ import annotations

import datasets

PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
INSTRUCTION_HEADER = "### Instruction:"
INPUT_HEADER = "### Input:"
RESPONSE_HEADER = "### Response:"
SECTION_HEADERS = (INSTRUCTION_HEADER, INPUT_HEADER, RESPONSE_HEADER)
FIELDS = ("instruction", "input", "output")


def format_request(instruction: str, input: str = "") -> str:
    """The preamble, the instruction and (only when non-empty) the input section."""
    text = f"{PREAMBLE}\n\n{INSTRUCTION_HEADER}\n{instruction}"
    if input and input.strip():
        text += f"\n\n{INPUT_HEADER}\n{input}"
    return text


def response_header() -> str:
    """What follows the request and precedes the response: the model answers after it."""
    return f"\n\n{RESPONSE_HEADER}\n"


def format_prompt(instruction: str, input: str = "") -> str:
    """Everything the model is given at generation time (it ends with the response header)."""
    return format_request(instruction, input) + response_header()


def format_example(entry: dict) -> str:
    """A whole training text: the prompt followed by the reference output."""
    return format_prompt(entry["instruction"], entry.get("input") or "") + entry["output"]


def extract_response(generated: str) -> str:
    """The response in what the model wrote after the prompt.

    The prompt already ends with the response header, so normally the generation is the
    response itself. Odd generations are cleaned up: a response header the model repeats at
    the start is skipped, and the response ends where the model starts a new section
    (### Instruction:, ### Input: or ### Response:).
    """
    text = generated.strip()
    while text.startswith(RESPONSE_HEADER):
        text = text[len(RESPONSE_HEADER) :].strip()
    cut = min((text.find(header) for header in SECTION_HEADERS if header in text), default=len(text))
    return text[:cut].strip()


def prompt_ids(tokenizer, instruction: str, input: str = "") -> tuple[list[int], list[int]]:
    """(request ids, response-header ids), tokenized apart so training and generation see the
    very same ids before the response."""
    request = tokenizer(format_request(instruction, input), add_special_tokens=True)["input_ids"]
    header = tokenizer(response_header(), add_special_tokens=False)["input_ids"]
    return request, header


def request_texts(split: datasets.Dataset, answer_column: str) -> list[str]:
    """Each row's instruction, input (when there is one) and answer, a line each."""
    return ["\n".join(part for part in parts if part) for parts in zip(split["instruction"], split["input"], split[answer_column])]
