"""Test harness: run a recipe with accelerate's FSDP plugin honoured on CPU.

accelerate 1.15 switches FSDP on for accelerator devices only; on a CPU-only machine it keeps
the plugin unused and trains as DDP (hf_finetune refuses that, see core/preflight.check_fsdp_device).
This wrapper makes AcceleratorState take the plugin on CPU too, so CI exercises real FSDP2
(parameters sharded as DTensors, the full state dict gathered on save) over gloo, and prints
how the model was wrapped at the first step.

    accelerate launch --config_file FSDP_CPU.yaml tests/fsdp_cpu_launch.py RECIPE.py [flags]
"""

from __future__ import annotations

import runpy
import sys

import accelerate.state
import transformers
from accelerate.utils import DistributedType
from transformers import TrainerCallback

from hf_finetune.core.run import preflight

original_state_init = accelerate.state.AcceleratorState.__init__


def state_init_honouring_fsdp(self, *args, fsdp_plugin=None, **kwargs):
    original_state_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


class ReportSharding(TrainerCallback):
    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step != 1:
            return
        from torch.distributed.tensor import DTensor

        parameters = list(model.parameters())
        shards = sum(isinstance(parameter, DTensor) for parameter in parameters)
        # One write, the newline included: two ranks' print()s (text, then newline) could interleave.
        sys.stdout.write(f"fsdp check: rank {args.process_index}: {type(model).__name__}, {shards} of "
                         f"{len(parameters)} parameters sharded\n")  # fmt: skip
        sys.stdout.flush()


original_trainer_init = transformers.Trainer.__init__


def trainer_init_reporting(self, *args, **kwargs):
    original_trainer_init(self, *args, **kwargs)
    self.add_callback(ReportSharding())


accelerate.state.AcceleratorState.__init__ = state_init_honouring_fsdp
transformers.Trainer.__init__ = trainer_init_reporting
preflight.FSDP_NEEDS_ACCELERATOR = False

if __name__ == "__main__":
    recipe, *flags = sys.argv[1:]
    sys.argv = [recipe, *flags]
    runpy.run_path(recipe, run_name="__main__")
