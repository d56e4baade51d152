"""Synthetic MIMIC-III style NOTEEVENTS and ADMISSIONS.

Each patient has one to four admissions. Every admission carries a latent risk; high-risk
admissions are more often followed by a non-elective readmission within 30 days, and their
notes more often mention risk phrases (poor adherence, living alone, prior admissions). The
30-day readmission label as ClinicalBERT defines it is therefore learnable from the text,
but not perfectly. Some admissions are followed by an *elective* admission within 30 days
(which must not count), some end in death, some are newborns: the cohort rules have real
work to do.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Iterator

import pyarrow as pa

from ehrkit.synth import batched, entity_rng

NOTE_SCHEMA = pa.schema([
    ("row_id", pa.int64()), ("subject_id", pa.int64()), ("hadm_id", pa.int64()),
    ("chartdate", pa.string()), ("charttime", pa.string()), ("category", pa.string()),
    ("description", pa.string()), ("text", pa.string()),
])
ADMISSION_SCHEMA = pa.schema([
    ("subject_id", pa.int64()), ("hadm_id", pa.int64()), ("admittime", pa.string()),
    ("dischtime", pa.string()), ("deathtime", pa.string()), ("admission_type", pa.string()),
    ("diagnosis", pa.string()),
])

_FMT = "%Y-%m-%d %H:%M:%S"
_RISK_PHRASES = [
    "Patient reports poor adherence to her medication regimen at home.",
    "He lives alone and has limited social support.",
    "This is her third admission for CHF exacerbation in the past six months.",
    "Patient declined home services and VNA on discharge.",
    "Noted to have missed several outpatient follow-up appointments.",
    "Ongoing active alcohol use despite counseling.",
    "Discharged against advice of the team after a prolonged stay.",
]
_SAFE_PHRASES = [
    "Patient is ambulating independently and tolerating a regular diet.",
    "She has excellent family support and will stay with her daughter.",
    "Follow-up appointment with PCP arranged for next week.",
    "He was stable for discharge home with services in place.",
    "Patient verbalized understanding of discharge instructions.",
    "Symptoms fully resolved prior to discharge.",
]
_PROBLEMS = [
    ("Congestive heart failure", "shortness of breath", "CHF EXACERBATION"),
    ("Pneumonia", "fever and productive cough", "PNEUMONIA"),
    ("COPD exacerbation", "wheezing and dyspnea", "COPD FLARE"),
    ("Acute pancreatitis", "abdominal pain", "PANCREATITIS"),
    ("Urinary tract infection", "dysuria and confusion", "UROSEPSIS"),
    ("GI bleed", "melena and lightheadedness", "UPPER GI BLEED"),
    ("Atrial fibrillation with RVR", "palpitations", "AFIB"),
    ("Diabetic ketoacidosis", "nausea and polyuria", "DKA"),
]
_HISTORY = ["Hypertension", "Type II Diabetes Mellitus", "Hyperlipidemia", "CAD s/p CABG",
            "Chronic kidney disease, stage III", "Atrial fibrillation on coumadin", "GERD",
            "Depression", "Hypothyroidism", "Osteoarthritis", "Colon cancer s/p hemicolectomy"]
_MEDS = [
    "Metoprolol Tartrate 25 mg Tablet Sig: One (1) Tablet PO BID (2 times a day).",
    "Lisinopril 20mg p.o. q.d.",
    "Furosemide 40 mg Tablet Sig: One (1) Tablet PO DAILY (Daily).",
    "Aspirin 81 mg Tablet, Chewable Sig: One (1) Tablet PO DAILY (Daily).",
    "Atorvastatin 40 mg p.o. daily.",
    "Insulin Glargine 100 unit/mL Solution Sig: Twelve (12) units Subcutaneous at bedtime.",
    "Heparin Sodium (Porcine) 5,000 unit/mL Solution Sig: One (1) Injection TID (3 times a day).",
    "Acetaminophen 325 mg Tablet Sig: 1-2 Tablets PO Q6H (every 6 hours) as needed for pain.",
    "Warfarin 2.5 mg Tablet Sig: One (1) Tablet PO once a day.",
    "Levofloxacin 750 mg p.o. q.48h. for 5 days.",
    "Pantoprazole 40 mg b.i.d.",
]
_NURSING = [
    "Neuro: A+Ox3, follows commands, MAE.",
    "CV: HR 80s-90s NSR, BP 110-130/60s. K+ 3.6 repleted with 40 meq KCl.",
    "Resp: LS clear bilat, sats 95-97% on 2L NC. Weaned to RA this afternoon.",
    "GI/GU: abd soft, +BS. Foley draining clear yellow urine 40-60cc/hr.",
    "ID: Tmax 38.2. Blood cx x2 sent. Cont on vanco/zosyn.",
    "Skin: intact. Turned q2h.",
    "Social: family in to visit, updated by Dr. [**Last Name (STitle) 1234**].",
    "Plan: monitor lytes, replete prn, cont current plan of care.",
]


def _deid(rng: random.Random, kind: str) -> str:
    if kind == "date":
        return f"[**{rng.randint(2100, 2200)}-{rng.randint(1, 12)}-{rng.randint(1, 28)}**]"
    if kind == "name":
        return rng.choice(["[**Last Name (NamePattern1) {n}**]", "[**First Name8 (NamePattern2) {n}**]",
                           "[**Known lastname {n}**]", "[**Doctor Last Name {n}**]"]).format(
            n=rng.randint(100, 9999))
    if kind == "hospital":
        return f"[**Hospital{rng.randint(1, 9)} {rng.randint(10, 999)}**]"
    return f"[**Telephone/Fax ({rng.randint(1, 5)}) {rng.randint(1000, 9999)}**]"


def _labs(rng: random.Random, risk: float) -> str:
    wbc = rng.gauss(8.0 + 4 * risk, 2.0)
    hgb = rng.gauss(12.5 - 2 * risk, 1.0)
    cr = max(0.4, rng.gauss(1.0 + 1.2 * risk, 0.3))
    na = rng.gauss(139 - 3 * risk, 2.5)
    glu = rng.gauss(128, 30)
    return (f"{_deid(rng, 'date')} 05:40AM BLOOD WBC-{wbc:.1f} RBC-{rng.uniform(3, 5):.2f}* "
            f"Hgb-{hgb:.1f}* Hct-{hgb * 3:.1f}* Plt Ct-{rng.randint(120, 420)} "
            f"Glucose-{glu:.0f}* UreaN-{rng.randint(8, 60)}* Creat-{cr:.1f}* Na-{na:.0f} "
            f"K-{rng.uniform(3.2, 5.4):.1f} Cl-{rng.randint(96, 110)} HCO3-{rng.randint(18, 30)}")


def _sentences(rng: random.Random, pool: list[str], weight: float, k: int) -> list[str]:
    return [rng.choice(pool) for _ in range(k) if rng.random() < weight]


def discharge_summary(rng: random.Random, adm: dict, risk: float, sex: str, age: int) -> str:
    problem, complaint, _ = _PROBLEMS[adm["problem"]]
    pronoun = "She" if sex == "F" else "He"
    history = rng.sample(_HISTORY, rng.randint(2, 5))
    meds = rng.sample(_MEDS, rng.randint(3, 7))
    course = [f"{pronoun} was admitted to the floor and treated for {problem.lower()}.",
              f"Dr. {_deid(rng, 'name')} was consulted and recommended continued therapy.",
              f"{pronoun} received IV fluids and was started on appropriate therapy.",
              f"Creatinine peaked at {rng.uniform(1.0, 3.5):.1f} and improved to "
              f"{rng.uniform(0.7, 1.4):.1f} with hydration."]
    course += _sentences(rng, _RISK_PHRASES, 0.02 + 0.6 * risk, 6)
    course += _sentences(rng, _SAFE_PHRASES, 0.6 - 0.55 * risk, 6)
    rng.shuffle(course)
    parts = [
        f"Admission Date:  {_deid(rng, 'date')}              Discharge Date:   {_deid(rng, 'date')}",
        "",
        f"Date of Birth:  {_deid(rng, 'date')}             Sex:   {sex}",
        "",
        f"Service: {rng.choice(['MEDICINE', 'SURGERY', 'CARDIOLOGY', 'NEUROLOGY'])}",
        "",
        "Allergies:",
        rng.choice(["Patient recorded as having No Known Allergies to Drugs",
                    "Penicillins / Sulfa (Sulfonamide Antibiotics)", "Hydrochlorothiazide"]),
        "",
        f"Attending:{_deid(rng, 'name')}",
        "Chief Complaint:",
        complaint.capitalize(),
        "",
        "History of Present Illness:",
        f"{age}y {'female' if sex == 'F' else 'male'} with {history[0].lower()} who presents "
        f"with {rng.randint(1, 5)} days of {complaint}. Seen at {_deid(rng, 'hospital')} "
        f"prior to transfer. In the ED, T {rng.uniform(36.5, 39.5):.1f} HR {rng.randint(60, 130)} "
        f"BP {rng.randint(90, 170)}/{rng.randint(50, 95)} RR {rng.randint(12, 30)} "
        f"O2 sat {rng.randint(88, 100)}% on RA.",
        "",
        "Past Medical History:",
        *[f"{i}. {h}" for i, h in enumerate(history, 1)],
        "",
        "Pertinent Results:",
        _labs(rng, risk),
        "",
        "Brief Hospital Course:",
        " ".join(course),
        "",
        "Discharge Medications:",
        *[f"{i}. {m}" for i, m in enumerate(meds, 1)],
        "",
        "Discharge Disposition:",
        rng.choice(["Home", "Home With Service", "Extended Care"]),
        "",
        "Discharge Diagnosis:",
        problem,
        "",
        "Discharge Instructions:",
        "Please call your doctor or return to the emergency room if you experience fever "
        "> 101.5, chest pain, or shortness of breath.",
        "=" * rng.randint(10, 40),
        f"{_deid(rng, 'name')} M.D. {_deid(rng, 'phone')}",
        "",
        f"Completed by: {_deid(rng, 'name')} {_deid(rng, 'date')} @ {rng.randint(1000, 2359)}",
    ]
    return "\n".join(parts)


def nursing_note(rng: random.Random, risk: float) -> str:
    lines = ["Nursing Progress Note 0700-1900", *rng.sample(_NURSING, rng.randint(3, 6))]
    lines += _sentences(rng, _RISK_PHRASES, 0.1 + 0.4 * risk, 2)
    lines += _sentences(rng, _SAFE_PHRASES, 0.5 - 0.4 * risk, 2)
    return "\n".join(lines) + "\n"


def physician_note(rng: random.Random, adm: dict, risk: float) -> str:
    problem = _PROBLEMS[adm["problem"]][0]
    lines = ["Chief Complaint: " + _PROBLEMS[adm["problem"]][1],
             "24 Hour Events:", f"- {rng.choice(_NURSING)}",
             "Assessment and Plan:", f"{problem.upper()}", f"- cont {rng.choice(_MEDS)}",
             f"- f/u labs in am, trend WBC (last {rng.uniform(4, 18):.1f})"]
    lines += _sentences(rng, _RISK_PHRASES, 0.1 + 0.5 * risk, 2)
    return "\n".join(lines)


def _patient(seed: int, index: int) -> tuple[list[dict], list[dict]]:
    """One patient's admissions and notes."""
    rng = entity_rng(seed, "notes", index)
    subject_id = 10_000 + index
    sex, age = rng.choice("MF"), rng.randint(20, 89)
    time = datetime(2100, 1, 1) + timedelta(days=rng.uniform(0, 36_000))
    frailty = rng.gauss(-0.5, 1.5)
    gap_days, pending_elective = 0.0, False
    admissions, notes = [], []
    newborn = rng.random() < 0.04
    # Admissions are generated in order; after each, the latent risk decides whether a
    # non-elective readmission follows within 30 days (the label, ClinicalBERT's way).
    # Otherwise the patient may come back later, electively within 30 days (which must not
    # count), or not at all.
    k, more = 0, True
    while more and k < 8:
        risk = 1 / (1 + math.exp(-(frailty + rng.gauss(0, 0.4))))
        if newborn:
            kind = "NEWBORN"
        elif k and pending_elective:
            kind = "ELECTIVE"
        else:
            kind = rng.choice(["EMERGENCY"] * 6 + ["URGENT"])
        stay = timedelta(hours=rng.uniform(30, 24 * 14))
        adm = {"subject_id": subject_id, "hadm_id": 100_000 + index * 10 + k,
               "admittime": time, "dischtime": time + stay, "deathtime": None,
               "admission_type": kind, "problem": rng.randrange(len(_PROBLEMS))}
        admissions.append(adm)
        if not newborn and rng.random() < 0.04:
            adm["deathtime"] = adm["dischtime"]
        notes += _notes(rng, adm, risk, sex, age)
        if newborn or adm["deathtime"]:
            break
        pending_elective = False
        if rng.random() < 0.03 + 0.9 * risk ** 2:
            gap_days = rng.uniform(1, 29)
        elif rng.random() < 0.15:
            gap_days, pending_elective = rng.uniform(2, 28), True
        elif rng.random() < 0.45:
            gap_days = rng.uniform(31, 700)
        else:
            more = False
        time = adm["dischtime"] + timedelta(days=gap_days) if more else time
        k += 1
    rows = [{"subject_id": a["subject_id"], "hadm_id": a["hadm_id"],
             "admittime": a["admittime"].strftime(_FMT), "dischtime": a["dischtime"].strftime(_FMT),
             "deathtime": a["deathtime"].strftime(_FMT) if a["deathtime"] else None,
             "admission_type": a["admission_type"],
             "diagnosis": "NEWBORN" if a["admission_type"] == "NEWBORN" else _PROBLEMS[a["problem"]][2]}
            for a in admissions]
    return rows, notes


def _notes(rng: random.Random, adm: dict, risk: float, sex: str, age: int) -> list[dict]:
    start, end = adm["admittime"], adm["dischtime"]
    notes = []
    for _ in range(rng.randint(0, 4)):
        when = start + (end - start) * rng.random()
        if rng.random() < 0.6:
            category, desc, text = "Nursing", "Nursing Progress Note", nursing_note(rng, risk)
        else:
            category, desc, text = "Physician ", "Physician Resident Progress Note", \
                physician_note(rng, adm, risk)
        notes.append((when, category, desc, text, True))
    n_summaries = 2 if rng.random() < 0.05 else 1  # replicated summaries, as in MIMIC
    for _ in range(n_summaries):
        notes.append((end, "Discharge summary", "Report",
                      discharge_summary(rng, adm, risk, sex, age), False))
    notes.sort(key=lambda n: n[0])
    return [{"subject_id": adm["subject_id"], "hadm_id": adm["hadm_id"],
             "chartdate": when.strftime("%Y-%m-%d"),
             "charttime": when.strftime(_FMT) if timed else None,
             "category": category, "description": desc, "text": text}
            for when, category, desc, text, timed in notes]


def generate(n: int, seed: int = 0) -> Iterator[tuple[list[dict], list[dict]]]:
    """Yield (notes, admissions) per patient until n notes have been produced."""
    produced, index = 0, 0
    while produced < n:
        admissions, notes = _patient(seed, index)
        notes = notes[: n - produced]
        for i, note in enumerate(notes):
            note["row_id"] = produced + i + 1
        produced += len(notes)
        index += 1
        yield notes, admissions


def note_batches(n: int, seed: int = 0, admissions_sink=None) -> Iterator[pa.RecordBatch]:
    """Stream n notes as record batches; admissions rows go to `admissions_sink(list)` if given."""
    def rows():
        for notes, admissions in generate(n, seed):
            if admissions_sink is not None:
                admissions_sink(admissions)
            yield from notes
    return batched(rows(), NOTE_SCHEMA)
