"""`ehrkit pretrain`: masked LM on notes, causal LM on timelines, multi-label GRU on series."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional

from ehrkit.cli.options import Device, FromFormat, Inputs, Quiet, Seed, Verbose, fmt, inputs, opt, setup
from ehrkit.cli.training import (BatchSize, Clip, Devices, EvalEvery, Epochs, GradAccum, Lr,
                                 MaxMinutes, MaxSteps, Patience, Resume, RunDir, Warmup,
                                 WeightDecay, self_launch, train_config)


class Objective(str, Enum):
    mlm = "mlm"
    clm = "clm"
    multilabel = "multilabel"


class Preset(str, Enum):
    tiny = "tiny"
    small = "small"
    base = "base"




def pretrain(
    paths: Inputs = None,
    objective: Annotated[Objective, opt("--objective", help="mlm: notes; clm: timelines from "
                                         "`timeline tokenize`; multilabel: series.")] = Objective.mlm,
    run_dir: RunDir = "run",
    from_: FromFormat = None,
    preset: Annotated[Optional[Preset], opt("--preset", help="Model size (mlm --from-scratch, "
                                             "clm; default tiny).", show_default=False)] = None,
    init: Annotated[Optional[str], opt("--init", help="mlm: continue from a local BERT "
                                        "checkpoint directory, keeping its vocabulary.",
                                        metavar="DIR")] = None,
    from_scratch: Annotated[bool, opt("--from-scratch", help="mlm: train a WordPiece "
                                       "vocabulary on the corpus, then random weights.")] = False,
    vocab_size: Annotated[Optional[int], opt("--vocab-size", min=100, help="mlm --from-scratch: "
                                              "largest WordPiece vocabulary (default 30522).",
                                              show_default=False)] = None,
    exclude_ids: Annotated[Optional[str], opt("--exclude-ids", help="mlm: admissions or "
                                               "patients whose notes must not be seen (held-out "
                                               "test set), one id per line.", metavar="FILE")] = None,
    max_length: Annotated[int, opt("--max-length", min=8, help="mlm: sequence length.")] = 128,
    text_field: Annotated[str, opt("--text-field", help="mlm: the text field.")] = "text",
    vocab: Annotated[Optional[str], opt("--vocab", help="clm: the timeline vocabulary "
                                         "(JSON from timeline tokenize --fit).",
                                         metavar="VOCAB")] = None,
    chunk: Annotated[int, opt("--chunk", min=8, help="clm: packed sequence length.")] = 1024,
    pad_between: Annotated[float, opt("--pad-between", min=0.0, help="clm: mean number "
                                       "(Poisson) of PAD tokens between timelines; 0 packs "
                                       "back to back.")] = 7.0,
    labels: Annotated[Optional[List[str]], opt("--labels", help="multilabel: label fields, "
                                                "e.g. mortality or phenotypes[:20].")] = None,
    hidden: Annotated[int, opt("--hidden", min=1, help="multilabel: GRU hidden size.")] = 300,
    layers: Annotated[int, opt("--layers", min=1, help="multilabel: GRU layers.")] = 2,
    dropout: Annotated[float, opt("--dropout", min=0.0, max=0.9, help="multilabel: dropout.")] = 0.3,
    batch_size: BatchSize = 8,
    grad_accum: GradAccum = 1,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    lr: Lr = 5e-5,
    weight_decay: WeightDecay = 0.01,
    warmup: Warmup = 0.1,
    clip: Clip = 1.0,
    eval_every: EvalEvery = 100,
    patience: Patience = None,
    max_minutes: MaxMinutes = None,
    val_fraction: Annotated[float, opt("--val-fraction", min=0.0, max=0.9, help="Held out "
                                        "for validation when records have no split.")] = 0.05,
    resume: Resume = False,
    device: Annotated[Device, opt("--device", help="auto: CUDA when present.")] = Device.auto,
    devices: Devices = None,
    seed: Seed = 0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Pretrain a model: masked LM on notes, causal LM on timelines, or a multi-label GRU.

    Reads every input record first (note, sequence or series records), then trains with one
    loop: AdamW, linear warmup and decay, gradient accumulation and clipping, validation,
    early stopping, complete checkpoints (--resume continues a killed run). Writes the run
    directory (the best model by validation loss, loadable with transformers where it is a
    transformers architecture; checkpoint/; metrics.jsonl; ehrkit.json; README.md model card)
    and one JSON summary line on stdout. Under torchrun, or with --devices N, it runs
    data-parallel (NCCL on GPUs, gloo on CPUs) and only rank 0 writes.

    Examples:

      ehrkit notes clean notes.jsonl | ehrkit pretrain --from-scratch --vocab-size 8000 -o mlm-run

      ehrkit pretrain timelines.parquet --objective clm --vocab vocab.json --chunk 512 -o clm-run

      ehrkit pretrain series.parquet --objective multilabel --labels 'phenotypes[:20]' -o gru-run

      torchrun --nproc-per-node 2 -m ehrkit pretrain notes.parquet --objective mlm --init bert/ -o run
    """
    setup(quiet, verbose)
    self_launch(devices)
    from pathlib import Path

    from ehrkit.train.pretrain import PretrainRequest, run_pretrain

    options = {
        "mlm": {"preset": preset.value if preset else None, "init": init, "from_scratch": from_scratch,
                "vocab_size": vocab_size, "exclude_ids": exclude_ids, "max_length": max_length,
                "text_field": text_field},
        "clm": {"preset": preset.value if preset else None, "vocab": vocab, "chunk": chunk,
                "pad_between": pad_between},
        "multilabel": {"labels": labels, "hidden_size": hidden, "num_layers": layers,
                       "dropout": dropout},
    }[objective.value] | {"val_fraction": val_fraction}
    config = train_config(batch_size=batch_size, grad_accum=grad_accum, max_steps=max_steps,
                         epochs=epochs, lr=lr, weight_decay=weight_decay, warmup=warmup,
                         clip=clip, eval_every=eval_every, patience=patience,
                         max_minutes=max_minutes, seed=seed)
    run_pretrain(PretrainRequest(inputs(paths), fmt(from_), objective.value, Path(run_dir),
                                 config, options, device.value, resume))
