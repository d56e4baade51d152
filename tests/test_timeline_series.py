"""`ehrkit timeline series`: hourly bins (last value wins), imputation, masks, one-hot columns,
the normaliser fitted on training stays only, and the CLIF and PhysioNet 2019 readers."""

from __future__ import annotations

import io
import json
import math
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.cli import run
from ehrkit.synth.clif import clif_batches
from ehrkit.synth.clif_vocab import TABLES
from ehrkit.synth.series import VARIABLES as BENCHMARK
from ehrkit.timeline import series as ts
from ehrkit.timeline.series import Normalizer, SeriesConfig, columns, series_batches, variable_of

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHYSIONET = DATA / "series" / "physionet2019" / "training_setB_p100001-p109271.tar.gz"
T0 = datetime(2110, 1, 1, 8, 0, tzinfo=timezone.utc)
UTC = pa.timestamp("us", tz="UTC")
MARKER = "ZZMARKER-7f3a"  # a patient id: must never reach stderr


# ----------------------------------------------------------------------------- helpers

def _at(hours: float, naive: bool = False) -> datetime:
    t = T0 + timedelta(hours=hours)
    return t.replace(tzinfo=None) if naive else t


def write_clif(directory: Path, vitals=(), assessments=(), labs=(), fio2=(), stays=None,
               naive: bool = False, drop: tuple[str, str] | None = None, adt=()) -> Path:
    """A tiny CLIF directory. Events are (hospitalization_id, hours after T0, category, value);
    fio2 events (id, hours, fio2_set); adt rows (id, hours in, location_category). Stays:
    (id, patient_id, discharge category, split)."""
    directory.mkdir(parents=True, exist_ok=True)
    stays = stays or [("h1", "p1", "Home", "train"), ("h2", "p2", "Expired", "held_out")]
    time_type = pa.timestamp("us") if naive else UTC
    tables = {
        "hospitalization": {
            "patient_id": pa.array([s[1] for s in stays]),
            "hospitalization_id": pa.array([s[0] for s in stays]),
            "admission_dttm": pa.array([T0] * len(stays), UTC),
            "discharge_dttm": pa.array([_at(30)] * len(stays), UTC),
            "discharge_category": pa.array([s[2] for s in stays]),
            "split": pa.array([s[3] for s in stays])},
        "vitals": _events(vitals, "recorded_dttm", "vital_category", "vital_value", time_type, naive),
        "patient_assessments": _events(assessments, "recorded_dttm", "assessment_category",
                                       "numerical_value", time_type, naive),
        "labs": _events(labs, "lab_result_dttm", "lab_category", "lab_value_numeric", time_type,
                        naive),
        "respiratory_support": {
            "hospitalization_id": pa.array([e[0] for e in fio2], pa.string()),
            "recorded_dttm": pa.array([_at(e[1], naive) for e in fio2], time_type),
            "fio2_set": pa.array([e[2] for e in fio2], pa.float64())},
        "adt": {"hospitalization_id": pa.array([a[0] for a in adt], pa.string()),
                "in_dttm": pa.array([_at(a[1]) for a in adt], UTC),
                "location_category": pa.array([a[2] for a in adt], pa.string())},
    }
    for name, cols in tables.items():
        if drop and drop[0] == name:
            cols.pop(drop[1])
        pq.write_table(pa.table(cols), directory / f"clif_{name}.parquet")
    return directory


def _events(rows, time: str, category: str, value: str, time_type, naive: bool) -> dict:
    return {"hospitalization_id": pa.array([r[0] for r in rows], pa.string()),
            time: pa.array([_at(r[1], naive) for r in rows], time_type),
            category: pa.array([r[2] for r in rows], pa.string()),
            value: pa.array([r[3] for r in rows], pa.float64())}


def records(source, **config) -> list[dict]:
    batches = list(series_batches(str(source), SeriesConfig(**config)))
    return [r for b in batches for r in b.to_pylist()]


def column(rows: list[dict], stay: int, col: int) -> list:
    return [hour[col] for hour in rows[stay]["values"]]


def cli(*args) -> int:
    return run(["timeline", "series", *map(str, args)])


def read(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


# ----------------------------------------------------------------------------- binning

def test_last_value_in_an_hour_wins_and_values_outside_the_window_are_dropped(tmp_path):
    # rows out of time order on purpose: the time decides, not the row order
    vitals = [("h1", 0.9, "heart_rate", 90.0), ("h1", 0.1, "heart_rate", 80.0),
              ("h1", 0.5, "heart_rate", 100.0), ("h1", -0.5, "heart_rate", 70.0),
              ("h1", 5.99, "heart_rate", 60.0), ("h1", 6.0, "heart_rate", 50.0),
              ("h1", 3.0, "sbp", 120.0), ("h1", 3.0, "sbp", 125.0)]
    rows = records(write_clif(tmp_path / "c", vitals), hours=6, impute="none",
                   variables=["Heart Rate", "Systolic blood pressure"])
    assert [r["stay_id"] for r in rows] == ["h1", "h2"]
    assert column(rows, 0, 0) == [90.0, None, None, None, None, 60.0]
    assert column(rows, 0, 1) == [None, None, None, 125.0, None, None]  # same time: larger value
    assert [h[0] for h in rows[0]["mask"]] == [1, 0, 0, 0, 0, 1]
    assert rows[0]["hours"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert rows[1]["mask"] == [[0, 0]] * 6 and rows[1]["mortality"] == 1 and rows[0]["mortality"] == 0


EXPECTED = {
    "previous": [86.0, 86.0, 100.0, 100.0, 100.0, 110.0, 110.0, 110.0],
    "normal": [86.0, 86.0, 100.0, 86.0, 86.0, 110.0, 86.0, 86.0],
    "zero": [0.0, 0.0, 100.0, 0.0, 0.0, 110.0, 0.0, 0.0],
    "none": [None, None, 100.0, None, None, 110.0, None, None],
}


@pytest.mark.parametrize("strategy", list(EXPECTED))
def test_imputation_strategies(tmp_path, strategy):
    vitals = [("h1", 2.5, "heart_rate", 100.0), ("h1", 5.0, "heart_rate", 110.0)]
    rows = records(write_clif(tmp_path / "c", vitals), hours=8, impute=strategy,
                   variables=["Heart Rate"])
    assert column(rows, 0, 0) == EXPECTED[strategy]
    assert [h[0] for h in rows[0]["mask"]] == [0, 0, 1, 0, 0, 1, 0, 0]  # observed, whatever the fill


def test_one_hot_columns_and_masks_per_variable(tmp_path):
    assessments = [("h1", 1.2, "gcs_eye", 3.0), ("h1", 3.0, "gcs_eye", 7.0),  # 7: no such level
                   ("h1", 0.5, "gcs_total", 14.0)]
    source = write_clif(tmp_path / "c", vitals=[("h1", 0.0, "heart_rate", 75.0)],
                        assessments=assessments)
    names = ["Heart Rate", "Glascow coma scale eye opening"]
    assert columns(names) == ["Heart Rate"] + [f"Glascow coma scale eye opening->{k}"
                                               for k in range(1, 5)]
    assert variable_of(names) == [0, 1, 1, 1, 1]
    rows = records(source, hours=4, variables=names)
    eye = [hour[1:] for hour in rows[0]["values"]]
    assert eye == [[0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 1, 0]]  # normal 4, then 3
    assert rows[0]["mask"] == [[1, 0], [0, 1], [0, 0], [0, 0]]  # the 7 is ignored
    zero = records(source, hours=4, variables=names, impute="zero")
    assert [hour[1:] for hour in zero[0]["values"]][0] == [0, 0, 0, 0]
    none = records(source, hours=4, variables=names, impute="none")
    assert [hour[1:] for hour in none[0]["values"]][0] == [None] * 4
    ordinal = records(source, hours=4, variables=names, one_hot=False)
    assert [hour[1] for hour in ordinal[0]["values"]] == [4.0, 3.0, 3.0, 3.0]


def test_default_layout_is_the_benchmarks_17_variables():
    names = columns()
    assert len(names) == 43 and len(set(variable_of())) == 17
    assert sum("->" not in n for n in names) == 12
    assert [n for n in names if n.startswith("Glascow coma scale total")][0] == \
        "Glascow coma scale total->3"
    assert ts.CLIF_BENCHMARK["Capillary refill rate"] == ()


def test_clif_sources_fio2_and_glucose_from_either_lab(tmp_path):
    labs = [("h1", 1.0, "glucose_serum", 150.0), ("h1", 2.0, "glucose_fingerstick", 95.0),
            ("h1", 1.5, "lactate", 3.0)]
    rows = records(write_clif(tmp_path / "c", labs=labs, fio2=[("h1", 0.2, 0.4)]), hours=3,
                   impute="none", variables=["Glucose", "Fraction inspired oxygen",
                                             "labs:lactate"])
    assert column(rows, 0, 0) == [None, 150.0, 95.0]
    assert column(rows, 0, 1) == [pytest.approx(0.4), None, None]
    assert column(rows, 0, 2) == [None, 3.0, None]


def test_icu_start_counts_hours_from_the_first_icu_admission(tmp_path):
    vitals = [("h1", 1.5, "heart_rate", 80.0), ("h1", 10.2, "heart_rate", 90.0),
              ("h2", 3.0, "heart_rate", 70.0)]
    adt = [("h1", 0.0, "ed"), ("h1", 10.0, "icu"), ("h1", 20.0, "icu"), ("h2", 0.0, "ward")]
    rows = records(write_clif(tmp_path / "c", vitals, adt=adt), hours=3, impute="none",
                   variables=["Heart Rate"], start="icu")
    assert [r["stay_id"] for r in rows] == ["h1"]  # h2 was never in an ICU
    assert column(rows, 0, 0) == [90.0, None, None]
    assert rows[0]["length"] == 3  # discharged at 30 h, 20 h after ICU admission


def test_empty_output_keeps_the_schema(tmp_path):
    source = write_clif(tmp_path / "c", [("h1", 0.0, "heart_rate", 80.0)])
    assert cli(source, "--limit", 0, "-o", tmp_path / "o.parquet") == 0
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == 0 and table.schema.names[:6] == ["stay_id", "patient_id", "hours",
                                                              "values", "mask", "length"]


# ----------------------------------------------------------------------------- normaliser

def _train_test(tmp_path) -> Path:
    vitals = [("h1", 0.0, "heart_rate", 80.0), ("h1", 1.0, "heart_rate", 100.0),
              ("h2", 0.0, "heart_rate", 200.0), ("h2", 1.0, "heart_rate", 200.0)]
    return write_clif(tmp_path / "c", vitals)


def test_normaliser_is_fitted_on_training_stays_only(tmp_path):
    source = _train_test(tmp_path)
    code = cli(source, "--hours", 2, "--variables", "Heart Rate,Glascow coma scale total",
               "--fit-normalizer", tmp_path / "stats.json", "-o", tmp_path / "out.parquet")
    assert code == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["format"] == "ehrkit.series-normalizer" and stats["version"] == 1
    assert stats["variables"] == ["Heart Rate", "Glascow coma scale total"]
    assert stats["columns"][0] == "Heart Rate" and len(stats["columns"]) == 14
    assert stats["means"][0] == pytest.approx(90.0)  # h1 only: h2 (200) is held out
    assert stats["stds"][0] == pytest.approx(math.sqrt(200.0))
    assert stats["means"][1:] == [None] * 13 and stats["stds"][1:] == [None] * 13  # one-hot
    assert stats["settings"]["train_stays"] == 1 and stats["settings"]["impute"] == "previous"
    rows = read(tmp_path / "out.parquet")
    assert column(rows, 1, 0) == [pytest.approx(110 / math.sqrt(200.0))] * 2
    assert rows[0]["values"][0][1:] == [0.0] * 12 + [1.0]  # one-hot left as 0/1
    assert rows[1]["split"] == "held_out"


def test_saved_normaliser_is_applied_without_refitting(tmp_path):
    source = _train_test(tmp_path)
    stats = tmp_path / "stats.json"
    assert cli(source, "--hours", 2, "--variables", "Heart Rate", "--fit-normalizer", stats,
               "-o", tmp_path / "a.parquet") == 0
    before = stats.read_bytes()
    other = write_clif(tmp_path / "other", [("h1", 0.0, "heart_rate", 60.0)])
    assert cli(other, "--hours", 2, "--variables", "Heart Rate", "--normalizer", stats,
               "-o", tmp_path / "b.parquet") == 0
    assert stats.read_bytes() == before
    rows = read(tmp_path / "b.parquet")
    assert column(rows, 0, 0) == [pytest.approx((60 - 90) / math.sqrt(200.0))] * 2


def test_normaliser_json_round_trip_and_bad_files(tmp_path):
    fitted = Normalizer(["a"], ["a", "b->1"], [1.5, None], [2.0, None], [10, 10],
                        {"hours": 48, "impute": "previous"})
    fitted.save(str(tmp_path / "n.json"))
    loaded = Normalizer.load(str(tmp_path / "n.json"))
    assert loaded == fitted
    values = np.array([[[3.5, 1.0]]], np.float32)
    assert loaded.apply(values).tolist() == [[[1.0, 1.0]]]
    data = json.loads((tmp_path / "n.json").read_text())
    (tmp_path / "v2.json").write_text(json.dumps({**data, "version": 2}))
    with pytest.raises(ts.InputFormatError, match="version 2"):
        Normalizer.load(str(tmp_path / "v2.json"))
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ts.InputFormatError, match="not an ehrkit series normaliser"):
        Normalizer.load(str(tmp_path / "other.json"))


def test_normaliser_for_other_columns_is_refused(tmp_path, capsys):
    source = _train_test(tmp_path)
    stats = tmp_path / "stats.json"
    assert cli(source, "--variables", "Heart Rate", "--fit-normalizer", stats, "-o",
               tmp_path / "a.parquet") == 0
    assert cli(source, "--normalizer", stats, "-o", tmp_path / "b.parquet") == 1
    assert "fitted on other columns" in capsys.readouterr().err
    assert cli(source, "--normalizer", stats, "--fit-normalizer", stats) == 2
    assert not (tmp_path / "b.parquet").exists()


# ----------------------------------------------------------------------------- PhysioNet

HEADER = ts.PHYSIONET_VARIABLES + ["Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS",
                                   "SepsisLabel"]


def psv(rows: list[dict]) -> bytes:
    """A .psv file: each row gives some columns; the rest are NaN."""
    lines = ["|".join(HEADER)]
    for r in rows:
        lines.append("|".join(str(r.get(c, "NaN")) for c in HEADER))
    return ("\n".join(lines) + "\n").encode()


PSV = {
    "p000001.psv": psv([{"HR": 80, "ICULOS": 1, "SepsisLabel": 0},
                        {"HR": 82, "O2Sat": 97, "ICULOS": 2, "SepsisLabel": 0},
                        {"ICULOS": 3, "SepsisLabel": 1}]),
    "p000002.psv": psv([{"HR": 120, "ICULOS": 1, "SepsisLabel": 0},
                        {"HR": 121, "ICULOS": 2, "SepsisLabel": 0}]),
}


def _check_physionet(rows):
    assert [r["stay_id"] for r in rows] == ["p000001", "p000002"]
    assert [r["patient_id"] for r in rows] == ["p000001", "p000002"]
    assert [r["sepsis"] for r in rows] == [1, 0]
    assert [r["length"] for r in rows] == [3, 2]
    assert len(rows[0]["values"]) == 4 and len(rows[0]["values"][0]) == 34
    assert column(rows, 0, 0) == [80.0, 82.0, None, None]
    assert column(rows, 0, 1) == [None, 97.0, None, None]
    assert rows[0]["mask"][1][:3] == [1, 1, 0]


def test_physionet_directory_and_tarball(tmp_path):
    (tmp_path / "dir").mkdir()
    for name, data in PSV.items():
        (tmp_path / "dir" / name).write_bytes(data)
    _check_physionet(records(tmp_path / "dir", hours=4, impute="none"))
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as archive:
        for name, data in PSV.items():
            info = tarfile.TarInfo(f"training/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    _check_physionet(records(tmp_path / "set.tar.gz", hours=4, impute="none"))
    one = records(tmp_path / "set.tar.gz", hours=4, limit=1, variables=["HR", "Glascow coma "
                                                                        "scale total"])
    assert len(one) == 1 and len(one[0]["values"][0]) == 14  # HR + 13 GCS levels (never seen)
    bench = records(tmp_path / "dir", hours=4, variables=["benchmark"])
    assert len(bench[0]["values"][0]) == 43 and len(bench[0]["mask"][0]) == 17


def test_physionet_train_ids_choose_the_training_stays(tmp_path):
    (tmp_path / "dir").mkdir()
    for name, data in PSV.items():
        (tmp_path / "dir" / name).write_bytes(data)
    (tmp_path / "train.txt").write_text("# training stays\np000002\n")
    assert cli(tmp_path / "dir", "--hours", 2, "--variables", "HR", "--train-ids",
               tmp_path / "train.txt", "--fit-normalizer", tmp_path / "s.json", "-o",
               tmp_path / "o.parquet") == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["means"] == [pytest.approx(120.5)] and stats["counts"] == [2]


def test_physionet_splits_file_is_written_and_used_for_the_fit(tmp_path, jsonl_file):
    (tmp_path / "dir").mkdir()
    for name, data in PSV.items():
        (tmp_path / "dir" / name).write_bytes(data)
    splits = jsonl_file("splits.jsonl", [{"patient_id": "p000001", "split": "train"},
                                         {"patient_id": "p000002", "split": "held_out"}])
    assert cli(tmp_path / "dir", "--hours", 2, "--variables", "HR", "--splits-file", splits,
               "--fit-normalizer", tmp_path / "s.json", "-o", tmp_path / "o.parquet") == 0
    assert json.loads((tmp_path / "s.json").read_text())["means"] == [pytest.approx(81.0)]
    assert [r["split"] for r in read(tmp_path / "o.parquet")] == ["train", "held_out"]


@pytest.mark.skipif(not PHYSIONET.exists(), reason=f"real PhysioNet 2019 data absent ({PHYSIONET})")
def test_real_physionet_tarball_first_200_stays():
    rows = records(PHYSIONET, limit=200)
    assert len(rows) == 200 and rows[0]["stay_id"] == "p100001"
    mask = np.array([r["mask"] for r in rows])
    values = np.array([r["values"] for r in rows], np.float32)
    assert mask.shape == (200, 48, 34) and values.shape == (200, 48, 34)
    assert not np.isnan(values).any()
    inside = np.arange(48)[None, :] < np.array([r["length"] for r in rows])[:, None]
    assert mask[:, :, ts.PHYSIONET_VARIABLES.index("HR")][inside].mean() > 0.8
    assert 0 < sum(r["sepsis"] for r in rows) < 100


# ----------------------------------------------------------------------------- synthetic CLIF

@pytest.fixture(scope="module")
def synth_clif(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("synth") / "clif"
    directory.mkdir()
    parts = list(clif_batches(50, seed=4))
    for name in TABLES:
        pq.write_table(pa.concat_tables([p[name] for p in parts]),
                       directory / f"clif_{name}.parquet")
    return directory


def test_synthetic_clif_end_to_end(synth_clif, tmp_path, capsys):
    out = tmp_path / "series.parquet"
    assert cli(synth_clif, "-o", out, "--fit-normalizer", tmp_path / "stats.json") == 0
    err = capsys.readouterr().err
    assert "timeline series: 50 stays x 48 hours x 17 variables (43 value columns)" in err
    assert "no split field 'split'" in err  # fitted on all stays, with a warning
    table = pq.read_table(out)
    assert table.schema.equals(ts.output_schema([pa.field("mortality", pa.int8())]))
    mask = np.array(table["mask"].to_pylist())
    values = np.array(table["values"].to_pylist())
    assert mask.shape == (50, 48, 17) and values.shape == (50, 48, 43)
    hr = BENCHMARK.index("Heart Rate")
    assert mask[:, :6, hr].mean() > 0.5  # charted at least every four hours
    assert mask[:, :, 0].sum() == 0  # capillary refill has no CLIF source
    hospitalization = pq.read_table(synth_clif / "clif_hospitalization.parquet").to_pylist()
    expired = {h["hospitalization_id"]: int(h["discharge_category"] == "Expired")
               for h in hospitalization}
    assert {r["stay_id"]: r["mortality"] for r in table.to_pylist()} == expired
    continuous = [i for i, n in enumerate(columns()) if "->" not in n]
    assert abs(values[:, :, continuous].mean()) < 0.5  # normalised


def test_synthetic_clif_icu_start_and_stdout(synth_clif, shell):
    done = shell(f"ehrkit timeline series {synth_clif} --start icu --hours 6 --impute zero "
                 "| head -n 2")
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert len(record["values"]) == 6 and len(record["mask"][0]) == 17


def test_group_size_does_not_change_the_output_or_the_fit(synth_clif):
    a = records(synth_clif, hours=12, group_size=7)
    b = records(synth_clif, hours=12)
    assert a == b
    small = ts.Series(str(synth_clif), SeriesConfig(hours=12, group_size=7)).fit()
    whole = ts.Series(str(synth_clif), SeriesConfig(hours=12)).fit()
    assert small.counts == whole.counts
    assert small.means == pytest.approx(whole.means, rel=1e-9)
    assert small.stds == pytest.approx(whole.stds, rel=1e-9)
    values = np.array([r["values"] for r in b], np.float64).reshape(-1, 43)
    hr = columns().index("Heart Rate")
    assert whole.means[hr] == pytest.approx(values[:, hr].mean(), rel=1e-6)
    assert whole.stds[hr] == pytest.approx(values[:, hr].std(ddof=1), rel=1e-5)


# ----------------------------------------------------------------------------- errors

def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and MARKER not in err
    return err


MARKED = [("h1", MARKER, "Home", "train")]


def test_missing_column_names_file_and_column(tmp_path, capsys):
    source = write_clif(tmp_path / "c", [("h1", 0.0, "heart_rate", 80.0)], stays=MARKED,
                        drop=("vitals", "vital_value"))
    assert cli(source, "-o", tmp_path / "o.parquet") == 1
    err = _error(capsys)
    assert "clif_vitals.parquet: field 'vital_value' not found" in err
    assert not (tmp_path / "o.parquet").exists()


def test_timestamps_without_time_zone_are_refused(tmp_path, capsys):
    source = write_clif(tmp_path / "c", [("h1", 0.0, "heart_rate", 80.0)], stays=MARKED,
                        naive=True)
    assert cli(source) == 1
    err = _error(capsys)
    assert "clif_vitals.parquet: column 'recorded_dttm' holds timestamps without a time zone" in err


def test_unknown_variables(tmp_path, capsys):
    source = write_clif(tmp_path / "c", [("h1", 0.0, "heart_rate", 80.0)], stays=MARKED)
    assert cli(source, "--variables", "vitals:hartrate") == 1
    err = _error(capsys)
    assert "clif_vitals.parquet: column 'vital_category' has no category 'hartrate'" in err
    assert "did you mean heart_rate?" in err
    assert cli(source, "--variables", "Heart rate") == 1
    assert "did you mean 'Heart Rate'?" in _error(capsys)
    assert cli(source, "--variables", "charts:heart_rate") == 1
    assert "no CLIF table 'charts'" in _error(capsys)
    assert cli(source, "--variables", "respiratory_support:peep_set") == 1
    assert "clif_respiratory_support.parquet: field 'peep_set' not found" in _error(capsys)
    assert cli(source, "--variables", "labs:lactate=high") == 2
    assert cli(source, "--variables", "vitals:weird_score") == 1  # unknown and no normal value
    (tmp_path / "psv").mkdir()
    (tmp_path / "psv" / "p1.psv").write_bytes(PSV["p000001.psv"])
    assert cli(tmp_path / "psv", "--variables", "HRX=1") == 1
    assert "p1.psv: field 'HRX' not found" in _error(capsys)


def test_bad_physionet_rows_name_the_file(tmp_path, capsys):
    (tmp_path / "psv").mkdir()
    (tmp_path / "psv" / "p1.psv").write_bytes(PSV["p000001.psv"])
    (tmp_path / "psv" / "p2.psv").write_bytes(PSV["p000002.psv"].replace(b"120", b"12x0"))
    assert cli(tmp_path / "psv") == 1
    err = _error(capsys)
    assert "p2.psv: rows are not 41 pipe-separated numbers" in err and "12x0" not in err
    assert cli(tmp_path / "nowhere") == 1
    assert "no such file or directory" in _error(capsys)
