"""Test harness: run a recipe whose processes pause at a training step, as a machine that hangs.

With HF_FINETUNE_TEST_PAUSE_STEP=N in its environment, a process prints "PAUSED" once the
checkpoint of step N is saved, and sleeps instead of training on: its peers wait for it in their
next collective, as for a machine that stopped answering, until the test kills it (a dead
machine) or their --ddp_timeout ends them (a hung one).

    accelerate launch ... tests/pause_launch.py RECIPE.py [flags]
"""

from __future__ import annotations

import os
import runpy
import sys
import time

import transformers
from transformers import TrainerCallback


class PauseAtStep(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:  # its checkpoint is written: the main process has saved it
            print("PAUSED", flush=True)
            time.sleep(600)


original_trainer_init = transformers.Trainer.__init__


def trainer_init_pausing(self, *args, **kwargs):
    original_trainer_init(self, *args, **kwargs)
    if "HF_FINETUNE_TEST_PAUSE_STEP" in os.environ:
        self.add_callback(PauseAtStep(int(os.environ["HF_FINETUNE_TEST_PAUSE_STEP"])))


transformers.Trainer.__init__ = trainer_init_pausing

if __name__ == "__main__":
    recipe, *flags = sys.argv[1:]
    sys.argv = [recipe, *flags]
    runpy.run_path(recipe, run_name="__main__")
