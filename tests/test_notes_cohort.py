"""`notes cohort --readmission`: ClinicalBERT's 30-day readmission label on hand-made
admissions, MIMIC-III and MIMIC-IV layouts, CSV input, splits, balancing, the three note setups
on synthetic notes, the real MIMIC-III demo ADMISSIONS, and error paths."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from ehrkit.notes.cohort import CohortConfig, build

DEMO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mimic-iii-demo"
SECRET = "SECRET-PATIENT-DIAGNOSIS"
T0 = datetime(2100, 1, 1, 12, 0)


def at(days: float) -> str:
    return (T0 + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


def adm(subject, hadm, start, end, kind="EMERGENCY", death=None):
    return {"SUBJECT_ID": subject, "HADM_ID": hadm, "ADMITTIME": at(start), "DISCHTIME": at(end),
            "DEATHTIME": at(death) if death is not None else None, "ADMISSION_TYPE": kind,
            "DIAGNOSIS": SECRET}


# hadm_id -> expected label; absent ones are excluded
ADMISSIONS = [
    adm(1, 11, 0, 5), adm(1, 12, 34, 40),                     # 29 days later: 1; last: 0
    adm(2, 21, 0, 5), adm(2, 22, 36, 40),                     # 31 days: 0
    adm(3, 31, 0, 5), adm(3, 32, 35, 38),                     # exactly 30 days: 0 (< 30)
    adm(4, 41, 0, 5), adm(4, 42, 10, 12, "ELECTIVE"),         # next is elective: 0
    adm(5, 51, 0, 5), adm(5, 52, 10, 12, "ELECTIVE"), adm(5, 53, 25, 30),  # elective skipped
    adm(6, 61, 0, 2, "NEWBORN"),                              # newborn: excluded
    adm(7, 71, 0, 5, death=5),                                # died: excluded
    adm(8, 81, 0, 5), adm(8, 82, 15, 20, "URGENT", death=20),  # readmitted, then died
    adm(9, 91, 0, 5), adm(9, 92, 5.25, 8),                    # same-day readmission: 1
    adm(10, 101, 0, 3),                                       # the only admission: 0
]
EXPECTED = {11: 1, 12: 0, 21: 0, 22: 0, 31: 0, 32: 0, 41: 0, 42: 0, 51: 1, 52: 1, 53: 0,
            81: 1, 91: 1, 92: 0, 101: 0}


def labels_of(frame: pl.DataFrame) -> dict:
    return dict(zip(frame["hadm_id"].to_list(), frame["label"].to_list()))


def run_build(rows, notes_paths=None, **config):
    frame = pl.DataFrame(rows)
    shown = list(frame.columns)
    frame = frame.rename({c: c.lower() for c in frame.columns})
    return build(frame, "admissions.jsonl", shown, notes_paths, None, CohortConfig(**config))


def test_label_follows_clinicalbert():
    records, stats = run_build(ADMISSIONS, admissions_only=True)
    assert labels_of(records) == EXPECTED
    assert records.schema["label"] == pl.Int8
    assert (stats.admissions, stats.newborn, stats.death, stats.cohort) == (18, 1, 2, 15)
    assert stats.cohort_positive == 5


def test_mimic_iv_types_and_elective_override():
    rows = [adm(1, 11, 0, 5, "EW EMER."), adm(1, 12, 10, 12, "SURGICAL SAME DAY ADMISSION"),
            adm(2, 21, 0, 5), adm(2, 22, 10, 12, "DIRECT EMER."),
            adm(3, 31, 0, 5), adm(3, 32, 10, 12, "EU OBSERVATION"),
            adm(4, 41, 0, 5), adm(4, 42, 10, 12, "ELECTIVE")]
    rows = [{k.lower(): v for k, v in r.items()} for r in rows]
    records, _ = run_build(rows, admissions_only=True)
    assert labels_of(records) == {11: 0, 12: 0, 21: 1, 22: 0, 31: 1, 32: 0, 41: 0, 42: 0}
    records, _ = run_build(rows, admissions_only=True, elective=("ELECTIVE",))
    assert labels_of(records)[11] == 1


def test_mimic_iv_discharge_notes(tmp_path, ehrkit, records_of):
    rows = [{k.lower(): v for k, v in r.items()} for r in ADMISSIONS]
    (tmp_path / "admissions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    notes = [{"note_id": f"{r['subject_id']}-DS-{r['hadm_id']}", "subject_id": r["subject_id"],
              "hadm_id": r["hadm_id"], "note_type": "DS", "note_seq": 1,
              "charttime": r["dischtime"][:10] + " 00:00:00", "text": f"summary {r['hadm_id']}"}
             for r in rows]
    notes.append({**notes[0], "note_id": "rr", "note_type": "RR", "text": "radiology"})
    (tmp_path / "discharge.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    done = ehrkit("notes", "cohort", "--admissions", "admissions.jsonl", "discharge.jsonl",
                  "--readmission")
    assert done.returncode == 0, done.stderr.decode()
    out = records_of(done.stdout)
    assert {r["hadm_id"]: r["label"] for r in out} == EXPECTED
    assert {r["category"] for r in out} == {"Discharge summary"}
    assert all(r["text"] == f"summary {r['hadm_id']}" for r in out)


def write_csv(path: Path, rows: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=csv.QUOTE_NONNUMERIC)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return path


@pytest.mark.parametrize("name", ["ADMISSIONS.csv", "ADMISSIONS.csv.gz"])
def test_csv_admissions_and_notes(tmp_path, ehrkit, records_of, name):
    write_csv(tmp_path / name, ADMISSIONS)
    notes = [{"ROW_ID": i, "SUBJECT_ID": r["SUBJECT_ID"], "HADM_ID": r["HADM_ID"],
              "CHARTDATE": r["DISCHTIME"][:10], "CHARTTIME": "", "CATEGORY": "Discharge summary",
              "TEXT": "line one,\n\"quoted\" line two"} for i, r in enumerate(ADMISSIONS)]
    write_csv(tmp_path / "NOTEEVENTS.csv.gz", notes)
    done = ehrkit("notes", "cohort", "--admissions", name, "NOTEEVENTS.csv.gz", "--readmission",
                  "-o", "out.parquet")
    assert done.returncode == 0, done.stderr.decode()
    out = records_of(tmp_path / "out.parquet")
    assert {r["hadm_id"]: r["label"] for r in out} == EXPECTED
    assert out[0]["text"] == "line one,\n\"quoted\" line two"
    assert isinstance(out[0]["row_id"], int)


# ------------------------------------------------------------------ synthetic notes

@pytest.fixture(scope="module")
def synth(tmp_path_factory, ehrkit_env):
    """Synthetic NOTEEVENTS and ADMISSIONS with planted readmissions."""
    where = tmp_path_factory.mktemp("cohort")
    done = subprocess.run(["ehrkit", "synth", "notes", "-n", "3000", "--seed", "1", "-o",
                           "notes.parquet", "--admissions", "admissions.parquet", "-q"],
                          cwd=where, env=ehrkit_env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return where


def cohort(synth, *args, output="out.parquet"):
    done = subprocess.run(["ehrkit", "notes", "cohort", "--admissions", "admissions.parquet",
                           "--readmission", *args, "-o", output], cwd=synth,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return pl.read_parquet(synth / output), done.stderr.decode()


@pytest.fixture(scope="module")
def admissions(synth):
    frame = pl.read_parquet(synth / "admissions.parquet")
    return frame.with_columns(pl.col("admittime", "dischtime").str.to_datetime())


def test_discharge_setup(synth, admissions):
    out, err = cohort(synth, "notes.parquet")
    assert set(out["category"]) == {"Discharge summary"}
    assert not out.select("hadm_id").is_duplicated().any()  # the last summary only
    assert out.schema["label"] == pl.Int8 and set(out["split"]) == {"train", "tuning", "held_out"}
    assert {"row_id", "chartdate", "charttime", "description", "text"} <= set(out.columns)
    assert "notes discharge:" in err and "split by patient" in err
    cohort_ids = set(admissions.filter((pl.col("admission_type") != "NEWBORN")
                                       & pl.col("deathtime").is_null())["hadm_id"])
    assert set(out["hadm_id"]) <= cohort_ids and len(out) > 0.9 * len(cohort_ids)


@pytest.mark.parametrize("setup,days", [("early-2d", 2), ("early-3d", 3)])
def test_early_setups(synth, admissions, setup, days):
    out, _ = cohort(synth, "notes.parquet", "--notes", setup)
    joined = out.join(admissions.select("hadm_id", "admittime", "dischtime"), on="hadm_id")
    note_day = pl.col("charttime").str.to_datetime().dt.date().fill_null(
        pl.col("chartdate").str.to_date())
    after = (note_day - pl.col("admittime").dt.date()).dt.total_days()
    assert joined.select((after < days).all()).item()
    stay = (pl.col("dischtime") - pl.col("admittime")).dt.total_seconds() / 86400
    assert joined.select((stay >= days).all()).item()  # still in hospital, every split
    assert len(set(out["category"])) > 1

    source, _ = cohort(synth, "notes.parquet", "--notes", setup, "--still-in-hospital",
                       "held-out", output="source.parquet")
    short = source.join(admissions, on="hadm_id").filter(
        (pl.col("dischtime") - pl.col("admittime")).dt.total_seconds() < days * 86400)
    assert len(short) and "held_out" not in set(short["split"])  # ClinicalBERT: test set only

    concat, _ = cohort(synth, "notes.parquet", "--notes", setup, "--concat",
                       output="concat.parquet")
    assert not concat["hadm_id"].is_duplicated().any()
    assert concat["n_notes"].sum() == len(out)


def test_patient_split_and_shared_splits(synth):
    discharge, _ = cohort(synth, "notes.parquet")
    early, _ = cohort(synth, "notes.parquet", "--notes", "early-3d", output="early.parquet")
    per_patient = discharge.group_by("subject_id").agg(pl.col("split").n_unique())
    assert per_patient["split"].max() == 1
    shares = discharge["split"].value_counts(normalize=True)
    train = shares.filter(pl.col("split") == "train")["proportion"].item()
    assert 0.7 < train < 0.9
    both = discharge.select("hadm_id", "split").join(early.select("hadm_id", "split").unique(),
                                                     on="hadm_id")
    assert (both["split"] == both["split_right"]).all()  # one split per seed, every setup
    again, _ = cohort(synth, "notes.parquet", output="again.parquet")
    assert again.equals(discharge)


def test_split_by_admission_warns(synth):
    out, err = cohort(synth, "--admissions-only", "--split-by", "admission")
    assert "warning: --split-by admission" in err
    assert set(out.columns) == {"subject_id", "hadm_id", "label", "split"}


def test_balance(synth):
    out, err = cohort(synth, "notes.parquet", "--balance")
    train = out.filter(pl.col("split") == "train")
    assert train["label"].sum() == (train["label"] == 0).sum() > 0
    held = out.filter(pl.col("split") == "held_out")
    assert (held["label"] == 0).sum() > held["label"].sum()  # natural prevalence kept
    assert "training negatives dropped" in err


def test_notes_from_stdin(synth):
    data = (synth / "notes.parquet").read_bytes()
    done = subprocess.run(["ehrkit", "notes", "cohort", "--admissions", "admissions.parquet",
                           "--readmission", "-q"], cwd=synth, input=data, capture_output=True,
                          timeout=120)
    assert done.returncode == 0 and done.stderr == b""
    assert len(done.stdout.splitlines()) == len(cohort(synth, "notes.parquet")[0])


# ------------------------------------------------------------------ real data and errors

def test_real_mimic_iii_demo_admissions(ehrkit, records_of):
    path = DEMO / "ADMISSIONS.csv.gz"
    if not path.is_file():
        pytest.skip("../shared/data/mimic-iii-demo is absent (only the team's checkout has it)")
    done = ehrkit("notes", "cohort", "--admissions", path, "--readmission", "--admissions-only")
    assert done.returncode == 0, done.stderr.decode()
    out = records_of(done.stdout)
    # 129 admissions, no NEWBORN, 40 with a death time: 89 remain, 11 readmitted in 30 days
    assert len(out) == 89 and sum(r["label"] for r in out) == 11
    assert "129 admissions read; excluded 0 newborn, 40 with a death" in done.stderr.decode()


def test_missing_field_names_file_and_fields(tmp_path, ehrkit):
    rows = [{k: v for k, v in r.items() if k != "DISCHTIME"} for r in ADMISSIONS]
    write_csv(tmp_path / "ADMISSIONS.csv", rows)
    done = ehrkit("notes", "cohort", "--admissions", "ADMISSIONS.csv", "--readmission",
                  "--admissions-only")
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "ADMISSIONS.csv: field 'dischtime' not found" in err and "ADMITTIME, DEATHTIME" in err
    assert SECRET not in err


def test_missing_note_field_and_bad_csv(tmp_path, ehrkit):
    write_csv(tmp_path / "ADMISSIONS.csv", ADMISSIONS)
    notes = [{"SUBJECT_ID": 1, "HADM_ID": 11, "CHARTDATE": "2100-01-02", "TEXT": SECRET}]
    write_csv(tmp_path / "NOTES.csv", notes)
    done = ehrkit("notes", "cohort", "--admissions", "ADMISSIONS.csv", "NOTES.csv",
                  "--readmission")
    err = done.stderr.decode()
    assert done.returncode == 1 and "NOTES.csv: field 'category' not found" in err
    assert SECRET not in err
    (tmp_path / "BAD.csv").write_text(f"SUBJECT_ID,HADM_ID\n1,2,{SECRET}\n")
    done = ehrkit("notes", "cohort", "--admissions", "ADMISSIONS.csv", "BAD.csv", "--readmission")
    assert done.returncode == 1 and "BAD.csv: not a readable CSV file" in done.stderr.decode()
    assert SECRET not in done.stderr.decode()
    assert not (tmp_path / "out.parquet").exists()


def test_repeated_admission_is_an_error(tmp_path, ehrkit):
    write_csv(tmp_path / "ADMISSIONS.csv", ADMISSIONS + ADMISSIONS[:1])
    done = ehrkit("notes", "cohort", "--admissions", "ADMISSIONS.csv", "--readmission",
                  "--admissions-only", "-o", "out.jsonl")
    assert done.returncode == 1 and "2 rows share their (subject_id, hadm_id)" in done.stderr.decode()
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("args", [[], ["--readmission", "--split-fractions", "0.5,0.1"],
                                  ["--readmission", "--concat", "--admissions-only"]])
def test_usage_errors(tmp_path, ehrkit, args):
    write_csv(tmp_path / "ADMISSIONS.csv", ADMISSIONS)
    done = ehrkit("notes", "cohort", "--admissions", "ADMISSIONS.csv", "--admissions-only", *args)
    assert done.returncode == 2


def test_unparsable_dates_warn_without_values(tmp_path, ehrkit, records_of):
    rows = [dict(r) for r in ADMISSIONS]
    rows[0]["DISCHTIME"] = SECRET
    write_csv(tmp_path / "ADMISSIONS.csv", rows)
    done = ehrkit("notes", "cohort", "--admissions", "ADMISSIONS.csv", "--readmission",
                  "--admissions-only")
    err = done.stderr.decode()
    assert done.returncode == 0 and "1 values of field 'dischtime' are not date-times" in err
    assert SECRET not in err
    assert {r["hadm_id"]: r["label"] for r in records_of(done.stdout)}[11] == 0


def test_early_notes_count_calendar_days(tmp_path):
    """Day of a note minus the day of admission, as ClinicalBERT computes it: after a 23:00
    admission, a note at 00:30 two calendar days later is out of the 2-day window."""
    rows = [adm(1, 11, 0.45, 6)]  # admitted 2100-01-01 22:48
    notes = [{"row_id": 1, "charttime": "2100-01-02 23:59:00", "chartdate": "2100-01-02"},
             {"row_id": 2, "charttime": "2100-01-03 00:30:00", "chartdate": "2100-01-03"},
             {"row_id": 3, "charttime": None, "chartdate": "2100-01-02"},  # CHARTDATE only
             {"row_id": 4, "charttime": None, "chartdate": "2099-12-31"}]  # before admission
    notes = [{**n, "subject_id": 1, "hadm_id": 11, "category": "Nursing", "text": "x"}
             for n in notes]
    (tmp_path / "n.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    kept = {}
    for setup in ("early-2d", "early-3d"):
        records, stats = run_build(rows, [str(tmp_path / "n.jsonl")], notes=setup)
        kept[setup] = sorted(records["row_id"].to_list())
        assert stats.notes_read == 4
    assert kept == {"early-2d": [1, 3, 4], "early-3d": [1, 2, 3, 4]}


def test_doctests():
    import doctest

    from ehrkit.notes import cohort

    assert doctest.testmod(cohort).failed == 0
