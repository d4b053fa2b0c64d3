"""--algorithm (dpo, kto, orpo, simpo, cpo): the config each TRL trainer gets, KTO's unpaired examples and
ORPO's / CPO's rows from our encoded pairs, and one sentence (exit 2, before any model loads) for an
unknown algorithm, a flag another algorithm reads, and nonsense values of the algorithms' own flags."""

from __future__ import annotations

import json

import datasets
import pytest
from transformers import TrainingArguments

from hf_finetune.core.errors import run_cli
from hf_finetune.methods.preference.arguments import (
    ALGORITHMS,
    FLAG_ALGORITHMS,
    PreferenceArguments,
    trainer_config_from,
)
from hf_finetune.methods.preference.kto import unpaired
from hf_finetune.methods.preference.reference_free import trl_rows
from hf_finetune.methods.preference.train import main
from hf_finetune.recipes.preference import DEFAULTS

PAIRS = [{"prompt_ids": [5, 6, 7], "chosen_ids": [8, 9, 1], "rejected_ids": [20, 1]},
         {"prompt_ids": [11, 12], "chosen_ids": [13, 1], "rejected_ids": [30, 31, 1]},
         {"prompt_ids": [40], "chosen_ids": [41, 1], "rejected_ids": [42, 1]}]  # fmt: skip


def test_each_algorithm_gets_its_trainers_config_with_the_users_training_arguments(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4, per_device_train_batch_size=4,
                             report_to="none", use_cpu=True)  # fmt: skip
    configs = {name: trainer_config_from(args, PreferenceArguments(algorithm=name, beta=0.2), 64)
               for name in ALGORITHMS}  # fmt: skip
    assert {name: type(config).__name__ for name, config in configs.items()} == {
        "dpo": "DPOConfig", "kto": "KTOConfig", "orpo": "ORPOConfig", "simpo": "CPOConfig", "cpo": "CPOConfig"}
    for config in configs.values():  # the flags' values, not the TRL config's own defaults (lr 1e-6, bf16 ...)
        assert (config.learning_rate, config.per_device_train_batch_size, config.beta, config.max_length) == (
            3e-4, 4, 0.2, 64)
        assert config.gradient_checkpointing is False
    assert configs["simpo"].loss_type == "simpo" and configs["simpo"].cpo_alpha == 0 and configs["simpo"].simpo_gamma == 0.5
    assert configs["cpo"].loss_type == "sigmoid" and configs["cpo"].cpo_alpha == 1
    assert configs["kto"].loss_type == "kto" and configs["kto"].precompute_ref_log_probs is True
    kto = trainer_config_from(args, PreferenceArguments(algorithm="kto", desirable_weight=1.5, undesirable_weight=0.5), 64)
    assert (kto.desirable_weight, kto.undesirable_weight) == (1.5, 0.5)
    cpo = trainer_config_from(args, PreferenceArguments(algorithm="simpo", cpo_alpha=0.3, simpo_gamma=1.0), 64)
    assert (cpo.cpo_alpha, cpo.simpo_gamma) == (0.3, 1.0)


def test_kto_learns_from_each_answer_alone_two_examples_a_pair_shuffled_with_the_seed():
    pairs = datasets.Dataset.from_list(PAIRS)
    examples = unpaired(pairs, seed=3, batch_size=2, kl=True)
    rows = examples.to_list()
    expected = sorted((pair["prompt_ids"], pair[f"{side}_ids"], side == "chosen") for pair in PAIRS
                      for side in ("chosen", "rejected"))  # fmt: skip
    assert sorted((row["prompt_ids"], row["completion_ids"], row["label"]) for row in rows) == expected
    assert rows == unpaired(pairs, seed=3, batch_size=2, kl=True).to_list(), "the same order for the same seed"
    assert [row["completion_ids"] for row in rows] != [completion for _, completion, _ in expected]
    for start in range(0, len(rows), 2):  # each batch: every prompt with the answer of the example before it
        batch = rows[start : start + 2]
        completions = [row["completion_ids"] for row in batch]
        assert [row["KL_completion_ids"] for row in batch] == completions[-1:] + completions[:-1]
    assert "KL_completion_ids" not in unpaired(pairs, seed=3, batch_size=2, kl=False).column_names


def test_orpo_and_cpo_rows_label_the_answers_only():
    rows = trl_rows(datasets.Dataset.from_list(PAIRS)).to_list()
    first = rows[0]
    assert first["prompt_input_ids"] == [5, 6, 7] and first["prompt_attention_mask"] == [1, 1, 1]
    assert first["chosen_input_ids"] == [5, 6, 7, 8, 9, 1] and first["chosen_labels"] == [-100, -100, -100, 8, 9, 1]
    assert first["rejected_input_ids"] == [5, 6, 7, 20, 1] and first["rejected_labels"] == [-100, -100, -100, 20, 1]
    assert first["rejected_attention_mask"] == [1] * 5
    assert set(first) == {f"{part}_{name}" for part in ("chosen", "rejected") for name in
                          ("input_ids", "attention_mask", "labels")} | {"prompt_input_ids", "prompt_attention_mask"}


def test_the_flags_of_one_algorithm_are_listed_for_existing_algorithms():
    assert all(set(algorithms) <= set(ALGORITHMS) for algorithms in FLAG_ALGORITHMS.values())
    assert set(FLAG_ALGORITHMS) <= {name for name in PreferenceArguments.__dataclass_fields__}


def nonsense(flag: str, value: str, rule: str) -> str:
    """The sentence for a nonsense number: the parser's for what is no finite number, else the algorithm's rule."""
    try:
        number = float(value)
    except ValueError:
        return f"--{flag}:"  # argparse: not a number at all
    if number != number or number in (float("inf"), float("-inf")):
        return f"--{flag}: {value} is not a finite number; see --help."
    return f"--{flag} {rule} (got {number})"


# Each case: the flags after --algorithm and the data, and the one sentence expected.
REFUSED = [
    (["--algorithm", "ppo"], "--algorithm: 'ppo' is not one of dpo, kto, orpo, simpo, cpo."),
    (["--algorithm", "DPO"], "--algorithm: 'DPO' is not one of dpo, kto, orpo, simpo, cpo."),
    (["--algorithm", ""], "--algorithm: '' is not one of"),
    (["--algorithm", "orpo", "--loss_type", "ipo"], "--loss_type is a flag of --algorithm dpo; --algorithm orpo does not read it."),
    (["--algorithm", "kto", "--loss_weights", "1"], "--loss_weights is a flag of --algorithm dpo; --algorithm kto"),
    (["--algorithm", "simpo", "--label_smoothing", "0.1"], "--label_smoothing is a flag of --algorithm dpo;"),
    (["--algorithm", "orpo", "--precompute_ref_log_probs", "false"],
     "--precompute_ref_log_probs is a flag of --algorithm dpo or kto; --algorithm orpo does not read it."),
    (["--desirable_weight", "2"], "--desirable_weight is a flag of --algorithm kto; --algorithm dpo does not read it."),
    (["--algorithm", "cpo", "--undesirable_weight", "2"], "--undesirable_weight is a flag of --algorithm kto;"),
    (["--algorithm", "orpo", "--cpo_alpha", "0.5"], "--cpo_alpha is a flag of --algorithm cpo or simpo;"),
    (["--algorithm", "cpo", "--simpo_gamma", "1"], "--simpo_gamma is a flag of --algorithm simpo; --algorithm cpo"),
    (["--algorithm", "kto", "--desirable_weight", "0", "--undesirable_weight", "0"],
     "--desirable_weight and --undesirable_weight are both 0: KTO would learn nothing."),
    (["--algorithm", "kto", "--per_device_train_batch_size", "1"],
     "--per_device_train_batch_size must be at least 2 with --algorithm kto"),
    (["--algorithm", "kto", "--train_sampling_strategy", "random"],
     "--train_sampling_strategy: --algorithm kto trains in one fixed order"),
    *[(["--algorithm", algorithm, f"--{flag}={value}"], nonsense(flag, value, "must be a finite number of at least 0"))
      for algorithm, flag in (("kto", "desirable_weight"), ("kto", "undesirable_weight"), ("cpo", "cpo_alpha"),
                              ("simpo", "cpo_alpha"), ("simpo", "simpo_gamma"))
      for value in ("-1", "-1e-9", "inf", "-inf", "nan", "²", "many")],  # fmt: skip
    *[(["--algorithm", algorithm, f"--beta={value}"], nonsense("beta", value, "must be above 0"))
      for algorithm in ("kto", "orpo", "simpo", "cpo") for value in ("0", "-0.1", "inf", "nan")],  # fmt: skip
]


@pytest.mark.parametrize("flags,message", REFUSED, ids=[" ".join(flags) for flags, _ in REFUSED])
def test_a_wrong_algorithm_or_flag_gives_one_sentence_before_the_model_loads(flags, message, tmp_path, preference_json,
                                                                             gpt2_tokenizer_dir, capsys, monkeypatch):  # fmt: skip
    def model_loaded(*args, **kwargs):
        raise AssertionError("the model loaded: the mistake was found too late")

    monkeypatch.setattr("hf_finetune.core.run.method.load_causal_lm", model_loaded)
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps(json.loads(preference_json.read_text())[:20]))
    output = tmp_path / "run"
    argv = ["--model_name_or_path", str(gpt2_tokenizer_dir), "--output_dir", str(output), "--dataset", str(pairs), *flags]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda args: main(args, defaults=DEFAULTS), argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    error_lines = [line for line in error.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], error[-1500:]
    assert not output.exists() or not any(output.iterdir()), "nothing may be written for bad flags"


def test_the_recipes_own_loss_type_is_no_flag_the_user_gave(tmp_path):
    """The recipe's --loss_type sigmoid_norm default is DPO's: --algorithm orpo alone is not refused for it."""
    PreferenceArguments(algorithm="orpo", loss_type=DEFAULTS["loss_type"]).check(frozenset({"algorithm"}))


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_the_report_tables_and_the_model_card_say_which_algorithm_and_show_what_it_logs(algorithm, tmp_path):
    from hf_finetune.methods.preference.card import preference_card
    from hf_finetune.methods.preference.report import figures_of, figures_table, trained_how, validation_figures
    from hf_finetune.methods.text.pairs import PreferenceData

    name = ALGORITHMS[algorithm][0]
    logged = {f"eval_{figure}": 0.25 for figure in figures_of(algorithm)}
    settings = {"dpo": {"loss_type": ["sigmoid"]}, "kto": {"desirable_weight": 1.0, "undesirable_weight": 1.0},
                "orpo": {}, "simpo": {"cpo_alpha": 0.0, "simpo_gamma": 0.5}, "cpo": {"cpo_alpha": 1.0}}[algorithm]  # fmt: skip
    results = {"algorithm": algorithm, "beta": 0.1, "reference": "none", **settings, "train_runtime_seconds": 1.0,
               **validation_figures({}, "before", algorithm), **validation_figures(logged, "after", algorithm),
               "test_examples": 2, **{f"test_{key}_{stage}": 0.5 for key in ("rougeL_chosen", "rougeL_rejected",
                                      "closer_to_chosen") for stage in ("before", "after")}}  # fmt: skip
    table = figures_table(results)
    assert f"| validation | before {name} | after {name} |" in table
    assert ("| reward accuracy | - | 0.2500 |" in table) == (algorithm != "kto")  # KTO scores answers alone
    assert ("KL estimate" in table) == (algorithm == "kto") and ("NLL" in table) == (algorithm not in ("dpo", "kto"))
    assert trained_how(results, 10).startswith(name)
    splits = datasets.DatasetDict({split: datasets.Dataset.from_list([{"instruction": "a"}]) for split in
                                   ("train", "validation", "test")})  # fmt: skip
    args = TrainingArguments(output_dir=str(tmp_path), hub_model_id="me/tuned", report_to="none", use_cpu=True)
    card = preference_card("start", PreferenceData(splits, ["notes"]), results, "all parameters", args)
    assert f"preference-tuned with {name}" in card and f"- {algorithm}\n" in card


def test_config_yaml_leaves_out_the_flags_the_algorithm_does_not_read(tmp_path):
    """The recipe's --loss_type sigmoid_norm did nothing in an ORPO run; recorded, --config would give it again
    and be refused."""
    from hf_finetune.core.parsing import parse_arguments
    from hf_finetune.methods.preference.arguments import ARGUMENTS
    from hf_finetune.methods.preference.train import PreferenceMethod

    configs = {}
    for algorithm in ("dpo", "orpo", "kto"):
        parsed = parse_arguments(ARGUMENTS, ["--algorithm", algorithm, "--output_dir", str(tmp_path / algorithm)],
                                 DEFAULTS)  # fmt: skip
        configs[algorithm] = PreferenceMethod(*parsed).config()
    assert configs["dpo"]["loss_type"] == "sigmoid_norm" and "desirable_weight" not in configs["dpo"]
    assert configs["orpo"]["algorithm"] == "orpo" and not {"loss_type", "precompute_ref_log_probs", "cpo_alpha",
                                                           "desirable_weight"} & set(configs["orpo"])  # fmt: skip
    assert configs["kto"]["desirable_weight"] == 1.0 and configs["kto"]["precompute_ref_log_probs"] is True
    assert "loss_type" not in configs["kto"]
