"""Options of the commands that train (pretrain, finetune), spelled once: the one training
loop takes the same settings whatever the objective."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from ehrkit.cli.options import opt

BatchSize = Annotated[int, opt("--batch-size", min=1, help="Per device and step (before "
                                                           "accumulation).")]
GradAccum = Annotated[int, opt("--grad-accum", min=1, help="Gradient accumulation.")]
MaxSteps = Annotated[Optional[int], opt("--max-steps", min=1, help="Optimizer steps.")]
Epochs = Annotated[Optional[float], opt("--epochs", min=0.0, help="Epochs (when no "
                                                                   "--max-steps; default 1).")]
Lr = Annotated[float, opt("--lr", min=0.0, help="Peak learning rate (AdamW).")]
WeightDecay = Annotated[float, opt("--weight-decay", min=0.0, help="Not applied to biases "
                                                                   "and norms.")]
Warmup = Annotated[float, opt("--warmup", min=0.0, help="Linear warmup: a fraction of the "
                                                        "steps (< 1) or a number of steps.")]
Clip = Annotated[float, opt("--clip", min=0.0, help="Gradient norm clip (0: off).")]
EvalEvery = Annotated[int, opt("--eval-every", min=1, help="Validate every N steps.")]
Patience = Annotated[Optional[int], opt("--patience", min=1, help="Stop after N validations "
                                                                  "without improvement.")]
MaxMinutes = Annotated[Optional[float], opt("--max-minutes", min=0.0, help="Stop (with a "
                                                                           "checkpoint) after this long.")]
Resume = Annotated[bool, opt("--resume", help="Continue the run in --output from its last "
                                              "checkpoint.")]
Devices = Annotated[Optional[str], opt("--devices", help="Launch torchrun with N processes on "
                                                         "this machine (or 'auto': one per GPU).",
                                       metavar="N")]
RunDir = Annotated[str, opt("-o", "--output", help="The run directory: the model, checkpoint/, "
                                                    "metrics.jsonl, ehrkit.json.", metavar="DIR")]


def self_launch(devices: Optional[str]) -> None:
    """With --devices N (and not already under torchrun), rerun this command under torchrun."""
    if devices and "RANK" not in os.environ:
        from ehrkit import runtime

        count = runtime.available_devices() if devices == "auto" else int(devices)
        if count > 1:
            raise typer.Exit(runtime.launch(count))


def train_config(**settings):
    """The loop's TrainConfig from the options above (names as TrainConfig's fields)."""
    from ehrkit.train.loop import TrainConfig

    return TrainConfig(**settings)
