"""Several machines, on one host: two `accelerate launch` commands with the shipped multi_node.yaml,
--machine_rank 0 and 1, meeting at 127.0.0.1 (one CPU process per "machine", gloo), train as one
job; a machine killed or hung mid-training ends the other within a stated time, with one sentence,
and the run resumes to the weights of an uninterrupted one; machines that do not share the output
folder are refused before anything loads."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import PROJECT, run_command, subprocess_env
from safetensors.torch import load_file
from transformers import AutoTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = PROJECT / "accelerate_configs" / "multi_node.yaml"
PAUSE = PROJECT / "tests" / "pause_launch.py"
# The spam run every test here trains (or starts, or resumes): 12 steps, a checkpoint every 4.
SPAM_FLAGS = ["--bf16", "false", "--max_steps", "12", "--max_length", "48", "--eval_steps", "6",
              "--save_strategy", "steps", "--save_steps", "4", "--disable_tqdm", "true"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher(rank: int, port: int, script: Path, *script_args) -> list[str]:
    """The documented multi-machine command for machine `rank` of 2, one CPU process each, fp32
    (multi_node.yaml says bf16, which a CPU without native bf16 refuses)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
            "--machine_rank", str(rank), "--num_machines", "2", "--num_processes", "2",
            "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--mixed_precision", "no",
            "--num_cpu_threads_per_process", "1", str(script), *map(str, script_args)]  # fmt: skip


class Machines:
    """Two launchers started together; each one's output in logs/machine-R.{out,err}."""

    def __init__(self, commands: list[list[str]], cwds: list[Path], logs: Path, env: list[dict] | None = None):
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = logs
        self.processes = []
        for rank, (command, cwd) in enumerate(zip(commands, cwds)):
            extra = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **((env or [{}, {}])[rank])}
            with open(logs / f"machine-{rank}.out", "w") as out, open(logs / f"machine-{rank}.err", "w") as err:
                self.processes.append(subprocess.Popen(command, cwd=cwd, env=subprocess_env(**extra), stdout=out,
                                                       stderr=err, start_new_session=True))  # fmt: skip

    def out(self, rank: int) -> str:
        return (self.logs / f"machine-{rank}.out").read_text()

    def err(self, rank: int) -> str:
        return (self.logs / f"machine-{rank}.err").read_text()

    def wait(self, timeout: float = 300) -> list[int]:
        try:
            return [process.wait(timeout=max(1.0, timeout)) for process in self.processes]
        finally:
            self.kill_all()

    def wait_for(self, rank: int, text: str, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while text not in self.out(rank):
            assert all(process.poll() is None for process in self.processes), self.err(0)[-2000:] + self.err(1)[-2000:]
            assert time.time() < deadline, f"machine {rank} never printed {text!r}"
            time.sleep(0.1)

    def kill(self, rank: int) -> None:
        """The machine dies: its launcher and every process it started, at once (torchrun starts
        the training processes in sessions of their own, so the launcher's group is not enough)."""
        launcher = psutil.Process(self.processes[rank].pid)
        for process in [*launcher.children(recursive=True), launcher]:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass

    def kill_all(self) -> None:
        for rank, process in enumerate(self.processes):
            if process.poll() is None:
                self.kill(rank)
                process.wait()


def spam(output, tiny_gpt2, sms_zip, *flags) -> list:
    return [PROJECT / "recipes" / "spam.py", "--model_name_or_path", tiny_gpt2, "--dataset", sms_zip,
            "--output_dir", output, *SPAM_FLAGS, *flags]  # fmt: skip


@pytest.fixture(scope="module")
def spam_job(tmp_path_factory, tiny_gpt2, sms_zip):
    """The spam recipe trained by two machines, uninterrupted."""
    workdir = tmp_path_factory.mktemp("machines")
    output = workdir / "spam"
    port = free_port()
    machines = Machines([launcher(rank, port, *spam(output, tiny_gpt2, sms_zip)) for rank in (0, 1)],
                        [workdir, workdir], workdir.parent / f"{workdir.name}-logs")  # fmt: skip
    assert machines.wait() == [0, 0], machines.err(0)[-3000:] + machines.err(1)[-3000:]
    return workdir, output, machines


def test_two_machines_train_the_spam_recipe_as_one_job(spam_job):
    workdir, output, machines = spam_job
    for rank in (0, 1):  # each machine's main process prints its plan (Trainer's --log_on_each_node)
        [plan] = machines.out(rank).split("plan:")[1:]
        assert "x2 processes" in plan and f"machines      2, 1 process each (this is machine {rank})" in plan
        assert "ends the job after 600 s (--ddp_timeout)" in plan
    assert "summary:" in machines.out(0) and "summary:" not in machines.out(1)  # the main machine reports
    # One folder, written once: 12 steps of 2 x 8 examples, checkpoints every 4 (the last one kept).
    assert [path.name for path in workdir.iterdir()] == [output.name]
    assert sorted(path.name for path in output.glob("checkpoint-*")) == ["checkpoint-12"]
    assert not list(output.glob(".*.tmp")) and not (output / "_run.lock").exists()
    results = json.loads((output / "all_results.json").read_text())
    for prefix, size in {"train": 1045, "eval": 149, "test": 300}.items():  # every example evaluated once
        assert sum(map(sum, results[f"{prefix}_confusion_matrix"])) == size


def test_the_jobs_model_predicts_as_its_evaluation_did_in_one_process(spam_job):
    _, output, _ = spam_job
    rows = [json.loads(line) for line in (output / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 300 and all("\n" not in row["text"] for row in rows)
    # The texts the run did not truncate (hf_finetune.predict reads a whole text, whatever --max_length trained).
    tokenizer = AutoTokenizer.from_pretrained(output)
    rows = [row for row in rows if len(tokenizer(row["text"])["input_ids"]) <= 48]
    assert len(rows) > 200
    result = subprocess.run([sys.executable, "-m", "hf_finetune.predict", str(output), "--json"], cwd=PROJECT,
                            input="\n".join(row["text"] for row in rows) + "\n", capture_output=True, text=True,
                            env=subprocess_env(OMP_NUM_THREADS="1"), timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    alone = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["label"] for row in alone] == [row["predicted"] for row in rows]
    probabilities = [row["probability"] for row in alone], [row["probability"] for row in rows]
    assert max(abs(a - b) for a, b in zip(*probabilities)) < 1e-4


def test_a_slurm_style_launch_trains_an_instruction_run(tmp_path, tiny_gpt2, instruction_json):
    """The SLURM script of docs/distributed-precision.md, its values from the job's environment (set here
    by hand); the book's first 60 entries: 51 train, 3 validation, 6 test."""
    data = tmp_path / "instruction-data.json"
    data.write_text(json.dumps(json.loads(instruction_json.read_text())[:60]))
    port = free_port()
    command = ("accelerate launch --config_file {config} --num_machines $SLURM_NNODES "
               "--num_processes $((SLURM_NNODES * 1)) --machine_rank $SLURM_NODEID --main_process_ip 127.0.0.1 "
               "--main_process_port {port} --mixed_precision no --num_cpu_threads_per_process 1 {recipe} "
               "--model_name_or_path {model} --dataset {data} --output_dir instruction --bf16 false --max_steps 2 "
               "--max_length 96 --eval_steps 1000 --max_new_tokens 8 --sample_max_new_tokens 4 "
               "--disable_tqdm true").format(config=CONFIG, port=port, recipe=PROJECT / "recipes" / "instruction.py",
                                             model=tiny_gpt2, data=data)  # fmt: skip
    env = [{"SLURM_NNODES": "2", "SLURM_NODEID": str(rank), "PATH": os.path.dirname(sys.executable) + os.pathsep
            + os.environ["PATH"]} for rank in (0, 1)]  # fmt: skip
    machines = Machines([["bash", "-c", command]] * 2, [tmp_path, tmp_path], tmp_path / "logs", env)
    assert machines.wait() == [0, 0], machines.err(0)[-3000:] + machines.err(1)[-3000:]
    assert "this is machine 1" in machines.out(1) and "summary:" in machines.out(0)
    output = tmp_path / "instruction"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["instruction", "instruction-data.json", "logs"]
    responses = json.loads((output / "test_responses.json").read_text())
    assert len(responses) == 6 == json.loads((output / "all_results.json").read_text())["test_examples"]
    asked = [(row["instruction"], row["input"]) for row in responses]  # each test entry answered once
    assert len(set(asked)) == 6 and set(asked) <= {(entry["instruction"], entry["input"])
                                                    for entry in json.loads(data.read_text())}  # fmt: skip
    # The saved model answers in one process as the job's main process did.
    entry = responses[0]
    result = run_command([sys.executable, "-m", "hf_finetune.generate", str(output), "--instruction",
                          entry["instruction"], "--input", entry["input"], "--max_new_tokens", "8"],
                         OMP_NUM_THREADS="1")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == entry["model_response"].strip()


def test_a_killed_machine_ends_the_job_and_the_run_resumes_to_the_same_weights(spam_job, tmp_path, tiny_gpt2,
                                                                               sms_zip):  # fmt: skip
    _, uninterrupted, _ = spam_job
    output = tmp_path / "spam"
    port = free_port()
    pause = [{}, {"HF_FINETUNE_TEST_PAUSE_STEP": "8"}]  # machine 1 stops after the checkpoint of step 8
    machines = Machines([launcher(rank, port, PAUSE, *spam(output, tiny_gpt2, sms_zip)) for rank in (0, 1)],
                        [tmp_path, tmp_path], tmp_path / "logs", pause)  # fmt: skip
    machines.wait_for(1, "PAUSED")
    machines.kill(1)
    killed = time.time()
    assert machines.processes[0].wait(timeout=120) != 0
    ended_after = time.time() - killed
    print(f"machine 0 ended {ended_after:.1f} s after machine 1 was killed")  # for docs/distributed-precision.md
    machines.kill_all()
    error = machines.err(0)
    assert "error: the run stopped: another process of the job died or stopped answering (" in error
    assert f"the newest complete checkpoint is {output / 'checkpoint-8'}" in error
    assert "--resume_from_checkpoint auto" in error and "exitcode  : 4" in error  # the script's own status
    assert ended_after < 60, f"the surviving machine took {ended_after:.0f} s to end"
    assert not (output / "_run.lock").exists()
    # Both machines again, from the newest complete checkpoint: the weights of the uninterrupted job.
    port = free_port()
    resumed = Machines([launcher(rank, port, *spam(output, tiny_gpt2, sms_zip, "--resume_from_checkpoint", "auto"))
                        for rank in (0, 1)], [tmp_path, tmp_path], tmp_path / "resumed")  # fmt: skip
    assert resumed.wait() == [0, 0], resumed.err(0)[-3000:]
    assert f"resume: continuing from {output / 'checkpoint-8'}" in resumed.out(0)
    ours, theirs = load_file(output / "model.safetensors"), load_file(uninterrupted / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_a_hung_machine_ends_the_others_after_the_ddp_timeout(tmp_path, tiny_gpt2, sms_zip):
    output = tmp_path / "spam"
    port = free_port()
    pause = [{}, {"HF_FINETUNE_TEST_PAUSE_STEP": "4"}]
    flags = spam(output, tiny_gpt2, sms_zip, "--ddp_timeout", "20")
    machines = Machines([launcher(rank, port, PAUSE, *flags) for rank in (0, 1)], [tmp_path, tmp_path],
                        tmp_path / "logs", pause)  # fmt: skip
    machines.wait_for(1, "PAUSED")
    paused = time.time()
    try:
        assert machines.processes[0].wait(timeout=120) != 0
        ended_after = time.time() - paused
        print(f"machine 0 ended {ended_after:.1f} s after machine 1 hung (--ddp_timeout 20)")
    finally:
        machines.kill_all()
    assert "after 20 s (--ddp_timeout)" in machines.out(0)
    error = machines.err(0)
    assert "error: the run stopped: another process of the job died or stopped answering (" in error
    assert "Timed out" in error and f"the newest complete checkpoint is {output / 'checkpoint-4'}" in error
    assert 15 < ended_after < 60, f"the surviving machine ended {ended_after:.0f} s after the other hung"
    assert not (output / "_run.lock").exists()


def test_machines_that_see_different_output_folders_are_refused_before_anything_loads(tmp_path, tiny_gpt2, sms_zip):
    """The same relative --output_dir from two working directories: two folders, not one shared."""
    port = free_port()
    cwds = [tmp_path / "machine-0", tmp_path / "machine-1"]
    for cwd in cwds:
        cwd.mkdir()
    machines = Machines([launcher(rank, port, *spam("spam", tiny_gpt2, sms_zip)) for rank in (0, 1)], cwds,
                        tmp_path / "logs")  # fmt: skip
    assert machines.wait() == [1, 1]
    for rank in (0, 1):
        assert "error: --output_dir: spam is not one folder that every machine sees: machine 1" in machines.err(rank)
        assert "exitcode  : 2" in machines.err(rank) and "plan:" not in machines.out(rank)
        assert list(cwds[rank].iterdir()) == []  # the folders the processes made are gone again


def test_when_the_main_machine_dies_the_other_ends_and_removes_the_lock_its_main_process_held(tmp_path, tiny_gpt2,
                                                                                              sms_zip):  # fmt: skip
    """Machine 0 holds the lock and the launch's rendezvous: killed, it can release neither."""
    output = tmp_path / "spam"
    port = free_port()
    pause = [{"HF_FINETUNE_TEST_PAUSE_STEP": "4"}, {}]
    machines = Machines([launcher(rank, port, PAUSE, *spam(output, tiny_gpt2, sms_zip)) for rank in (0, 1)],
                        [tmp_path, tmp_path], tmp_path / "logs", pause)  # fmt: skip
    machines.wait_for(0, "PAUSED")
    assert (output / "_run.lock").exists()
    machines.kill(0)
    killed = time.time()
    try:
        assert machines.processes[1].wait(timeout=120) != 0
        ended_after = time.time() - killed
    finally:
        machines.kill_all()
    error = machines.err(1)
    assert "error: the run stopped: another process of the job died or stopped answering (" in error
    assert f"the newest complete checkpoint is {output / 'checkpoint-4'}" in error and "exitcode  : 4" in error
    assert ended_after < 60, f"the surviving machine took {ended_after:.0f} s to end"
    assert not (output / "_run.lock").exists()
