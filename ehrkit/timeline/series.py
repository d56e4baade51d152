"""`ehrkit timeline series`: the hourly grid of the MIMIC-III benchmarks (methods.md 5.2) for the
GRU work, over CLIF 2.x directories and PhysioNet 2019 `.psv` files.

For each stay, T hourly bins (48 by default) from time zero (admission, or ICU admission). An
observation at t hours lands in bin floor(t); observations before 0 or at T or later are
dropped; within a bin the **last** observation wins (equal times: the larger value). Then:

- `mask` (T x V int8): 1 where the variable was observed in that hour, **per variable**.
- imputation: `previous` (carry the last observed value forward; the normal value before the
  first), `normal` (every gap gets the normal value), `zero`, or `none` (gaps stay null).
- one-hot: the categorical variables of `CATEGORIES` (the GCS items and capillary refill)
  become one 0/1 column per category, in place; a value outside its categories is ignored (not
  observed). Gaps under `zero` give all-zero columns, under `none` all-null ones.
- `values` (T x C float32): the columns of `columns()`, after imputation and normalisation.

With the 17 benchmark variables, C = 12 continuous + 31 one-hot = 43 value columns and V = 17
mask columns, 60 inputs where the benchmark has 59 + 17 = 76: 31 one-hot columns instead of 47
(see `CATEGORIES`). Value column c belongs to variable `variable_of()[c]`, whose mask column
that is; a model's input at hour t is `values[t] + mask[t]`, concatenated as in the benchmark.

Normaliser: per-column mean and sample standard deviation (floored at 1e-7) of the continuous
columns, over the training stays only (a split field, a splits file or a list of ids), after
imputation; written as a versioned JSON artifact (`Normalizer`, never a pickle) and applied as
(x - mean) / std. One-hot columns and masks stay 0/1 (the benchmark also scales its masks).
Fitting reads the source twice: once to fit, once to write.

Sources, their variables and normal values are in `series_sources`.

Record (`output_schema`): stay_id, patient_id (strings), hours (list<float32>, bin starts
0..T-1), values (list<list<float32>> T x C), mask (list<list<int8>> T x V), length (int32: how
many bins the stay covers before discharge or its last PhysioNet row, at most T), then the
source's labels: CLIF `mortality` (int8) and its split field when present; PhysioNet `sepsis`
(int8); with `derive_labels`, `derived` (list<int8>, derangements over the whole stay, named in
the schema metadata: see `series_labels`). The layout matches `ehrkit synth series` where it
applies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit import __version__, log
from ehrkit.errors import DataError, InputFormatError, UsageError
from ehrkit.io import RecordWriter, read_json_artifact, write_json_artifact
from ehrkit.timeline.series_sources import (  # noqa: F401 - re-exported
    CATEGORIES,
    CLIF_BENCHMARK,
    PHYSIONET_VARIABLES,
    SOURCES,
    Events,
    Group,
    Variable,
    detect,
    open_source,
    resolve,
)

HOURS = 48
IMPUTE = ("previous", "normal", "zero", "none")
STD_FLOOR = 1e-7
NORMALIZER_FORMAT = "ehrkit.series-normalizer"
NORMALIZER_VERSION = 1


@dataclass
class SeriesConfig:
    """Settings of `timeline series`; saved in the normaliser artifact."""

    source: str | None = None  # clif | physionet; None: detected from the path
    hours: int = HOURS  # T, the number of hourly bins
    variables: list[str] | None = None  # specs (see series_sources.resolve); None: the default
    impute: str = "previous"  # previous | normal | zero | none
    one_hot: bool = True  # expand CATEGORIES into one column per category
    start: str = "admission"  # CLIF time zero: admission or icu (first ICU in_dttm)
    split_field: str = "split"  # CLIF hospitalization field naming each stay's split
    train_ids: str | None = None  # file of stay or patient ids to fit the normaliser on
    splits_file: str | None = None  # records with patient_id (or subject_id) and split
    group_size: int = 1000  # stays per group: bounds memory
    limit: int | None = None  # only the first N stays
    derive_labels: bool = False  # add `derived`, the labels of series_labels


# ----------------------------------------------------------------------------- columns

def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def columns(variables: Sequence[Variable | str] | None = None, one_hot: bool = True,
            source: str = "clif") -> list[str]:
    """Names of the value columns, one-hot ones as `NAME->CATEGORY` (the benchmark's headers).

    >>> names = columns()
    >>> len(names), names[:3]
    (43, ['Capillary refill rate->0', 'Capillary refill rate->1', 'Diastolic blood pressure'])
    >>> columns(["HR", "Glascow coma scale eye opening"], source="physionet")[1:3]
    ['Glascow coma scale eye opening->1', 'Glascow coma scale eye opening->2']
    """
    variables = _variables(variables, source)
    out = []
    for var in variables:
        if var.categories is not None and one_hot:
            out.extend(f"{var.name}->{_label(c)}" for c in var.categories)
        else:
            out.append(var.name)
    return out


def variable_of(variables: Sequence[Variable | str] | None = None, one_hot: bool = True,
                source: str = "clif") -> list[int]:
    """For each value column, the index of its variable (its column in `mask`)."""
    variables = _variables(variables, source)
    widths = [len(v.categories) if v.categories is not None and one_hot else 1 for v in variables]
    return [v for v, width in enumerate(widths) for _ in range(width)]


def _variables(variables, source: str) -> list[Variable]:
    if variables and all(isinstance(v, Variable) for v in variables):
        return list(variables)
    return resolve(source, variables)


# ----------------------------------------------------------------------------- the grid

def discretize(events: Events, stays: int, variables: Sequence[Variable],
               hours: int) -> tuple[np.ndarray, int]:
    """Raw grid (stays x T x V float32, NaN where unobserved): the last event of each bin wins.
    Also returns how many categorical values were ignored for lying outside their categories."""
    v_count = len(variables)
    keep = np.isfinite(events.value) & (events.bin >= 0) & (events.bin < hours)
    ignored = 0
    for v, var in enumerate(variables):
        if var.categories is not None:
            bad = keep & (events.var == v) & ~np.isin(events.value, var.categories)
            ignored += int(bad.sum())
            keep &= ~bad
    rows = np.flatnonzero(keep)
    key = (events.stay[rows] * hours + events.bin[rows]) * v_count + events.var[rows]
    raw = np.full(stays * hours * v_count, np.nan, np.float32)
    single = np.bincount(key, minlength=raw.size)[key] == 1
    raw[key[single]] = events.value[rows[single]]
    if not single.all():  # several values in a bin: sort only those, the last one wins
        rows, key = rows[~single], key[~single]
        sort = np.lexsort((events.value[rows], events.order[rows], key))
        last = np.ones(len(sort), bool)
        last[:-1] = key[sort][1:] != key[sort][:-1]
        raw[key[sort[last]]] = events.value[rows[sort[last]]]
    return raw.reshape(stays, hours, v_count), ignored


def impute(raw: np.ndarray, variables: Sequence[Variable], strategy: str) -> np.ndarray:
    """Fill the gaps of a raw grid; `zero` and `none` leave NaN for `expand` to handle."""
    if strategy in ("zero", "none"):
        return raw
    normal = np.array([np.nan if v.normal is None else v.normal for v in variables], raw.dtype)
    filled = raw.copy()
    if strategy == "previous":
        for t in range(1, raw.shape[1]):  # T steps, each vectorised over stays and variables
            np.copyto(filled[:, t], filled[:, t - 1], where=np.isnan(filled[:, t]))
    np.copyto(filled, np.broadcast_to(normal, filled.shape), where=np.isnan(filled))
    return filled


def expand(grid: np.ndarray, variables: Sequence[Variable], one_hot: bool,
           strategy: str) -> np.ndarray:
    """Value columns (stays x T x C float32): one-hot categorical variables, zero-fill gaps."""
    parts = []
    for v, var in enumerate(variables):
        x = grid[:, :, v]
        if var.categories is not None and one_hot:
            block = (x[:, :, None] == np.asarray(var.categories)).astype(np.float32)
            if strategy == "none":
                block[np.isnan(x)] = np.nan
            parts.append(block)
        else:
            parts.append(x[:, :, None].astype(np.float32))
    out = np.concatenate(parts, axis=2) if parts else np.zeros(grid.shape[:2] + (0,), np.float32)
    return np.nan_to_num(out, nan=0.0) if strategy == "zero" else out


# ----------------------------------------------------------------------------- normaliser

@dataclass
class Normalizer:
    """Per-column means and standard deviations; None for columns left as they are (one-hot)."""

    variables: list[str]
    columns: list[str]
    means: list[float | None]
    stds: list[float | None]
    counts: list[int]
    settings: dict

    def apply(self, values: np.ndarray) -> np.ndarray:
        scaled = np.array([m is not None for m in self.means])
        mean = np.array([m or 0.0 for m in self.means], np.float32)
        std = np.array([s or 1.0 for s in self.stds], np.float32)
        values[:, :, scaled] = (values[:, :, scaled] - mean[scaled]) / std[scaled]
        return values

    def to_json(self) -> dict:
        return {"format": NORMALIZER_FORMAT, "version": NORMALIZER_VERSION,
                "created_by": f"ehrkit {__version__}", **asdict(self)}

    def save(self, path: str) -> None:
        write_json_artifact(path, self.to_json(), indent=1)

    @classmethod
    def load(cls, path: str) -> "Normalizer":
        data = read_json_artifact(path, NORMALIZER_FORMAT, NORMALIZER_VERSION,
                                  "series normaliser", hint="write one with --fit-normalizer")
        try:
            return cls(**{k: data[k] for k in ("variables", "columns", "means", "stds",
                                                "counts", "settings")})
        except KeyError as exc:
            raise InputFormatError(f"{path}: normaliser lacks '{exc.args[0]}'") from None

    def check(self, path: str, names: list[str]) -> None:
        if names != self.columns:
            raise DataError(f"{path}: the normaliser was fitted on other columns "
                            f"({len(self.columns)} columns, these data have {len(names)})",
                            hint="use the same --variables and --one-hot settings as the fit")


class NormalizerFit:
    """Streaming mean and variance per column (Chan et al.'s pairwise update, float64)."""

    def __init__(self, names: list[str], scaled: list[bool]):
        self.names, self.scaled = names, np.array(scaled, bool)
        self.n, self.mean, self.m2 = (np.zeros(len(names)) for _ in range(3))
        self.stays = 0

    def update(self, values: np.ndarray) -> None:
        self.stays += len(values)
        flat = values.reshape(-1, len(self.names)).astype(np.float64)
        seen = ~np.isnan(flat)
        n = seen.sum(axis=0).astype(np.float64)
        mean = np.divide(np.where(seen, flat, 0).sum(axis=0), n, out=np.zeros_like(n), where=n > 0)
        m2 = (np.where(seen, flat - mean, 0) ** 2).sum(axis=0)
        total = self.n + n
        delta = mean - self.mean
        share = np.divide(n, total, out=np.zeros_like(n), where=total > 0)
        self.m2 += m2 + delta ** 2 * self.n * share
        self.mean += delta * share
        self.n = total

    def result(self, variables: list[str], settings: dict) -> Normalizer:
        std = np.sqrt(np.divide(self.m2, self.n - 1, out=np.zeros_like(self.n), where=self.n > 1))
        std = np.maximum(std, STD_FLOOR)
        empty = [name for name, s, n in zip(self.names, self.scaled, self.n) if s and n == 0]
        if empty:
            log.warn(f"normaliser: {len(empty)} columns have no training values (mean 0, std 1), "
                     f"e.g. '{empty[0]}'")
        means = [None if not s else (float(m) if n else 0.0)
                 for s, m, n in zip(self.scaled, self.mean, self.n)]
        stds = [None if not s else (float(d) if n else 1.0)
                for s, d, n in zip(self.scaled, std, self.n)]
        return Normalizer(variables, self.names, means, stds, [int(n) for n in self.n], settings)


# ----------------------------------------------------------------------------- pipeline

def output_schema(fields: Sequence[pa.Field] = ()) -> pa.Schema:
    """The series record: ids, hours, values, mask, length, then the source's label fields."""
    return pa.schema([("stay_id", pa.string()), ("patient_id", pa.string()),
                      ("hours", pa.list_(pa.float32())),
                      ("values", pa.list_(pa.list_(pa.float32()))),
                      ("mask", pa.list_(pa.list_(pa.int8()))), ("length", pa.int32()), *fields])


@dataclass
class Summary:
    stays: int = 0
    cells: int = 0
    observed: int = 0
    ignored: int = 0
    train: int = 0


class Series:
    """A source read as hourly grids, group by group."""

    def __init__(self, path: str, config: SeriesConfig):
        if config.impute not in IMPUTE:
            raise UsageError(f"unknown imputation '{config.impute}'", hint="use " + ", ".join(IMPUTE))
        if config.hours < 1 or config.group_size < 1:
            raise UsageError("--hours and --group-size must be at least 1")
        self.config, self.kind = config, detect(path, config.source)
        self.variables = resolve(self.kind, config.variables)
        self.derived = None
        if config.derive_labels:
            from ehrkit.timeline.series_labels import DerivedLabels

            self.derived = DerivedLabels(self.kind)
        self.source = open_source(path, self.kind, self.variables, config.start, config.split_field,
                                  extra=self.derived.variables if self.derived else ())
        missing = [v.name for v in self.variables if v.normal is None]
        if missing and config.impute in ("previous", "normal"):
            raise UsageError(f"no normal value for variable '{missing[0]}', which --impute "
                             f"{config.impute} needs", hint=f"give one as {missing[0]}=VALUE in "
                             "--variables, or use --impute zero or none")
        self.columns = columns(self.variables, config.one_hot)
        self.train_ids = _read_ids(config.train_ids) if config.train_ids else None
        self.splits, fields = None, list(self.source.fields)
        if config.splits_file:
            from ehrkit.timeline.splits import from_file

            table = from_file(config.splits_file)
            self.splits = dict(zip(table["patient_id"].to_list(), table["split"].to_list()))
            if all(f.name != config.split_field for f in fields):
                fields.append(pa.field(config.split_field, pa.string()))
        if self.derived is not None:
            self.derived.keep(self.source.extra_present)
            fields.append(self.derived.field)
        # the value columns' names let later steps (hand-crafted features) map them to variables
        metadata = {b"ehrkit.series": json.dumps({"columns": self.columns}).encode()}
        if self.derived is not None:
            metadata.update(self.derived.metadata())
        self.schema = output_schema(fields).with_metadata(metadata)

    def grids(self) -> Iterator[tuple[Group, np.ndarray, np.ndarray, int]]:
        """(group, values stays x T x C, mask stays x T x V, ignored values) per group."""
        c = self.config
        for group in self.source.groups(c.hours, c.group_size, c.limit):
            if self.splits is not None:
                split = [self.splits.get(p) for p in group.patient_ids.to_pylist()]
                group.split = np.array(split, object)
                group.fields[c.split_field] = pa.array(split, pa.string())
            raw, ignored = discretize(group.events, group.size, self.variables, c.hours)
            mask = ~np.isnan(raw)
            yield group, expand(impute(raw, self.variables, c.impute), self.variables,
                                c.one_hot, c.impute), mask, ignored

    def train(self, group: Group) -> np.ndarray:
        """Which stays of a group are training stays."""
        if self.train_ids is not None:
            return np.isin(np.array(group.stay_ids.to_pylist(), object), self.train_ids) | \
                np.isin(np.array(group.patient_ids.to_pylist(), object), self.train_ids)
        if group.split is not None:
            return group.split == "train"
        return np.ones(group.size, bool)

    def fit(self) -> Normalizer:
        """Fit the normaliser on the training stays (a full pass over the source)."""
        c = self.config
        one_hot = [c.one_hot and self.variables[v].categories is not None
                   for v in variable_of(self.variables, c.one_hot)]
        fit = NormalizerFit(self.columns, [not flag for flag in one_hot])
        chosen = self._train_rule()
        for group, values, _, _ in self.grids():
            keep = self.train(group)
            if keep.any():
                fit.update(values[keep])
        if fit.stays == 0:
            raise DataError(f"no training stays ({chosen}): nothing to fit the normaliser on",
                            hint="check --train-ids or the split field's values")
        settings = {"source": self.kind, "hours": c.hours, "impute": c.impute,
                    "one_hot": c.one_hot, "start": c.start, "variables": c.variables,
                    "train": chosen, "train_stays": fit.stays}
        log.detail(f"normaliser fitted on {fit.stays} training stays ({chosen})")
        return fit.result([v.name for v in self.variables], settings)

    def _train_rule(self) -> str:
        if self.config.train_ids:
            return f"stay or patient ids in {self.config.train_ids}"
        if self.config.splits_file:
            return f"split == 'train' in {self.config.splits_file}"
        if any(f.name == self.config.split_field for f in self.source.fields):
            return f"{self.config.split_field} == 'train'"
        log.warn(f"no split field '{self.config.split_field}' and no --train-ids: the normaliser "
                 "is fitted on all stays")
        return "all stays"

    def batches(self, normalizer: Normalizer | None = None,
                summary: Summary | None = None) -> Iterator[pa.RecordBatch]:
        summary = summary if summary is not None else Summary()
        for group, values, mask, ignored in self.grids():
            if normalizer is not None:
                values = normalizer.apply(values)
            summary.stays += group.size
            summary.cells += mask.size
            summary.observed += int(mask.sum())
            summary.ignored += ignored
            if self.derived is not None:
                group.fields[self.derived.field.name] = self.derived.array(group.extremes)
            yield _record_batch(group, values, mask, self.schema, self.config.impute == "none")


def _read_ids(path: str) -> np.ndarray:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    ids = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    if not ids:
        raise DataError(f"{path}: no ids", hint="--train-ids takes a file with one id per line")
    return np.array(ids, object)


def _nested(flat: pa.Array, n: int, hours: int, width: int) -> pa.Array:
    """n lists of `hours` lists of `width` items, from a flat array."""
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, n * hours * width + 1, width,
                                                        dtype=np.int32)), flat)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * hours + 1, hours, dtype=np.int32)),
                                    inner)


def _record_batch(group: Group, values: np.ndarray, mask: np.ndarray, schema: pa.Schema,
                  nulls: bool) -> pa.RecordBatch:
    n, hours = values.shape[:2]
    flat = values.ravel()
    flat = pa.array(flat, mask=np.isnan(flat)) if nulls else pa.array(flat)
    hour = pa.ListArray.from_arrays(pa.array(np.arange(0, n * hours + 1, hours, dtype=np.int32)),
                                    pa.array(np.tile(np.arange(hours, dtype=np.float32), n)))
    arrays = [group.stay_ids, group.patient_ids, hour, _nested(flat, n, hours, values.shape[2]),
              _nested(pa.array(mask.astype(np.int8).ravel()), n, hours, mask.shape[2]),
              pa.array(group.length.astype(np.int32))]
    arrays += [group.fields[f.name] for f in list(schema)[len(arrays):]]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def series_batches(path: str, config: SeriesConfig | None = None,
                   normalizer: Normalizer | None = None) -> Iterator[pa.RecordBatch]:
    """Series records for the stays of a CLIF directory or PhysioNet files, group by group."""
    yield from Series(path, config or SeriesConfig()).batches(normalizer)


def write_series(path: str, output: str, fmt: str | None, config: SeriesConfig,
                 fit: str | None = None, normalizer: str | None = None) -> Summary:
    """The command: read, grid, optionally fit or apply a normaliser, write, summarise."""
    if fit and normalizer:
        raise UsageError("--fit-normalizer and --normalizer exclude each other",
                         hint="fit on training data once, then apply the saved file")
    timer, summary = log.Timer(), Summary()
    series = Series(path, config)
    stats = None
    if normalizer:
        stats = Normalizer.load(normalizer)
        stats.check(normalizer, series.columns)
        for key in ("impute", "hours"):
            if stats.settings.get(key) != getattr(config, key):
                log.warn(f"{normalizer} was fitted with {key} {stats.settings.get(key)}; these "
                         f"data use {getattr(config, key)}")
    elif fit:
        stats = series.fit()
        stats.save(fit)  # complete now, whatever becomes of the output
        summary.train = stats.settings["train_stays"]
    with RecordWriter(output, fmt, series.schema) as out, \
            log.progress("timeline series", unit="stays") as bar:
        for batch in series.batches(stats, summary):
            out.write(batch)
            bar.update(batch.num_rows)
    _report(series, summary, timer.seconds, fit)
    return summary


def _report(series: Series, summary: Summary, seconds: float, fit: str | None) -> None:
    seconds = max(seconds, 1e-9)
    observed = summary.observed / summary.cells if summary.cells else 0.0
    log.info(f"timeline series: {summary.stays} stays x {series.config.hours} hours x "
             f"{len(series.variables)} variables ({len(series.columns)} value columns), "
             f"{observed:.1%} of cells observed, in {seconds:.1f} s "
             f"({summary.stays / seconds:.0f} stays/s)")
    if summary.ignored:
        log.warn(f"{summary.ignored} categorical values outside their categories were ignored")
    if fit:
        log.info(f"normaliser fitted on {summary.train} training stays: {fit}")
    if series.derived is not None:
        series.derived.report()
