"""Synthetic hourly ICU series in the layout of the MIMIC-III benchmarks (48 h x 17 variables).

One record per ICU stay:

- `stay_id`, `patient_id`: strings; about one patient in six has two stays.
- `hours`: list<float32> of length T = 48, the start of each hourly bin since ICU admission.
- `values`: list<list<float32>>, T x D with D = 17 in the order of `VARIABLES` (the benchmark's
  alphabetical channel order); **null** where nothing was observed in that hour (JSON has no
  NaN; Arrow and numpy readers turn the nulls into NaN).
- `mask`: list<list<int8>>, T x D, 1 where the variable was observed in that hour.
- `mortality`: int8, in-hospital death.
- `phenotypes`: list<int8> of length 25, in the order of `PHENOTYPES` (the benchmark's 25 CCS
  group names, alphabetical as in its listfiles).

The five categorical channels hold their raw ordinal values, as the benchmark's
`channel_info.json` maps them: capillary refill 0/1, GCS eye 1-4, motor 1-6, verbal 1-5 (1 while
intubated), total 3-15.

Planted signal: every phenotype shifts two variables (a stay-level offset of about one
between-stay standard deviation, see `_PHENOTYPE_MODEL`), so each label is learnable from
per-variable means; a latent severity and its trend over the 48 hours move heart rate,
pressures, SpO2, FiO2, pH and GCS, and drive mortality (about 12%) together with shock,
septicemia and respiratory failure. Missingness is realistic and informative: vitals most
hours, GCS and temperature every few hours, labs every 6-12 hours, capillary refill rarely,
sicker stays measured more often.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from ehrkit.synth import entity_rng

HOURS = 48
VARIABLES = [
    "Capillary refill rate", "Diastolic blood pressure", "Fraction inspired oxygen",
    "Glascow coma scale eye opening", "Glascow coma scale motor response",
    "Glascow coma scale total", "Glascow coma scale verbal response", "Glucose", "Heart Rate",
    "Height", "Mean blood pressure", "Oxygen saturation", "Respiratory rate",
    "Systolic blood pressure", "Temperature", "Weight", "pH",
]
# The benchmark's imputation defaults ("normal values"), in the order of VARIABLES
NORMAL_VALUES = [0.0, 59.0, 0.21, 4.0, 6.0, 15.0, 5.0, 128.0, 86.0, 170.0, 77.0, 98.0, 19.0,
                 118.0, 36.6, 81.0, 7.4]
PHENOTYPES = [
    "Acute and unspecified renal failure", "Acute cerebrovascular disease",
    "Acute myocardial infarction", "Cardiac dysrhythmias", "Chronic kidney disease",
    "Chronic obstructive pulmonary disease and bronchiectasis",
    "Complications of surgical procedures or medical care", "Conduction disorders",
    "Congestive heart failure; nonhypertensive", "Coronary atherosclerosis and other heart disease",
    "Diabetes mellitus with complications", "Diabetes mellitus without complication",
    "Disorders of lipid metabolism", "Essential hypertension", "Fluid and electrolyte disorders",
    "Gastrointestinal hemorrhage", "Hypertension with complications and secondary hypertension",
    "Other liver diseases", "Other lower respiratory disease", "Other upper respiratory disease",
    "Pleurisy; pneumothorax; pulmonary collapse",
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
    "Respiratory failure; insufficiency; arrest (adult)", "Septicemia (except in labor)", "Shock",
]
SCHEMA = pa.schema([
    ("stay_id", pa.string()), ("patient_id", pa.string()), ("hours", pa.list_(pa.float32())),
    ("values", pa.list_(pa.list_(pa.float32()))), ("mask", pa.list_(pa.list_(pa.int8()))),
    ("mortality", pa.int8()), ("phenotypes", pa.list_(pa.int8())),
])
BATCH_STAYS = 1024

# Continuous channels and the latent neurological state behind the four GCS channels:
# (mean, between-stay sd, hourly sd, severity effect in between-stay sds, low, high, decimals,
# chance of an observation per hour)
_CHANNELS = {
    "dbp": (61, 8, 5, -0.6, 20, 140, 0, 0.85), "fio2": (0.35, 0.08, 0.03, 0.8, 0.21, 1, 2, 0.25),
    "glucose": (130, 30, 15, 0.3, 40, 600, 0, 0.12), "hr": (86, 12, 6, 0.8, 30, 220, 0, 0.9),
    "height": (170, 10, 0, 0, 140, 210, 0, 0.0), "mbp": (78, 9, 5, -0.7, 30, 160, 0, 0.85),
    "spo2": (97, 1.5, 1.2, -0.8, 60, 100, 0, 0.9), "rr": (19, 4, 2.5, 0.7, 5, 50, 0, 0.9),
    "sbp": (119, 14, 8, -0.6, 50, 240, 0, 0.85), "temp": (36.8, 0.5, 0.25, 0.4, 33, 42, 1, 0.25),
    "weight": (76, 16, 0.5, 0, 35, 200, 1, 0.04), "ph": (7.39, 0.04, 0.02, -0.7, 6.8, 7.7, 2, 0.1),
    "gcs": (0.93, 0.12, 0.04, -0.8, 0, 1, 9, 0.25),
}
_KEYS = list(_CHANNELS)
_MODEL = np.array(list(_CHANNELS.values()), dtype=float)
# Where each channel lands in VARIABLES (gcs feeds four columns and is placed separately)
_COLUMN = {"dbp": 1, "fio2": 2, "glucose": 7, "hr": 8, "height": 9, "mbp": 10, "spo2": 11,
           "rr": 12, "sbp": 13, "temp": 14, "weight": 15, "ph": 16}
_BP = [_KEYS.index(k) for k in ("dbp", "mbp", "sbp")]  # charted together: one missingness draw
_CHRONIC = [4, 5, 9, 11, 12, 13, 16]  # shared by a patient's stays

# phenotype: (prevalence, {channel: stay-level shift in between-stay sds})
_PHENOTYPE_MODEL = [
    (0.21, {"ph": -0.9, "weight": 0.6}), (0.08, {"gcs": -1.4, "sbp": 0.8}),
    (0.10, {"hr": 0.7, "mbp": -0.7}), (0.33, {"hr": 1.0, "dbp": -0.5}),
    (0.13, {"ph": -0.6, "sbp": 0.7}), (0.13, {"spo2": -1.0, "rr": 0.7}),
    (0.20, {"temp": 0.8, "hr": 0.5}), (0.07, {"hr": -1.3, "mbp": -0.3}),
    (0.27, {"spo2": -0.6, "weight": 0.9}), (0.32, {"sbp": -0.5, "hr": -0.6}),
    (0.09, {"glucose": 1.4, "ph": -0.5}), (0.19, {"glucose": 1.0, "weight": 0.5}),
    (0.29, {"weight": 0.7, "dbp": 0.5}), (0.40, {"sbp": 1.0, "dbp": 0.8}),
    (0.27, {"glucose": 0.5, "mbp": -0.6}), (0.07, {"hr": 0.9, "sbp": -0.9}),
    (0.13, {"sbp": 0.9, "ph": -0.4}), (0.08, {"gcs": -0.8, "glucose": -0.7}),
    (0.13, {"rr": 0.8, "spo2": -0.5}), (0.06, {"fio2": 0.8, "rr": 0.7}),
    (0.09, {"spo2": -0.8, "fio2": 0.7}), (0.14, {"temp": 1.0, "rr": 0.6}),
    (0.17, {"fio2": 1.3, "gcs": -0.6}), (0.14, {"temp": 0.9, "hr": 0.8}),
    (0.08, {"mbp": -1.4, "hr": 0.7}),
]
_PREVALENCE = np.array([p for p, _ in _PHENOTYPE_MODEL])
_SHIFT = np.array([[effects.get(k, 0.0) for k in _KEYS] for _, effects in _PHENOTYPE_MODEL])
_DEADLY = [22, 23, 24]  # respiratory failure, septicemia, shock


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


class _Draws:
    """The raw randomness of a batch of stays, drawn per patient so batches do not matter."""

    def __init__(self):
        self.stay_ids, self.patient_ids, self.normal, self.uniform = [], [], [], []

    def add_patient(self, seed: int, index: int, limit: int, first_stay: int) -> int:
        rng = entity_rng(seed, "series", index)
        g = np.random.default_rng(rng.getrandbits(64))
        count = min(limit, 2 if rng.random() < 0.17 else 1)
        chronic = g.random(len(_CHRONIC))
        for k in range(count):
            self.stay_ids.append(str(30_000_000 + first_stay + k))
            self.patient_ids.append(str(10_000_000 + index))
            self.normal.append(g.standard_normal(_NORMALS))
            uniform = g.random(_UNIFORMS)
            uniform[_CHRONIC] = chronic
            self.uniform.append(uniform)
        return count


_K, _C = len(PHENOTYPES), len(_KEYS)
_NORMALS = 2 + _C + HOURS * _C + 3 * HOURS  # severity, trend, stay offsets, hourly, GCS items
_UNIFORMS = _K + 1 + HOURS * _C + 2 * HOURS + 2  # phenotypes, death, observed, refill, height


def _ar1(z: np.ndarray, phi: float) -> np.ndarray:
    """Stationary AR(1) noise along the hours axis: vitals drift, they do not jump hourly."""
    out = np.empty_like(z)
    out[:, 0] = z[:, 0]
    for t in range(1, z.shape[1]):
        out[:, t] = phi * out[:, t - 1] + math.sqrt(1 - phi * phi) * z[:, t]
    return out


def _simulate(normal: np.ndarray, uniform: np.ndarray) -> dict[str, np.ndarray]:
    """Turn a batch's raw draws (N x ...) into values, mask and labels, all vectorised."""
    n = len(normal)
    severity, trend = normal[:, 0], 0.7 * normal[:, 1]
    offsets = normal[:, 2:2 + _C]
    hourly = normal[:, 2 + _C:2 + _C + HOURS * _C].reshape(n, HOURS, _C)
    items = normal[:, 2 + _C + HOURS * _C:].reshape(n, HOURS, 3)
    acute = np.ones(_K)
    acute[_CHRONIC] = 0
    logits = _logit(_PREVALENCE) + 0.5 * np.outer(severity, acute)
    phenotypes = uniform[:, :_K] < _sigmoid(logits)
    death = _sigmoid(-3.2 + 1.5 * severity + 1.2 * trend + 0.6 * phenotypes[:, _DEADLY].sum(1))
    mortality = uniform[:, _K] < death

    mean, between, within, effect, low, high, decimals, chance = _MODEL.T
    level = phenotypes @ _SHIFT + np.outer(severity, effect) + 0.6 * offsets  # in sds
    ramp = np.linspace(0, 1, HOURS)[None, :, None] * (trend[:, None] * effect)[:, None, :]
    x = mean + between * (level[:, None, :] + ramp) + within * _ar1(hourly, 0.8)
    x = np.clip(x, low, high)
    scale = 10.0 ** np.minimum(decimals, 6)
    x = np.round(x * scale) / scale

    u = uniform[:, _K + 1:_K + 1 + HOURS * _C].reshape(n, HOURS, _C)
    p = np.clip(chance * (1 + 0.15 * severity)[:, None, None], 0, 1)
    u[:, :, _BP] = u[:, :, _BP[:1]]
    observed = u < p
    return {"x": x, "observed": observed, "items": items, "severity": severity,
            "refill_u": uniform[:, -2 * HOURS - 2:-2].reshape(n, HOURS, 2),
            "height_u": uniform[:, -2:], "phenotypes": phenotypes, "mortality": mortality}


def _assemble(sim: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lay channels out as the 17 benchmark variables: values (N x T x D) and mask."""
    x, observed = sim["x"], sim["observed"]
    n = len(x)
    values = np.zeros((n, HOURS, len(VARIABLES)))
    mask = np.zeros((n, HOURS, len(VARIABLES)), bool)
    for key, col in _COLUMN.items():
        values[:, :, col], mask[:, :, col] = x[:, :, _KEYS.index(key)], observed[:, :, _KEYS.index(key)]
    # Height is charted once, in the first hours, for four stays in ten
    hour = (sim["height_u"][:, 0] * 6).astype(int)
    charted = sim["height_u"][:, 1] < 0.4
    mask[:, :, 9] = False
    mask[np.arange(n)[charted], hour[charted], 9] = True
    mask[:, 0, 15] |= sim["height_u"][:, 1] < 0.5  # admission weight
    # GCS items from the latent neurological state; verbal is 1 while intubated (high FiO2)
    g = x[:, :, _KEYS.index("gcs")]
    items = np.clip(np.round(1 + g[:, :, None] * [3, 5, 4] + 0.25 * sim["items"]), 1, [4, 6, 5])
    items[:, :, 2] = np.where(x[:, :, _KEYS.index("fio2")] > 0.5, 1, items[:, :, 2])
    values[:, :, [3, 4, 6]] = items
    values[:, :, 5] = items.sum(axis=2)
    mask[:, :, 3:7] = observed[:, :, _KEYS.index("gcs")][:, :, None]
    # Capillary refill: rarely charted, abnormal more often in sicker stays
    refill = sim["refill_u"]
    values[:, :, 0] = refill[:, :, 0] < _sigmoid(-2.5 + 1.2 * sim["severity"])[:, None]
    mask[:, :, 0] = refill[:, :, 1] < 0.02
    return values, mask


def _nested(flat: pa.Array, n: int, width: int) -> pa.Array:
    """Split a flat array into n lists of HOURS lists of `width` items."""
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, n * HOURS * width + 1, width,
                                                        dtype=np.int32)), flat)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * HOURS + 1, HOURS, dtype=np.int32)),
                                    inner)


def _record_batch(draws: _Draws) -> pa.RecordBatch:
    sim = _simulate(np.stack(draws.normal), np.stack(draws.uniform))
    values, mask = _assemble(sim)
    n, d = len(values), len(VARIABLES)
    flat = pa.array(values.astype(np.float32).ravel(), mask=~mask.ravel())
    hours = pa.ListArray.from_arrays(pa.array(np.arange(0, n * HOURS + 1, HOURS, dtype=np.int32)),
                                     pa.array(np.tile(np.arange(HOURS, dtype=np.float32), n)))
    phenotypes = pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * _K + 1, _K, dtype=np.int32)),
        pa.array(sim["phenotypes"].astype(np.int8).ravel()))
    columns = [pa.array(draws.stay_ids, pa.string()), pa.array(draws.patient_ids, pa.string()),
               hours, _nested(flat, n, d), _nested(pa.array(mask.astype(np.int8).ravel()), n, d),
               pa.array(sim["mortality"].astype(np.int8)), phenotypes]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def series_batches(n: int, seed: int = 0, size: int = BATCH_STAYS) -> Iterator[pa.RecordBatch]:
    """Stream n stays as record batches of about `size` stays."""
    made, index, draws = 0, 0, _Draws()
    while made < n:
        made += draws.add_patient(seed, index, n - made, made)
        index += 1
        if len(draws.stay_ids) >= size or made >= n:
            yield _record_batch(draws)
            draws = _Draws()

