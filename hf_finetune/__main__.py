"""`python -m hf_finetune COMMAND [flags]`, also `accelerate launch -m hf_finetune COMMAND [flags]`."""

from hf_finetune.cli import run_command_line

if __name__ == "__main__":
    run_command_line()
