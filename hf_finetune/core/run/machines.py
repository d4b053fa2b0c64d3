"""A launch over several machines (`accelerate launch --num_machines N --machine_rank R`, torchrun
--nnodes): how long a process waits for a machine that stops answering, one sentence when one
does, and a refusal when the machines do not see one shared output folder.

With gloo, a peer whose process is killed is noticed at once (its connection is reset); a machine
that hangs, or whose network goes, answers nothing, and the others wait in their next collective
until the process-group timeout (`--ddp_timeout`, which Trainer sets to 30 minutes). A launch over
several machines gets a shorter default, `MACHINE_TIMEOUT`; the plan states it.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch.distributed as dist
from transformers import TrainingArguments

from hf_finetune.core.errors import UserError
from hf_finetune.core.run.checkpoints import newest_complete_checkpoint
from hf_finetune.core.run.lock import RunLock

# Seconds a process waits in a collective for the other machines, unless --ddp_timeout says otherwise.
# Long enough for the main process to load and tokenize a large dataset, or to write a large
# checkpoint, while the others wait at a barrier; short enough that a dead machine frees the others.
MACHINE_TIMEOUT = 600
EXIT_MACHINE_LOST = 4  # neither bad input (2) nor a non-finite loss (3): start the job again to resume

# What gloo and NCCL say when a peer's process died, its machine hung or the network went.
LOST_PEER_SIGNS = ("connection reset by peer", "connection closed by peer", "timed out waiting", "broken pipe",
                   "connection refused", "socket timeout", "communicator was aborted", "remote process exited",
                   "ncclremoteerror")  # fmt: skip


def machine_count() -> int:
    """How many machines this launch spans (torchrun's environment: all processes / this machine's)."""
    world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    return max(world // local, 1) if local else 1


def machine_defaults() -> dict[str, object]:
    """TrainingArguments defaults for a launch over several machines (the command line and --config win).
    A default given to the parser, not a change in preflight.settle_training_args: building
    TrainingArguments starts the process group, which takes its timeout from that moment."""
    return {"ddp_timeout": MACHINE_TIMEOUT} if machine_count() > 1 else {}


def machines_line(args: TrainingArguments) -> str | None:
    """The plan's "machines" line (None on one machine)."""
    machines = machine_count()
    if machines == 1:
        return None
    per_machine = args.world_size // machines
    return (f"{machines}, {per_machine} process{'es' if per_machine > 1 else ''} each (this is machine "
            f"{os.environ.get('GROUP_RANK', '?')}); a machine that stops answering ends the job after "
            f"{args.ddp_timeout} s (--ddp_timeout), one killed at once")  # fmt: skip


def apply_ddp_timeout(args: TrainingArguments) -> None:
    """Make the launch's process group wait --ddp_timeout on CPU workers too: transformers (5.25) passes
    the timeout to accelerate for accelerator devices only, so CPU processes (gloo) waited 30 minutes
    for a machine that stopped answering, whatever --ddp_timeout said."""
    if dist.is_available() and dist.is_initialized() and hasattr(dist, "set_timeout"):
        dist.set_timeout(timedelta(seconds=args.ddp_timeout))


class MachineLost(UserError):
    """Another process of the job died or stopped answering; this one stopped too."""

    exit_code = EXIT_MACHINE_LOST


def lost_peer(error: BaseException) -> str | None:
    """What the communication backend said, when `error` (or what caused it) is a lost peer."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (RuntimeError, dist.DistError, ConnectionError)):
            message = " ".join(str(error).split())
            if any(sign in message.lower() for sign in LOST_PEER_SIGNS):
                return message.split("] ", 1)[-1].split(". ")[0][:160]  # without gloo's source location
        error = error.__cause__ or error.__context__
    return None


def machine_lost(error: BaseException, args: TrainingArguments) -> MachineLost | None:
    """The sentence for a process whose job lost a peer (None: `error` is something else)."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    said = lost_peer(error)
    if said is None:
        return None
    latest, _ = newest_complete_checkpoint(args.output_dir)
    kept = f"the newest complete checkpoint is {latest}" if latest else "no complete checkpoint was saved yet"
    return MachineLost(f"the run stopped: another process of the job died or stopped answering ({said}), as when "
                       f"a machine is killed, hangs or loses its network; {kept}: start the job again on every "
                       f"machine with --resume_from_checkpoint auto.")  # fmt: skip


def check_shared_output_dir(lock: RunLock, args: TrainingArguments) -> None:
    """Every process of a launch must see one output folder (the checkpoints the main process writes
    are what every machine resumes from): each reads the launch's token from the lock file, and
    all compare, before anything loads. Machines that each see a folder of their own are refused."""
    if args.world_size < 2:
        return
    seen = [None] * args.world_size
    dist.all_gather_object(seen, (lock.token(), socket.gethostname(), os.environ.get("GROUP_RANK", "0")))
    tokens = {token for token, _, _ in seen}
    if len(tokens) == 1 and None not in tokens:
        return
    main_token = seen[0][0]
    apart = sorted({f"machine {rank} ({host})" for token, host, rank in seen if token != main_token})
    raise UserError(f"--output_dir: {args.output_dir} is not one folder that every machine sees: {', '.join(apart)} "
                    f"see{'s' if len(apart) == 1 else ''} another folder than machine 0 ({seen[0][1]}); put it on a "
                    f"file system every machine mounts at the same path, and give it as an absolute path (the "
                    f"main process writes the checkpoints there, and every machine resumes from them).")  # fmt: skip
