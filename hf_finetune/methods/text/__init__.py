"""What the text-generating methods share (instruction and preference tuning): the Alpaca prompt
(prompt.py), batched greedy responses (responses.py), ROUGE-L (rouge.py) and the optional LLM
judge (judge.py). Neither method imports the other."""

# Here, not in responses.py (torch): the methods' argument dataclasses, which --help reads, use it.
DEFAULT_MAX_NEW_TOKENS = 256

# Where `hf-finetune instruction` saves its run: the preference, reward and GRPO recipes start there.
INSTRUCTION_RUN = "outputs/instruction"


def require_instruction_run(start: str, model: str = "causal LM") -> None:
    """A recipe's default start, the instruction run, must have been trained first."""
    from pathlib import Path

    from hf_finetune.core.errors import UserError

    if start == INSTRUCTION_RUN and not Path(start).exists():
        raise UserError(f"--model_name_or_path: {start} does not exist; train the instruction run first (hf-finetune "
                        f"instruction), or start from another {model} with --model_name_or_path.")  # fmt: skip
