"""PhysioNet 2019 hourly `.psv` stays for `timeline series` (see series_sources.py)."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit.errors import DataError, InputFormatError, MissingFieldError, UsageError

from ehrkit.timeline.series_sources import (Events, Group, Variable)


class PhysioNetSource:
    """PhysioNet 2019 `.psv` stays; label `sepsis` (int8): any SepsisLabel == 1.

    An extra variable is present when the first file's header has its column; a later file
    without that column leaves it unobserved in its stay."""

    def __init__(self, path: str, variables: list[Variable], start: str = "admission",
                 split_field: str = "split", extra: Sequence[Variable] = ()):
        if start != "admission":
            raise UsageError("--start icu is for CLIF sources",
                             hint="PhysioNet hours already count from ICU admission")
        self.path, self.variables, self.extra = path, variables, list(extra)
        self.fields = [pa.field("sepsis", pa.int8())]
        self.extra_present = self._present() if self.extra else []

    def _present(self) -> list[bool]:
        members = self._members()
        try:
            _, data = next(members, ("", b""))
        finally:
            members.close()
        header = data.partition(b"\n")[0].strip().decode("utf-8", "replace").split("|")
        return [bool(v.sources) and v.sources[0] in header for v in self.extra]

    def groups(self, hours: int, size: int, limit: int | None = None) -> Iterator[Group]:
        members: list[tuple[str, bytes]] = []
        for count, member in enumerate(self._members()):
            if limit is not None and count >= limit:
                break
            members.append(member)
            if len(members) >= size:
                yield self._group(members, hours)
                members = []
        if members:
            yield self._group(members, hours)

    def _members(self) -> Iterator[tuple[str, bytes]]:
        """(name, content) of each .psv file, in name order (archive order for a tarball)."""
        p = Path(self.path)
        if p.is_dir():
            files = sorted(p.rglob("*.psv"))
            if not files:
                raise InputFormatError(f"{self.path}: directory holds no .psv files")
            yield from ((str(f), f.read_bytes()) for f in files)
        elif p.name.endswith(".psv"):
            yield str(p), p.read_bytes()
        else:
            yield from _tar_members(p)

    def _group(self, members: list[tuple[str, bytes]], hours: int) -> Group:
        tables: list[np.ndarray] = [np.empty(0)] * len(members)
        by_header: dict[bytes, list[int]] = {}
        for i, (_, data) in enumerate(members):
            by_header.setdefault(data.partition(b"\n")[0].strip(), []).append(i)
        for header, indices in by_header.items():
            for i, table in zip(indices, self._read([members[i] for i in indices], header)):
                tables[i] = table
        rows = np.concatenate(tables)  # ICULOS, variables, extra variables, SepsisLabel (or NaN)
        counts = np.array([len(t) for t in tables])
        stay = np.repeat(np.arange(len(members)), counts)
        grid = rows[:, 1:1 + len(self.variables)]
        length = np.zeros(len(members))
        np.maximum.at(length, stay, np.nan_to_num(rows[:, 0]))
        labelled = np.array([len(t) > 0 and not np.isnan(t[0, -1]) for t in tables])
        sepsis = np.zeros(len(members))
        np.maximum.at(sepsis, stay, np.nan_to_num(rows[:, -1]))
        ids = pa.array([_stem(name) for name, _ in members], pa.string())
        return Group(stay_ids=ids, patient_ids=ids,
                     length=np.minimum(length, hours).astype(np.int32),
                     fields={"sepsis": pa.array((sepsis >= 1).astype(np.int8), mask=~labelled)},
                     events=_wide_events(stay, rows[:, 0] - 1, grid, hours),
                     extremes=_extremes(counts, rows[:, 1 + grid.shape[1]:-1])
                     if self.extra else None)

    def _read(self, members: list[tuple[str, bytes]], header: bytes) -> list[np.ndarray]:
        """Per member, a rows x (V + E + 2) matrix: ICULOS, the variables, the extra variables
        (NaN where the header lacks one), SepsisLabel."""
        columns = header.decode("utf-8", "replace").split("|")
        first = members[0][0]
        for column in ("ICULOS", *(s for v in self.variables for s in v.sources)):
            if column not in columns:
                raise MissingFieldError(first, column, columns,
                                        None if column == "ICULOS" else "--variables")
        bodies = [_body(data) for _, data in members]
        counts = [body.count(b"\n") for body in bodies]
        frame = _parse_psv(b"".join(bodies), columns)
        if frame is None or frame.height != sum(counts):
            raise _bad_member(members, columns)
        wanted = ["ICULOS", *(v.sources[0] if v.sources else None for v in self.variables),
                  *(v.sources[0] if v.sources and v.sources[0] in columns else None
                    for v in self.extra),
                  "SepsisLabel" if "SepsisLabel" in columns else None]
        present = [i for i, c in enumerate(wanted) if c]
        matrix = np.full((frame.height, len(wanted)), np.nan)
        unique = list(dict.fromkeys(wanted[i] for i in present))  # extra may repeat a variable
        matrix[:, present] = frame.select(unique).to_numpy()[:, [unique.index(wanted[i])
                                                                 for i in present]]
        return np.split(matrix, np.cumsum(counts)[:-1])


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, mode="r|*") as archive:  # a stream: no seeking, no extraction
            for member in archive:
                if member.isfile() and member.name.endswith(".psv"):
                    yield f"{path}:{member.name}", archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputFormatError(f"{path}: not a readable tar archive ({type(exc).__name__})",
                               hint="give a directory of .psv files or a .tar.gz of them") from None


def _body(data: bytes) -> bytes:
    """The rows after the header, ending in exactly one newline (none if there are no rows)."""
    body = data.partition(b"\n")[2].rstrip()
    return body + b"\n" if body else b""


def _parse_psv(data: bytes, columns: list[str]):
    import polars as pl

    if not data:
        return pl.DataFrame(schema={c: pl.Float64 for c in columns})
    try:
        return pl.read_csv(io.BytesIO(data), separator="|", has_header=False, new_columns=columns,
                           null_values=["NaN", "nan"], schema_overrides={c: pl.Float64 for c in columns})
    except pl.exceptions.PolarsError:
        return None


def _bad_member(members: list[tuple[str, bytes]], columns: list[str]) -> DataError:
    """Name the first file whose rows are not pipe-separated numbers (never its values)."""
    bad = [name for name, data in members
           if (frame := _parse_psv(_body(data), columns)) is None
           or frame.height != _body(data).count(b"\n")]
    name = bad[0] if bad else members[0][0]
    return InputFormatError(f"{name}: rows are not {len(columns)} pipe-separated numbers",
                            hint="PhysioNet 2019 files have one header line, then one row per "
                            "ICU hour with NaN for missing values")


def _stem(name: str) -> str:
    base = os.path.basename(name.rsplit(":", 1)[-1])
    return base[:-4] if base.endswith(".psv") else base


def _extremes(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per stay (its rows contiguous, `counts` of them), the min and max of each column over all
    its rows: stays x columns x 2, NaN where a column is never observed."""
    out = np.full((len(counts), values.shape[1], 2), np.nan)
    nonempty = counts > 0
    starts = (np.cumsum(counts) - counts)[nonempty]
    if len(starts) and values.shape[1]:
        out[nonempty, :, 0] = np.fmin.reduceat(values, starts, axis=0)
        out[nonempty, :, 1] = np.fmax.reduceat(values, starts, axis=0)
    return out


def _wide_events(stay: np.ndarray, bins: np.ndarray, values: np.ndarray, hours: int) -> Events:
    """Events from a rows x variables matrix (NaN: not observed); later rows win a bin."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(bins) & (bins >= 0) & (bins < hours)
    row, var = np.nonzero(ok[:, None] & ~np.isnan(values))
    return Events(stay[row].astype(np.int64), var.astype(np.int64), bins[row].astype(np.int64),
                  row.astype(np.int64), values[row, var])
