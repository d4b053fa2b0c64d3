"""One run per output folder: a held lock refuses a second run naming its holder, a dead holder's
lock is taken over, the processes of one launch share it, and it goes on errors and SIGTERM."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from transformers import TrainingArguments

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.report.files import FINISHED_MARKER
from hf_finetune.core.run.lock import LOCK_NAME, RunLock, raise_if_terminated, run_lock
from hf_finetune.methods.classify.head.train import main
from hf_finetune.recipes.spam import DEFAULTS

HOST = socket.gethostname()


@pytest.fixture
def other_process():
    """A live process that is not this one."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_lock(folder, pid: int, host: str = HOST):
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "host": host, "started": "2026-12-01 09:00:00 UTC", "identity": f"process {host} {pid}"}
    path = folder / LOCK_NAME
    path.write_text(json.dumps(record))
    return path


def run_spam(argv, capsys, monkeypatch) -> tuple[int, str, str]:
    def loaded(*args, **kwargs):
        raise AssertionError("the data loaded: the lock was checked too late")

    monkeypatch.setattr("hf_finetune.methods.classify.head.train.load_classification_data", loaded)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda args: main(args, defaults=DEFAULTS), argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_a_run_into_a_locked_folder_is_refused_naming_the_holder(tiny_gpt2, sms_zip, tmp_path, other_process,
                                                                capsys, monkeypatch):  # fmt: skip
    output = tmp_path / "run"
    lock = write_lock(output, other_process.pid)
    before = lock.read_text()
    with open(lock) as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the live run holds it
        argv = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--output_dir", str(output)]
        code, _, error = run_spam(argv, capsys, monkeypatch)
    assert code == 2 and "Traceback" not in error
    assert error.splitlines() == [
        (
            f"error: --output_dir: {output} is in use by the run of pid {other_process.pid} on {HOST} started "
            f"2026-12-01 09:00:00 UTC; wait for it to end, or choose another folder (if that run is gone, delete {lock})."
        )
    ]
    assert lock.read_text() == before and os.listdir(output) == [LOCK_NAME]


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path, capsys):
    pid = dead_pid()
    path = write_lock(tmp_path / "run", pid)
    lock = RunLock(tmp_path / "run").acquire()
    assert capsys.readouterr().out.splitlines() == [
        (
            f"note: {path} was left by the run of pid {pid} on {HOST} started 2026-12-01 09:00:00 UTC, which is no longer "
            f"running; taking it over."
        )
    ]
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not path.exists() and (tmp_path / "run").is_dir()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    path = write_lock(tmp_path / "run", dead_pid(), host="other-machine")
    with pytest.raises(UserError, match=f"in use by the run of pid .* on other-machine .* delete {path}"):
        RunLock(tmp_path / "run").acquire()
    assert json.loads(path.read_text())["host"] == "other-machine"


def test_the_processes_of_one_launch_share_the_lock_and_another_launch_is_refused(tmp_path, monkeypatch):
    launch = {"TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "LOCAL_RANK": "0"}
    for name, value in launch.items():
        monkeypatch.setenv(name, value)
    main_process = RunLock(tmp_path / "run").acquire()
    record = (tmp_path / "run" / LOCK_NAME).read_text()
    monkeypatch.setenv("LOCAL_RANK", "1")
    other_rank = RunLock(tmp_path / "run").acquire()  # its own file handle: the flock is not its
    monkeypatch.setenv("MASTER_PORT", "29501")  # a second launch on this machine
    with pytest.raises(UserError, match="is in use by the run of pid"):
        RunLock(tmp_path / "run").acquire()
    other_rank.release()
    assert (tmp_path / "run" / LOCK_NAME).read_text() == record, "only the owner releases the lock"
    main_process.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_refused_run_leaves_no_lock_and_no_folder_it_created(tiny_gpt2, sms_zip, tmp_path, capsys, monkeypatch):
    output = tmp_path / "new"
    argv = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--output_dir", str(output),
            "--trainable", "nothing_like_this"]  # fmt: skip
    code, _, error = run_spam(argv, capsys, monkeypatch)
    assert code == 2 and error.startswith("error: --trainable") and not output.exists()

    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / FINISHED_MARKER).write_text("{}")
    argv[argv.index(str(output))] = str(tmp_path / "finished")
    code, _, error = run_spam(argv, capsys, monkeypatch)
    assert code == 2 and "holds a finished run" in error
    assert os.listdir(tmp_path / "finished") == [FINISHED_MARKER]


def test_sigterm_while_the_lock_is_held_exits_143_with_one_sentence_and_releases_it(tmp_path, capsys):
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True)
    previous = signal.getsignal(signal.SIGTERM)

    def held(argv):
        with run_lock(args):
            assert (tmp_path / "run" / LOCK_NAME).is_file()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler's exit ends the wait at once

    with pytest.raises(SystemExit) as exit_info:
        run_cli(held, [])
    assert exit_info.value.code == 143
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: interrupted by SIGTERM before the run finished") and "--resume_from_checkpoint auto" in line
    assert not (tmp_path / "run").exists()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_chat_compare_holds_the_lock_of_its_whole_output_folder(tiny_gpt2, tmp_path, other_process, capsys, monkeypatch):
    from hf_finetune.methods.chat import train as chat_train
    from hf_finetune.recipes.spanish_chat import DEFAULTS as CHAT_DEFAULTS
    from hf_finetune.recipes.spanish_chat import DEMO

    def loaded(self):
        raise AssertionError("a method's data loaded: the comparison's folder was not locked")

    monkeypatch.setattr(chat_train.ChatMethod, "load_data", loaded)
    output = tmp_path / "compare"
    lock = write_lock(output, other_process.pid)
    with open(lock) as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        argv = ["--compare", "--model_name_or_path", str(tiny_gpt2), "--output_dir", str(output)]
        with pytest.raises(SystemExit) as exit_info:
            run_cli(lambda args: chat_train.main(args, defaults=CHAT_DEFAULTS, demo=DEMO), argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert error.splitlines()[-1].startswith(f"error: --output_dir: {output} is in use by the run of pid {other_process.pid}")
    assert os.listdir(output) == [LOCK_NAME]


def test_an_output_folder_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=f"--output_dir: {tmp_path / 'file'}, above {tmp_path / 'file' / 'run'}, is a file"):
        RunLock(tmp_path / "file" / "run").acquire()


def test_a_sigterm_a_library_swallows_still_ends_the_run_before_training(tmp_path, capsys):
    """datasets hashes a map's function under a bare `except:`: the handler's exception dies there."""
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True)

    def swallowed(argv):
        with run_lock(args):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)
            except BaseException:  # noqa: BLE001 - what the library does
                pass
            raise_if_terminated()  # train_reliably's first step
            raise AssertionError("the run went on")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(swallowed, [])
    assert exit_info.value.code == 143 and "interrupted by SIGTERM before training began" in capsys.readouterr().err
    raise_if_terminated()  # the next run in this process starts clean
