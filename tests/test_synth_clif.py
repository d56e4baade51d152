"""`ehrkit synth clif`: CLIF 2.1 tables, deterministic, demo-shaped, with learnable outcomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.cli import run
from ehrkit.synth import clif
from ehrkit.synth.commands import write_clif

DEMO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clif-mimic-iv-demo" / "2.1"



def _tables(n: int, seed: int, size: int = clif.BATCH_HOSPITALIZATIONS) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {t: [] for t in clif.TABLES}
    for batch in clif.clif_batches(n, seed, size):
        for name, table in batch.items():
            parts[name].append(table)
    return {name: pa.concat_tables(tables) for name, tables in parts.items()}


@pytest.fixture(scope="module")
def clif_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "clif"
    write_clif(400, 11, str(out))
    return out


@pytest.fixture(scope="module")
def frames(clif_dir) -> dict[str, pl.DataFrame]:
    return {t: pl.read_parquet(clif_dir / f"clif_{t}.parquet") for t in clif.TABLES}


@pytest.fixture(scope="module")
def outcomes(frames) -> pl.DataFrame:
    """One row per hospitalization: the four outcomes and when ICU and IMV began (hours)."""
    h = frames["hospitalization"]
    admit = h.select("hospitalization_id", "admission_dttm")

    def first(table: str, column: str, value: str, time: str, name: str) -> pl.DataFrame:
        hours = (pl.col(time) - pl.col("admission_dttm")).dt.total_minutes() / 60
        return (frames[table].filter(pl.col(column) == value).join(admit, on="hospitalization_id")
                .group_by("hospitalization_id").agg(hours.min().alias(name)))

    los = (pl.col("discharge_dttm") - pl.col("admission_dttm")).dt.total_minutes() / 60
    return (h.with_columns(los=los)
            .join(first("adt", "location_category", "icu", "in_dttm", "icu_h"),
                  on="hospitalization_id", how="left")
            .join(first("respiratory_support", "device_category", "IMV", "recorded_dttm", "imv_h"),
                  on="hospitalization_id", how="left")
            .with_columns(death=pl.col("discharge_category") == "Expired",
                          long=pl.col("los") > 168, icu=pl.col("icu_h").is_not_null(),
                          imv=pl.col("imv_h").is_not_null()))


def test_same_seed_same_tables_and_batch_size_does_not_matter():
    a, b, c = _tables(40, 5), _tables(40, 5, size=7), _tables(40, 6)
    for name in clif.TABLES:
        assert a[name].equals(b[name]), name
    assert not a["vitals"].equals(c["vitals"])
    assert a["hospitalization"].num_rows == 40


def test_directory_holds_every_table_with_declared_schema(clif_dir):
    assert sorted(p.name for p in clif_dir.iterdir()) == sorted(
        f"clif_{t}.parquet" for t in clif.TABLES)
    for name in clif.TABLES:
        assert pq.read_schema(clif_dir / f"clif_{name}.parquet").equals(clif.SCHEMAS[name])


@pytest.mark.skipif(not DEMO.is_dir(), reason="CLIF demo data absent (../shared/data is not "
                    "part of a fresh clone)")
def test_columns_and_types_match_the_mimic_iv_demo():
    for name in clif.TABLES:
        demo = pq.read_schema(DEMO / f"clif_{name}.parquet")
        ours = clif.SCHEMAS[name]
        assert ours.names == demo.names, name
        for field in ours:
            want = demo.field(field.name).type
            if want != pa.null():  # the demo leaves a few all-null columns untyped
                assert field.type == want, (name, field.name)


@pytest.mark.skipif(not DEMO.is_dir(), reason="CLIF demo data absent (../shared/data is not "
                    "part of a fresh clone)")
def test_category_values_are_ones_the_demo_uses(frames):
    for table, column in [("vitals", "vital_category"), ("labs", "lab_category"),
                          ("labs", "lab_order_category"), ("adt", "location_category"),
                          ("medication_admin_continuous", "mar_action_category"),
                          ("medication_admin_continuous", "med_dose_unit"),
                          ("patient", "sex_category"), ("position", "position_category")]:
        demo = set(pl.read_parquet(DEMO / f"clif_{table}.parquet")[column].drop_nulls())
        assert set(frames[table][column].drop_nulls()) <= demo, (table, column)


def test_mcide_categories(frames):
    allowed = {
        ("hospitalization", "discharge_category"): {
            "Home", "Skilled Nursing Facility (SNF)", "Expired", "Acute Inpatient Rehab Facility",
            "Hospice", "Long Term Care Hospital (LTACH)", "Against Medical Advice (AMA)"},
        ("hospitalization", "admission_type_category"): {"ed", "elective", "direct"},
        ("respiratory_support", "device_category"): {
            "IMV", "NIPPV", "CPAP", "High Flow NC", "Face Mask", "Trach Collar",
            "Nasal Cannula", "Room Air", "Other"},
        ("patient", "race_category"): {
            "Black or African American", "White", "American Indian or Alaska Native", "Asian",
            "Native Hawaiian or Other Pacific Islander", "Unknown", "Other"},
        ("patient", "ethnicity_category"): {"Hispanic", "Non-Hispanic", "Unknown"},
        ("medication_admin_continuous", "med_category"): {
            "norepinephrine", "vasopressin", "propofol", "fentanyl", "dexmedetomidine",
            "sodium chloride", "insulin", "heparin"},
    }
    for (table, column), values in allowed.items():
        assert set(frames[table][column].drop_nulls()) <= values, (table, column)
    assessments = set(frames["patient_assessments"]["assessment_category"])
    assert {"gcs_total", "RASS"} <= assessments
    assert set(frames["respiratory_support"]["device_category"]) >= {"IMV", "Room Air"}


def test_value_ranges(frames):
    vitals = frames["vitals"].group_by("vital_category").agg(
        lo=pl.col("vital_value").min(), hi=pl.col("vital_value").max())
    bounds = {"heart_rate": (30, 220), "sbp": (50, 240), "dbp": (20, 140), "map": (20, 200),
              "spo2": (60, 100), "temp_c": (33, 42), "respiratory_rate": (5, 50),
              "height_cm": (120, 220), "weight_kg": (35, 250)}
    for category, lo, hi in vitals.iter_rows():
        assert bounds[category][0] <= lo and hi <= bounds[category][1], category
    labs = frames["labs"]
    numeric = labs.filter(pl.col("lab_value_numeric").is_not_null())
    assert numeric.filter(pl.col("lab_value").cast(pl.Float64) != pl.col("lab_value_numeric")
                          ).height == 0
    lactate = numeric.filter(pl.col("lab_category") == "lactate")["lab_value_numeric"]
    assert 0.3 <= lactate.min() and lactate.max() <= 25
    assert labs["lab_category"].n_unique() >= 15
    rs = frames["respiratory_support"]
    assert rs["fio2_set"].drop_nulls().is_between(0.21, 1.0).all()
    pa_ = frames["patient_assessments"]
    gcs = pa_.filter(pl.col("assessment_category") == "gcs_total")["numerical_value"]
    assert gcs.is_between(3, 15).all()
    rass = pa_.filter(pl.col("assessment_category") == "RASS")["numerical_value"]
    assert rass.is_between(-5, 4).all()
    assert (frames["medication_admin_continuous"]["med_dose"] >= 0).all()


def test_records_are_consistent(frames, outcomes):
    h, patient = frames["hospitalization"], frames["patient"]
    assert (h["discharge_dttm"] > h["admission_dttm"]).all()
    assert h["hospitalization_id"].is_unique().all()
    assert set(h["patient_id"]) == set(patient["patient_id"])
    dead = set(h.filter(pl.col("discharge_category") == "Expired")["patient_id"])
    assert dead == set(patient.filter(pl.col("death_dttm").is_not_null())["patient_id"])
    last = h.sort("admission_dttm").group_by("patient_id").agg(pl.col("discharge_category").last())
    assert dead == set(last.filter(pl.col("discharge_category") == "Expired")["patient_id"])
    adt = frames["adt"].join(h.select("hospitalization_id", "admission_dttm", "discharge_dttm"),
                             on="hospitalization_id")
    assert (adt["in_dttm"] >= adt["admission_dttm"]).all()
    assert (adt["out_dttm"] <= adt["discharge_dttm"]).all()
    assert (h.group_by("patient_id").len()["len"] > 1).any()  # several stays per patient


def test_outcome_prevalences_and_timing(outcomes):
    rates = outcomes.select(pl.col("death", "long", "icu", "imv").mean()).row(0, named=True)
    assert 0.05 <= rates["death"] <= 0.20
    assert 0.15 <= rates["long"] <= 0.40
    assert 0.20 <= rates["icu"] <= 0.45
    assert 0.07 <= rates["imv"] <= 0.25
    for column in ("icu_h", "imv_h"):  # some episodes start on day one, some later
        hours = outcomes[column].drop_nulls()
        assert (hours < 24).sum() > 0 and (hours >= 24).sum() > 0


def _probe_auroc(x: np.ndarray, y: np.ndarray) -> float:
    """Held-out AUROC of a ridge-regularised linear probe, fitted on each half, scored on the other.

    Closed form in numpy, so the test stays fast (importing scikit-learn alone takes seconds).
    """
    x = np.hstack([(x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9), np.ones((len(x), 1))])
    half = len(x) // 2
    score = np.empty(len(x))
    for fit, held in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))):
        a = x[fit]
        w = np.linalg.solve(a.T @ a + np.eye(a.shape[1]), a.T @ y[fit])
        score[held] = x[held] @ w
    truth = y.astype(bool)
    ranks = np.argsort(np.argsort(score)) + 1
    positives = truth.sum()
    return (ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * (~truth).sum())


def test_first_day_vitals_and_labs_predict_outcomes(frames, outcomes):
    admit = outcomes.select("hospitalization_id", "admission_dttm")
    day_one = (pl.col("t") - pl.col("admission_dttm")).dt.total_hours() < 24

    def means(table: str, time: str, category: str, value: str) -> pl.DataFrame:
        rows = frames[table].rename({time: "t"}).join(admit, on="hospitalization_id")
        return rows.filter(day_one).pivot(on=category, index="hospitalization_id", values=value,
                                          aggregate_function="mean")

    vitals = means("vitals", "recorded_dttm", "vital_category", "vital_value")
    labs = means("labs", "lab_result_dttm", "lab_category", "lab_value_numeric")
    data = (outcomes.join(vitals, on="hospitalization_id", how="left")
            .join(labs.select("hospitalization_id", "lactate", "bicarbonate"),
                  on="hospitalization_id", how="left"))
    features = ["heart_rate", "map", "spo2", "respiratory_rate", "lactate", "bicarbonate"]
    x = data.select(features).fill_null(strategy="mean").to_numpy()
    for outcome in ("death", "long", "icu", "imv"):
        assert _probe_auroc(x, data[outcome].to_numpy().astype(float)) > 0.7, outcome


def test_cli_writes_directory_atomically_and_replaces_it(tmp_path, capsys):
    out = tmp_path / "clif"
    assert run(["synth", "clif", "-n", "15", "--seed", "2", "-o", str(out)]) == 0
    assert "synth clif: 15 hospitalizations" in capsys.readouterr().err
    first = pq.read_table(out / "clif_vitals.parquet")
    assert run(["synth", "clif", "-n", "15", "--seed", "3", "-o", str(out)]) == 0
    assert not pq.read_table(out / "clif_vitals.parquet").equals(first)
    assert [p.name for p in tmp_path.iterdir()] == ["clif"]  # no temporary left behind


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(n, seed):
        yield from clif.clif_batches(3, seed)
        raise RuntimeError("disk full")

    monkeypatch.setattr(clif, "clif_batches", broken)
    with pytest.raises(RuntimeError):
        write_clif(10, 0, str(tmp_path / "clif"))
    assert list(tmp_path.iterdir()) == []


def test_zero_hospitalizations_gives_empty_tables(tmp_path):
    write_clif(0, 0, str(tmp_path / "empty"))
    table = pq.read_table(tmp_path / "empty" / "clif_labs.parquet")
    assert table.num_rows == 0 and table.schema.equals(clif.SCHEMAS["labs"])


def test_timestamps_are_utc_minutes(frames):
    minutes = frames["vitals"]["recorded_dttm"].dt.timestamp("us") % 60_000_000
    assert (minutes == 0).all()
    labs = frames["labs"]
    assert (labs["lab_result_dttm"] >= labs["lab_collect_dttm"]).all()
    assert str(labs["lab_collect_dttm"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
