"""`synth notes`: deterministic, MIMIC-shaped, and with a learnable readmission signal."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from ehrkit.synth.notes import ADMISSION_SCHEMA, NOTE_SCHEMA, generate, note_batches


def _world(n, seed):
    notes, admissions = [], []
    for patient_notes, patient_admissions in generate(n, seed):
        notes += patient_notes
        admissions += patient_admissions
    return notes, admissions


def test_same_seed_same_notes_and_other_seed_differs():
    a = pa.Table.from_batches(list(note_batches(300, seed=1)))
    b = pa.Table.from_batches(list(note_batches(300, seed=1)))
    c = pa.Table.from_batches(list(note_batches(300, seed=2)))
    assert a.equals(b)
    assert not a.equals(c)
    assert a.num_rows == 300
    assert a.schema.equals(NOTE_SCHEMA)


def test_prefix_property_n_smaller_is_a_prefix():
    small = pa.Table.from_batches(list(note_batches(50, seed=7)))
    large = pa.Table.from_batches(list(note_batches(500, seed=7)))
    assert large.slice(0, 50).equals(small)


def test_notes_look_like_mimic():
    notes, admissions = _world(400, 3)
    categories = {n["category"] for n in notes}
    assert {"Discharge summary", "Nursing", "Physician "} <= categories
    text = "\n".join(n["text"] for n in notes)
    for needle in ("[**", "**]", "Past Medical History:", "\n1. ", "Dr. ", "M.D.", "p.o.",
                   "q.d.", "20mg", "b.i.d", "mg/dL" if False else "mg"):
        assert needle in text, needle
    assert all(n["charttime"] is None for n in notes if n["category"] == "Discharge summary")
    hadm = {a["hadm_id"] for a in admissions}
    assert {n["hadm_id"] for n in notes} <= hadm
    assert pa.Table.from_pylist(admissions, schema=ADMISSION_SCHEMA).num_rows == len(admissions)


def readmission_labels(admissions):
    """ClinicalBERT's label: next non-elective admission within 30 days of discharge;
    newborns and in-hospital deaths excluded."""
    fmt = "%Y-%m-%d %H:%M:%S"
    by_subject = {}
    for a in sorted(admissions, key=lambda a: (a["subject_id"], a["admittime"])):
        by_subject.setdefault(a["subject_id"], []).append(a)
    labels = {}
    for stays in by_subject.values():
        for i, a in enumerate(stays):
            if a["admission_type"] == "NEWBORN" or a["deathtime"]:
                continue
            later = [b for b in stays[i + 1:] if b["admission_type"] != "ELECTIVE"]
            gap = ((datetime.strptime(later[0]["admittime"], fmt)
                    - datetime.strptime(a["dischtime"], fmt)).total_seconds() / 86400
                   if later else None)
            labels[a["hadm_id"]] = int(gap is not None and gap < 30)
    return labels


def test_cohort_rules_have_work_to_do():
    _, admissions = _world(3000, 11)
    kinds = {a["admission_type"] for a in admissions}
    assert {"ELECTIVE", "EMERGENCY", "NEWBORN"} <= kinds
    assert any(a["deathtime"] for a in admissions)
    labels = readmission_labels(admissions)
    prevalence = sum(labels.values()) / len(labels)
    assert 0.15 < prevalence < 0.6


def test_readmission_is_learnable_from_discharge_summaries():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    notes, admissions = _world(3000, 5)
    labels = readmission_labels(admissions)
    summaries = {n["hadm_id"]: n["text"] for n in notes if n["category"] == "Discharge summary"}
    ids = sorted(h for h in summaries if h in labels)
    texts, y = [summaries[h] for h in ids], [labels[h] for h in ids]
    half = len(ids) // 2
    vectorizer = TfidfVectorizer(min_df=2)
    model = LogisticRegression(max_iter=1000).fit(vectorizer.fit_transform(texts[:half]), y[:half])
    auroc = roc_auc_score(y[half:], model.predict_proba(vectorizer.transform(texts[half:]))[:, 1])
    assert 0.65 < auroc < 0.97  # learnable, but not trivially
