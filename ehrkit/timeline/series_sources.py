"""Readers behind `ehrkit timeline series`: which variables a source offers, and its stays in
groups, each with the events that fall on the hourly grid.

Two sources:

- **CLIF 2.x** (`clif_<table>.parquet`): stays are hospitalizations; time zero is
  `admission_dttm` (or the first ICU `in_dttm` in the adt table). `CLIF_BENCHMARK` maps the 17
  MIMIC-III benchmark variables to CLIF categories; any other variable is named `TABLE:CATEGORY`
  (`labs:lactate`, `respiratory_support:peep_set`, a column of that wide table).
- **PhysioNet 2019** (`.psv`: pipe-separated, one row per ICU hour, `ICULOS` the 1-based hour):
  a directory of files, a `.tar.gz` of them (read member by member, never extracted) or one
  file. A stay is a file; its stem is `stay_id` and `patient_id`. Row `ICULOS = k` is bin k - 1.

Memory is bounded by the group size: a group's events are read, placed and dropped before the
next group. CLIF tables are filtered by a range of sorted hospitalization ids, so Parquet
statistics skip the row groups of other stays when a table is clustered by id (as CLIF exports
and `ehrkit synth clif` are); an unclustered table is rescanned for each group.

A source can also be asked for `extra` variables (`--derive-labels`): for those it gives each
group's per-stay minimum and maximum raw value over the whole stay (time zero to discharge, or
every row of a PhysioNet file), not only over the T-hour grid.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit.errors import DataError, InputFormatError, UsageError
from ehrkit.synth.series import NORMAL_VALUES
from ehrkit.synth.series import VARIABLES as BENCHMARK_VARIABLES

HOUR_US = 3_600_000_000

# The benchmark's categorical variables and their one-hot categories. CLIF and the synthetic
# series chart GCS as numbers, so each level is one column (the benchmark's MIMIC-III strings
# give 47 columns because synonyms such as '4 Spontaneously' and 'Spontaneously' differ).
# Verbal 0 is CLIF's 'not testable' (intubated), the benchmark's '1.0 ET/Trach'.
CATEGORIES: dict[str, tuple[float, ...]] = {
    "Capillary refill rate": (0.0, 1.0),
    "Glascow coma scale eye opening": (1.0, 2.0, 3.0, 4.0),
    "Glascow coma scale motor response": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
    "Glascow coma scale total": tuple(float(k) for k in range(3, 16)),
    "Glascow coma scale verbal response": (0.0, 1.0, 2.0, 3.0, 4.0, 5.0),
}

# table: (time column, category column or None for a wide table, value column)
CLIF_TABLES = {
    "vitals": ("recorded_dttm", "vital_category", "vital_value"),
    "labs": ("lab_result_dttm", "lab_category", "lab_value_numeric"),
    "patient_assessments": ("recorded_dttm", "assessment_category", "numerical_value"),
    "respiratory_support": ("recorded_dttm", None, None),
    "medication_admin_continuous": ("admin_dttm", "med_category", "med_dose"),
    "medication_admin_intermittent": ("admin_dttm", "med_category", "med_dose"),
}
# Benchmark variable -> CLIF sources; capillary refill has none and is always missing
CLIF_BENCHMARK: dict[str, tuple[str, ...]] = {
    "Capillary refill rate": (),
    "Diastolic blood pressure": ("vitals:dbp",),
    "Fraction inspired oxygen": ("respiratory_support:fio2_set",),
    "Glascow coma scale eye opening": ("patient_assessments:gcs_eye",),
    "Glascow coma scale motor response": ("patient_assessments:gcs_motor",),
    "Glascow coma scale total": ("patient_assessments:gcs_total",),
    "Glascow coma scale verbal response": ("patient_assessments:gcs_verbal",),
    "Glucose": ("labs:glucose_serum", "labs:glucose_fingerstick"),
    "Heart Rate": ("vitals:heart_rate",),
    "Height": ("vitals:height_cm",),
    "Mean blood pressure": ("vitals:map",),
    "Oxygen saturation": ("vitals:spo2",),
    "Respiratory rate": ("vitals:respiratory_rate",),
    "Systolic blood pressure": ("vitals:sbp",),
    "Temperature": ("vitals:temp_c",),
    "Weight": ("vitals:weight_kg",),
    "pH": ("labs:ph_arterial",),
}
# Normal values (imputation defaults) for common CLIF categories named as TABLE:CATEGORY:
# the benchmark's where it has the variable, else a mid-reference value. Others need NAME=VALUE.
_COMMON_LABS = {
    "albumin": 4.0, "alt": 25.0, "ast": 25.0, "bicarbonate": 24.0, "bilirubin_total": 0.7,
    "bun": 15.0, "calcium_total": 9.2, "chloride": 102.0, "creatinine": 1.0, "hemoglobin": 13.5,
    "inr": 1.0, "lactate": 1.0, "magnesium": 2.0, "pco2_arterial": 40.0, "phosphate": 3.5,
    "platelet_count": 250.0, "po2_arterial": 95.0, "potassium": 4.2, "pt": 12.0, "ptt": 30.0,
    "sodium": 140.0, "wbc": 8.0, "ph_venous": 7.36,
}
CLIF_NORMALS: dict[str, float] = {
    **{f"labs:{k}": v for k, v in _COMMON_LABS.items()},
    "patient_assessments:RASS": 0.0, "respiratory_support:peep_set": 0.0,
}
for _name, _sources in CLIF_BENCHMARK.items():
    for _source in _sources:
        CLIF_NORMALS[_source] = NORMAL_VALUES[BENCHMARK_VARIABLES.index(_name)]

# PhysioNet 2019: the 34 physiological columns (the default variables), with normal values
PHYSIONET_NORMALS: dict[str, float] = {
    "HR": 86.0, "O2Sat": 98.0, "Temp": 36.6, "SBP": 118.0, "MAP": 77.0, "DBP": 59.0,
    "Resp": 19.0, "EtCO2": 38.0, "BaseExcess": 0.0, "HCO3": 24.0, "FiO2": 0.21, "pH": 7.4,
    "PaCO2": 40.0, "SaO2": 97.0, "AST": 25.0, "BUN": 15.0, "Alkalinephos": 80.0,
    "Calcium": 9.2, "Chloride": 102.0, "Creatinine": 1.0, "Bilirubin_direct": 0.2,
    "Glucose": 128.0, "Lactate": 1.0, "Magnesium": 2.0, "Phosphate": 3.5, "Potassium": 4.2,
    "Bilirubin_total": 0.7, "TroponinI": 0.01, "Hct": 40.0, "Hgb": 13.5, "PTT": 30.0,
    "WBC": 8.0, "Fibrinogen": 300.0, "Platelets": 250.0,
}
PHYSIONET_VARIABLES = list(PHYSIONET_NORMALS)
# Benchmark variable -> PhysioNet column, for `--variables benchmark` (the others are missing)
PHYSIONET_BENCHMARK = {
    "Diastolic blood pressure": "DBP", "Fraction inspired oxygen": "FiO2", "Glucose": "Glucose",
    "Heart Rate": "HR", "Mean blood pressure": "MAP", "Oxygen saturation": "O2Sat",
    "Respiratory rate": "Resp", "Systolic blood pressure": "SBP", "Temperature": "Temp",
    "pH": "pH",
}
SOURCES = ("clif", "physionet")


# ----------------------------------------------------------------------------- variables

@dataclass(frozen=True)
class Variable:
    """One channel of the grid: its name, where it comes from, its normal value, and its one-hot
    categories (None: continuous)."""

    name: str
    sources: tuple[str, ...]
    normal: float | None
    categories: tuple[float, ...] | None = None
    custom: bool = False  # named by the user as TABLE:CATEGORY or a column: must exist


def _benchmark(name: str, sources: tuple[str, ...]) -> Variable:
    return Variable(name, sources, NORMAL_VALUES[BENCHMARK_VARIABLES.index(name)],
                    CATEGORIES.get(name))


def resolve(kind: str, specs: Sequence[str] | None) -> list[Variable]:
    """Variables from their specs: a benchmark name, `benchmark` (all 17), a CLIF
    `TABLE:CATEGORY` or a PhysioNet column, each optionally `=NORMAL`; None gives the default.

    >>> [v.name for v in resolve("clif", ["Heart Rate", "labs:lactate=1.5"])]
    ['Heart Rate', 'labs:lactate']
    >>> resolve("physionet", ["HR"])[0].normal
    86.0
    """
    if not specs:
        specs = ["benchmark"] if kind == "clif" else PHYSIONET_VARIABLES
    out: list[Variable] = []
    for spec in (s.strip() for item in specs for s in item.split(",")):
        if spec:
            out.extend(_resolve_one(kind, spec))
    _check_unique(out)
    return out


def _resolve_one(kind: str, spec: str) -> list[Variable]:
    name, _, normal_text = spec.partition("=")
    name, normal = name.strip(), _normal(spec, normal_text)
    if name == "benchmark":
        return [_resolve_one(kind, v)[0] for v in BENCHMARK_VARIABLES]
    if name in BENCHMARK_VARIABLES:
        sources = CLIF_BENCHMARK[name] if kind == "clif" else \
            tuple(c for c in [PHYSIONET_BENCHMARK.get(name)] if c)
        var = _benchmark(name, sources)
        return [Variable(name, sources, normal, var.categories) if normal is not None else var]
    if kind == "physionet":
        return [Variable(name, (name,), PHYSIONET_NORMALS.get(name) if normal is None else normal,
                         custom=True)]
    table, colon, category = name.partition(":")
    if not colon or not category:
        close = difflib.get_close_matches(name, BENCHMARK_VARIABLES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise DataError(f"unknown variable '{name}': neither a benchmark variable nor "
                        "TABLE:CATEGORY", hint=hint + "name CLIF variables like vitals:heart_rate "
                        "or labs:lactate, or use the 17 benchmark names")
    if table not in CLIF_TABLES:
        raise DataError(f"unknown variable '{name}': no CLIF table '{table}'",
                        hint="tables: " + ", ".join(CLIF_TABLES))
    return [Variable(name, (name,), CLIF_NORMALS.get(name) if normal is None else normal,
                     custom=True)]


def _normal(spec: str, text: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--variables '{spec}': the normal value after '=' is not a number",
                         hint="write NAME=VALUE, e.g. labs:lactate=1.0") from None


def _check_unique(variables: list[Variable]) -> None:
    for items in ([v.name for v in variables], [s for v in variables for s in v.sources]):
        twice = next((x for i, x in enumerate(items) if x in items[:i]), None)
        if twice is not None:
            raise UsageError(f"--variables: '{twice}' is listed twice (or read by two variables)",
                             hint="give each variable and source once")


# ----------------------------------------------------------------------------- groups

@dataclass
class Events:
    """Observations on the grid, one per row: stay (index in the group), variable index, hourly
    bin in [0, T), an ordering key (time; the last wins within a bin) and the value."""

    stay: np.ndarray
    var: np.ndarray
    bin: np.ndarray
    order: np.ndarray
    value: np.ndarray

    @classmethod
    def empty(cls) -> "Events":
        return cls(*(np.empty(0, t) for t in (np.int64, np.int64, np.int64, np.int64, np.float64)))


@dataclass
class Group:
    """A group of stays: ids, how many bins each stay covers, per-stay fields (labels, split),
    and its events."""

    stay_ids: pa.Array
    patient_ids: pa.Array
    length: np.ndarray
    fields: dict[str, pa.Array]
    events: Events
    split: np.ndarray | None = None  # split names, for choosing training stays
    # stays x extra variables x (min, max) of the raw values over the whole stay; NaN: never
    # observed. None when the source was asked for no extra variables.
    extremes: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.stay_ids)


def detect(path: str, override: str | None = None) -> str:
    """'clif' or 'physionet', from --source or from what the path holds."""
    if override:
        return override
    p = Path(path)
    if not p.exists():
        raise InputFormatError(f"{path}: no such file or directory")
    if p.is_dir():
        if any(p.glob("clif_*.parquet")):
            return "clif"
        if next(p.rglob("*.psv"), None) is not None:
            return "physionet"
    elif p.name.endswith((".tar.gz", ".tgz", ".tar", ".psv")):
        return "physionet"
    raise InputFormatError(f"{path}: neither a CLIF directory (clif_*.parquet) nor PhysioNet "
                           ".psv files (a directory, .tar.gz or .psv)",
                           hint="name the source type with --source clif|physionet")


def open_source(path: str, kind: str, variables: list[Variable], start: str = "admission",
                split_field: str = "split", extra: Sequence[Variable] = ()):
    """The reader of a source. `extra` variables are summarised per stay (`Group.extremes`);
    the reader's `extra_present` says which of them the source has at all."""
    if kind == "clif":
        from ehrkit.timeline.series_clif import ClifSource as Source
    else:
        from ehrkit.timeline.series_physionet import PhysioNetSource as Source
    return Source(path, variables, start=start, split_field=split_field, extra=extra)


# ----------------------------------------------------------------------------- PhysioNet
