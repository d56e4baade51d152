"""`ehrkit embed` as a library call: stream records through a model, write embedding records.

Input is read in chunks of `chunk_rows` records (memory stays bounded by the chunk). Within a
chunk, rows are sorted by length and cut into batches padded only to their longest row
(ehrkit.embed.batching); each batch runs under torch.inference_mode (bf16 autocast on GPUs);
rows go back to input order before they are written. An embedding depends on its row alone,
not on the batch size or the batch's other rows (masks everywhere; positions 0..n-1 per row).

Under torchrun (WORLD_SIZE > 1) rank r embeds chunks i with i % world == r and writes
`OUTPUT/part-{r:05d}.parquet`; the parts appear together, when every rank has finished.

An extractor is anything with `metadata()`, `dim`, `fields()` and `embed(table, source)`;
`ModelExtractor` wraps a model adapter (ehrkit.embed.models). Other feature extractors (no
model) plug in at `make_extractor`.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.embed.batching import Budget, plan
from ehrkit.embed.models import INPUT_FIELDS, EncoderOptions
from ehrkit.errors import UsageError
from ehrkit.io import STDIO, RecordWriter, atomic_path, read_batches

METADATA_KEY = "ehrkit.embedding"
TRAJECTORY = ("traj_length", "max_jump", "mean_jump")


@dataclass
class EmbedRequest:
    inputs: list[str]
    model: str | None  # a model directory; None with handcrafted
    output: str = STDIO  # a file, '-', or a directory of Parquet parts
    fmt: str | None = None  # input format (default: extension or sniffed)
    to: str | None = None  # output format (default: extension; JSONL on stdout)
    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    all_positions: bool = False  # also write `states`: every real position, float16
    trajectory: bool = False  # also write traj_length, max_jump, mean_jump
    batch_size: int | None = None  # rows per batch (alone: exactly this many)
    batch_tokens: int | None = None  # padded tokens per batch (default 16,384)
    chunk_rows: int = 2048
    device: str = "auto"
    handcrafted: bool = False  # series statistics instead of a model (ehrkit.embed.handcrafted)


@dataclass
class Counts:
    rows: int = 0
    tokens: int = 0  # real positions run through the model
    padded: int = 0  # positions run, padding included
    truncated: int = 0
    empty: int = 0  # rows with nothing to embed: null embedding

    def add(self, other: "Counts") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


# ----------------------------------------------------------------------------- extractor


class ModelExtractor:
    """Embeds a chunk with a model adapter: sort, batch, run, pool, restore order."""

    def __init__(self, encoder, rt, budget: Budget, all_positions: bool = False,
                 trajectory: bool = False):
        self.encoder, self.rt, self.budget = encoder.to(rt.device), rt, budget
        self.all_positions, self.trajectory = all_positions, trajectory
        self.dim = encoder.dim

    def metadata(self) -> dict:
        return self.encoder.metadata()

    def fields(self) -> list[pa.Field]:
        """The fields this extractor adds to every record."""
        out = [pa.field("embedding", pa.list_(pa.float32(), self.dim))]
        if self.trajectory:
            out += [pa.field(name, pa.float32()) for name in TRAJECTORY]
        if self.all_positions:
            out.append(pa.field("states", pa.list_(pa.list_(pa.float16(), self.dim))))
        return out

    def embed(self, table: pa.Table, source: str) -> tuple[dict[str, pa.Array], Counts]:
        """The added columns for a chunk's rows (in input order), and what it took."""
        import torch

        prepared = self.encoder.prepare(table, source)
        lengths = prepared.lengths
        kept = _Kept(table.num_rows, self.dim)
        counts = Counts(rows=table.num_rows, tokens=int(lengths.sum()),
                        truncated=prepared.truncated, empty=int((lengths == 0).sum()))
        with torch.inference_mode(), self.rt.autocast():
            for rows in plan(lengths, self.budget):
                hidden = self.encoder.states(prepared, rows, self.rt.device)
                counts.padded += hidden.shape[0] * hidden.shape[1]
                self._keep(kept, rows, hidden, torch.as_tensor(lengths[rows], device=hidden.device))
        return kept.columns(lengths > 0, self.trajectory, self.all_positions), counts

    def _keep(self, kept: "_Kept", rows: np.ndarray, hidden, lengths) -> None:
        """Pool one batch (and take its trajectories and states) into the chunk's arrays."""
        import torch

        from ehrkit.embed.pooling import pool, real_positions, trajectory

        kept.vectors[rows] = pool(hidden, lengths, self.encoder.pooling).cpu().numpy()
        if self.trajectory:
            for name, values in trajectory(hidden, lengths).items():
                kept.jumps[name][rows] = values.cpu().numpy()
        if self.all_positions:
            flat = real_positions(hidden, lengths).to(torch.float16).cpu().numpy()
            sizes = lengths.cpu().numpy()
            for row, part in zip(rows, np.split(flat, np.cumsum(sizes)[:-1])):
                kept.states[row] = part


class _Kept:
    """A chunk's results, filled batch by batch at the rows' input positions."""

    def __init__(self, rows: int, dim: int):
        self.vectors = np.zeros((rows, dim), dtype=np.float32)
        self.jumps = {name: np.full(rows, np.nan, dtype=np.float32) for name in TRAJECTORY}
        self.states: list[np.ndarray | None] = [None] * rows
        self.dim = dim

    def columns(self, valid: np.ndarray, trajectory: bool, all_positions: bool) -> dict[str, pa.Array]:
        columns = {"embedding": vector_array(self.vectors, valid)}
        if trajectory:  # NaN: no jump (one position) or nothing embedded
            columns.update({name: pa.array(v, mask=np.isnan(v)) for name, v in self.jumps.items()})
        if all_positions:
            columns["states"] = states_array(self.states, self.dim)
        return columns


def vector_array(vectors: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """fixed_size_list<float32>[d] from [rows, d]; null where not `valid`."""
    values = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    mask = None if valid is None or valid.all() else pa.array(~valid)
    return pa.FixedSizeListArray.from_arrays(values, vectors.shape[1], mask=mask)


def states_array(states: list[np.ndarray | None], dim: int) -> pa.Array:
    """list<fixed_size_list<float16>[d]>: each row's [positions, d] states (null for None)."""
    sizes = np.array([0 if s is None else len(s) for s in states], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    present = [s for s in states if s is not None]
    flat = np.concatenate(present).reshape(-1) if present else np.zeros(0, np.float16)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(np.float16)), dim)
    mask = pa.array([s is None for s in states])
    return pa.ListArray.from_arrays(pa.array(offsets), inner, mask=mask)


def make_extractor(req: EmbedRequest, rt):
    """The feature extractor the request asks for: a model directory, or hand-crafted statistics."""
    if req.handcrafted == bool(req.model):
        raise UsageError("give either --model DIR or --handcrafted")
    if req.handcrafted:
        from ehrkit.embed.handcrafted import HandcraftedExtractor

        return HandcraftedExtractor()
    from ehrkit.embed.models import load_encoder

    encoder = load_encoder(req.model, req.encoder)
    return ModelExtractor(encoder, rt, Budget.of(req.batch_tokens, req.batch_size),
                          req.all_positions, req.trajectory)


# ----------------------------------------------------------------------------- records


def output_table(table: pa.Table, columns: dict[str, pa.Array], metadata: dict,
                 drop: set[str]) -> pa.Table:
    """Input fields that are not model inputs, then the extractor's columns; schema metadata
    `ehrkit.embedding`."""
    keep = [name for name in table.column_names if name not in drop and name not in columns]
    out = pa.Table.from_arrays([table[name] for name in keep] + list(columns.values()),
                               names=keep + list(columns))
    return out.replace_schema_metadata({METADATA_KEY: json.dumps(metadata)})


def empty_schema(schema: pa.Schema | None, extra: list[pa.Field], metadata: dict,
                 drop: set[str]) -> pa.Schema:
    """The schema of an output with no records (Parquet still needs one)."""
    added = {f.name for f in extra}
    kept = [f for f in (schema or []) if f.name not in drop and f.name not in added]
    return pa.schema(kept + extra, metadata={METADATA_KEY: json.dumps(metadata)})


def chunks(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of `rows` records (the last may be shorter), from batches of any size."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            batch, count = batch.slice(take), count + take
            if count == rows:
                yield _table(pending)
                pending, count = [], 0
    if pending:
        yield _table(pending)


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    if len(batches) == 1 or len({b.schema for b in batches}) == 1:
        return pa.Table.from_batches(batches).combine_chunks()
    # JSONL blocks may type a field differently (null in one, typed in the next)
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches],
                            promote_options="permissive").combine_chunks()


# ----------------------------------------------------------------------------- output


def is_parts_output(path: str) -> bool:
    """Whether `-o` names a directory of Parquet parts: an existing directory, a path that
    ends in '/', or a name with no extension."""
    if path == STDIO:
        return False
    return os.path.isdir(path) or path.endswith(("/", os.sep)) or not Path(path).suffix


def check_output(req: EmbedRequest, world: int) -> bool:
    """Usage errors about -o/--to before any work; returns whether the output is parts."""
    parts = is_parts_output(req.output)
    if parts and req.to == "jsonl":
        raise UsageError(f"-o {req.output}: a directory holds Parquet parts; for JSONL give a "
                         "file (.jsonl) or stdout")
    if world > 1 and not parts:
        raise UsageError(f"-o {req.output}: under torchrun every rank writes its own part, so "
                         "-o must be a directory", hint="e.g. -o embeddings/")
    if parts and os.path.exists(req.output) and not os.path.isdir(req.output):
        raise UsageError(f"-o {req.output}: exists and is not a directory")
    return parts


@contextmanager
def output_writer(req: EmbedRequest, parts: bool, rt) -> Iterator[RecordWriter]:
    """A RecordWriter for this rank: the file or stdout, or this rank's part file. Parts are
    written into a staging directory that replaces the output once every rank is done, so a
    failed run leaves the output as it was."""
    if not parts:
        with RecordWriter(req.output, req.to) as writer:
            yield writer
        return
    target = Path(req.output)
    name = f"part-{rt.rank:05d}.parquet"
    if not rt.distributed:
        with atomic_path(target) as tmp:
            os.mkdir(tmp)
            with RecordWriter(os.path.join(tmp, name), "parquet") as writer:
                yield writer
        return
    from ehrkit import runtime

    staging = target.parent / f".{target.name}.parts"
    if rt.main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    runtime.barrier(rt)
    with RecordWriter(str(staging / name), "parquet") as writer:
        yield writer
    runtime.barrier(rt)
    if rt.main:
        _replace_directory(staging, target)


def _replace_directory(new: Path, target: Path) -> None:
    if target.is_dir():
        old = target.parent / f".{target.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


# ----------------------------------------------------------------------------- driver


def run_embed(req: EmbedRequest) -> dict:
    """Embed every input record; write embedding records; return the summary (also logged)."""
    from ehrkit import runtime

    if req.chunk_rows < 1:
        raise UsageError(f"--chunk-rows {req.chunk_rows}: use at least 1")
    rt = runtime.setup(req.device)
    try:
        parts = check_output(req, rt.world)
        extractor = make_extractor(req, rt)
        timer = log.Timer()
        counts = embed_inputs(req, extractor, rt, parts)
        return _summary(counts, timer.seconds, extractor, rt)
    finally:
        runtime.teardown()


def embed_inputs(req: EmbedRequest, extractor, rt, parts: bool) -> Counts:
    """Read, embed (this rank's chunks) and write; the counts of this rank."""
    drop = set(INPUT_FIELDS) | {req.encoder.text_field, req.encoder.input_field}
    metadata, counts, index = extractor.metadata(), Counts(), 0
    with output_writer(req, parts, rt) as writer, log.progress("embed", unit="records") as bar:
        writer.empty_schema = empty_schema(None, extractor.fields(), metadata, drop)
        for path in req.inputs:
            source = "<stdin>" if path == STDIO else path
            for table in chunks(read_batches(path, req.fmt), req.chunk_rows):
                mine, index = index % rt.world == rt.rank, index + 1
                if index == 1:
                    writer.empty_schema = empty_schema(table.schema, extractor.fields(), metadata,
                                                       drop)
                if not mine:
                    continue
                columns, done = extractor.embed(table, source)
                writer.write(output_table(table, columns, metadata, drop))
                counts.add(done)
                bar.update(table.num_rows)
    return counts


def _summary(counts: Counts, seconds: float, extractor, rt) -> dict:
    if rt.distributed:
        import torch

        from ehrkit import runtime

        names = [f.name for f in fields(Counts)]
        total = runtime.all_reduce_sum(
            torch.tensor([getattr(counts, n) for n in names], dtype=torch.float64, device=rt.device), rt)
        counts = Counts(**{n: int(v) for n, v in zip(names, total.tolist())})
    seconds = max(seconds, 1e-9)
    summary = {"rows": counts.rows, "tokens": counts.tokens, "padded_tokens": counts.padded,
               "padding": round(1 - counts.tokens / counts.padded, 4) if counts.padded else 0.0,
               "truncated": counts.truncated, "empty": counts.empty,
               "rows_per_s": round(counts.rows / seconds, 1),
               "tokens_per_s": round(counts.tokens / seconds, 1), "seconds": round(seconds, 3),
               "world_size": rt.world, **extractor.metadata()}
    if rt.main:
        log.info(_describe(summary))
    return summary


def _describe(s: dict) -> str:
    if s["model"] == "handcrafted":
        return (f"embed: {s['rows']:,} rows, {s['rows_per_s']:,.1f} rows/s; hand-crafted "
                f"statistics, dim {s['dim']}")
    line = (f"embed: {s['rows']:,} rows, {s['tokens']:,} tokens ({s['padded_tokens']:,} with "
            f"padding, {s['padding']:.1%} wasted), {s['rows_per_s']:,.1f} rows/s, "
            f"{s['tokens_per_s']:,.0f} tokens/s; {s['kind']} {s['pool']} pooling, dim {s['dim']}")
    if s["truncated"]:
        line += f"; {s['truncated']:,} truncated to {s.get('max_length')} tokens"
    if s["empty"]:
        line += f"; {s['empty']:,} with nothing to embed (null embedding)"
    return line
