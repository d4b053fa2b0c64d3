"""Bad input to the causal-LM methods and tools, table-driven: data files, flags, model folders
and run folders given to recipes/instruction.py, recipes/spanish_chat.py, the methods' own
`main`, `hf_finetune.generate`, `hf_finetune.chat_answer` and `hf_finetune.predict`.

Each case is met as a user meets it (`run_cli(main, argv)`): exit status 2, one `error:` line
naming the real cause (and the file's line or entry, counted from 1), no traceback, no results
written and the run folder a tool was given left as it was. Every case fails before training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hf_finetune import chat_answer, generate, predict
from hf_finetune.core.errors import run_cli
from hf_finetune.methods.chat import train as chat_train
from hf_finetune.methods.instruction import train as instruction_train
from hf_finetune.recipes import instruction as instruction_recipe
from hf_finetune.recipes import spanish_chat as chat_recipe

GOOD_ENTRY = {"instruction": "Name the capital of France.", "input": "", "output": "Paris."}
GOOD_TURNS = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hola."}]
QUICK = ["--num_train_epochs", "1", "--per_device_train_batch_size", "2", "--eval_strategy", "no",
         "--report_to", "none", "--dataloader_num_workers", "0"]  # fmt: skip


def instruction_recipe_main(argv):
    return instruction_train.main(argv, defaults=instruction_recipe.DEFAULTS)


def chat_recipe_main(argv):
    return chat_train.main(argv, defaults=chat_recipe.DEFAULTS, demo=chat_recipe.DEMO)


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def entries(count: int = 30, **changes) -> list[dict]:
    return [{**GOOD_ENTRY, "instruction": f"Say {index}.", **changes} for index in range(count)]


def chat_rows(bad_row: dict, at: int = 2) -> list[dict]:
    rows = [{"messages": GOOD_TURNS} for _ in range(4)]
    rows.insert(at - 1, bad_row)
    return rows


# --- run folders, built once without training ----------------------------------------------


def _model_copy(tiny: Path, folder: Path, weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, folder / name)
    if weights:
        (folder / "model.safetensors").symlink_to(tiny / "model.safetensors")
    (folder / "config.yaml").write_text("learning_rate: 0.001\n")  # a run's, not only a model's folder
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_gpt2) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    made = {"tiny": tiny_gpt2}
    made["instruction"] = _model_copy(tiny_gpt2, root / "instruction")
    made["chat"] = _model_copy(tiny_gpt2, root / "chat")
    (made["chat"] / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    made["classifier"] = _model_copy(tiny_gpt2, root / "classifier")
    config = json.loads((made["classifier"] / "config.json").read_text())
    write_json(made["classifier"] / "config.json", {**config, "architectures": ["GPT2ForSequenceClassification"]})
    made["label_token"] = _model_copy(tiny_gpt2, root / "label_token")
    write_json(made["label_token"] / "label_token.json", {})
    made["compare"] = root / "compare"
    for method in ("copy_labels", "masked"):
        shutil.copytree(made["chat"], made["compare"] / method, symlinks=True)
    write_json(made["compare"] / "comparison.json", [])
    made["half_saved"] = _model_copy(tiny_gpt2, root / "half_saved")
    (made["half_saved"] / ".final-model.partial").mkdir()
    made["no_weights"] = _model_copy(tiny_gpt2, root / "no_weights", weights=False)
    made["corrupt"] = _model_copy(tiny_gpt2, root / "corrupt", weights=False)
    (made["corrupt"] / "model.safetensors").write_bytes((tiny_gpt2 / "model.safetensors").read_bytes()[:5000])
    made["bad_config"] = _model_copy(tiny_gpt2, root / "bad_config")
    (made["bad_config"] / "config.json").write_text('{"model_type": "gpt2",')
    made["no_tokenizer"] = root / "no_tokenizer"
    made["no_tokenizer"].mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_gpt2 / name, made["no_tokenizer"] / name)
    made["checkpoints_only"] = root / "checkpoints_only"
    (made["checkpoints_only"] / "checkpoint-4").mkdir(parents=True)
    made["empty"] = root / "empty"
    made["empty"].mkdir()
    made["adapter_missing_base"] = root / "adapter_missing_base"
    made["adapter_missing_base"].mkdir()
    write_json(made["adapter_missing_base"] / "adapter_config.json",
               {"task_type": "CAUSAL_LM", "base_model_name_or_path": str(root / "gone"), "peft_type": "LORA"})  # fmt: skip
    shutil.copy(tiny_gpt2 / "tokenizer.json", made["adapter_missing_base"])
    shutil.copy(tiny_gpt2 / "tokenizer_config.json", made["adapter_missing_base"])
    return made


# --- the cases: (entry point, argv, words the error names) -----------------------------------
# Each case gets a fresh folder `d` for its files, the run folders `r`, and `out`, the
# --output_dir a training run would write.


def i_missing_file(d, r):
    return instruction_recipe_main, ["--dataset", str(d / "gone.json")], ["gone.json does not exist"]


def i_empty_file(d, r):
    (d / "empty.json").write_text("")
    return instruction_recipe_main, ["--dataset", str(d / "empty.json")], ["empty.json is empty"]


def i_not_json(d, r):
    (d / "notes.json").write_text("instruction: say hi\noutput: hi\n")
    return instruction_recipe_main, ["--dataset", str(d / "notes.json")], ["notes.json, line 1", "not valid JSON"]


def i_object_instead_of_list(d, r):
    write_json(d / "object.json", {"instruction": "Say hi.", "output": "hi"})
    return instruction_recipe_main, ["--dataset", str(d / "object.json")], ["object.json is one JSON object, not a list of entries"]


def i_list_of_strings(d, r):
    write_json(d / "strings.json", ["Say hi.", "hi"])
    return instruction_recipe_main, ["--dataset", str(d / "strings.json")], ["strings.json, entry 1 is text, not an object with the fields instruction and output"]


def i_null_output(d, r):
    rows = entries()
    rows[2]["output"] = None
    return instruction_recipe_main, ["--dataset", str(write_json(d / "d.json", rows))], [
        "d.json, entry 3: 'output' is missing or null"]


def i_output_is_a_number(d, r):
    rows = entries()
    rows[0]["output"] = 42
    return instruction_recipe_main, ["--dataset", str(write_json(d / "d.json", rows))], [
        "d.json, entry 1: 'output' is a number, not text"]


def i_output_is_a_list_jsonl(d, r):
    rows = entries()
    rows[4]["output"] = ["Paris", "France"]
    return instruction_recipe_main, ["--dataset", str(write_jsonl(d / "d.jsonl", rows))], [
        "d.jsonl, line 5: 'output' is a list, not text"]


def i_null_output_after_blank_lines(d, r):
    rows = entries()
    rows[4]["output"] = None
    lines = [json.dumps(row) for row in rows]
    (d / "d.jsonl").write_text(lines[0] + "\n\n\n" + "\n".join(lines[1:]) + "\n")  # entry 5 is on line 7
    return instruction_recipe_main, ["--dataset", str(d / "d.jsonl")], ["d.jsonl, line 7: 'output' is missing or null"]


def i_empty_instruction(d, r):
    rows = entries()
    rows[1]["instruction"] = "   "
    return instruction_recipe_main, ["--dataset", str(write_jsonl(d / "d.jsonl", rows))], [
        "d.jsonl, line 2: 'instruction' is empty"]


def i_missing_output_key(d, r):
    rows = entries()
    del rows[3]["output"]
    return instruction_recipe_main, ["--dataset", str(write_jsonl(d / "d.jsonl", rows))], [
        "d.jsonl, line 4: 'output' is missing or null"]


def i_other_column_names_without_flags(d, r):
    rows = [{"question": f"Say {n}.", "answer": str(n)} for n in range(30)]
    return instruction_recipe_main, ["--dataset", str(write_json(d / "qa.json", rows))], [
        "--instruction_column: ", "qa.json has no 'instruction' column (it has question, answer)"]


def i_output_column_flag_missing(d, r):
    rows = [{"question": f"Say {n}.", "answer": str(n)} for n in range(30)]
    argv = ["--dataset", str(write_json(d / "qa.json", rows)), "--instruction_column", "question", "--output_column", "reply"]
    return instruction_recipe_main, argv, ["--output_column: ", "no 'reply' column (it has question, answer)"]


def i_input_column_flag_missing(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--input_column", "context"]
    return instruction_recipe_main, argv, ["--input_column: ", "no 'context' column"]


def i_same_instruction_and_output_column(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--instruction_column", "x", "--output_column", "x"]
    return instruction_recipe_main, argv, ["--instruction_column and --output_column both name 'x'"]


def i_duplicated_key(d, r):
    lines = [json.dumps(entry) for entry in entries()]
    lines[1] = '{"instruction": "Say hi.", "output": "hi", "output": null}'
    (d / "dup.jsonl").write_text("\n".join(lines) + "\n")
    return instruction_recipe_main, ["--dataset", str(d / "dup.jsonl")], ["dup.jsonl, line 2: the key 'output' appears twice"]


def i_every_response_too_long(d, r):
    argv = ["--dataset", str(write_json(d / "huge.json", entries(output="word " * 3000))), "--max_length", "64"]
    return instruction_recipe_main, argv, ["--max_length: 64 tokens is too short for every training response"]


def i_too_few_entries_for_the_split(d, r):
    return instruction_recipe_main, ["--dataset", str(write_json(d / "d.json", entries(3)))], [
        "--split: the", "split is empty"]


def i_zero_max_length(d, r):
    return instruction_recipe_main, ["--dataset", str(write_json(d / "d.json", entries())), "--max_length", "0"], [
        "--max_length must be at least 1 (got 0)"]


def i_zero_max_new_tokens(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--max_new_tokens", "0"]
    return instruction_recipe_main, argv, ["--max_new_tokens must be at least 1"]


def i_max_length_not_a_number(d, r):
    return instruction_recipe_main, ["--dataset", str(write_json(d / "d.json", entries())), "--max_length", "long"], [
        "--max_length: invalid int value: 'long'"]


def i_model_without_tokenizer(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--model_name_or_path", str(r["no_tokenizer"])]
    return instruction_recipe_main, argv, ["has no usable tokenizer", "copy the tokenizer files"]


def i_model_with_corrupt_weights(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--model_name_or_path", str(r["corrupt"])]
    return instruction_recipe_main, argv, ["weights in", "cannot be read", "model.safetensors"]


def i_model_folder_without_weights(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--model_name_or_path", str(r["no_weights"])]
    return instruction_train.main, argv, ["has a config.json but no weights (model.safetensors)"]


def i_adapter_with_missing_base(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--model_name_or_path", str(r["adapter_missing_base"])]
    return instruction_train.main, argv, ["adapter_config.json: cannot load its base model", "gone"]


def i_restore_callback_states(d, r):
    argv = ["--dataset", str(write_json(d / "d.json", entries())), "--restore_callback_states_from_checkpoint"]
    return instruction_recipe_main, argv, ["--restore_callback_states_from_checkpoint: the instruction method restores"]


def i_folder_without_train_file(d, r):
    (d / "data").mkdir()
    write_json(d / "data" / "test.json", entries())
    return instruction_train.main, ["--dataset", str(d / "data")], ["has no train file"]


def c_null_completion(d, r):
    rows = [{"prompt": "Hi?", "completion": "Hola."}, {"prompt": "Bye?", "completion": None}]
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "pc.jsonl", rows))], [
        "pc.jsonl, line 2: 'completion' is null"]


def c_null_prompt_json_list(d, r):
    rows = [{"prompt": "Hi?", "completion": "Hola."}, {"prompt": "x", "completion": "y"}, {"prompt": None, "completion": "y"}]
    return chat_recipe_main, ["--dataset", str(write_json(d / "pc.json", rows))], ["pc.json, entry 3: 'prompt' is null"]


def c_null_content(d, r):
    bad = {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]}
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows(bad, at=3)))], [
        "m.jsonl, line 3: the content of turn 1 (user) is null, not text"]


def c_unknown_role(d, r):
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]}
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows(bad)))], [
        "line 2: turn 2 has role 'robot', not one of system, user, assistant"]


def c_empty_conversation(d, r):
    return chat_train.main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows({"messages": []}, at=1)))], [
        "m.jsonl, line 1: 'messages' is an empty conversation"]


def c_no_assistant_turn(d, r):
    bad = {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}]}
    return chat_train.main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows(bad, at=5)))], [
        "m.jsonl, line 5: the conversation has no assistant turn"]


def c_turn_without_content_key(d, r):
    bad = {"messages": [{"role": "user", "text": "hi"}, {"role": "assistant", "content": "x"}]}
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows(bad)))], [
        "line 2: turn 1 has no 'content' key (it has role, text)"]


def c_messages_not_a_list(d, r):
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows({"messages": "hi"})))], [
        "line 2: 'messages' is text, not a list"]


def c_turn_is_a_string(d, r):
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows({"messages": ["hi", "hola"]})))], [
        "line 2: turn 1 is text, not an object with role and content"]


def c_content_is_a_number(d, r):
    bad = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": 4}]}
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows(bad)))], [
        "line 2: the content of turn 2 (assistant) is a number, not text"]


def c_text_without_tags(d, r):
    rows = [{"text": "### Human: hi ### Assistant: hola"}, {"text": "just some words"}]
    return chat_recipe_main, ["--dataset", str(write_jsonl(d / "t.jsonl", rows))], [
        "t.jsonl, line 2: it does not start with a '### Human:'"]


def c_csv_without_the_text_column(d, r):
    (d / "c.csv").write_text("question,answer\nHi?,Hola.\n")
    return chat_recipe_main, ["--dataset", str(d / "c.csv")], [
        "c.csv, line 2: it has none of the columns 'text'", "(it has answer, question)", "--text_column"]


def c_empty_file(d, r):
    (d / "m.jsonl").write_text("")
    return chat_recipe_main, ["--dataset", str(d / "m.jsonl")], ["m.jsonl is empty"]


def c_not_json_line(d, r):
    (d / "m.jsonl").write_text(json.dumps({"messages": GOOD_TURNS}) + "\n{messages: oops}\n")
    return chat_recipe_main, ["--dataset", str(d / "m.jsonl")], ["m.jsonl, line 2", "not valid JSON"]


def c_bom_then_bad_row(d, r):
    rows = [{"messages": GOOD_TURNS}, {"messages": [{"role": "user", "content": "hi"}]}]
    (d / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(row) + "\n" for row in rows).encode())
    return chat_recipe_main, ["--dataset", str(d / "bom.jsonl")], ["bom.jsonl starts with a byte-order mark (BOM)"]


def c_bad_method(d, r):
    return chat_recipe_main, ["--method", "lora_magic"], ["--method: 'lora_magic' is not one of copy_labels, masked"]


def c_bad_completion_format(d, r):
    return chat_recipe_main, ["--completion_format", "chatml"], ["--completion_format: 'chatml' is not one of"]


def c_zero_max_length(d, r):
    return chat_recipe_main, ["--max_length", "0"], ["--max_length must be at least 1 (got 0)"]


def c_same_tags(d, r):
    return chat_recipe_main, ["--human_tag", "###", "--assistant_tag", "###"], ["--human_tag and --assistant_tag are the same"]


def c_heldout_answer_without_question(d, r):
    return chat_train.main, ["--dataset", "x.jsonl", "--heldout_answer", "día"], ["--heldout_answer needs --heldout_question"]


def c_prompt_completion_format_for_multi_turn(d, r):
    rows = [{"messages": GOOD_TURNS + GOOD_TURNS}]
    argv = ["--dataset", str(write_jsonl(d / "m.jsonl", rows)), "--method", "completion_only",
            "--completion_format", "prompt_completion"]  # fmt: skip
    return chat_recipe_main, argv, ["--completion_format prompt_completion: some conversations have several answers"]


def c_compare_and_push(d, r):
    return chat_recipe_main, ["--compare", "--push_to_hub"], ["--push_to_hub publishes one model, and --compare trains three"]


def c_model_without_tokenizer(d, r):
    argv = ["--dataset", str(write_jsonl(d / "m.jsonl", chat_rows({"messages": GOOD_TURNS}))),
            "--model_name_or_path", str(r["no_tokenizer"])]  # fmt: skip
    return chat_recipe_main, argv, ["has no usable tokenizer"]


def c_model_folder_missing(d, r):
    return chat_recipe_main, ["--model_name_or_path", str(d / "no-model")], ["could not load the tokenizer", "no-model"]


def c_model_with_corrupt_weights(d, r):
    return chat_recipe_main, ["--model_name_or_path", str(r["corrupt"])], ["cannot be read"]


def c_no_dataset_no_demo(d, r):
    return chat_train.main, [], ["--dataset: no dataset given"]


def g_classifier_run(d, r):
    return generate.main, [str(r["classifier"]), "--instruction", "Hi."], [
        "holds a classifier (head method), which python -m hf_finetune.generate cannot use; use python -m hf_finetune.predict"]


def g_label_token_run(d, r):
    return generate.main, [str(r["label_token"]), "--instruction", "Hi."], ["label-token classifier", "use python -m hf_finetune.predict"]


def g_chat_run(d, r):
    return generate.main, [str(r["chat"]), "--instruction", "Hi."], ["holds a chat model", "use python -m hf_finetune.chat_answer"]


def g_compare_folder(d, r):
    return generate.main, [str(r["compare"]), "--instruction", "Hi."], [
        "holds one run per method (--compare); pass one of them", "copy_labels", "masked"]


def g_missing_folder(d, r):
    return generate.main, [str(d / "nothing"), "--instruction", "Hi."], ["nothing does not exist"]


def g_not_a_run(d, r):
    return generate.main, [str(r["empty"]), "--instruction", "Hi."], ["is not a saved run"]


def g_a_file(d, r):
    (d / "model.txt").write_text("x")
    return generate.main, [str(d / "model.txt"), "--instruction", "Hi."], ["is a file"]


def g_half_saved(d, r):
    return generate.main, [str(r["half_saved"]), "--instruction", "Hi."], ["did not finish saving its model"]


def g_checkpoints_only(d, r):
    return generate.main, [str(r["checkpoints_only"]), "--instruction", "Hi."], ["holds checkpoints but no final model", "checkpoint-4"]


def g_corrupt_weights(d, r):
    return generate.main, [str(r["corrupt"]), "--instruction", "Hi."], ["error: the weights in", "cannot be read", "model.safetensors"]


def g_no_weights(d, r):
    return generate.main, [str(r["no_weights"]), "--instruction", "Hi."], ["error: ", "has a config.json but no weights (model.safetensors)"]


def g_bad_config(d, r):
    return generate.main, [str(r["bad_config"]), "--instruction", "Hi."], ["config.json is not valid JSON"]


def g_missing_instruction_flag(d, r):
    return generate.main, [str(r["instruction"])], ["the following arguments are required: --instruction"]


def g_max_new_tokens_not_a_number(d, r):
    return generate.main, [str(r["instruction"]), "--instruction", "Hi.", "--max_new_tokens", "many"], [
        "error: --max_new_tokens: invalid int value: 'many'"]


def g_adapter_with_missing_base(d, r):
    return generate.main, [str(r["adapter_missing_base"]), "--instruction", "Hi."], [
        "adapter_config.json: cannot load its base model"]


def a_instruction_run(d, r):
    return chat_answer.main, [str(r["instruction"]), "Hi?"], [
        "holds a text generator (instruction method), which python -m hf_finetune.chat_answer cannot use",
        "use python -m hf_finetune.generate"]


def a_classifier_run(d, r):
    return chat_answer.main, [str(r["classifier"]), "Hi?"], ["use python -m hf_finetune.predict"]


def a_compare_folder(d, r):
    return chat_answer.main, [str(r["compare"]), "Hi?"], ["(--compare); pass one of them", "compare/masked"]


def a_empty_questions_file(d, r):
    (d / "q.txt").write_text("\n  \n")
    return chat_answer.main, [str(r["chat"]), "--file", str(d / "q.txt")], ["there is no non-empty question"]


def a_missing_questions_file(d, r):
    return chat_answer.main, [str(r["chat"]), "--file", str(d / "q.txt")], ["--file: ", "q.txt does not exist"]


def a_zero_max_new_tokens(d, r):
    return chat_answer.main, [str(r["chat"]), "Hi?", "--max_new_tokens", "0"], ["--max_new_tokens must be at least 1"]


def p_chat_run(d, r):
    return predict.main, [str(r["chat"]), "hello"], ["holds a chat model", "use python -m hf_finetune.chat_answer"]


def p_instruction_run(d, r):
    return predict.main, [str(r["instruction"]), "hello"], ["use python -m hf_finetune.generate"]


CASES = [value for name, value in dict(globals()).items() if name[:2] in ("i_", "c_", "g_", "a_", "p_") and callable(value)]


def folder_state(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.lstat().st_size for path in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_bad_input_is_one_sentence_and_writes_nothing(case, runs, tmp_path, capsys):
    files = tmp_path / "files"
    files.mkdir()
    main, argv, words = case(files, runs)
    out = tmp_path / "out"
    if main in (generate.main, chat_answer.main, predict.main):
        given = Path(argv[0])
        before = folder_state(given) if given.is_dir() else None
    else:
        argv = ["--model_name_or_path", str(runs["tiny"]), "--output_dir", str(out), *QUICK, *argv]
    with pytest.raises(SystemExit) as exit:
        run_cli(main, argv)
    stderr = capsys.readouterr().err
    assert exit.value.code == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr
    for word in words:
        assert word in errors[0], f"{word!r} not in {errors[0]!r}"
    if main in (generate.main, chat_answer.main, predict.main):
        if before is not None:
            assert folder_state(given) == before, "a tool changed the run folder it was given"
    else:
        written = sorted(str(path.relative_to(out)) for path in out.rglob("*")) if out.exists() else []
        assert written == [], f"a failed run left {written}"


def test_the_fuzz_covers_at_least_35_cases_beyond_the_named_ones():
    assert len(CASES) >= 35 + 10
