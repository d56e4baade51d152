"""Synthetic CLIF 2.1 hospitalizations: nine `clif_<table>.parquet` tables with planted outcomes.

Column names, Arrow types and mCIDE category values follow the CLIF 2.1 MIMIC-IV demo (ids
are strings, datetimes `timestamp[us, tz=UTC]` at minute resolution, `birth_date` a naive
timestamp, `med_dose` float32). Columns the demo leaves untyped (all null) are strings here.

Every hospitalization has a latent severity. It drives the vitals and labs of the first 24
hours (high heart rate, respiratory rate and lactate; low MAP, SpO2, bicarbonate and pH) and
the outcomes: in-hospital death (`discharge_category` 'Expired', `patient.death_dttm`), a
long stay (> 168 h), ICU admission (adt `location_category` 'icu') and invasive mechanical
ventilation (respiratory_support `device_category` 'IMV'). Most ICU and IMV episodes begin in
the first 24 hours, some later. Prevalences are about: death 8-15%, long stay 20-35%, ICU
25-40%, IMV 10-20%. A dead patient has no later hospitalizations; deaths are in-hospital only.

Like the demo, the data are not spotless: about 0.5% of lab results are '___' with a null
`lab_value_numeric`; ids are digit strings (patients 10000000+, hospitalizations 20000000+);
geography, `lab_order_name`, `lab_specimen_name` and `lab_loinc_code` are null.

Randomness is drawn per patient, so a table does not depend on the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrkit.synth import entity_rng
from ehrkit.synth.clif_vocab import (
    ADMISSION_TYPES,
    BATCH_HOSPITALIZATIONS,
    CODED,
    CONSTANT,
    DISCHARGES,
    EPOCH_2110,
    HOUR_US,
    ICUS,
    LAB_MODEL,
    LANGUAGES,
    LOCATION_CATEGORIES,
    LOCATION_INDEX,
    MED_INDEX,
    RACES,
    SCHEMAS,
    STEPDOWN,
    TABLES,
    TYPES,
    VENT_MODEL,
    VITAL_MODEL,
    WARDS,
)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@dataclass
class _Stay:
    """One hospitalization's latent state; times are hours since admission."""

    number: int
    admit_us: int
    age: int
    severity: float
    los: float
    died: bool
    segments: list[tuple[float, float, int]]  # (start, end, location_name code)
    icu: tuple[float, float] | None = None
    imv: tuple[float, float] | None = None
    weight: float = 80.0
    height: float = 170.0
    row: dict = field(default_factory=dict)

    def severity_at(self, t: np.ndarray) -> np.ndarray:
        """Survivors improve over the first three days; the dying deteriorate towards the end."""
        if self.died:
            return self.severity + 1.2 * (t / self.los) ** 2
        return self.severity - 0.7 * np.clip(t / 72, 0, 1)

    def in_icu(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.icu[0]) & (t < self.icu[1]) if self.icu else np.zeros(len(t), bool)

    def on_imv(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.imv[0]) & (t < self.imv[1]) if self.imv else np.zeros(len(t), bool)


# ----------------------------------------------------------------------------- stays

def _course(rng, severity: float, admission: str) -> dict:
    """ICU, IMV, death and length of stay, all driven by severity."""
    ed_end = rng.uniform(2, 8) if admission == "ed" else rng.uniform(1, 4)
    icu = imv = None
    if rng.random() < _sigmoid(-1.0 + 1.5 * severity):
        early = rng.random() < _sigmoid(1.0 + 0.8 * severity)
        start = ed_end + (rng.uniform(0, 16) if early else rng.uniform(24, 110))
        if early and rng.random() < 0.5:
            start = ed_end  # straight from the emergency department
        icu = (start, start + max(6.0, 24 * math.exp(0.3 + 0.35 * severity + rng.gauss(0, 0.5))))
    if icu and rng.random() < _sigmoid(-0.4 + 1.2 * severity):
        span = icu[1] - icu[0]
        late = span > 36 and rng.random() < 0.25
        start = icu[0] + (rng.uniform(24, span * 0.7) if late else rng.uniform(0, min(8, span * 0.3)))
        imv = (start, start + (icu[1] - start) * rng.uniform(0.5, 0.9))
    died = rng.random() < _sigmoid(-2.9 + 1.3 * severity + 0.9 * (imv is not None))
    los = max(8.0, 120 * math.exp(0.6 * severity + rng.gauss(0, 0.45)))
    if icu and died:
        los = icu[1]
        imv = (imv[0], los) if imv else None
    elif icu:
        los = max(los, icu[1] + rng.uniform(12, 96))
    elif died:
        los *= rng.uniform(0.6, 1.0)
    return {"ed_end": min(ed_end, los / 2), "icu": icu, "imv": imv, "died": died, "los": los}


def _segments(rng, course: dict, admission: str) -> list[tuple[float, float, int]]:
    ward = LOCATION_INDEX[rng.choice(WARDS)]
    first = {"ed": LOCATION_INDEX["Emergency Department"],
             "elective": LOCATION_INDEX["PACU"]}.get(admission, ward)
    icu, los, t0 = course["icu"], course["los"], course["ed_end"]
    starts = [(0.0, first), (t0, ward)]
    if icu:
        after = LOCATION_INDEX[STEPDOWN] if rng.random() < 0.3 else ward
        starts = starts[: 1 + (icu[0] > t0)] + [(icu[0], LOCATION_INDEX[rng.choice(ICUS)]), (icu[1], after)]
    segments: list[tuple[float, float, int]] = []
    for (start, code), (end, _) in zip(starts, starts[1:] + [(los, -1)]):
        if end <= start:
            continue
        if segments and segments[-1][2] == code:  # a direct admission has no separate first unit
            start = segments.pop()[0]
        segments.append((start, end, code))
    return segments


def _patient(seed: int, index: int, first_number: int, limit: int) -> tuple[dict, list[_Stay]]:
    rng = entity_rng(seed, "clif", index)
    race = rng.choices(RACES, weights=[64, 10, 4, 1, 1, 8, 12])[0]
    hispanic = rng.random() < 0.08
    sex = rng.choice(["Male", "Female"])
    language = rng.choices(LANGUAGES, weights=[90, 6, 1, 3])[0]
    frailty = rng.gauss(0, 1)
    height = rng.gauss(176 if sex == "Male" else 163, 7)
    weight = max(40.0, rng.gauss(85 if sex == "Male" else 72, 16))
    count = rng.choices([1, 2, 3, 4, 5, 6], weights=[60, 20, 10, 5, 3, 2])[0]
    admit_us = _minute(EPOCH_2110 + int(rng.uniform(0, 80) * 365.25 * 24 * HOUR_US))
    first_age = min(95.0, max(18.0, rng.gauss(62, 17)))
    birth_us = admit_us - int((first_age + rng.random()) * 365.25 * 24) * HOUR_US
    birth_us -= birth_us % (24 * HOUR_US)
    stays: list[_Stay] = []
    for k in range(min(count, limit)):
        age = int((admit_us - birth_us) / (365.25 * 24 * HOUR_US))
        kind, name = rng.choices(ADMISSION_TYPES, weights=[60, 10, 12, 8, 6, 4])[0]
        severity = 0.5 * frailty + 0.85 * rng.gauss(0, 1) + 0.015 * (age - 65) \
            - 0.6 * (kind == "elective")
        course = _course(rng, severity, kind)
        stay = _Stay(first_number + k, admit_us, age, severity, course["los"], course["died"],
                     _segments(rng, course, kind), course["icu"], course["imv"],
                     round(weight + rng.gauss(0, 2), 1), round(height, 0))
        discharge = ("Expired", "DIED") if stay.died else _discharge(rng, age, stay.los)
        stay.row = {"admission_type_name": name, "admission_type_category": kind,
                    "discharge_name": discharge[1], "discharge_category": discharge[0],
                    "age_at_admission": age}
        stays.append(stay)
        if stay.died:
            break
        admit_us = _minute(admit_us + int((stay.los + rng.uniform(3, 400) * 24) * HOUR_US))
    died = stays[-1].died
    patient = {"race_name": race[1], "race_category": race[0],
               "ethnicity_name": "HISPANIC OR LATINO" if hispanic else race[1],
               "ethnicity_category": "Hispanic" if hispanic else
               ("Unknown" if race[0] == "Unknown" else "Non-Hispanic"),
               "sex_name": sex[0], "sex_category": sex, "birth_date": birth_us,
               "death_dttm": _at(stays[-1].admit_us, stays[-1].los) if died else None,
               "language_name": language[1], "language_category": language[0]}
    return patient, stays


def _discharge(rng, age: int, los: float) -> tuple[str, str]:
    old, long = age > 75, los > 240
    weights = [55 - 20 * old, 10 + 15 * old, 6, 3 + 6 * long, 3, 2, 20]
    return rng.choices(DISCHARGES, weights=weights)[0]


def _minute(us: int) -> int:
    return us - us % 60_000_000


def _at(admit_us: int, hours: float) -> int:
    """The timestamp `hours` after admission, truncated to the minute like every event time."""
    return admit_us + math.floor(hours * 60) * 60_000_000


# ----------------------------------------------------------------------------- event tables

def _grid(stay: _Stay, g, steps: dict[str, float]) -> np.ndarray:
    """Measurement times over the stay, with one step per location category."""
    parts = []
    for start, end, code in stay.segments:
        step = steps.get(LOCATION_CATEGORIES[code], steps["ward"])
        phase = g.uniform(0, min(step, end - start))
        times = np.arange(start + phase, end, step)
        parts.append(times + g.normal(0, step / 12, len(times)))  # charted near, not on, the grid
    times = np.concatenate(parts) if parts else np.empty(0)
    return np.clip(times, 0, stay.los - 1 / 60)


def _vitals(stay: _Stay, g) -> dict:
    t = _grid(stay, g, {"icu": 1.0, "ed": 1.0, "procedural": 1.0, "stepdown": 2.0, "ward": 4.0})
    s, n = stay.severity_at(t), len(t)
    spec = VITAL_MODEL  # (mean, severity effect, sd, lo, hi) for hr, sbp, dbp, spo2, rr, temp
    z = g.standard_normal((n, len(spec)))
    values = np.clip(spec[:, 0] + np.outer(s, spec[:, 1]) + z * spec[:, 2], spec[:, 3], spec[:, 4])
    hr, sbp, dbp, spo2, rr, temp = values.T
    dbp = np.minimum(dbp, sbp - 15)
    mean_bp = (sbp + 2 * dbp) / 3 + g.normal(0, 2, n)
    core = np.round(np.stack([hr, sbp, dbp, mean_bp, spo2, rr], axis=1)).ravel()
    cats = np.tile(np.arange(6), n)
    arterial = np.repeat(stay.in_icu(t), 6) & (cats >= 1) & (cats <= 3)
    keep_temp = g.random(n) < 0.3
    daily = np.arange(0, stay.los, 24.0)
    weights = np.round(stay.weight + g.normal(0, 1.5, len(daily)) + 0.02 * daily, 1)
    times = np.concatenate([np.repeat(t, 6), t[keep_temp], daily, [0.0]])
    return {"recorded_dttm": times,
            "vital_category": np.concatenate([cats, np.full(keep_temp.sum(), 6),
                                              np.full(len(daily), 8), [7]]),
            "vital_name": np.concatenate([np.where(arterial, cats + 8, cats),
                                          np.full(keep_temp.sum(), 6), np.full(len(daily), 8),
                                          [7]]),
            "vital_value": np.concatenate([core, np.round(temp[keep_temp], 1), weights,
                                           [stay.height]]),
            "meas_site_name": np.concatenate([np.full(6 * n, -1), np.zeros(keep_temp.sum(), int),
                                              np.full(len(daily) + 1, -1)])}


def _labs(stay: _Stay, g) -> dict:
    draws = np.concatenate([[g.uniform(0.2, 1.5)],
                            _grid(stay, g, {"icu": 6.0, "stepdown": 12.0, "ward": 24.0})])
    s, icu = stay.severity_at(draws), stay.in_icu(draws)
    spec = LAB_MODEL  # (mean, effect, sd, lo, hi, decimals, log-normal, availability)
    z = g.standard_normal((len(draws), len(spec)))
    shift = np.outer(s, spec[:, 1]) + z * spec[:, 2]
    values = np.where(spec[:, 6] > 0, spec[:, 0] * np.exp(shift), spec[:, 0] + shift)
    scale = 10.0 ** spec[:, 5]
    values = np.round(np.clip(values, spec[:, 3], spec[:, 4]) * scale) / scale
    first = np.arange(len(draws)) == 0
    avail = spec[:, 7]  # 0 every draw, 1 ICU draws (and the first), 2 sometimes
    taken = ((avail == 0) | ((avail == 1) & (icu | first)[:, None])
             | ((avail == 2) & ((g.random(values.shape) < 0.3) | first[:, None])))
    rows, labs = np.nonzero(taken)
    result = draws[rows] + g.uniform(0.5, 2.5, len(rows))
    numeric = values[rows, labs]
    numeric[g.random(len(rows)) < 0.005] = np.nan  # "___" and "UNABLE TO REPORT." as in MIMIC
    return {"lab_order_dttm": draws[rows], "lab_collect_dttm": draws[rows],
            "lab_result_dttm": result, "lab_category": labs, "lab_value_numeric": numeric,
            "lab_decimals": spec[labs, 5]}


def _episode(g, med: int, start: float, end: float, level: float) -> dict:
    """One infusion: a start row, dose changes every few hours, a stop row at dose 0."""
    changes = np.arange(start + g.uniform(1, 3), end, g.uniform(2, 6))
    times = np.concatenate([[start], changes, [end]])
    dose = np.round(level * np.exp(g.normal(0, 0.25, len(times))), 3)
    dose[-1] = 0.0
    action = np.concatenate([[0], np.ones(len(changes), int), [2]])
    return {"admin_dttm": times, "med_category": np.full(len(times), med), "med_dose": dose,
            "mar_action_category": action}


def _medications(stay: _Stay, g, rng) -> list[dict]:
    meds = MED_INDEX
    episodes = []
    if stay.icu and stay.severity + rng.gauss(0, 0.5) > 0.9:  # shock: vasopressors
        start = stay.icu[0] + rng.uniform(0, 3)
        end = start + (stay.icu[1] - start) * rng.uniform(0.3, 0.9)
        level = 0.08 * math.exp(0.5 * stay.severity)
        episodes.append((meds["norepinephrine"], start, end, min(level, 0.8)))
        if stay.severity > 1.8:
            episodes.append((meds["vasopressin"], start + 2, end, 2.4))
    if stay.imv:  # sedation and analgesia while ventilated
        episodes.append((meds["propofol"], stay.imv[0], stay.imv[1], rng.uniform(15, 50)))
        episodes.append((meds["fentanyl"], stay.imv[0], stay.imv[1], rng.uniform(25, 150)))
    for med, p, lo, hi in (("sodium chloride", 0.5, 50, 125), ("insulin", 0.1, 1, 8),
                           ("heparin", 0.08, 500, 1600), ("dexmedetomidine", 0.04, 0.2, 1.2)):
        if rng.random() < p:
            start = rng.uniform(0, stay.los * 0.8)
            episodes.append((meds[med], start, min(stay.los, start + rng.uniform(4, 48)),
                             rng.uniform(lo, hi)))
    parts = []
    for k, (med, start, end, level) in enumerate(episodes):
        if end > start:
            part = _episode(g, med, start, end, level)
            order = 30_000_000 + stay.number * 20 + k  # at most a dozen infusions per stay
            part["med_order_id"] = np.full(len(part["admin_dttm"]), order)
            parts.append(part)
    return parts


def _respiratory(stay: _Stay, g) -> dict:
    t = _grid(stay, g, {"icu": 2.0, "ed": 4.0, "stepdown": 6.0, "ward": 8.0})
    n, s, imv = len(t), stay.severity_at(t), stay.on_imv(t)
    before = np.zeros(n, bool) if not stay.imv else (t >= stay.imv[0] - 6) & (t < stay.imv[0])
    oxygen = s + g.normal(0, 0.5, n) > 0.3
    device = np.where(imv, 0, np.where(before, 3, np.where(oxygen, 6, 7)))  # DEVICES codes
    control = imv & (t < (stay.imv[0] + 0.6 * (stay.imv[1] - stay.imv[0]) if stay.imv else 0))
    mode = np.where(imv, np.where(control, 0, 4), -1)
    fio2 = np.where(imv | before, np.clip(0.4 + 0.12 * s + g.normal(0, 0.05, n), 0.3, 1.0),
                    np.where(device == 7, 0.21, np.nan))
    model = np.array(list(VENT_MODEL.values()))  # settings only while on IMV
    values = np.full((n, len(model)), np.nan)
    if imv.any():
        k = imv.sum()
        raw = model[:, 0] + np.outer(s[imv], model[:, 1]) + g.standard_normal((k, len(model))) \
            * model[:, 2]
        values[imv] = np.round(np.clip(raw, model[:, 3], model[:, 4]), 1)
    vent = dict(zip(VENT_MODEL, values.T))
    lpm = np.where(device == 6, np.round(g.uniform(1, 6, n)), np.where(device == 3, 40, np.nan))
    return {"recorded_dttm": t, "device_category": device, "mode_category": mode,
            "vent_brand_name": np.where(imv, stay.number % 2, -1),
            "tracheostomy": imv & (t - (stay.imv[0] if stay.imv else 0) > 240),  # after 10 days
            "fio2_set": np.round(fio2, 2), "lpm_set": lpm, **vent}


def _assessments(stay: _Stay, g) -> dict:
    t = _grid(stay, g, {"icu": 4.0, "ed": 4.0, "stepdown": 8.0, "ward": 8.0})
    n, s, icu, imv = len(t), stay.severity_at(t), stay.in_icu(t), stay.on_imv(t)
    neuro = np.clip(1 - 0.18 * np.maximum(s, 0) - 0.25 * imv + g.normal(0, 0.08, n), 0, 1)
    noise = g.normal(0, 0.3, (n, 3))
    gcs = np.clip(np.round(1 + np.outer(neuro, [3, 5, 4]) + noise), 1, [4, 6, 5])
    gcs[imv, 2] = 1  # intubated: verbal not testable, charted as 1
    gcs = np.column_stack([gcs, gcs.sum(axis=1)])
    rass = np.where(imv, np.clip(np.round(-2 - s + g.normal(0, 0.7, n)), -5, 0),
                    np.clip(np.round(g.normal(0, 0.6, n)), -2, 2))
    cam = icu & (np.arange(n) % 3 == 0) & (rass > -3)
    braden = np.arange(n) % 6 == 0
    delirious = g.random(n) < _sigmoid(-1.5 + 0.8 * stay.severity)
    sbt = np.arange(stay.imv[0] + 20, stay.imv[1], 24.0) if stay.imv else np.empty(0)
    passed = g.random(len(sbt)) < (sbt - sbt[:1]) / max(1.0, stay.los - stay.imv[0]) + 0.2 \
        if stay.imv else np.empty(0, bool)
    nan = np.nan
    # (times, category, numerical_value, categorical_value code, text_value code)
    parts = [(np.repeat(t, 4), np.tile([0, 1, 2, 3], n), gcs.ravel(), -1, -1),
             (t[icu], 4, rass[icu], -1, rass[icu] + 5),
             (t[cam], 5, nan, delirious[cam].astype(int), -1),
             (t[braden], 6, np.clip(np.round(20 - 3 * s[braden] + g.normal(0, 1.5, braden.sum())),
                                    6, 23), -1, -1),
             (sbt, 7, nan, np.where(passed, 2, 3), -1)]
    cols = ("recorded_dttm", "assessment_category", "numerical_value", "categorical_value",
            "text_value")
    return {c: np.concatenate([np.full(len(p[0]), p[i]) if np.isscalar(p[i]) else p[i]
                               for p in parts]) for i, c in enumerate(cols)}


def _position(stay: _Stay, g) -> dict:
    t = _grid(stay, g, {"icu": 3.0, "ward": 1e9})
    t = t[stay.in_icu(t)]
    names = g.integers(0, 4, len(t))
    if stay.imv and stay.severity > 2.0:  # proned for severe hypoxaemia, 16 hours at a time
        names = np.where(((t - stay.imv[0]) % 24 < 16) & stay.on_imv(t), 4, names)
    return {"recorded_dttm": t, "position_name": names}


def _adt(stay: _Stay) -> dict:
    return {"in_dttm": np.array([s for s, _, _ in stay.segments]),
            "out_dttm": np.array([e for _, e, _ in stay.segments]),
            "location_name": np.array([c for _, _, c in stay.segments])}


def _to_arrow(table: str, data: dict[str, np.ndarray], ids: pa.Array, pids: pa.Array,
              admit_us: np.ndarray) -> pa.Table:
    """Build one event table from its integer codes, hours and values, sorted by stay and time."""
    schema = SCHEMAS[table]
    n = len(data.get("h", ()))
    if n:
        first_time = next(f.name for f in schema if f.type == TYPES["t"])
        order = np.lexsort((data[first_time], data["h"]))
        data = {k: v[order] for k, v in data.items()}
    columns = [_column(f, data, n, ids, pids, admit_us) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _column(f: pa.Field, data: dict, n: int, ids, pids, admit_us) -> pa.Array:
    name = f.name
    if n == 0:
        return pa.nulls(0, f.type)
    if name in ("hospitalization_id", "patient_id"):
        return (ids if name == "hospitalization_id" else pids).take(pa.array(data["h"]))
    if f.type == TYPES["t"]:
        minutes = np.floor(data[name] * 60).astype(np.int64)  # as _at(): never past discharge
        return pa.array(admit_us[data["h"]] + minutes * 60_000_000, type=f.type)
    if name in CODED:
        source, values = CODED[name]
        codes = data.get(source, np.full(n, -1)).astype(np.int64)
        return pa.array(values, pa.string()).take(pa.array(codes, mask=codes < 0))
    if name in CONSTANT:
        return pa.array([CONSTANT[name]] * n, pa.string())
    if name == "med_order_id":
        return pa.array(data[name]).cast(pa.string())
    if name == "lab_value":
        return _lab_strings(data["lab_value_numeric"], data["lab_decimals"])
    if name not in data:
        return pa.nulls(n, f.type)
    return pa.array(data[name], type=f.type, from_pandas=True)


def _lab_strings(values: np.ndarray, decimals: np.ndarray) -> pa.Array:
    """Lab results as the source system prints them: '142.0', '7.40'; '___' when unreported."""
    shown = pa.array(values, from_pandas=True).cast(pa.string())  # shortest form: 142, 7.4
    integral, tenths = values == np.round(values), values * 10 == np.round(values * 10)
    pad = np.where(integral, np.where(decimals >= 2, 2, 1), np.where((decimals >= 2) & tenths, 3, 0))
    suffix = pa.array(["", ".0", ".00", "0"]).take(pa.array(pad))
    joined = pc.binary_join_element_wise(shown, suffix, "")
    return pc.fill_null(joined, "___")


# ----------------------------------------------------------------------------- batches

class _Batch:
    """Column chunks of one batch of hospitalizations, turned into Arrow tables at the end."""

    def __init__(self):
        self.patients, self.stays, self.patient_of = [], [], []
        self.chunks: dict[str, dict[str, list[np.ndarray]]] = {t: {} for t in TABLES[2:]}

    def add(self, table: str, columns: dict) -> None:
        n = len(columns[next(iter(columns))])
        columns["h"] = np.full(n, len(self.stays) - 1)
        for name, values in columns.items():
            self.chunks[table].setdefault(name, []).append(np.asarray(values))

    def tables(self) -> dict[str, pa.Table]:
        ids = pa.array([str(20_000_000 + s.number) for s in self.stays], pa.string())
        pids = pa.array([p["patient_id"] for p in self.patients], pa.string()).take(
            pa.array(self.patient_of, pa.int64()))
        admit = np.array([s.admit_us for s in self.stays], dtype=np.int64)
        rows = [dict(s.row, patient_id=pids[i].as_py(), hospitalization_id=ids[i].as_py(),
                     admission_dttm=s.admit_us,
                     discharge_dttm=_at(s.admit_us, s.los))
                for i, s in enumerate(self.stays)]
        out = {"patient": pa.Table.from_pylist(self.patients, SCHEMAS["patient"]),
               "hospitalization": pa.Table.from_pylist(rows, SCHEMAS["hospitalization"])}
        for table, chunks in self.chunks.items():
            data = {k: np.concatenate(v) for k, v in chunks.items()}
            out[table] = _to_arrow(table, data, ids, pids, admit)
        return out


def _fill(batch: _Batch, stay: _Stay, rng, g) -> None:
    batch.add("adt", _adt(stay))
    batch.add("vitals", _vitals(stay, g))
    batch.add("labs", _labs(stay, g))
    for episode in _medications(stay, g, rng):
        batch.add("medication_admin_continuous", episode)
    batch.add("respiratory_support", _respiratory(stay, g))
    batch.add("patient_assessments", _assessments(stay, g))
    batch.add("position", _position(stay, g))


def clif_batches(n: int, seed: int = 0, size: int = BATCH_HOSPITALIZATIONS
                 ) -> Iterator[dict[str, pa.Table]]:
    """Yield {table name: Arrow table} for about `size` hospitalizations at a time, n in all.

    Nothing is yielded for n = 0. A patient's hospitalizations stay in one batch.
    """
    made, index, batch = 0, 0, _Batch()
    while made < n:
        patient, stays = _patient(seed, index, made, n - made)
        batch.patients.append(dict(patient, patient_id=str(10_000_000 + index)))
        rng = entity_rng(seed, "clif-events", index)
        g = np.random.default_rng(rng.getrandbits(64))
        for stay in stays:
            batch.stays.append(stay)
            batch.patient_of.append(len(batch.patients) - 1)
            _fill(batch, stay, rng, g)
        made, index = made + len(stays), index + 1
        if len(batch.stays) >= size or made >= n:
            yield batch.tables()
            batch = _Batch()
