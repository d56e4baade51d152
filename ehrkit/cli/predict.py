"""`ehrkit predict`: a fine-tuned model applied to new records."""

from __future__ import annotations

from typing import Annotated, Optional

from ehrkit.cli.finetune import Source
from ehrkit.cli.options import Device, Inputs, Quiet, ToFormat, Verbose, fmt, inputs, opt, setup


def predict(
    paths: Inputs = None,
    model: Annotated[str, opt("-m", "--model", help="A model directory from `ehrkit finetune` "
                              "or `ehrkit multitask`.",
                              metavar="DIR")] = ...,
    output: Annotated[str, opt("-o", "--output", help="Output file, '-' (stdout), or a "
                                "directory (ends in '/' or has no extension) of Parquet parts.",
                                metavar="PATH")] = "-",
    from_: Annotated[Optional[Source], opt("--from", help="Input format (default: from the "
                                            "extension; .conll, .bio, .iob, .tsv are CoNLL).",
                                            show_default=False)] = None,
    to: ToFormat = None,
    max_length: Annotated[Optional[int], opt("--max-length", min=8, help="Tokens per input "
                                              "(default: as fine-tuned).",
                                              show_default=False)] = None,
    batch_size: Annotated[Optional[int], opt("--batch-size", min=1, help="Rows per batch (alone: "
                                              "exactly this many; with --batch-tokens: at most).",
                                              show_default=False)] = None,
    batch_tokens: Annotated[Optional[int], opt("--batch-tokens", min=1, help="Padded tokens "
                                                "per batch (default 16384, at most 256 rows).",
                                                show_default=False)] = None,
    chunk_rows: Annotated[int, opt("--chunk-rows", min=1, help="Records read, sorted and "
                                    "predicted at a time (bounds memory).")] = 2048,
    tasks: Annotated[Optional[str], opt("--tasks", help="A multitask model: the heads to "
                                         "apply, e.g. ncbi,sim (default: every head that fits "
                                         "the records).", show_default=False)] = None,
    device: Annotated[Device, opt("--device", help="auto: CUDA when present.")] = Device.auto,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Predict with a fine-tuned model: prediction records that `ehrkit evaluate` reads.

    Reads the records the model was fine-tuned on (notes, NER tokens or spans, timelines or
    series), streaming, and writes every input field but the model's inputs plus 'score'
    (binary: P(positive); multiclass and multilabel: a list of probabilities; regression: the
    value) and 'label' where the records carry the training label; NER writes 'prediction', a
    tag per word, beside the gold tags in 'label'. Records are sorted by length within each
    chunk and batched with padding only to each batch's longest: a score does not depend on
    its batch. Under torchrun every rank predicts its share and writes DIR/part-RANK.parquet.

    Examples:

      ehrkit predict chunks.parquet -m readmit-run -o chunks.pred.parquet

      ehrkit predict chunks.parquet -m readmit-run | ehrkit evaluate --aggregate clinicalbert

      torchrun --nproc-per-node 4 -m ehrkit predict notes.parquet -m run -o preds/
    """
    setup(quiet, verbose)
    from ehrkit.finetune.predict import PredictRequest, run_predict

    source = from_.value if from_ else None
    run_predict(PredictRequest(inputs(paths), model, output, source, fmt(to), batch_size,
                               batch_tokens, max_length, chunk_rows, device.value,
                               [t for t in tasks.split(",") if t] if tasks else None))
