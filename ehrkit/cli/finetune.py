"""`ehrkit finetune`: a pretrained model plus a new head, trained on labelled records."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional

from ehrkit.cli.options import Device, Inputs, Quiet, Seed, Verbose, inputs, opt, setup
from ehrkit.cli.training import (BatchSize, Clip, Devices, EvalEvery, Epochs, GradAccum, Lr,
                                 MaxMinutes, MaxSteps, Patience, Resume, RunDir, Warmup,
                                 WeightDecay, self_launch, train_config)


class Task(str, Enum):
    auto = "auto"
    binary = "binary"
    multiclass = "multiclass"
    multilabel = "multilabel"
    regression = "regression"
    ner = "ner"


class Scheme(str, Enum):
    bio = "bio"
    bilou = "bilou"


class Source(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"
    conll = "conll"


def finetune(
    paths: Inputs = None,
    init: Annotated[Optional[str], opt("--init", help="The pretrained model directory: BERT "
                                        "(notes, NER), a causal LM (timelines) or an ehrkit GRU "
                                        "(series); from `ehrkit pretrain` or transformers. "
                                        "Without it, series train a new GRU.", metavar="DIR",
                                        show_default=False)] = None,
    run_dir: RunDir = "finetune-run",
    task: Annotated[Task, opt("--task", help="auto: from the label's values (two: binary; "
                               "a list or several fields: multilabel; many numbers: "
                               "regression; else multiclass).")] = Task.auto,
    label_field: Annotated[Optional[List[str]], opt("--label-field", help="The label: a field, "
                                                     "FIELD[i], a list field or several fields "
                                                     "(multilabel).", show_default=False)] = None,
    positive: Annotated[Optional[str], opt("--positive", help="Binary: the positive value "
                                            "(default the larger).", show_default=False)] = None,
    from_: Annotated[Optional[Source], opt("--from", help="Input format (default: from the "
                                            "extension; .conll, .bio, .iob, .tsv are CoNLL).",
                                            show_default=False)] = None,
    text_field: Annotated[str, opt("--text-field", help="Notes: the text field.")] = "text",
    input_field: Annotated[str, opt("--input-field", help="Timelines: the token ids.")] = "input_ids",
    tokens_field: Annotated[str, opt("--tokens-field", help="NER: the words.")] = "tokens",
    tags_field: Annotated[str, opt("--tags-field", help="NER: one tag per word (or give text "
                                    "and 'spans' records).")] = "tags",
    scheme: Annotated[Scheme, opt("--scheme", help="NER tags the model learns.")] = Scheme.bio,
    max_length: Annotated[Optional[int], opt("--max-length", min=8, help="Tokens per input "
                                              "(NER: per window); default min(512, the model's "
                                              "positions).", show_default=False)] = None,
    stride: Annotated[int, opt("--stride", min=0, help="NER: tokens shared by consecutive "
                                "windows of a long document.")] = 32,
    split_field: Annotated[str, opt("--split-field", help="train / tuning / held_out (or "
                                     "val, test).")] = "split",
    group_field: Annotated[Optional[str], opt("--group-field", help="Without a split field: "
                                               "split by this field (e.g. subject_id), so no "
                                               "patient is in two splits.",
                                               show_default=False)] = None,
    val_fraction: Annotated[float, opt("--val-fraction", min=0.0, max=0.9, help="Without "
                                        "tuning rows: this share of train validates.")] = 0.1,
    test_fraction: Annotated[float, opt("--test-fraction", min=0.0, max=0.9, help="Without a "
                                         "split field: this share is held out.")] = 0.1,
    class_weights: Annotated[bool, opt("--class-weights", help="Weight the loss against class "
                                        "imbalance (balanced weights).")] = False,
    urt: Annotated[bool, opt("--urt", help="Timelines: cut each training timeline at a uniform "
                              "random position (FMs-for-EHRs' URT).")] = False,
    freeze_encoder: Annotated[bool, opt("--freeze-encoder", help="Train the head only (a "
                                         "baseline).")] = False,
    select: Annotated[Optional[str], opt("--select", help="The validation metric that keeps "
                                          "the best model (default: auroc, macro_f1, "
                                          "auroc_macro, pearson, entity_f1 by task; or "
                                          "val_loss).", show_default=False)] = None,
    hidden: Annotated[int, opt("--hidden", min=1, help="New GRU: hidden size.")] = 300,
    layers: Annotated[int, opt("--layers", min=1, help="New GRU: layers.")] = 2,
    dropout: Annotated[float, opt("--dropout", min=0.0, max=0.9, help="New GRU: dropout.")] = 0.3,
    seeds: Annotated[Optional[str], opt("--seeds", help="Several runs, e.g. 1,2,3,4,5 "
                                         "(RUN/seed-N), with mean and sd over seeds.",
                                         show_default=False)] = None,
    batch_size: BatchSize = 16,
    grad_accum: GradAccum = 1,
    max_steps: MaxSteps = None,
    epochs: Epochs = 3.0,
    lr: Lr = 5e-5,
    weight_decay: WeightDecay = 0.01,
    warmup: Warmup = 0.1,
    clip: Clip = 1.0,
    eval_every: EvalEvery = 100,
    patience: Patience = None,
    max_minutes: MaxMinutes = None,
    resume: Resume = False,
    device: Annotated[Device, opt("--device", help="auto: CUDA when present.")] = Device.auto,
    devices: Devices = None,
    seed: Seed = 0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Fine-tune a pretrained model on labelled records (classification, regression, NER).

    Notes (BERT sequence classifier; binary is one sigmoid output, as ClinicalBERT), NER
    (BERT token classifier on CoNLL/BIO files, or records with tokens and tags, or text and
    spans: the label on each word's first sub-token, long documents in windows), timelines
    (causal LM classifier, left-padded so the last real token is pooled; --urt) or series
    (ehrkit GRU, or a new one: Gupta et al.'s task-specific RNN). Splits come from the split
    field (or are drawn by --group-field); the best model by a validation metric is kept.

    Writes the run directory (the model, finetune.json with the label map, metrics.jsonl,
    predictions.parquet on the held_out split, ehrkit.json, README.md) and one JSON summary line
    on stdout with validation and test metrics. With --seeds, RUN/seed-N per seed and the mean
    and sd in RUN/seeds.json.

    Examples:

      ehrkit finetune chunks.parquet --init mlm-run --label-field label -o readmit-run

      ehrkit finetune train.tsv devel.tsv test.tsv --task ner --init bert/ -o ner-run

      ehrkit finetune first24h.parquet --init clm-run --label-field same_admission_death --urt

      ehrkit finetune series.parquet --label-field mortality --hidden 64 -o gru-run
    """
    setup(quiet, verbose)
    self_launch(devices)
    from pathlib import Path

    from ehrkit.finetune.run import FinetuneRequest, run_finetune

    config = train_config(batch_size=batch_size, grad_accum=grad_accum, max_steps=max_steps,
                          epochs=epochs, lr=lr, weight_decay=weight_decay, warmup=warmup,
                          clip=clip, eval_every=eval_every, patience=patience,
                          max_minutes=max_minutes, seed=seed)
    run_finetune(FinetuneRequest(
        inputs(paths), Path(run_dir), init, from_.value if from_ else None, task.value,
        list(label_field or []), positive, text_field, input_field, tokens_field, tags_field,
        scheme.value, max_length, stride, split_field, group_field, val_fraction, test_fraction,
        class_weights, urt, freeze_encoder, select,
        {"hidden_size": hidden, "num_layers": layers, "dropout": dropout}, config,
        _seeds(seeds), device.value, resume))


def _seeds(text: Optional[str]) -> list[int]:
    if not text:
        return []
    from ehrkit.errors import UsageError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text}: give integers separated by commas, e.g. 1,2,3") from None
