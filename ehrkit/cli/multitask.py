"""`ehrkit multitask`: one shared encoder, a head per task (MT-Clinical BERT)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional

from ehrkit.cli.options import Device, Quiet, Seed, Verbose, opt, setup
from ehrkit.cli.training import (BatchSize, Clip, Devices, Epochs, GradAccum, Lr, MaxMinutes,
                                 MaxSteps, Patience, Resume, RunDir, Warmup, WeightDecay,
                                 self_launch, train_config)


class Schedule(str, Enum):
    round_robin = "round-robin"
    proportional = "proportional"
    sum = "sum"


def multitask(
    task: Annotated[Optional[List[str]], opt("--task", help="A task: 'NAME=TYPE:PATH[,PATH...] "
                                              "[key=value ...]'; TYPE is ner, classification, "
                                              "regression or multilabel (repeatable).",
                                              metavar="SPEC", show_default=False)] = None,
    tasks_file: Annotated[Optional[str], opt("--tasks-file", help="Tasks from a TOML file "
                                              "([tasks.NAME] tables).", metavar="TOML",
                                              show_default=False)] = None,
    init: Annotated[str, opt("--init", help="The BERT model directory the shared encoder "
                              "starts from (`ehrkit pretrain`, transformers).",
                              metavar="DIR")] = ...,
    run_dir: RunDir = "multitask-run",
    schedule: Annotated[Schedule, opt("--schedule", help="round-robin: a batch of each task in "
                                      "turn, each its own step; proportional: tasks drawn by "
                                      "size; sum: one step on the sum of all task losses.")
                        ] = Schedule.round_robin,
    frozen_heads: Annotated[bool, opt("--frozen-heads", help="Leave the heads at their random "
                                      "start, as the original code did (for replication).")
                            ] = False,
    compare_single: Annotated[bool, opt("--compare-single", help="Also train each task alone "
                                        "with the same budget and print multitask vs "
                                        "single-task per task.")] = False,
    max_length: Annotated[Optional[int], opt("--max-length", min=8, help="Tokens per text "
                                              "(single-text tasks; pairs: 128 unless a task "
                                              "sets max_length).", show_default=False)] = None,
    select: Annotated[Optional[str], opt("--select", help="The validation metric that keeps "
                                          "the best model: tasks_mean (the mean of each task's "
                                          "own metric), NAME.METRIC or val_loss.",
                                          show_default=False)] = None,
    batch_size: BatchSize = 32,
    grad_accum: GradAccum = 1,
    max_steps: MaxSteps = None,
    epochs: Epochs = 3.0,
    lr: Lr = 5e-5,
    weight_decay: WeightDecay = 0.01,
    warmup: Warmup = 0.1,
    clip: Clip = 1.0,
    eval_every: Annotated[Optional[int], opt("--eval-every", min=1, help="Validate every N "
                                              "steps (default: after every epoch).",
                                              show_default=False)] = None,
    patience: Patience = None,
    max_minutes: MaxMinutes = None,
    resume: Resume = False,
    device: Annotated[Device, opt("--device", help="auto: CUDA when present.")] = Device.auto,
    devices: Devices = None,
    seed: Seed = 0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Train one shared BERT encoder with a head per task (MT-Clinical BERT).

    Heads: a token head (ner: CoNLL/BIO files, tokens + tags, or text + spans), a [CLS] head
    for classification (softmax; two classes: one sigmoid), regression (squared error, e.g.
    sentence similarity) or multilabel. A [CLS] task reads one text or a sentence pair
    (sentence_a/sentence_b or sentence1/sentence2 records, or text=A,B), encoded
    [CLS] a [SEP] b [SEP] with segment ids. Each task has its own data, labels, batch size and
    splits (the split field, or drawn), is validated after every epoch, and the best model by
    the mean of the tasks' own metrics is kept; heads are trained with the encoder (the
    original left them random: --frozen-heads).

    Task settings (key=value after the path, or in the TOML file): label, text, tokens, tags,
    scheme, positive, batch_size, max_length, stride, format, split_field, group_field,
    val_fraction, test_fraction, weight (sum schedule). Without label= a task reads 'label',
    else 'similarity'/'score' (regression) or 'entailment'/'gold_label'.

    Writes the run directory (the encoder as a BERT directory, heads.safetensors,
    multitask.json, metrics.jsonl, predictions/NAME.parquet, ehrkit.json, README.md) and one
    JSON summary line; `ehrkit predict -m RUN` applies every head in one encoder pass.

    Examples:

      ehrkit multitask --init mlm --task ncbi=ner:train.tsv,devel.tsv,test.tsv
          --task 'sim=regression:pairs.jsonl label=similarity'
          --task 'nli=classification:pairs.jsonl label=entailment' -o mt-run

      ehrkit multitask --init mlm --tasks-file tasks.toml --schedule sum --compare-single
    """
    setup(quiet, verbose)
    self_launch(devices)
    from pathlib import Path

    from ehrkit.multitask.config import load_toml, parse_task
    from ehrkit.multitask.run import MultitaskRequest, run_multitask

    tasks = (load_toml(tasks_file) if tasks_file else []) + [parse_task(t) for t in task or []]
    config = train_config(batch_size=batch_size, grad_accum=grad_accum, max_steps=max_steps,
                          epochs=epochs, lr=lr, weight_decay=weight_decay, warmup=warmup,
                          clip=clip, eval_every=eval_every or 1, patience=patience,
                          max_minutes=max_minutes, seed=seed)
    run_multitask(MultitaskRequest(tasks, init, Path(run_dir), schedule.value, frozen_heads,
                                   select, max_length, compare_single, eval_every, config,
                                   device.value, resume))
