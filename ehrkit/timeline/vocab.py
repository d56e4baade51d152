"""The timeline vocabulary: tokens, ids and per-code quantile cut points, fitted on training
events only and saved as a versioned JSON artifact (never a pickle).

Binning follows the source (methods.md 3.3): a value's bin is the number of cut points at or
below it (numpy's digitize), so a value equal to a cut point goes to the upper bin and a
constant code puts everything in the top bin; NaN becomes the `nan` token. Applying a frozen
vocabulary never refits: unseen codes become `UNK` and are counted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from ehrkit.errors import DataError

FORMAT, VERSION = "ehrkit.timeline.vocabulary", 1
QUANTIZERS = {"deciles": 10, "ventiles": 20, "centiles": 100}
SPECIALS = ["PAD", "TL_START", "TL_END", "TRUNC", "UNK", "nan"]
PAD, UNK, NAN = "PAD", "UNK", "nan"
# Time-gap tokens between events (the source's later versions): (token, lower bound, minutes).
TIME_GAPS = [("T_5m-15m", 5), ("T_15m-1h", 15), ("T_1h-2h", 60), ("T_2h-6h", 120),
             ("T_6h-12h", 360), ("T_12h-1d", 720), ("T_1d-3d", 1440), ("T_3d-1w", 4320),
             ("T_1w-2w", 10080), ("T_2w-1mt", 20160), ("T_1mt-3mt", 43200),
             ("T_3mt-6mt", 129600), ("T_6mt+", 259200)]


@dataclass(frozen=True)
class VocabSettings:
    quantizer: str = "deciles"
    discrete_max: int = 0  # codes with at most this many distinct values bin by those values
    fused: bool = False  # one token per (code, bin), like LAB_potassium_Q3
    time_tokens: bool = False  # gap tokens between events

    def __post_init__(self):
        if self.quantizer not in QUANTIZERS:
            raise DataError(f"unknown quantizer '{self.quantizer}'; use one of {', '.join(QUANTIZERS)}")

    @property
    def bins(self) -> int:
        return max(QUANTIZERS[self.quantizer], self.discrete_max)


@dataclass
class Vocabulary:
    tokens: list[str]
    cuts: dict[str, list[float]]  # binned code -> ascending cut points
    settings: VocabSettings
    fitted_on: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self.index.get(token, self.index[UNK])

    def save(self, path: str | Path) -> None:
        from ehrkit.io import atomic_path

        payload = {"format": FORMAT, "version": VERSION, "settings": asdict(self.settings),
                   "fitted_on": self.fitted_on, "tokens": self.tokens, "cuts": self.cuts}
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a readable vocabulary file ({type(exc).__name__})") from None
        if payload.get("format") != FORMAT or payload.get("version") != VERSION:
            raise DataError(f"{path}: not an ehrkit timeline vocabulary (format {FORMAT} "
                            f"version {VERSION})")
        return cls(payload["tokens"], payload["cuts"], VocabSettings(**payload["settings"]),
                   payload.get("fitted_on", {}))


def fit(events: pl.LazyFrame, settings: VocabSettings) -> Vocabulary:
    """Learn tokens and cut points from (training) events."""
    codes = (events.group_by("code").agg(pl.col("binned").any(), pl.col("section").min(),
                                         pl.col("table").min())
             .sort("section", "table", "code").collect())
    labels = sorted(events.select(pl.col("label").drop_nulls().unique()).collect()["label"])
    binned = codes.filter("binned")["code"].to_list()
    cuts = _cut_points(events.filter(pl.col("binned")), settings)
    for code in binned:
        cuts.setdefault(code, [])  # a code seen only with missing values: everything in Q0
    tokens = list(SPECIALS)
    if settings.time_tokens:
        tokens += [name for name, _ in TIME_GAPS]
    if settings.fused:
        for code in codes["code"]:
            tokens.append(code) if code not in cuts else tokens.extend(
                [f"{code}_Q{k}" for k in range(settings.bins)] + [f"{code}_{NAN}"])
    else:
        tokens += [f"Q{k}" for k in range(settings.bins)]
        tokens += [c for c in codes["code"] if c not in SPECIALS]
    tokens += [label for label in labels if label not in tokens]
    n_events = events.select(pl.len()).collect().item()
    return Vocabulary(tokens, cuts, settings, {"events": n_events, "codes": codes.height})


def _cut_points(binned: pl.LazyFrame, settings: VocabSettings) -> dict[str, list[float]]:
    finite = binned.filter(pl.col("value").is_finite())
    n = QUANTIZERS[settings.quantizer]
    qs = [k / n for k in range(1, n)]
    stats = finite.group_by("code").agg(
        [pl.col("value").quantile(q, interpolation="linear").alias(f"q{i}") for i, q in enumerate(qs)]
        + [pl.col("value").unique().sort().alias("_distinct"), pl.col("value").n_unique().alias("_n")]
    ).collect()
    cuts = {}
    for row in stats.iter_rows(named=True):
        if 0 < row["_n"] <= settings.discrete_max:
            cuts[row["code"]] = [float(v) for v in row["_distinct"][1:]]  # one bin per value
        else:
            cuts[row["code"]] = [float(row[f"q{i}"]) for i in range(len(qs))]
    return cuts


def assign_bins(frame: pl.DataFrame, vocab: Vocabulary) -> pl.DataFrame:
    """Add `bin`: the quantile bin of each binned event (-1 for a missing value, null when the
    event is not binned or its code has no cut points)."""
    frame = frame.with_row_index("_row")
    numeric = frame.filter(pl.col("binned") & pl.col("value").is_finite()) \
        .select("_row", "code", "value").sort("value")
    table = _cut_table(vocab)
    if numeric.height and table.height:
        numeric = numeric.join_asof(table, left_on="value", right_on="cut", by="code",
                                    strategy="backward", check_sortedness=False)
        numeric = numeric.with_columns(pl.col("bin").fill_null(0))
    else:
        numeric = numeric.with_columns(pl.lit(0, pl.Int32).alias("bin"))
    known = pl.col("code").is_in(list(vocab.cuts))
    frame = frame.join(numeric.select("_row", "bin"), on="_row", how="left")
    missing = pl.col("binned") & ~pl.col("value").is_finite().fill_null(False)
    return frame.with_columns(
        pl.when(missing & known).then(pl.lit(-1, pl.Int32)).otherwise(pl.col("bin")).alias("bin")
    ).sort("_row").drop("_row")


def _cut_table(vocab: Vocabulary) -> pl.DataFrame:
    """(code, cut, bin) with bin = how many cut points are <= cut; duplicates keep the largest."""
    rows = [(code, float(cut), k + 1) for code, cuts in vocab.cuts.items() for k, cut in enumerate(cuts)]
    table = pl.DataFrame(rows, schema={"code": pl.String, "cut": pl.Float64, "bin": pl.Int32},
                         orient="row")
    return table.group_by("code", "cut").agg(pl.col("bin").max()).sort("cut")
