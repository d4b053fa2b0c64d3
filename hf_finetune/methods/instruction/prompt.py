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
