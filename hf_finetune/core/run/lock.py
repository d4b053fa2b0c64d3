"""One run per output folder.

A run holds `_run.lock` in its --output_dir from before anything loads until it ends: a second
run into the folder is refused, naming the holder (pid, host, start time). The file is also
flock()ed while the run lives, so the kernel lets go of it however the process dies; the file a
killed run leaves behind names a dead process on this host, and the next run takes it over,
saying so. The lock is released on errors, Ctrl-C and SIGTERM (turned into one sentence and exit
status 143 while the lock is held, unless something else handles SIGTERM).

Every process of one distributed launch (accelerate launch, torchrun) shares the lock: the main
process takes it first, the other processes, on every machine, find their launch's identity in it
(so the lock is the main process's, which writes the run folder last, whichever machine ends
first). A job that lost a machine removes its launch's lock on the way out, whoever held it.
The name starts with "_" so that Trainer's push to the Hub leaves it out.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainingArguments

from hf_finetune.core.checks import check_writable_folder
from hf_finetune.core.errors import Interrupted, UserError, terminated_before_the_run
from hf_finetune.core.report.console import logger

LOCK_NAME = "_run.lock"
# Filesystems without flock(): the lock file's contents alone decide.
FLOCK_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)
# Seconds to wait for the record of a lock taken a moment ago (by another machine's process of the same
# launch, on a shared folder) before refusing the folder as another run's.
RECORD_WAIT = 5.0


def launch_identity() -> str:
    """What every process of this run shares and no other live run has.

    torchrun (which accelerate launch uses) gives all its processes, on every machine, the same
    rendezvous id and master address and port; the port stays bound while the launch lives."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env or "LOCAL_RANK" in env:
        return f"launch {env.get('TORCHELASTIC_RUN_ID', '')} {env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"
    return f"process {socket.gethostname()} {os.getpid()}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class RunLock:
    """The lock file of one output folder; `acquire()` takes it, joins it, or refuses."""

    def __init__(self, output_dir: str | Path, log: bool = True):
        self.folder = Path(output_dir)
        self.log = log
        self.path = self.folder / LOCK_NAME
        self.file = None  # open while this process owns the lock
        self.record: dict = {}  # the lock file's record, as this process wrote or found it
        self.created_folder = False

    def acquire(self) -> RunLock:
        check_writable_folder(self.folder, "--output_dir")  # a file, or a folder we cannot write in
        try:
            if not self.folder.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                self.created_folder = True
            return self._acquire()
        except OSError as error:
            raise UserError(f"--output_dir: cannot write into {self.folder} ({error.strerror}); choose a folder "
                            f"you can write to.") from None  # fmt: skip

    def _acquire(self) -> RunLock:
        deadline = time.monotonic() + RECORD_WAIT
        while True:
            file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open for the run)
            locked = self._flock(file)
            if locked and not self._still_in_place(file):
                file.close()  # its owner removed the file as we opened it: open the new one
                continue
            holder = self._read(file)
            if locked or holder or time.monotonic() > deadline:
                break
            file.close()  # locked a moment ago (another machine of this launch?), its record not yet written
            time.sleep(0.05)
        if holder.get("identity") == launch_identity():  # another process of this very run took it
            file.close()
            self.record = holder
            return self
        if not locked or (holder and not self._stale(holder)):
            file.close()
            raise self._refusal(holder)
        if holder and self.log:
            logger.info(f"note: {self.path} was left by {describe(holder)}, which is no longer running; taking it over.")
        self._write(file)
        self.file = file
        return self

    def token(self) -> str | None:
        """The launch's token in the lock file, the same for every process that sees this folder."""
        return self.record.get("token")

    def release(self) -> None:
        if self.file is not None:
            try:
                self.path.unlink(missing_ok=True)  # before unlocking: nobody may lock a file about to go
            finally:
                self.file.close()
                self.file = None
        if self.created_folder:
            try:
                self.folder.rmdir()  # only if nothing was written there
            except OSError:
                pass

    def _still_in_place(self, file) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino
        except FileNotFoundError:
            return False

    def _flock(self, file) -> bool:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:
            if error.errno not in FLOCK_UNSUPPORTED:
                raise
        return True

    def _read(self, file) -> dict:
        file.seek(0)
        try:
            holder = json.loads(file.read() or "{}")
        except ValueError:  # cut off while being written: its writer died at once
            return {}
        return holder if isinstance(holder, dict) else {}

    def _write(self, file) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "identity": launch_identity(),
            "token": uuid.uuid4().hex,  # which folder this is: machines that see another have another token
        }
        self.record = record
        file.seek(0)
        file.truncate()
        file.write(json.dumps(record, indent=2) + "\n")
        file.flush()
        os.fsync(file.fileno())  # on a network file system, other machines read it at once

    def _stale(self, holder: dict) -> bool:
        """The holder is gone: its process no longer runs on this host (another host's we cannot check)."""
        pid = holder.get("pid")
        return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not process_alive(pid)

    def _refusal(self, holder: dict) -> UserError:
        if not holder:
            return UserError(f"--output_dir: {self.folder} is in use by another run (it holds {self.path}); wait for "
                             f"that run to end, or choose another folder.")  # fmt: skip
        return UserError(f"--output_dir: {self.folder} is in use by {describe(holder)}; wait for it to end, or choose "
                         f"another folder (if that run is gone, delete {self.path}).")  # fmt: skip


def release_launch_lock(output_dir: str | Path) -> None:
    """Remove the lock of this launch, whichever of its processes held it (it may have died with its
    machine): for the processes of a job that lost a machine, on their way out."""
    path = Path(output_dir) / LOCK_NAME
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(holder, dict) and holder.get("identity") == launch_identity():
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass


def describe(holder: dict) -> str:
    return f"the run of pid {holder.get('pid')} on {holder.get('host')} started {holder.get('started')}"


@contextmanager
def run_lock(args: TrainingArguments):
    """Hold the output folder's lock for a run: every process, the main process first."""
    with args.main_process_first(local=False, desc="locking the output folder"):
        lock = RunLock(args.output_dir, log=args.should_log).acquire()
    try:
        with sigterm_exits():
            yield lock
    finally:
        lock.release()


@contextmanager
def sigterm_exits():
    """SIGTERM ends the process with status 143 and one sentence through the usual unwinding (so
    locks are released), unless a handler other than the default or the command's first one
    (errors.sigterm_says_so) is installed; a handler installed later (preemption, during training)
    takes precedence. The handler before is restored after."""
    try:
        before = signal.getsignal(signal.SIGTERM)
    except ValueError:
        before = None
    if before not in (signal.SIG_DFL, terminated_before_the_run):
        yield
        return
    global _terminated
    try:
        signal.signal(signal.SIGTERM, _exit_143)
    except ValueError:  # not the main thread
        yield
        return
    _terminated = False
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        _terminated = False


class Terminated(Interrupted):
    """SIGTERM outside training (which saves a checkpoint first): one sentence, exit status 143."""

    def __init__(self, stage: str = "before the run finished"):
        super().__init__(f"interrupted by SIGTERM {stage}; the run did not finish: run the command again "
                         f"(--resume_from_checkpoint auto continues from its newest checkpoint, if one was saved).",
                         exit_code=143)  # fmt: skip


_terminated = False  # set by the handler, for raise_if_terminated


def _exit_143(signum, frame):
    global _terminated
    _terminated = True
    raise Terminated()


def raise_if_terminated(stage: str = "before training began") -> None:
    """End the run if a SIGTERM came whose exception a library swallowed on its way (datasets hashes
    a map's function under a bare `except:`, and goes on with a random fingerprint)."""
    if _terminated:
        raise Terminated(stage)
