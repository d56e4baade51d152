"""`ehrkit embed`: one vector per record from a trained model (notes, timelines or series)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional


from ehrkit.cli.options import (Device, opt, FromFormat, Inputs, Quiet, ToFormat, Verbose, fmt, inputs,
                                setup)


class Pool(str, Enum):
    cls = "cls"
    mean = "mean"
    last = "last"
    layers = "layers"



def embed(
    paths: Inputs = None,
    model: Annotated[Optional[str], opt("-m", "--model", help="The model directory (from "
                                         "`ehrkit pretrain`): a BERT masked LM (note records), "
                                         "a causal LM (sequence records) or a GRU (series "
                                         "records).", metavar="DIR", show_default=False)] = None,
    handcrafted: Annotated[bool, opt("--handcrafted", help="No model: the MIMIC-III "
                                      "benchmark's hand-crafted statistics of series records "
                                      "(6 statistics x 7 sub-windows x each variable; 714 for "
                                      "the 17 benchmark variables).")] = False,
    output: Annotated[str, opt("-o", "--output", help="Output file, '-' (stdout), or a "
                                "directory (ends in '/' or has no extension) of Parquet parts.",
                                metavar="PATH")] = "-",
    from_: FromFormat = None,
    to: ToFormat = None,
    pool: Annotated[Optional[Pool], opt("--pool", help="cls: the first token; mean: over real "
                                         "tokens; last: the last real token (GRU: the top "
                                         "layer's state at the last hour); layers (GRU): every "
                                         "layer's state, concatenated. Default: cls for BERT, "
                                         "last for causal LMs, layers for GRUs.",
                                         show_default=False)] = None,
    layer: Annotated[Optional[int], opt("--layer", help="Transformers: hidden state L (0 the "
                                         "embeddings, -1 the last layer, the default). GRU: the "
                                         "one layer L (0-based; implies --pool last).",
                                         show_default=False)] = None,
    hour: Annotated[Optional[int], opt("--hour", min=1, help="GRU: the state after H hours "
                                        "(clipped to the stay's length) instead of the last "
                                        "hour.", metavar="H", show_default=False)] = None,
    text_field: Annotated[str, opt("--text-field", help="BERT: the note text (a string, or a "
                                    "list of sentences joined with spaces; without 'text', "
                                    "'sentences' is used).")] = "text",
    input_field: Annotated[str, opt("--input-field", help="Causal LM: the token ids.")] = "input_ids",
    max_length: Annotated[Optional[int], opt("--max-length", min=1, help="Tokens per input; "
                                              "longer ones are truncated (and counted). "
                                              "Default: the model's positions.",
                                              show_default=False)] = None,
    all_positions: Annotated[bool, opt("--all-positions", help="Also write 'states': the "
                                        "state at every real position (float16).")] = False,
    trajectory: Annotated[bool, opt("--trajectory", help="Also write traj_length, max_jump "
                                     "and mean_jump: L2 distances between consecutive "
                                     "positions' states (one position: 0, null, null).")] = False,
    batch_size: Annotated[Optional[int], opt("--batch-size", min=1, help="Rows per batch (alone: "
                                              "exactly this many; with --batch-tokens: at most).",
                                              show_default=False)] = None,
    batch_tokens: Annotated[Optional[int], opt("--batch-tokens", min=1, help="Padded tokens "
                                                "per batch (rows x longest row; default 16384).",
                                                show_default=False)] = None,
    chunk_rows: Annotated[int, opt("--chunk-rows", min=1, help="Records read, sorted and "
                                    "embedded at a time (bounds memory).")] = 2048,
    device: Annotated[Device, opt("--device", help="auto: CUDA when present.")] = Device.auto,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Embed records with a trained model: one vector per note, timeline or ICU stay.

    Reads note records (BERT), sequence records from `timeline tokenize` (causal LM) or series
    records from `timeline series` (GRU), streaming, and writes embedding records: every input
    field but the model's inputs (text, sentences, input_ids, times, values, mask, hours),
    plus 'embedding' (a fixed-size float32 list); the model, pooling, layer and dimension are
    in the Parquet schema metadata 'ehrkit.embedding'. Parquet ('-o emb.parquet' or a
    directory) is the compact form; stdout gets JSONL unless --to parquet.

    Records are sorted by length within each chunk and batched with padding only to each
    batch's longest; an embedding does not depend on its batch. Under torchrun every rank
    embeds its share of the chunks and writes DIR/part-RANK.parquet.

    Examples:

      ehrkit embed notes.parquet -m mlm-run -o notes.emb.parquet

      ehrkit embed timelines.parquet -m clm-run --trajectory -o timelines.emb.parquet

      ehrkit embed series.parquet -m gru-run --hour 48 -o stays.emb.parquet

      ehrkit embed series.parquet --handcrafted -o stays.stats.parquet

      torchrun --nproc-per-node 4 -m ehrkit embed notes.parquet -m mlm-run -o emb/
    """
    setup(quiet, verbose)
    from ehrkit.embed.models import EncoderOptions
    from ehrkit.embed.run import EmbedRequest, run_embed

    encoder = EncoderOptions(pool=pool.value if pool else None, layer=layer, hour=hour,
                             text_field=text_field, input_field=input_field, max_length=max_length)
    run_embed(EmbedRequest(inputs(paths), model, output, fmt(from_), fmt(to), encoder,
                           all_positions=all_positions, trajectory=trajectory,
                           batch_size=batch_size, batch_tokens=batch_tokens,
                           chunk_rows=chunk_rows, device=device.value, handcrafted=handcrafted))
