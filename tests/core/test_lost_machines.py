"""core/run/machines.py without a launch: how many machines the environment says, the default wait
for a machine that stops answering (the command line wins), the plan line, and which errors mean a
lost peer (the end-to-end runs are in tests/e2e/test_machines.py)."""

from __future__ import annotations

import pytest
import torch.distributed as dist
from transformers import TrainingArguments

from hf_finetune.core.errors import run_cli
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.run import machines
from hf_finetune.core.run.machines import MACHINE_TIMEOUT, lost_peer, machine_count, machine_lost

TWO_MACHINES = {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}


@pytest.mark.parametrize("env, count", [({}, 1), ({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}, 1),
                                        ({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"}, 2), (TWO_MACHINES, 2),
                                        ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": ""}, 1)])  # fmt: skip
def test_machine_count_from_the_launchers_environment(monkeypatch, env, count):
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert machine_count() == count


def parsed_timeout(argv: list[str]) -> int:
    [args] = parse_arguments([TrainingArguments], ["--output_dir", "unused", *argv])
    return args.ddp_timeout


def test_several_machines_wait_ten_minutes_for_a_silent_one_unless_told(monkeypatch):
    # The launch's environment is not set: TrainingArguments would start a process group.
    monkeypatch.setattr(machines, "machine_count", lambda: 2)
    assert parsed_timeout([]) == MACHINE_TIMEOUT == 600
    assert parsed_timeout(["--ddp_timeout", "7200"]) == 7200  # the command line wins


def test_one_machine_keeps_trainers_default(monkeypatch):
    monkeypatch.setattr(machines, "machine_count", lambda: 1)
    assert parsed_timeout([]) == TrainingArguments("unused").ddp_timeout == 1800


def test_the_plan_states_the_wait(monkeypatch):
    args = TrainingArguments("unused", ddp_timeout=600)  # before the launch's environment: no process group
    for name, value in TWO_MACHINES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 4))
    assert machines.machines_line(args) == ("2, 2 processes each (this is machine 1); a machine that stops answering "
                                            "ends the job after 600 s (--ddp_timeout), one killed at once")  # fmt: skip
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert machines.machines_line(args) is None


@pytest.mark.parametrize("message", [
    "[../gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:38832: Connection reset by peer. This is typically",
    "[../gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 20000ms for recv operation to complete",
    "[../gloo/transport/tcp/pair.cc:598] Connection closed by peer [10.0.0.2]:29500",
    "NCCL communicator was aborted on rank 3.",
])  # fmt: skip
def test_what_gloo_and_nccl_say_of_a_lost_peer_is_recognised(message, tmp_path, monkeypatch):
    said = lost_peer(RuntimeError(message))
    assert said and "gloo/transport" not in said and "typically" not in said
    args = TrainingArguments(str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")
    error = machine_lost(RuntimeError(message), args)
    assert error is not None and error.exit_code == 4
    assert str(error).endswith("no complete checkpoint was saved yet: start the job again on every machine with "
                               "--resume_from_checkpoint auto.")  # fmt: skip


def test_a_lost_peer_is_found_behind_the_error_it_caused(monkeypatch, tmp_path):
    args = TrainingArguments(str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")
    try:
        try:
            raise dist.DistBackendError("Connection reset by peer")
        except dist.DistBackendError:
            raise ValueError("while gathering predictions")  # noqa: B904 (the context is the point)
    except ValueError as error:
        assert machine_lost(error, args) is not None


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"), ValueError("Connection reset by peer"),
                                   KeyError("Timed out waiting")])  # fmt: skip
def test_other_errors_are_not_a_lost_machine(error, monkeypatch, tmp_path):
    args = TrainingArguments(str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert machine_lost(error, args) is None


def test_one_process_never_reports_a_lost_machine(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert machine_lost(RuntimeError("Connection reset by peer"), TrainingArguments(str(tmp_path))) is None


def test_a_lost_machine_exits_with_status_4_and_one_sentence(monkeypatch, tmp_path, capsys):
    args = TrainingArguments(str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")

    def main(argv):
        raise machine_lost(RuntimeError("Connection reset by peer"), args)

    with pytest.raises(SystemExit) as exit_:
        run_cli(main, [])
    assert exit_.value.code == 4
    assert capsys.readouterr().err.count("\n") == 1
