"""`timeline tokenize`: bins and their edge cases, the vocabulary artifact, CLIF timelines token
by token, outcomes and the 24-hour cut, patient-level splits, lengths, shards, bad input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.errors import DataError, UsageError
from ehrkit.timeline import splits
from ehrkit.timeline.clif import REQUIRED, open_clif
from ehrkit.timeline.commands import SplitConfig, run_tokenize
from ehrkit.timeline.tokenize import TokenizeConfig, TokenizeStats, parse_duration, tokenize_group
from ehrkit.timeline.vocab import Vocabulary, VocabSettings, assign_bins, fit

DEMO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clif-mimic-iv-demo" / "2.1"
T0 = datetime(2150, 1, 1, 8, 0, tzinfo=timezone.utc)
TYPES = {"s": pa.string(), "t": pa.timestamp("us", tz="UTC"), "n": pa.float64()}


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def write_clif(directory: Path, tables: dict[str, list[dict]]) -> Path:
    """A CLIF directory with only the required columns, typed as CLIF types them."""
    directory.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        schema = pa.schema([(c, TYPES[k]) for c, k in REQUIRED[table].items()])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), directory / f"clif_{table}.parquet")
    return directory


def hospital(directory: Path) -> Path:
    """Two patients, three stays, every event table, same-time events and shared words."""
    patients = [
        {"patient_id": "p1", "race_category": "White", "ethnicity_category": "Non-Hispanic",
         "sex_category": "Female"},
        {"patient_id": "p2", "race_category": "Other", "ethnicity_category": "Hispanic",
         "sex_category": "Male"}]
    stays = [
        {"hospitalization_id": "h1", "patient_id": "p1", "admission_dttm": at(0),
         "discharge_dttm": at(200), "age_at_admission": 70, "admission_type_category": "ed",
         "discharge_category": "Expired"},
        {"hospitalization_id": "h2", "patient_id": "p2", "admission_dttm": at(10),
         "discharge_dttm": at(30), "age_at_admission": 40, "admission_type_category": "elective",
         "discharge_category": "Other"},
        {"hospitalization_id": "h3", "patient_id": "p1", "admission_dttm": at(500),
         "discharge_dttm": at(560), "age_at_admission": 70, "admission_type_category": "ed",
         "discharge_category": "Home"}]
    return write_clif(directory, {
        "patient": patients, "hospitalization": stays,
        "adt": [{"hospitalization_id": "h1", "in_dttm": at(0), "location_category": "ed"},
                {"hospitalization_id": "h1", "in_dttm": at(30), "location_category": "icu"},
                {"hospitalization_id": "h2", "in_dttm": at(10), "location_category": "other"},
                {"hospitalization_id": "h3", "in_dttm": at(500), "location_category": "ward"}],
        "labs": [{"hospitalization_id": h, "lab_result_dttm": at(t), "lab_category": "lactate",
                  "lab_value_numeric": v}
                 for h, t, v in [("h1", 2, 4.0), ("h1", 40, float("nan")), ("h2", 12, 1.0),
                                 ("h3", 501, 2.0)]],
        "vitals": [{"hospitalization_id": h, "recorded_dttm": at(t), "vital_category": "heart_rate",
                    "vital_value": v}
                   for h, t, v in [("h1", 2, 120.0), ("h2", 11, 70.0), ("h3", 502, 90.0)]],
        "medication_admin_continuous": [
            {"hospitalization_id": "h1", "admin_dttm": at(31), "med_category": "norepinephrine",
             "med_dose": 0.1}],
        "patient_assessments": [
            {"hospitalization_id": "h1", "recorded_dttm": at(3), "assessment_category": "gcs_total",
             "numerical_value": 9.0, "categorical_value": None},
            {"hospitalization_id": "h1", "recorded_dttm": at(3), "assessment_category": "cam_total",
             "numerical_value": None, "categorical_value": "Positive"}],
        "respiratory_support": [
            {"hospitalization_id": "h1", "recorded_dttm": at(32), "device_category": "IMV",
             "mode_category": "Other"},
            {"hospitalization_id": "h2", "recorded_dttm": at(13), "device_category": "Room Air",
             "mode_category": None}],
        "position": [
            {"hospitalization_id": "h1", "recorded_dttm": at(33), "position_category": "prone"},
            {"hospitalization_id": "h1", "recorded_dttm": at(34), "position_category": "not_prone"}],
    })


def tokenize(directory, config=TokenizeConfig(with_tokens=True), settings=VocabSettings()):
    source = open_clif(directory)
    timelines = source.timelines()
    vocab = fit(source.events(timelines), settings)
    out = tokenize_group(source.events(timelines).collect(), vocab, config, TokenizeStats())
    return {r["timeline_id"]: r for r in out.iter_rows(named=True)}, vocab


# ---------------------------------------------------------------- bins

def _vocab(cuts, settings=VocabSettings()):
    tokens = ["PAD", "TL_START", "TL_END", "TRUNC", "UNK", "nan"] + [f"Q{k}" for k in range(10)]
    return Vocabulary(tokens + list(cuts), cuts, settings)


def test_bins_follow_numpy_digitize_with_ties_going_up():
    cuts = [float(c) for c in range(1, 10)]
    values = [0.5, 1.0, 1.5, 5.0, 9.0, 9.5, -3.0]
    frame = pl.DataFrame({"code": ["A"] * len(values), "value": values, "binned": True})
    assert assign_bins(frame, _vocab({"A": cuts}))["bin"].to_list() == \
        np.digitize(values, cuts).tolist() == [0, 1, 1, 5, 9, 9, 0]


def test_a_constant_code_goes_to_the_top_bin_and_missing_values_to_nan():
    frame = pl.DataFrame({"code": ["C", "C", "C", "C"], "value": [5.0, 4.0, float("nan"), None],
                          "binned": True})
    assert assign_bins(frame, _vocab({"C": [5.0] * 9}))["bin"].to_list() == [9, 0, -1, -1]


def test_quantizers_and_discrete_mode_fit_their_cut_points():
    values = list(range(1, 101))
    events = pl.LazyFrame({"code": ["V"] * 100 + ["D"] * 100, "value": [float(v) for v in values]
                           + [float(v % 3) for v in values], "binned": True, "section": 1,
                           "table": 0, "label": pl.Series([None] * 200, dtype=pl.String)})
    for quantizer, n in [("deciles", 9), ("ventiles", 19), ("centiles", 99)]:
        vocab = fit(events, VocabSettings(quantizer))
        assert len(vocab.cuts["V"]) == n
        assert vocab.cuts["V"][n // 2] == pytest.approx(np.quantile(values, 0.5))
    discrete = fit(events, VocabSettings(discrete_max=3))
    assert discrete.cuts["D"] == [1.0, 2.0]  # values 0, 1, 2: one bin each
    assert len(discrete.cuts["V"]) == 9  # 100 distinct values: still deciles


def test_vocabulary_json_round_trip_and_format_check(tmp_path):
    vocab = _vocab({"A": [1.0, 2.0]})
    vocab.save(tmp_path / "v.json")
    again = Vocabulary.load(tmp_path / "v.json")
    assert again.tokens == vocab.tokens and again.cuts == vocab.cuts
    assert again.settings == vocab.settings
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something", "version": 1}))
    with pytest.raises(DataError, match="not an ehrkit timeline vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")


# ---------------------------------------------------------------- CLIF timelines

def test_clif_timelines_token_by_token(tmp_path):
    timelines, _ = tokenize(hospital(tmp_path / "clif"))
    h1 = timelines["h1"]["tokens"]
    assert h1 == [
        "TL_START", "RACE_white", "ETHN_non-hispanic", "SEX_female", "AGE", "Q9", "ADMN_ed",
        "ADT_ed",                                   # 0 h
        "LAB_lactate", "Q9", "VTL_heart_rate", "Q9",  # 2 h: labs before vitals at one time
        "ASMT_cam_total", "ASMT-VAL_positive",      # 3 h: same time, code order
        "ASMT_gcs_total", "Q9",
        "ADT_icu",                                  # 30 h
        "MED_norepinephrine", "Q9",                 # 31 h
        "RESP_imv", "RESP-MODE_other",              # 32 h
        "POSN_prone",                               # 33 h; not_prone emits nothing
        "LAB_lactate", "nan",                       # 40 h: a NaN value
        "DSCG_expired", "TL_END"]
    assert timelines["h2"]["tokens"] == [
        "TL_START", "RACE_other", "ETHN_hispanic", "SEX_male", "AGE", "Q0", "ADMN_elective",
        "ADT_other", "VTL_heart_rate", "Q0", "LAB_lactate", "Q0", "RESP_room air",
        "DSCG_other", "TL_END"]
    # `other` in race, adt and discharge are three tokens, not one
    assert len({"RACE_other", "ADT_other", "DSCG_other"}) == 3


def test_times_align_with_tokens(tmp_path):
    timelines, _ = tokenize(hospital(tmp_path / "clif"))
    h1 = timelines["h1"]
    assert len(h1["times"]) == len(h1["input_ids"]) == h1["length"]
    assert h1["times"][0] == at(0) and h1["times"][-1] == at(200)
    assert h1["times"] == sorted(h1["times"])


def test_outcomes_come_from_the_full_stay(tmp_path):
    timelines, _ = tokenize(hospital(tmp_path / "clif"))
    h1, h2, h3 = timelines["h1"], timelines["h2"], timelines["h3"]
    assert (h1["same_admission_death"], h2["same_admission_death"]) == (1, 0)
    assert (h1["long_length_of_stay"], h2["long_length_of_stay"], h3["long_length_of_stay"]) == (1, 0, 0)
    assert (h1["icu_admission"], h1["icu_admission_24h"]) == (1, 0)  # ICU at 30 h
    assert (h1["imv_event"], h1["imv_event_24h"], h2["imv_event"]) == (1, 0, 0)


def test_the_24h_cut_keeps_no_discharge_token_and_drops_short_stays(tmp_path):
    directory = hospital(tmp_path / "clif")
    full, vocab = tokenize(directory)
    cut, _ = tokenize(directory, TokenizeConfig(cut=timedelta(hours=24), with_tokens=True))
    assert set(cut) == {"h1", "h3"}  # h2 ends 20 h after it starts
    for timeline in cut.values():
        assert not any(t.startswith("DSCG_") or t == "TL_END" for t in timeline["tokens"])
        assert max(timeline["times"]) - min(timeline["times"]) <= timedelta(hours=24)
    assert cut["h1"]["tokens"][-2:] == ["ASMT_gcs_total", "Q9"]
    for name in ("same_admission_death", "icu_admission", "imv_event", "long_length_of_stay"):
        assert cut["h1"][name] == full["h1"][name]
    kept, _ = tokenize(directory, TokenizeConfig(cut=timedelta(hours=24), keep_short=True,
                                                 with_tokens=True))
    assert "h2" in kept


def test_truncation_and_padding(tmp_path):
    timelines, vocab = tokenize(hospital(tmp_path / "clif"),
                                TokenizeConfig(max_length=10, pad=True, with_tokens=True))
    h1, h2 = timelines["h1"], timelines["h2"]
    assert len(h1["input_ids"]) == 10 and h1["tokens"][-1] == "TRUNC" and h1["length"] == 10
    assert len(h2["input_ids"]) == 10
    full, _ = tokenize(hospital(tmp_path / "clif2"), TokenizeConfig(max_length=20, pad=True,
                                                                    with_tokens=True))
    assert full["h2"]["tokens"][15:] == ["PAD"] * 5 and full["h2"]["length"] == 15
    assert full["h2"]["times"][15:] == [None] * 5


def test_fused_and_time_gap_tokens(tmp_path):
    directory = hospital(tmp_path / "clif")
    fused, vocab = tokenize(directory, settings=VocabSettings(fused=True))
    assert "LAB_lactate_Q9" in fused["h1"]["tokens"] and "LAB_lactate_nan" in fused["h1"]["tokens"]
    assert "Q9" not in vocab.tokens
    gaps, _ = tokenize(directory, settings=VocabSettings(time_tokens=True))
    tokens = gaps["h1"]["tokens"]
    assert tokens[tokens.index("ADT_icu") - 1] == "T_1d-3d"  # 3 h -> 30 h
    assert tokens[tokens.index("DSCG_expired") - 1] == "T_3d-1w"  # 40 h -> 200 h


# ---------------------------------------------------------------- splits, fitting, shards

def test_splits_are_patient_level_in_order_of_first_admission():
    rows = [{"patient_id": f"p{i}", "start": at(i)} for i in range(10)]
    rows += [{"patient_id": "p0", "start": at(100)}]  # a later stay of the first patient
    table = splits.by_first_admission(pl.DataFrame(rows), (0.7, 0.1, 0.2))
    got = dict(table.iter_rows())
    assert [got[f"p{i}"] for i in range(10)] == ["train"] * 7 + ["tuning"] + ["held_out"] * 2
    assert table.height == 10  # one row per patient: no patient in two splits


def test_fitting_refuses_without_a_split_and_fits_on_train_only(tmp_path):
    directory = hospital(tmp_path / "clif")
    common = dict(kind=None, vocab_in=None, settings=VocabSettings(),
                  config=TokenizeConfig(), group_size=100)
    with pytest.raises(UsageError, match="needs a split"):
        run_tokenize(str(directory), str(tmp_path / "a.jsonl"), None,
                     vocab_out=str(tmp_path / "v.json"), split=SplitConfig(), **common)
    # p1 (first admitted) is train with 0.5/0.0/0.5; p2 is held out: its codes are unseen
    stats = run_tokenize(str(directory), str(tmp_path / "b.jsonl"), None,
                         vocab_out=str(tmp_path / "v.json"),
                         split=SplitConfig(assign=True, fractions=(0.5, 0.0, 0.5)), **common)
    vocab = Vocabulary.load(tmp_path / "v.json")
    assert "ADT_other" not in vocab.tokens and "RESP_room air" not in vocab.tokens
    assert stats.unknown_codes == 7  # race, ethnicity, sex, admission, adt, device, discharge
    records = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert {r["hospitalization_id"]: r["split"] for r in records} == \
        {"h1": "train", "h2": "held_out", "h3": "train"}


def test_applying_a_vocabulary_never_refits(tmp_path):
    directory = hospital(tmp_path / "clif")
    common = dict(kind=None, settings=VocabSettings(), config=TokenizeConfig(), group_size=100)
    run_tokenize(str(directory), str(tmp_path / "a.jsonl"), None, vocab_in=None,
                 vocab_out=str(tmp_path / "v.json"), split=SplitConfig(fit_all=True), **common)
    before = (tmp_path / "v.json").read_bytes()
    other = write_clif(tmp_path / "other", {
        "patient": [{"patient_id": "q", "race_category": "Asian", "ethnicity_category": "Unknown",
                     "sex_category": "Female"}],
        "hospitalization": [{"hospitalization_id": "x", "patient_id": "q", "admission_dttm": at(0),
                             "discharge_dttm": at(50), "age_at_admission": 30,
                             "admission_type_category": "osh", "discharge_category": "Hospice"}]})
    stats = run_tokenize(str(other), str(tmp_path / "b.jsonl"), None, vocab_in=str(tmp_path / "v.json"),
                         vocab_out=None, split=SplitConfig(), **common)
    assert (tmp_path / "v.json").read_bytes() == before
    assert stats.unknown_codes == 4  # race, ethnicity, admission type, discharge


def test_groups_and_shards_give_the_same_timelines(tmp_path):
    from ehrkit.synth.commands import write_clif as synth_clif

    synth_clif(60, 3, str(tmp_path / "clif"))
    common = dict(kind=None, settings=VocabSettings(), config=TokenizeConfig(), vocab_out=None,
                  split=SplitConfig())
    run_tokenize(str(tmp_path / "clif"), str(tmp_path / "fit.parquet"), None, vocab_in=None,
                 **{**common, "vocab_out": str(tmp_path / "v.json"),
                    "split": SplitConfig(assign=True)}, group_size=1000)
    one = pl.read_parquet(tmp_path / "fit.parquet").drop("split")
    run_tokenize(str(tmp_path / "clif"), str(tmp_path / "g.parquet"), None,
                 vocab_in=str(tmp_path / "v.json"), group_size=7, **common)
    assert pl.read_parquet(tmp_path / "g.parquet").drop("split").equals(one)


def _shard(source: Path, target: Path, hospitalizations: set[str]) -> Path:
    """The part of a CLIF directory that belongs to some hospitalizations."""
    target.mkdir()
    stays = pq.read_table(source / "clif_hospitalization.parquet").to_pylist()
    patients = {s["patient_id"] for s in stays if s["hospitalization_id"] in hospitalizations}
    for path in source.glob("clif_*.parquet"):
        table = pl.read_parquet(path)
        key = "hospitalization_id" if "hospitalization_id" in table.columns else "patient_id"
        keep = hospitalizations if key == "hospitalization_id" else patients
        table.filter(pl.col(key).is_in(list(keep))).write_parquet(target / path.name)
    return target


def test_shards_tokenized_separately_with_one_vocabulary_match_one_run(tmp_path):
    from ehrkit.synth.commands import write_clif as synth_clif

    synth_clif(40, 5, str(tmp_path / "clif"))
    common = dict(kind=None, settings=VocabSettings(), config=TokenizeConfig(), group_size=100)
    run_tokenize(str(tmp_path / "clif"), str(tmp_path / "all.parquet"), None, vocab_in=None,
                 vocab_out=str(tmp_path / "v.json"), split=SplitConfig(assign=True), **common)
    whole = pl.read_parquet(tmp_path / "all.parquet")
    ids = sorted(whole["hospitalization_id"])
    parts = []
    for k, chosen in enumerate([set(ids[::2]), set(ids[1::2])]):
        shard = _shard(tmp_path / "clif", tmp_path / f"shard{k}", chosen)
        run_tokenize(str(shard), str(tmp_path / f"p{k}.parquet"), None,
                     vocab_in=str(tmp_path / "v.json"), vocab_out=None,
                     split=SplitConfig(file=str(tmp_path / "all.parquet")), **common)
        parts.append(pl.read_parquet(tmp_path / f"p{k}.parquet"))
    assert pl.concat(parts).sort("hospitalization_id").equals(whole.sort("hospitalization_id"))


# ---------------------------------------------------------------- bad input

def test_bad_clif_directories_are_clear_errors(tmp_path):
    directory = hospital(tmp_path / "clif")
    (directory / "clif_hospitalization.parquet").rename(tmp_path / "moved.parquet")
    with pytest.raises(DataError, match="clif_hospitalization.parquet is missing"):
        open_clif(directory)
    (tmp_path / "moved.parquet").rename(directory / "clif_hospitalization.parquet")
    vitals = pq.read_table(directory / "clif_vitals.parquet")
    naive = vitals.set_column(1, "recorded_dttm", vitals["recorded_dttm"].cast(pa.timestamp("us")))
    pq.write_table(naive, directory / "clif_vitals.parquet")
    with pytest.raises(DataError, match="'recorded_dttm' has no time zone"):
        open_clif(directory)
    pq.write_table(vitals.drop_columns(["vital_value"]), directory / "clif_vitals.parquet")
    with pytest.raises(DataError, match="required column 'vital_value' is missing; columns present"):
        open_clif(directory)
    wrong = vitals.set_column(3, "vital_value", vitals["vital_value"].cast(pa.string()))
    pq.write_table(wrong, directory / "clif_vitals.parquet")
    with pytest.raises(DataError, match="'vital_value' is String, expected a number"):
        open_clif(directory)


def test_absent_and_empty_tables(tmp_path):
    directory = hospital(tmp_path / "clif")
    (directory / "clif_position.parquet").unlink()
    labs = pq.read_table(directory / "clif_labs.parquet")
    pq.write_table(labs.slice(0, 0), directory / "clif_labs.parquet")  # empty: no lab events
    source = open_clif(directory)
    assert source.skipped == ["position"]
    timelines, _ = tokenize(directory)
    assert not any(t.startswith(("LAB_", "POSN_")) for t in timelines["h1"]["tokens"])


def test_cli_errors_and_durations(tmp_path, ehrkit):
    directory = hospital(tmp_path / "clif")
    done = ehrkit("timeline", "tokenize", directory)
    assert done.returncode == 2 and b"exactly one of --fit" in done.stderr
    done = ehrkit("timeline", "tokenize", directory, "--fit", "v.json", "--split", "--cut", "soon")
    assert done.returncode == 2 and b"not a duration" in done.stderr
    assert parse_duration("90m") == timedelta(minutes=90)


# ---------------------------------------------------------------- real and synthetic data

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not DEMO.is_dir():
        pytest.skip("../shared/data/clif-mimic-iv-demo is absent (only the team's checkout has it)")
    out = tmp_path_factory.mktemp("demo")
    stats = run_tokenize(str(DEMO), str(out / "t.parquet"), None, kind=None, vocab_in=None,
                         vocab_out=str(out / "v.json"), settings=VocabSettings(),
                         split=SplitConfig(assign=True),
                         config=TokenizeConfig(with_tokens=True), group_size=5000)
    return pl.read_parquet(out / "t.parquet"), stats


def test_every_demo_hospitalization_is_tokenized(demo):
    frame, stats = demo
    assert frame.height == stats.timelines == 310
    assert frame["tokens"].list.first().unique().to_list() == ["TL_START"]
    assert frame["tokens"].list.last().unique().to_list() == ["TL_END"]


def test_hand_verified_demo_timelines(demo):
    """Checked by hand against the raw tables: age 53 falls between the training cut points
    52 and 55 (Q2); `psych` occurs only in held-out stays, so it is UNK; age 93 is above every
    cut point (Q9)."""
    frame, _ = demo
    rows = {r["hospitalization_id"]: r for r in frame.iter_rows(named=True)}
    assert rows["22733922"]["tokens"] == [
        "TL_START", "RACE_black or african american", "ETHN_non-hispanic", "SEX_female", "AGE",
        "Q2", "ADMN_ed", "UNK", "DSCG_home", "TL_END"]
    assert rows["26739864"]["tokens"] == [
        "TL_START", "RACE_black or african american", "ETHN_non-hispanic", "SEX_female", "AGE",
        "Q9", "ADMN_direct", "ADT_ward", "DSCG_missing", "TL_END"]
    assert rows["26739864"]["times"][7] == datetime(2177, 2, 12, 2, 22, 8, tzinfo=timezone.utc)


@pytest.mark.parametrize("n", [20, 200])
def test_synthetic_clif_at_several_sizes(tmp_path, n):
    from ehrkit.synth.commands import write_clif as synth_clif

    synth_clif(n, 1, str(tmp_path / "clif"))
    stats = run_tokenize(str(tmp_path / "clif"), str(tmp_path / "t.parquet"), None, kind=None,
                         vocab_in=None, vocab_out=str(tmp_path / "v.json"),
                         settings=VocabSettings(), split=SplitConfig(assign=True),
                         config=TokenizeConfig(cut=timedelta(hours=24)), group_size=50)
    frame = pl.read_parquet(tmp_path / "t.parquet")
    assert frame.height == stats.timelines > 0.5 * n
    assert frame.group_by("patient_id").agg(pl.col("split").n_unique())["split"].max() == 1
