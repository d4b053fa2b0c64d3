"""Write a random-init GPT-2 or Bloom, with a tokenizer, to a folder every `from_pretrained` loads.

    hf-finetune tiny --tokenizer ../shared/models/gpt2-tokenizer --output models/tiny-gpt2
    hf-finetune tiny --arch gpt2 --shape gpt2 --tokenizer ../shared/models/gpt2-tokenizer --output models/gpt2-random
    hf-finetune tiny --arch bloom --train_tokenizer_on data.txt --vocab_size 2000 --output models/tiny-bloom

Nothing is downloaded: pretrained weights are replaced by random ones, which is what offline
tests, smoke runs and speed benchmarks need.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from hf_finetune.core.checks import check_writable_folder
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.parsing import ToolParser

# torch and transformers are imported where they are used: `tiny --help` needs neither.
if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# (layers, width, heads) of the published checkpoints, and a tiny shape for tests.
SHAPES = {
    "tiny": (2, 128, 2),
    "small": (4, 256, 4),
    "gpt2": (12, 768, 12),
    "gpt2-medium": (24, 1024, 16),
    "bloom-560m": (24, 1024, 16),
}
BLOOM_SPECIALS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
GPT2_SPECIALS = {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}


def train_tokenizer(files: list[str], vocab_size: int, arch: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer learned from the lines of `files`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    specials = BLOOM_SPECIALS if arch == "bloom" else GPT2_SPECIALS
    for file in files:
        if not Path(file).is_file():
            raise UserError(f"--train_tokenizer_on: {file} does not exist.")
        try:
            Path(file).read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise UserError(f"--train_tokenizer_on: {file} is not UTF-8 text (byte {error.start}).") from None
    bpe = ByteLevelBPETokenizer()
    bpe.train(files, vocab_size=vocab_size, min_frequency=2, special_tokens=list(dict.fromkeys(specials.values())))
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, **specials)


def check_shape(layers: int, width: int, heads: int, context: int, vocab_size: int) -> None:
    """Sizes a model can have, and that fit in this machine's free memory."""
    for flag, value in (("--layers", layers), ("--width", width), ("--heads", heads), ("--context", context),
                        ("--vocab_size", vocab_size)):  # fmt: skip
        if value < 1:
            raise UserError(f"{flag}: {value} must be 1 or more.")
    if width % heads:
        raise UserError(f"--width {width} must be a multiple of --heads {heads}.")
    blocks, embeddings = 12 * layers * width * width, (vocab_size + context) * width
    parameters = blocks + embeddings
    try:
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if 4 * parameters > free:
        # Name the flags that make the size: the blocks' shape, or the embeddings' rows (positions, vocabulary).
        rows = "--context" if context >= vocab_size else "--vocab_size"
        flags = f"--layers {layers} --width {width}" if blocks >= embeddings else \
            f"{rows} {context if rows == '--context' else vocab_size} with --width {width}"  # fmt: skip
        raise UserError(f"{flags} make about {parameters:.3g} parameters ({4 * parameters / 2**30:.1f} GiB), more "
                        f"than the {free / 2**30:.1f} GiB of free memory; choose a smaller shape.")  # fmt: skip


def build_model(arch: str, tokenizer, layers: int, width: int, heads: int, context: int):
    from transformers import AutoModelForCausalLM, BloomConfig, GPT2Config

    vocab = len(tokenizer)
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    if arch == "gpt2":
        config = GPT2Config(vocab_size=vocab, n_positions=context, n_embd=width, n_layer=layers, n_head=heads, **special)
    else:
        config = BloomConfig(vocab_size=vocab, hidden_size=width, n_layer=layers, n_head=heads, **special)
    return AutoModelForCausalLM.from_config(config)


def check_output(output: str, overwrite: bool) -> Path:
    """--output: a folder path (not empty, not a file) that is new, empty, or replaced with --overwrite."""
    if not output.strip():
        raise UserError("--output: the value is empty; name the folder to write the model to.")
    folder = Path(output)
    check_writable_folder(folder, "--output")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise UserError(f"--output: {folder} already exists and is not empty; pass --overwrite to replace it.")
    return folder


def write_model(model, tokenizer, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser("python -m hf_finetune.tiny", __doc__)
    parser.add_argument("--arch", choices=("gpt2", "bloom"), default="gpt2", help="the architecture")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="layers/width/heads preset")
    parser.add_argument("--layers", type=int, help="override the preset's number of blocks")
    parser.add_argument("--width", type=int, help="override the preset's hidden size")
    parser.add_argument("--heads", type=int, help="override the preset's attention heads")
    parser.add_argument("--context", type=int, default=1024, help="maximum positions (GPT-2 only; Bloom uses ALiBi)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tokenizer", metavar="PATH", help="folder (or Hub id) of an existing tokenizer")
    source.add_argument("--train_tokenizer_on", nargs="+", metavar="FILE", help="learn a BPE tokenizer from text")
    parser.add_argument("--vocab_size", type=int, default=2000, help="size of the learned tokenizer's vocabulary")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--output", required=True, help="the folder to write (model and tokenizer)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)

    layers, width, heads = (preset if value is None else value
                            for value, preset in zip((args.layers, args.width, args.heads), SHAPES[args.shape]))  # fmt: skip
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed: {args.seed} must be between 0 and 2**32 - 1.")
    check_shape(layers, width, heads, args.context, args.vocab_size)
    output = check_output(args.output, args.overwrite)
    import torch

    from hf_finetune.core.model.loading import load_tokenizer
    from hf_finetune.core.model.trainable import count_parameters

    torch.manual_seed(args.seed)
    if args.tokenizer:
        tokenizer = load_tokenizer(args.tokenizer, flag="--tokenizer")
    else:
        tokenizer = train_tokenizer(args.train_tokenizer_on, args.vocab_size, args.arch)
    model = build_model(args.arch, tokenizer, layers, width, heads, args.context)
    write_model(model, tokenizer, output)
    _, total = count_parameters(model)
    summary = {"arch": args.arch, "layers": model.config.num_hidden_layers, "width": model.config.hidden_size,
               "vocab": len(tokenizer), "parameters": total, "output": str(output)}
    print(json.dumps(summary))


if __name__ == "__main__":
    run_cli(main)
