"""What a finished run prints last: its headline figures, training time, report and model folder;
report files readable like the model files; chat --compare's table printed, each run labelled."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import PROJECT
from test_run import CopyTextMethod, method_for

from hf_finetune.core.report import files as reports
from hf_finetune.core.report.curves import plot_curves
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_text
from hf_finetune.core.run.skeleton import run

pytestmark = pytest.mark.usefixtures("one_thread")


class ReportingCopyTextMethod(CopyTextMethod):
    """CopyTextMethod with a headline and a report.md, as the real methods have."""

    def write_results(self, trainer, results: dict, config: dict) -> None:
        folder = self.training_args.output_dir
        atomic_write_text(f"{folder}/report.md", "# copied\n")
        plot_curves([{"epoch": 1.0, "train_loss": results["train_loss"]}], {"train_loss": "loss"}, "Loss",
                    Path(folder) / "loss", len(self.texts))  # fmt: skip
        super().write_results(trainer, results, config)

    def headline(self, results: dict) -> dict[str, str]:
        return {"texts copied": f"{len(self.texts)} texts in {results['steps']} steps"}


def summary_block(out: str) -> list[str]:
    block = out.split("summary:\n")[-1].split("\n\n")[0]
    return block.splitlines()


def test_a_run_ends_with_its_headline_training_time_report_and_model(tiny_gpt2, tmp_path, capsys):
    output = tmp_path / "run"
    results = run(method_for(tiny_gpt2, output, method_class=ReportingCopyTextMethod))
    out = capsys.readouterr().out
    assert out.count("summary:") == 1 and out.rstrip().endswith(str(output)), out[-800:]
    lines = summary_block(out)
    assert lines[0].split() == ["texts", "copied", "4", "texts", "in", "2", "steps"]
    assert lines[1].split()[:3] == ["training", "time", f"{results['train_runtime_seconds']:.1f}"]
    assert f"mean training loss {results['train_loss']:.4f}" in lines[1]
    assert lines[2].split()[:3] == ["hardware", "use", f"{results['model_flops_utilization']:.1%}"]
    assert lines[3].split() == ["report", str(output / "report.md")]
    assert lines[4].split() == ["model", str(output)]


def test_report_and_weight_files_get_the_permissions_of_the_config_files(tiny_gpt2, tmp_path, monkeypatch):
    """tempfile.mkstemp makes 0600 files; the model folder's files written with open() (config.json,
    tokenizer.json) follow the umask: 0644 under 022."""
    previous = os.umask(0o022)
    try:
        monkeypatch.setattr(reports, "NEW_FILE_MODE", reports._new_file_mode())
        run(method_for(tiny_gpt2, tmp_path / "run", method_class=ReportingCopyTextMethod))
    finally:
        os.umask(previous)
    folder = tmp_path / "run"
    model_mode = stat.S_IMODE((folder / "config.json").stat().st_mode)
    assert model_mode == stat.S_IMODE((folder / "tokenizer.json").stat().st_mode) == 0o644
    for name in ("model.safetensors", "report.md", FINISHED_MARKER, "loss.png", "loss.pdf"):
        assert oct(stat.S_IMODE((folder / name).stat().st_mode)) == oct(model_mode), name


def test_report_file_mode_follows_the_umask(tmp_path, monkeypatch):
    previous = os.umask(0o027)
    try:
        monkeypatch.setattr(reports, "NEW_FILE_MODE", reports._new_file_mode())
    finally:
        os.umask(previous)
    atomic_write_text(tmp_path / "a.md", "text")
    assert oct(stat.S_IMODE((tmp_path / "a.md").stat().st_mode)) == oct(0o640)


def test_chat_compare_labels_each_run_and_prints_the_comparison_table(tiny_gpt2, tmp_path, capsys):
    sys.path.insert(0, str(PROJECT / "recipes"))
    import spanish_chat

    from hf_finetune.methods.chat.train import main

    output = tmp_path / "compare"
    argv = ["--compare", "--model_name_or_path", str(tiny_gpt2), "--output_dir", str(output), "--num_train_epochs",
            "1", "--per_device_train_batch_size", "5", "--max_new_tokens", "2", "--answers_every_epoch", "false",
            "--report_examples", "2", "--disable_tqdm", "true", "--use_cpu", "true"]  # fmt: skip
    rows = main(argv, defaults=spanish_chat.DEFAULTS, demo=spanish_chat.DEMO)
    out = capsys.readouterr().out
    names = [row["method"] for row in rows]
    labels = [line for line in out.splitlines() if line.startswith("=== method ")]
    assert labels == [f"=== method {number} of 3: {name}, into {output / name} ===" for number, name in
                      enumerate(names, 1)]  # fmt: skip
    summaries = [block.split("\n\n")[0].splitlines() for block in out.split("summary:\n")[1:]]
    assert len(summaries) == 3
    for name, lines in zip(names, summaries):  # the subfolders hold no report: the comparison is the report
        assert [line.split()[0] for line in lines] == ["training", "held-out", "training", "hardware", "model"]
        assert lines[-1].split() == ["model", str(output / name)]
    printed = out.split(f"=== comparison of the 3 methods (report: {output / 'comparison.md'}) ===")[1]
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert table == [line for line in (output / "comparison.md").read_text().splitlines() if line.startswith("|")][
        : len(table)]  # fmt: skip
    assert [line.split("|")[1].strip() for line in table[2:]] == names
    saved = json.loads((output / "comparison.json").read_text())
    for row in saved:  # the skeleton's training time and loss, the same keys as every method's
        assert row["train_runtime_seconds"] > 0 and row["train_loss"] > 0 and "mean_train_loss" not in row
        assert f"| {row['method']} | {row['train_runtime_seconds']:.4f} |" in printed
