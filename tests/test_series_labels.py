"""`timeline series --derive-labels`: derangements over the whole stay (after hour T too), one
declarative table, labels left out when the source lacks their variable, names in the schema."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.cli import run
from ehrkit.timeline import series_labels as sl
from ehrkit.timeline.series_sources import PHYSIONET_VARIABLES

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHYSIONET = DATA / "series" / "physionet2019" / "training_setB_p100001-p109271.tar.gz"
HEADER = PHYSIONET_VARIABLES + ["Age", "Gender", "ICULOS", "SepsisLabel"]
PHYSIONET_NAMES = [lb.name for lb in sl.LABELS if lb.physionet]
CLIF_NAMES = [lb.name for lb in sl.LABELS if lb.clif]
MARKER = "ZZMARKER-7f3a"  # a stay id: must never reach stderr


def psv(rows: list[dict], header: list[str] = HEADER) -> bytes:
    lines = ["|".join(header)] + ["|".join(str(r.get(c, "NaN")) for c in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def cli(*args) -> int:
    return run(["timeline", "series", *map(str, args)])


def labelled(path: Path) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The label names of a Parquet output and, per stay, {name: 0/1}."""
    table = pq.read_table(path)
    names = json.loads(table.schema.metadata[sl.NAMES_KEY])
    return names, {r["stay_id"]: dict(zip(names, r["derived"])) for r in table.to_pylist()}


# ----------------------------------------------------------------------------- PhysioNet

# T = 4 hours. p1's derangements all come after hour 4 (the input window shows none of them);
# p2 sits exactly on the thresholds (strict comparisons: no label) and is deranged inside the
# window; p3 has no rows after the header.
STAYS = {
    f"{MARKER}-p1.psv": psv([{"HR": 80, "MAP": 80, "Temp": 37, "ICULOS": k} for k in (1, 2, 3, 4)]
                            + [{"HR": 131, "ICULOS": 9}, {"Lactate": 3.4, "ICULOS": 20},
                               {"MAP": 58, "Temp": 38.9, "ICULOS": 30},
                               {"WBC": 2.9, "Platelets": 90, "ICULOS": 61}]),
    "p2.psv": psv([{"HR": 100, "MAP": 65, "Temp": 36, "Lactate": 2, "O2Sat": 89.5, "ICULOS": 1},
                   {"HR": 49, "Glucose": 181, "ICULOS": 2}]),
    "p3.psv": psv([]),
}


def _physionet_dir(tmp_path: Path, stays: dict[str, bytes] = STAYS) -> Path:
    directory = tmp_path / "psv"
    directory.mkdir()
    for name, data in stays.items():
        (directory / name).write_bytes(data)
    return directory


def test_derangements_after_hour_t_are_labelled(tmp_path, capsys):
    source = _physionet_dir(tmp_path)
    assert cli(source, "--hours", 4, "--impute", "none", "--derive-labels", "-o",
               tmp_path / "o.parquet") == 0
    names, labels = labelled(tmp_path / "o.parquet")
    assert names == PHYSIONET_NAMES and "low_gcs" not in names  # PhysioNet has no GCS
    p1 = {n for n, v in labels[f"{MARKER}-p1"].items() if v}
    assert p1 == {"tachycardia", "hyperlactataemia", "hypotension", "fever", "leukopenia",
                  "thrombocytopenia"}
    assert {n for n, v in labels["p2"].items() if v} == {"bradycardia", "hypoxaemia",
                                                         "hyperglycaemia"}
    assert set(labels["p3"].values()) == {0}
    # ... while p1's inputs (the first 4 hours) show none of them
    rows = pq.read_table(tmp_path / "o.parquet").to_pylist()
    hr = PHYSIONET_VARIABLES.index("HR")
    assert [hour[hr] for hour in rows[0]["values"]] == [80.0] * 4
    err = capsys.readouterr().err
    assert "derived labels (20, prevalence over 3 stays): tachycardia 33.3%, bradycardia 33.3%" in err
    assert "left out, variable absent from the source: low_gcs" in err
    assert MARKER not in err and "131" not in err


def test_field_names_and_definitions_are_written(tmp_path):
    source = _physionet_dir(tmp_path)
    out = tmp_path / "o.parquet"
    assert cli(source, "--hours", 4, "--derive-labels", "-o", out) == 0
    table = pq.read_table(out)
    assert table.schema.field("derived").type == pa.list_(pa.int8())
    assert table.schema.names[-2:] == ["sepsis", "derived"]
    definitions = json.loads(table.schema.metadata[sl.DEFINITIONS_KEY])
    assert definitions[:2] == ["HR > 100 beats/min", "HR < 50 beats/min"]
    assert {len(d) for d in table["derived"].to_pylist()} == {20}
    # empty output: the field and its names still there
    assert cli(source, "--derive-labels", "--limit", 0, "-o", tmp_path / "e.parquet") == 0
    empty = pq.read_table(tmp_path / "e.parquet")
    assert empty.num_rows == 0 and json.loads(empty.schema.metadata[sl.NAMES_KEY]) == PHYSIONET_NAMES
    # JSONL: the field in every record
    assert cli(source, "--derive-labels", "-o", tmp_path / "o.jsonl") == 0
    lines = (tmp_path / "o.jsonl").read_text().splitlines()
    assert [len(json.loads(line)["derived"]) for line in lines] == [20] * 3


def test_without_the_flag_nothing_changes(tmp_path):
    source = _physionet_dir(tmp_path)
    assert cli(source, "--hours", 4, "-o", tmp_path / "a.parquet") == 0
    assert cli(source, "--hours", 4, "--derive-labels", "-o", tmp_path / "b.parquet") == 0
    plain, derived = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert "derived" not in plain.schema.names
    assert b"ehrkit.label_names" not in (plain.schema.metadata or {})
    assert derived.drop_columns(["derived"]).equals(plain)


def test_physionet_labels_whose_column_is_absent_are_left_out(tmp_path, capsys):
    header = [c for c in HEADER if c not in ("Lactate", "WBC")]
    source = _physionet_dir(tmp_path, {"p1.psv": psv([{"HR": 120, "WBC": 30, "ICULOS": 1}],
                                                     header)})
    assert cli(source, "--variables", "HR", "--derive-labels", "-o", tmp_path / "o.parquet") == 0
    names, labels = labelled(tmp_path / "o.parquet")
    assert names == [n for n in PHYSIONET_NAMES
                     if n not in ("hyperlactataemia", "leukocytosis", "leukopenia")]
    assert labels["p1"]["tachycardia"] == 1
    assert "hyperlactataemia, leukocytosis, leukopenia" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CLIF

T0 = datetime(2110, 1, 1, 8, 0, tzinfo=timezone.utc)
UTC = pa.timestamp("us", tz="UTC")


def _clif_dir(tmp_path: Path, vitals: list[tuple], labs: list[tuple]) -> Path:
    """Stays h1 and h2, admitted at T0 and discharged 30 h later; events (id, hours, category,
    value). No patient_assessments table: no GCS."""
    directory = tmp_path / "clif"
    directory.mkdir()

    def events(rows, time, category, value):
        return pa.table({"hospitalization_id": pa.array([r[0] for r in rows], pa.string()),
                         time: pa.array([T0 + timedelta(hours=r[1]) for r in rows], UTC),
                         category: pa.array([r[2] for r in rows], pa.string()),
                         value: pa.array([r[3] for r in rows], pa.float64())})

    pq.write_table(pa.table({"patient_id": ["p1", "p2"], "hospitalization_id": ["h1", "h2"],
                             "admission_dttm": pa.array([T0] * 2, UTC),
                             "discharge_dttm": pa.array([T0 + timedelta(hours=30)] * 2, UTC),
                             "discharge_category": ["Home", "Expired"]}),
                   directory / "clif_hospitalization.parquet")
    pq.write_table(events(vitals, "recorded_dttm", "vital_category", "vital_value"),
                   directory / "clif_vitals.parquet")
    pq.write_table(events(labs, "lab_result_dttm", "lab_category", "lab_value_numeric"),
                   directory / "clif_labs.parquet")
    return directory


def test_clif_window_runs_from_time_zero_to_discharge(tmp_path):
    vitals = [("h1", 1, "heart_rate", 80), ("h1", 20, "heart_rate", 130),  # after T, before discharge
              ("h1", 31, "temp_c", 39.5),  # after discharge
              ("h2", -2, "heart_rate", 140), ("h2", 1, "temp_c", 35.2)]  # before admission
    labs = [("h1", 25, "lactate", 4.0), ("h2", 2, "glucose_fingerstick", 60)]
    source = _clif_dir(tmp_path, vitals, labs)
    assert cli(source, "--hours", 6, "--derive-labels", "-o", tmp_path / "o.parquet") == 0
    names, labels = labelled(tmp_path / "o.parquet")
    # only the categories these tables hold: heart rate, temperature, lactate, glucose
    assert names == ["tachycardia", "bradycardia", "fever", "hypothermia", "hyperlactataemia",
                     "hyperglycaemia", "hypoglycaemia"]
    assert {n for n, v in labels["h1"].items() if v} == {"tachycardia", "hyperlactataemia"}
    assert {n for n, v in labels["h2"].items() if v} == {"hypothermia", "hypoglycaemia"}


@pytest.fixture(scope="module")
def synth_clif(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("synth") / "clif"
    assert run(["synth", "clif", "-n", "40", "--seed", "3", "-o", str(directory), "-q"]) == 0
    return directory


def test_synthetic_clif_labels_match_the_raw_tables(synth_clif, tmp_path):
    out = tmp_path / "o.parquet"
    assert cli(synth_clif, "--derive-labels", "--group-size", 7, "-o", out, "-q") == 0
    names, labels = labelled(out)
    assert names == CLIF_NAMES and len(names) == 21  # low_gcs: CLIF charts GCS
    stays = pl.read_parquet(synth_clif / "clif_hospitalization.parquet")
    vitals = pl.read_parquet(synth_clif / "clif_vitals.parquet").join(
        stays, on="hospitalization_id").filter(
        pl.col("recorded_dttm").is_between(pl.col("admission_dttm"), pl.col("discharge_dttm")))
    for name, category, deranged in [("tachycardia", "heart_rate", pl.col("vital_value") > 100),
                                     ("hypoxaemia", "spo2", pl.col("vital_value") < 90)]:
        positive = set(vitals.filter((pl.col("vital_category") == category) & deranged)
                       ["hospitalization_id"].cast(pl.String))
        assert {s for s, v in labels.items() if v[name]} == positive
    prevalence = np.array([list(v.values()) for v in labels.values()]).mean(axis=0)
    assert 0 < prevalence[names.index("tachycardia")] < 1
    whole = tmp_path / "whole.parquet"
    assert cli(synth_clif, "--derive-labels", "-o", whole, "-q") == 0
    assert labelled(whole) == (names, labels)  # --group-size changes nothing


# ----------------------------------------------------------------------------- real data

@pytest.mark.skipif(not PHYSIONET.exists(), reason=f"real PhysioNet 2019 data absent ({PHYSIONET})")
def test_real_physionet_prevalences_are_plausible(tmp_path, capsys):
    out = tmp_path / "o.parquet"
    assert cli(PHYSIONET, "--derive-labels", "--limit", 500, "-o", out) == 0
    names, labels = labelled(out)
    assert names == PHYSIONET_NAMES
    share = dict(zip(names, np.array([list(v.values()) for v in labels.values()]).mean(axis=0)))
    print(json.dumps({n: round(float(p), 3) for n, p in share.items()}))
    assert 0.3 < share["tachycardia"] < 0.8 and 0.2 < share["hypotension"] < 0.7
    assert all(0.01 < p < 0.8 for p in share.values()), share
    assert share["hyperkalaemia"] < share["hypokalaemia"]  # as in ICU cohorts
    assert "derived labels (20, prevalence over 500 stays)" in capsys.readouterr().err
