"""MEDS input for timelines: small hand-made MEDS data, and agreement with the CLIF source on
the MIMIC-IV demo that exists in both formats."""

from __future__ import annotations

import bisect
import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.errors import DataError, UsageError
from ehrkit.timeline.events import EVENT, PREFIX, SORT_KEYS, SUFFIX, table_rank
from ehrkit.timeline.meds import MEDS_OUTCOMES, open_meds
from ehrkit.timeline.tokenize import OUTCOMES, TokenizeConfig, TokenizeStats, tokenize_group
from ehrkit.timeline.vocab import VocabSettings, fit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MEDS_DEMO, CLIF_DEMO = DATA / "meds-mimic-iv-demo", DATA / "clif-mimic-iv-demo" / "2.1"
UTC = timezone.utc
MEDS_SCHEMA = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")),
                         ("code", pa.string()), ("numeric_value", pa.float32()),
                         ("text_value", pa.string())])


def t(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2180, 5, day, hour, minute)


# subject 1: static sex, two potassium results, a text-only note, death; subject 2 elsewhere
ROWS_1 = [(1, None, "PATIENT//sex//female", None, "F"),
          (1, None, "PATIENT//height", 160.0, None),
          (1, t(1, 8), "ADT//TRANSFER_IN//icu//medical_icu", None, "MICU"),
          (1, t(1, 9), "LAB//potassium//mmol/L", 4.1, "4.1"),
          (1, t(2, 9), "LAB//potassium//mmol/L", 5.3, "5.3"),
          (1, t(2, 9), "NOTE//comment", None, "free text that must not become a token"),
          (1, t(3, 12), "MEDS_DEATH", None, None)]
ROWS_2 = [(2, None, "PATIENT//sex//male", None, "M"),
          (2, t(5, 1), "VITAL//heart_rate", 80.0, None),
          (2, t(5, 2), "VITAL//heart_rate", float("nan"), None)]


def write_shard(path: Path, rows, schema: pa.Schema = MEDS_SCHEMA) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(zip(*rows))
    pq.write_table(pa.table([pa.array(c, type=f.type) for c, f in zip(columns, schema)],
                            schema=schema), path)
    return path


def write_dataset(root: Path, shards=(ROWS_1, ROWS_2), splits=None) -> Path:
    for i, rows in enumerate(shards):
        write_shard(root / "data" / "train" / f"{i}.parquet", rows)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "dataset_metadata.json").write_text(json.dumps({"meds_version": "0.3.3"}))
    if splits:
        pq.write_table(pa.table({"subject_id": pa.array(list(splits), pa.int64()),
                                 "split": list(splits.values())}),
                       root / "metadata" / "subject_splits.parquet")
    return root


def write_labels(path: Path, rows) -> Path:
    schema = pa.schema([("subject_id", pa.int64()), ("prediction_time", pa.timestamp("us")),
                        ("boolean_value", pa.bool_())])
    return write_shard(path, rows, schema)


def ordered(events: pl.LazyFrame) -> pl.DataFrame:
    return events.collect().sort("timeline_id", *SORT_KEYS)


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "meds", splits={1: "train", 2: "held_out"})


def test_one_timeline_per_subject(dataset):
    source = open_meds(dataset)
    timelines = source.timelines()
    assert source.id_field == "subject_id" and source.extra_fields == ()
    assert timelines.columns == ["timeline_id", "patient_id", "start", "end"]
    assert timelines["timeline_id"].to_list() == ["1", "2"]
    assert timelines["patient_id"].to_list() == ["1", "2"]
    # naive MEDS times read as UTC; start and end are the first and last timed events
    assert timelines.row(0)[2:] == (t(1, 8).replace(tzinfo=UTC), t(3, 12).replace(tzinfo=UTC))
    assert source.splits_file == dataset / "metadata" / "subject_splits.parquet"


def test_static_events_in_prefix_and_markers(dataset):
    source = open_meds(dataset)
    events = ordered(source.events(source.timelines().filter(pl.col("timeline_id") == "1")))
    start, end = t(1, 8).replace(tzinfo=UTC), t(3, 12).replace(tzinfo=UTC)
    prefix = events.filter(pl.col("section") == PREFIX)
    assert prefix["code"].to_list() == ["TL_START", "PATIENT//height", "PATIENT//sex//female"]
    assert prefix["time"].to_list() == [start] * 3
    assert prefix["binned"].to_list() == [False, True, False]  # a static number is binned too
    suffix = events.filter(pl.col("section") == SUFFIX)
    assert suffix.select("code", "time").rows() == [("TL_END", end)]
    timed = events.filter(pl.col("section") == EVENT)
    assert timed["code"].to_list() == [
        "ADT//TRANSFER_IN//icu//medical_icu", "LAB//potassium//mmol/L", "LAB//potassium//mmol/L",
        "NOTE//comment", "MEDS_DEATH"]
    assert set(timed["table"]) == {table_rank("meds")}
    assert timed["binned"].to_list() == [False, True, True, False, False]
    assert timed["label"].null_count() == timed.height  # text_value never becomes a token
    assert events.filter(pl.col("timeline_id") != "1").height == 0


def test_prediction_time_excludes_later_events(dataset, tmp_path):
    labels = write_labels(tmp_path / "labels.parquet", [
        (1, t(2, 9), True),     # an event exactly at the prediction time is kept
        (1, t(1, 12), False),
        (2, t(1, 0), None)])    # before subject 2's first event: no timeline
    source = open_meds(dataset, labels=labels)
    timelines = source.timelines()
    assert source.id_field == "timeline_id"
    assert source.extra_fields == ("prediction_time", "boolean_value")
    assert timelines["timeline_id"].to_list() == ["1@2180-05-01T12:00:00", "1@2180-05-02T09:00:00"]
    assert timelines["end"].to_list() == [t(1, 12).replace(tzinfo=UTC), t(2, 9).replace(tzinfo=UTC)]
    assert timelines["boolean_value"].to_list() == [False, True]
    assert source.skipped == ["1 label rows without events at or before their prediction time"]
    events = ordered(source.events(timelines))
    early = events.filter(pl.col("timeline_id") == "1@2180-05-01T12:00:00")
    assert early.filter(pl.col("section") == EVENT)["code"].to_list() == [
        "ADT//TRANSFER_IN//icu//medical_icu", "LAB//potassium//mmol/L"]
    late = events.filter(pl.col("timeline_id") == "1@2180-05-02T09:00:00")
    timed = late.filter(pl.col("section") == EVENT)
    assert timed["value"].to_list()[1:3] == pytest.approx([4.1, 5.3])
    assert "MEDS_DEATH" not in timed["code"].to_list()
    assert late.filter(pl.col("section") == PREFIX).height == 3  # static events in every one
    assert late.filter(pl.col("section") == SUFFIX)["time"].to_list() == [
        t(2, 9).replace(tzinfo=UTC)]


def test_numeric_values_binned_end_to_end(tmp_path):
    rows = [(s, t(1, s % 24), "LAB//potassium//mmol/L", float(s), None) for s in range(1, 21)]
    rows.append((1, t(2), "LAB//potassium//mmol/L", float("nan"), None))
    rows.append((2, t(3), "NOTE//comment", None, "text only"))
    rows.sort(key=lambda r: (r[0], r[1]))
    write_shard(tmp_path / "meds" / "data" / "0.parquet", rows)
    source = open_meds(tmp_path / "meds")
    events = source.events(source.timelines())
    vocab = fit(events, VocabSettings())
    cuts = vocab.cuts["LAB//potassium//mmol/L"]
    assert len(cuts) == 9 and cuts == sorted(cuts)
    out = tokenize_group(events.collect(), vocab, TokenizeConfig(with_tokens=True),
                         TokenizeStats())
    tokens = dict(zip(out["timeline_id"], out["tokens"].to_list()))
    for subject in range(3, 21):
        q = bisect.bisect_right(cuts, float(subject))  # cut points at or below the value
        assert tokens[str(subject)] == ["TL_START", "LAB//potassium//mmol/L", f"Q{q}", "TL_END"]
    assert tokens["1"] == ["TL_START", "LAB//potassium//mmol/L", f"Q{bisect.bisect_right(cuts, 1.0)}",
                           "LAB//potassium//mmol/L", "nan", "TL_END"]
    assert tokens["2"] == ["TL_START", "LAB//potassium//mmol/L", f"Q{bisect.bisect_right(cuts, 2.0)}",
                           "NOTE//comment", "TL_END"]  # the text-only event: its code alone
    assert tokens["20"][2] == "Q9"


def test_jsonl_events_file_and_timezone(tmp_path, dataset):
    def iso(row):
        return {"subject_id": row[0], "time": row[1] and row[1].isoformat(), "code": row[2],
                "numeric_value": row[3], "text_value": row[4]}
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(iso(r)) + "\n" for r in ROWS_1 if r[3] == r[3]))
    from_jsonl = open_meds(path).timelines()
    assert from_jsonl.equals(open_meds(dataset).timelines().head(1))
    shifted = open_meds(path, timezone="Etc/GMT+6").timelines()  # UTC-6 wall clock
    assert shifted["start"].to_list() == [datetime(2180, 5, 1, 14, tzinfo=UTC)]


def test_timeline_field_gives_one_timeline_per_value(tmp_path):
    schema = MEDS_SCHEMA.append(pa.field("hospitalization_id", pa.int64()))
    write_shard(tmp_path / "meds" / "data" / "0.parquet", [
        (1, None, "PATIENT//sex//female", None, None, None),
        (1, t(1), "VITAL//spo2", 97.0, None, 10),
        (1, t(2), "VITAL//spo2", 95.0, None, 10),
        (1, t(9), "VITAL//spo2", 91.0, None, 11),
        (1, t(20), "MEDS_DEATH", None, None, None)], schema)
    source = open_meds(tmp_path / "meds", timeline_field="hospitalization_id")
    assert source.id_field == "hospitalization_id"
    timelines = source.timelines()
    assert timelines.select("timeline_id", "patient_id").rows() == [("10", "1"), ("11", "1")]
    events = ordered(source.events(timelines))
    counts = events.group_by("timeline_id", "section").len().sort("timeline_id", "section")
    assert counts["len"].to_list() == [2, 2, 1, 2, 1, 1]
    assert "MEDS_DEATH" not in events["code"].to_list()


def test_errors(tmp_path, dataset):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MEDS data"):
        open_meds(tmp_path / "empty")
    bad = write_shard(tmp_path / "bad.parquet", [(1, t(1), "X")], pa.schema(
        [("patient_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.string())]))
    with pytest.raises(DataError, match="field 'subject_id' not found"):
        open_meds(bad)
    with pytest.raises(UsageError, match="unknown time zone"):
        open_meds(dataset, timezone="Mars/Olympus")
    labels = write_labels(tmp_path / "l.parquet", [(1, t(2), True), (1, t(2), False)])
    with pytest.raises(DataError, match="share a subject_id and prediction_time"):
        open_meds(dataset, labels=labels)
    with pytest.raises(UsageError):
        open_meds(dataset, labels=labels, timeline_field="hospitalization_id")


# --------------------------------------------------------------------------- the MIMIC-IV demo

needs_demo = pytest.mark.skipif(
    not (MEDS_DEMO.is_dir() and CLIF_DEMO.is_dir()),
    reason="MIMIC-IV demo in MEDS and CLIF absent (../shared/data is not part of a clone)")


def _norm(expr: pl.Expr) -> pl.Expr:
    """CLIF category text as the CLIF-to-MEDS ETL writes it into codes."""
    return expr.str.to_lowercase().str.replace_all(" ", "_").str.replace_all("-", "_")


def _part(i: int) -> pl.Expr:
    return pl.col("code").str.split("//").list.get(i, null_on_oob=True)


def _after(prefix: str, column: str = "code") -> pl.Expr:
    return _norm(pl.col(column).str.strip_prefix(prefix))


# Event kinds that agree exactly on (hospitalization, time, category): for each, the MEDS rows
# and their category, then the CLIF events and theirs.
TIMED_KINDS = {
    "vitals": (_part(0) == "VITAL", _part(1), pl.col("code").str.starts_with("VTL_"),
               _after("VTL_")),
    "labs": (_part(0) == "LAB", _part(1), pl.col("code").str.starts_with("LAB_"), _after("LAB_")),
    "adt locations": ((_part(0) == "ADT") & (_part(1) == "TRANSFER_IN"), _part(2),
                      pl.col("code").str.starts_with("ADT_"), _after("ADT_")),
    # MEDS drops the 62 rows of sodium bicarbonate (dosed in mEq/min); see test below
    "continuous medications": (_part(0) == "MED_CON", _part(1), pl.col("code").str.starts_with("MED_")
                               & (pl.col("code") != "MED_sodium bicarbonate"), _after("MED_")),
    "numeric assessments": ((_part(0) == "PA") & pl.col("value").is_not_null(), _part(1),
                            pl.col("code").str.starts_with("ASMT_") & pl.col("value").is_not_null(),
                            _after("ASMT_")),
    # CLIF rows without a device give RESP_unknown, which MEDS has no code for
    "respiratory devices": ((_part(0) == "RESP") & (_part(1) == "device_category"), _part(2),
                            pl.col("code").str.starts_with("RESP_")
                            & (pl.col("code") != "RESP_unknown"), _after("RESP_")),
    # MEDS writes RESP//mode_category//UNK for 'Standby', which has no CLIF mode category
    "ventilator modes": ((_part(0) == "RESP") & (_part(1) == "mode_category") & (_part(2) != "UNK"),
                         _part(2), pl.col("label").str.starts_with("RESP-MODE_"),
                         _after("RESP-MODE_", "label")),
    "prone position": (pl.col("code") == "POS//prone", pl.lit("prone"),
                       pl.col("code") == "POSN_prone", pl.lit("prone")),
}
# Per stay, without times (CLIF stamps these at the timeline's start or end, MEDS at admission
# and discharge): (MEDS rows, category, CLIF rows, category).
STAY_KINDS = {
    "race": (_part(1) == "race", _part(2), pl.col("code").str.starts_with("RACE_"),
             _after("RACE_")),
    "ethnicity": (_part(1) == "ethnicity", _part(2), pl.col("code").str.starts_with("ETHN_"),
                  _after("ETHN_")),
    "sex": (_part(1) == "sex", _part(2), pl.col("code").str.starts_with("SEX_"), _after("SEX_")),
    "admission type": (_part(1) == "admission_type", _part(2),
                       pl.col("code").str.starts_with("ADMN_"), _after("ADMN_")),
    "discharge category": (_part(1) == "discharge_category", _part(2),
                           pl.col("code").str.starts_with("DSCG_"), _after("DSCG_")),
    "age": (pl.col("code") == "HOSP//age_charted", pl.col("value").cast(pl.String),
            pl.col("code") == "AGE", pl.col("value").cast(pl.String)),
}


@pytest.fixture(scope="module")
def demo_events() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(MEDS events per hospitalization, CLIF events per hospitalization) of the whole demo."""
    from ehrkit.timeline.clif import open_clif

    clif = open_clif(CLIF_DEMO)
    meds = open_meds(MEDS_DEMO, timezone="Etc/GMT+6", timeline_field="hospitalization_id")
    assert meds.timelines()["timeline_id"].sort().equals(clif.timelines()["timeline_id"].sort())
    return (meds.events(meds.timelines()).collect(), clif.events(clif.timelines()).collect())


def _multiset(events: pl.DataFrame, rows: pl.Expr, category: pl.Expr, keys) -> pl.DataFrame:
    return (events.filter(rows).select(*keys, category.alias("category"))
            .group_by(pl.all()).len().sort(pl.all()))


@needs_demo
@pytest.mark.parametrize("kind", list(TIMED_KINDS))
def test_demo_timed_events_agree_with_clif(demo_events, kind):
    meds, clif = demo_events
    meds_rows, meds_category, clif_rows, clif_category = TIMED_KINDS[kind]
    keys = ["timeline_id", "time"]
    expected = _multiset(clif.filter(pl.col("section") == EVENT), clif_rows, clif_category, keys)
    got = _multiset(meds.filter(pl.col("section") == EVENT), meds_rows, meds_category, keys)
    assert expected.height > 0
    assert got.equals(expected)


@needs_demo
@pytest.mark.parametrize("kind", list(STAY_KINDS))
def test_demo_stay_facts_agree_with_clif(demo_events, kind):
    meds, clif = demo_events
    meds_rows, meds_category, clif_rows, clif_category = STAY_KINDS[kind]
    expected = _multiset(clif, clif_rows, clif_category, ["timeline_id"])
    got = _multiset(meds, meds_rows, meds_category, ["timeline_id"])
    assert expected.height == 310 and got.equals(expected)


@needs_demo
def test_demo_known_differences(demo_events):
    """What MEDS lacks, exactly: continuous sodium bicarbonate and respiratory rows with a mode
    but no device (rows with neither are no event in either); what CLIF lacks: assessments with
    neither a number nor a category."""
    meds, clif = demo_events
    clif_events = clif.filter(pl.col("section") == EVENT)
    meds_codes = set(meds["code"])
    assert not any("sodium_bicarbonate" in c for c in meds_codes if c.startswith("MED_CON//"))
    assert clif_events.filter(pl.col("code") == "MED_sodium bicarbonate").height == 62
    assert clif_events.filter(pl.col("code") == "RESP_unknown").height == 411
    meds_pa = meds.filter(_part(0) == "PA").height
    clif_asmt = clif_events.filter(pl.col("code").str.starts_with("ASMT_")).height
    assert meds_pa - clif_asmt == 79


@needs_demo
@pytest.mark.parametrize("meds_domain, clif_prefix", [("VITAL", "VTL_"), ("LAB", "LAB_")])
def test_demo_values_agree_but_for_clipping(demo_events, meds_domain, clif_prefix):
    """Values agree (as float32) except where the ETL clipped them to a code's range: every
    MEDS value that differs is that code's smallest or largest."""
    meds, clif = demo_events
    keys = ["timeline_id", "time", "category", "value"]
    got = meds.filter(_part(0) == meds_domain).select(
        "timeline_id", "time", _part(1).alias("category"), pl.col("value").cast(pl.Float32))
    expected = clif.filter(pl.col("code").str.starts_with(clif_prefix)).select(
        "timeline_id", "time", _after(clif_prefix).alias("category"),
        pl.col("value").cast(pl.Float32))
    meds_only = got.join(expected, on=keys, how="anti", nulls_equal=True)
    clif_only = expected.join(got, on=keys, how="anti", nulls_equal=True)
    assert meds_only.height == clif_only.height < got.height // 500
    bounds = got.group_by("category").agg(pl.col("value").min().alias("lo"),
                                          pl.col("value").max().alias("hi"))
    clipped = meds_only.join(bounds, on="category").filter(
        (pl.col("value") == pl.col("lo")) | (pl.col("value") == pl.col("hi")))
    assert clipped.height == meds_only.height


@needs_demo
@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_demo_outcome_codes_flag_the_same_stays(demo_events, outcome):
    """MEDS_OUTCOMES (a code, or a prefix ending in //) marks the stays CLIF's codes mark."""
    meds, clif = demo_events
    pattern = MEDS_OUTCOMES[outcome]
    hit = (pl.col("code").str.starts_with(pattern) if pattern.endswith("//")
           else pl.col("code") == pattern)
    got = meds.group_by("timeline_id").agg(hit.any()).filter("code")["timeline_id"].sort()
    expected = clif.group_by("timeline_id").agg((pl.col("code") == OUTCOMES[outcome]).any()) \
        .filter("code")["timeline_id"].sort()
    assert got.len() > 10 and got.equals(expected)
