"""--calibrate's refusal: a classifier whose class logits no single linear `score` layer computes
(so no temperature can be folded into the saved model) is refused before training, with one
sentence, and leaves no model behind."""

from __future__ import annotations

import shutil

import pytest
from transformers import BertConfig, BertForSequenceClassification

from hf_finetune.classify import main
from hf_finetune.core.errors import run_cli
from hf_finetune.methods.classify.head.train import HeadMethod


def test_a_head_without_a_linear_score_layer_is_refused_before_training(tmp_path, gpt2_tokenizer_dir, capsys, monkeypatch):
    model_folder = tmp_path / "tiny-bert"  # BERT's head is `classifier`, behind a pooler
    config = BertConfig(vocab_size=50257, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(model_folder)
    for file in gpt2_tokenizer_dir.iterdir():
        shutil.copy(file, model_folder)
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(250)), encoding="utf-8")  # validation: 25
    monkeypatch.setattr(HeadMethod, "split_texts", lambda self: None)  # the leakage check is tested on its own
    monkeypatch.setattr("hf_finetune.core.run.skeleton.train_reliably", lambda *args, **kwargs: pytest.fail("it trained"))
    output = tmp_path / "run"
    argv = ["--model_name_or_path", str(model_folder), "--dataset", str(data), "--method", "head", "--calibrate",
            "--output_dir", str(output)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in error
    error_lines = [line for line in error.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, error[-1500:]
    assert "--calibrate: the class head of" in error_lines[0] and "(BertForSequenceClassification)" in error_lines[0]
    assert error_lines[0].endswith("drop --calibrate."), error_lines[0]
    assert not output.exists() or not any(output.iterdir()), "nothing may be written"
