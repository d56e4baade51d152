"""`timeline series --derive-labels`: multi-label pretraining targets derived from the series.

Gupta et al. pretrain a GRU on 20 phenotypes at once and probe its hidden states for new
tasks. Sources without phenotypes (PhysioNet 2019 has only `sepsis`) get their pretraining
targets from the data instead: per stay, one 0/1 per clinical derangement of `LABELS`, 1 when
any RAW measured value of its variable (before imputation and normalisation) crosses the
threshold at any time during the **whole stay**: from time zero to discharge (CLIF) or over
every row of the file (PhysioNet), not only the T-hour input window. The window after hour T
is what makes these labels more than a restatement of the inputs: a derangement first seen
after hour T (a fever on day 3, a lactate drawn at hour 60) must be predicted from the first T
hours, not read off them. Derangements inside the window are still part of a label, so a
label's prevalence is an upper bound on what the inputs cannot show.

0 means "not observed deranged", which includes "never measured" (most labs are drawn
rarely). A label whose variable the source does not have at all (PhysioNet has no GCS; a CLIF
directory without lactate results) is left out; the names written with the records say which
labels are present, in order.

Record field `derived` (list<int8>, one value per label, the same order in every record); the
names are in the Parquet schema metadata key `ehrkit.label_names` (a JSON list, as in the
prediction records) and the definitions in `ehrkit.label_definitions`. JSONL output has no
schema metadata: the names are printed on stderr with each label's prevalence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.timeline.series_sources import Variable, resolve

FIELD = "derived"
NAMES_KEY = b"ehrkit.label_names"
DEFINITIONS_KEY = b"ehrkit.label_definitions"


@dataclass(frozen=True)
class Label:
    """A derangement: `variable op threshold` (in `unit`) at any time during the stay. The
    variable is named per source: CLIF as `timeline series --variables` takes it (a benchmark
    name or TABLE:CATEGORY), PhysioNet as its column; None where the source has no such
    variable."""

    name: str
    op: str  # '>' or '<', strict
    threshold: float
    unit: str
    clif: str | None
    physionet: str | None

    def variable(self, kind: str) -> str | None:
        return self.clif if kind == "clif" else self.physionet

    def definition(self, kind: str) -> str:
        return f"{self.variable(kind)} {self.op} {self.threshold:g} {self.unit}"


# PhysioNet documents Lactate in mg/dL, but its values are mmol/L (median about 1.7), as CLIF's.
LABELS: tuple[Label, ...] = tuple(Label(*row) for row in [
    # name                 op  threshold unit        CLIF variable                 PhysioNet
    ("tachycardia",         ">", 100,  "beats/min", "Heart Rate",                 "HR"),
    ("bradycardia",         "<", 50,   "beats/min", "Heart Rate",                 "HR"),
    ("hypotension",         "<", 65,   "mmHg",      "Mean blood pressure",        "MAP"),
    ("hypertension",        ">", 180,  "mmHg",      "Systolic blood pressure",    "SBP"),
    ("fever",               ">", 38.3, "C",         "Temperature",                "Temp"),
    ("hypothermia",         "<", 36,   "C",         "Temperature",                "Temp"),
    ("hypoxaemia",          "<", 90,   "%",         "Oxygen saturation",          "O2Sat"),
    ("tachypnoea",          ">", 24,   "breaths/min", "Respiratory rate",         "Resp"),
    ("hyperlactataemia",    ">", 2,    "mmol/L",    "labs:lactate",               "Lactate"),
    ("acidaemia",           "<", 7.35, "pH units",  "pH",                         "pH"),
    ("hyperkalaemia",       ">", 5.5,  "mmol/L",    "labs:potassium",             "Potassium"),
    ("hypokalaemia",        "<", 3.5,  "mmol/L",    "labs:potassium",             "Potassium"),
    ("hyperglycaemia",      ">", 180,  "mg/dL",     "Glucose",                    "Glucose"),
    ("hypoglycaemia",       "<", 70,   "mg/dL",     "Glucose",                    "Glucose"),
    ("leukocytosis",        ">", 12,   "10^3/uL",   "labs:wbc",                   "WBC"),
    ("leukopenia",          "<", 4,    "10^3/uL",   "labs:wbc",                   "WBC"),
    ("thrombocytopenia",    "<", 150,  "10^3/uL",   "labs:platelet_count",        "Platelets"),
    ("anaemia",             "<", 10,   "g/dL",      "labs:hemoglobin",            "Hgb"),
    ("aki_proxy",           ">", 1.5,  "mg/dL",     "labs:creatinine",            "Creatinine"),
    ("hyperbilirubinaemia", ">", 2,    "mg/dL",     "labs:bilirubin_total",       "Bilirubin_total"),
    ("low_gcs",             "<", 13,   "points",    "Glascow coma scale total",   None),
])


def variables(kind: str) -> list[Variable]:
    """The distinct variables the labels of a source read, in table order.

    >>> [v.name for v in variables("physionet")][:3]
    ['HR', 'MAP', 'SBP']
    >>> len(variables("clif")), len(variables("physionet"))
    (16, 15)
    """
    names = dict.fromkeys(lb.variable(kind) for lb in LABELS if lb.variable(kind))
    return resolve(kind, list(names))


def derive(extremes: np.ndarray, index: np.ndarray, greater: np.ndarray,
           threshold: np.ndarray) -> np.ndarray:
    """Labels (stays x labels int8) from per-stay extremes (stays x variables x (min, max)):
    label j is 1 where the max of variable index[j] exceeds threshold[j] (greater) or its min is
    below it; never observed (NaN) gives 0.

    >>> ext = np.array([[[60.0, 120.0]], [[np.nan, np.nan]]])
    >>> derive(ext, np.array([0, 0]), np.array([True, False]), np.array([100.0, 50.0])).tolist()
    [[1, 0], [0, 0]]
    """
    with np.errstate(invalid="ignore"):
        high = extremes[:, index, 1] > threshold
        low = extremes[:, index, 0] < threshold
    return np.where(greater, high, low).astype(np.int8)


class DerivedLabels:
    """The labels of one source: which are present, their `derived` field, and their tally."""

    def __init__(self, kind: str):
        self.kind = kind
        self.variables = variables(kind)
        self.labels = [lb for lb in LABELS if lb.variable(kind)]
        self.absent = [lb.name for lb in LABELS if not lb.variable(kind)]
        self.positive, self.stays = np.zeros(len(self.labels), np.int64), 0

    def keep(self, present: list[bool]) -> None:
        """Leave out the labels whose variable the source lacks (`present`, per variable)."""
        have = {v.name for v, p in zip(self.variables, present) if p}
        self.absent += [lb.name for lb in self.labels if lb.variable(self.kind) not in have]
        self.labels = [lb for lb in self.labels if lb.variable(self.kind) in have]
        self.positive = np.zeros(len(self.labels), np.int64)

    @property
    def names(self) -> list[str]:
        return [lb.name for lb in self.labels]

    @property
    def field(self) -> pa.Field:
        return pa.field(FIELD, pa.list_(pa.int8()))

    def metadata(self) -> dict[bytes, bytes]:
        definitions = [lb.definition(self.kind) for lb in self.labels]
        return {NAMES_KEY: json.dumps(self.names).encode(),
                DEFINITIONS_KEY: json.dumps(definitions).encode()}

    def array(self, extremes: np.ndarray) -> pa.Array:
        """The `derived` field of a group of stays, counted into the prevalences."""
        position = {v.name: i for i, v in enumerate(self.variables)}
        index = np.array([position[lb.variable(self.kind)] for lb in self.labels], np.int64)
        greater = np.array([lb.op == ">" for lb in self.labels], bool)
        threshold = np.array([lb.threshold for lb in self.labels], np.float64)
        matrix = derive(extremes, index, greater, threshold)
        self.positive += matrix.sum(axis=0)
        self.stays += len(matrix)
        offsets = np.arange(len(matrix) + 1, dtype=np.int32) * len(self.labels)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel(), pa.int8()))

    def report(self) -> None:
        """Names and prevalences on stderr (counts over all stays: no patient values)."""
        if self.absent:
            log.info(f"derived labels: left out, variable absent from the source: "
                     f"{', '.join(self.absent)}")
        if not self.labels:
            log.warn("derived labels: none of the label variables is in the source: "
                     "'derived' is empty")
            return
        share = self.positive / max(self.stays, 1)
        log.info(f"derived labels ({len(self.labels)}, prevalence over {self.stays} stays): "
                 + ", ".join(f"{n} {p:.1%}" for n, p in zip(self.names, share)))
