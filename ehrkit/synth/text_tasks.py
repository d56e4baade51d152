"""Synthetic clinical text tasks: named entities (BIO) and sentence pairs (STS and NLI).

NER records: `id` (string), `text`, `tokens` list<string>, `tags` list<string> (BIO over the
types Disease, Drug and Dose), `spans` list<struct<start: int32, end: int32, label: string>>
(character offsets into `text`, end exclusive). Entities are one to four tokens long, so both
B- and I- tags occur; some sentences have no entity at all. `conll_lines` renders records as
the CoNLL/IOB text layout of NCBI-disease: one `token<TAB>tag` per line, a blank line after
each sentence.

Pair records: `id`, `sentence_a`, `sentence_b`, `similarity` (float64, 0-5, ClinicalSTS
style) and `entailment` (entailment, neutral or contradiction, MedNLI style, with a as the
premise). Both labels follow from how the pair was built: a paraphrase is very similar and
entailed, a negation is fairly similar and contradicts, an added finding is similar and
neutral, a dropped finding is similar and entailed, a different finding is dissimilar and
neutral, an unrelated sentence is not similar at all and neutral.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import pyarrow as pa

from ehrkit.synth import batched, entity_rng

NER_LABELS = ("Disease", "Drug", "Dose")
NER_SCHEMA = pa.schema([
    ("id", pa.string()), ("text", pa.string()), ("tokens", pa.list_(pa.string())),
    ("tags", pa.list_(pa.string())),
    ("spans", pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32()),
                                  ("label", pa.string())]))),
])
PAIR_SCHEMA = pa.schema([
    ("id", pa.string()), ("sentence_a", pa.string()), ("sentence_b", pa.string()),
    ("similarity", pa.float64()), ("entailment", pa.string()),
])
ENTAILMENT_LABELS = ("contradiction", "entailment", "neutral")

# ----------------------------------------------------------------------------- NER

_DISEASES = ["pneumonia", "sepsis", "hypertension", "cellulitis", "pancreatitis", "cirrhosis",
              "asthma", "anemia", "hypothyroidism", "COPD", "CHF", "gout", "osteomyelitis",
              "atrial fibrillation", "congestive heart failure", "type 2 diabetes mellitus",
              "chronic kidney disease", "acute kidney injury", "urinary tract infection",
              "deep vein thrombosis", "pulmonary embolism", "coronary artery disease",
              "community acquired pneumonia", "diabetic ketoacidosis", "myocardial infarction",
              "ischemic stroke", "upper GI bleed", "alcohol withdrawal"]
# drug: doses that go with it
_DRUGS = {
    "metoprolol": ["25 mg", "12.5 mg", "50 mg"], "lisinopril": ["10 mg", "20 mg", "40mg"],
    "furosemide": ["20 mg", "40 mg", "80 mg"], "vancomycin": ["1 g", "1250 mg", "15 mg/kg"],
    "ceftriaxone": ["1 g", "2 g"], "heparin": ["5000 units", "5,000 units"],
    "warfarin": ["2 mg", "5mg"], "apixaban": ["5 mg", "2.5 mg"], "aspirin": ["81 mg", "325 mg"],
    "atorvastatin": ["40 mg", "80 mg", "20mg"], "amiodarone": ["200 mg", "400 mg"],
    "prednisone": ["40 mg", "60 mg"], "levothyroxine": ["50 mcg", "100 mcg"],
    "metformin": ["500 mg", "1000 mg"], "acetaminophen": ["650 mg", "1 g"],
    "oxycodone": ["5 mg", "10 mg"], "pantoprazole": ["40 mg"],
    "piperacillin-tazobactam": ["4.5 g", "3.375 g"], "insulin glargine": ["10 units", "20 units"],
    "insulin lispro": ["4 units", "6 units"], "potassium chloride": ["20 mEq", "40 mEq"],
    "magnesium sulfate": ["2 g", "2 grams"], "ipratropium bromide": ["2 puffs", "0.5 mg"],
    "Lasix": ["40 mg", "40mg"], "Zosyn": ["4.5 g", "3.375 g"], "Coumadin": ["5 mg", "1 tab"],
}
# {D} disease, {R} drug, {S} dose; tokens are separated by spaces
_NER_TEMPLATES = [
    "Patient with a history of {D} was started on {R} {S} daily .",
    "{R} {S} IV q12h was given for presumed {D} .",
    "Admitted for {D} , treated with {R} .",
    "Continue {R} {S} PO BID for {D} .",
    "No evidence of {D} on imaging .",
    "History of {D} and {D} , on {R} at home .",
    "Discontinued {R} due to worsening {D} .",
    "Plan : increase {R} to {S} and monitor for {D} .",
    "{D} complicated by {D} requiring {R} {S} .",
    "Received {S} of {R} in the emergency department .",
    "Home medications include {R} {S} , {R} {S} and {R} .",
    "Will hold {R} given concern for {D} .",
    "She was transitioned from {R} to {R} {S} for {D} .",
    "The patient denies chest pain or shortness of breath .",
    "Vital signs stable overnight , tolerating a regular diet .",
    "Family meeting held at bedside ; questions answered .",
]
_SLOTS = {"{D}": "Disease", "{R}": "Drug", "{S}": "Dose"}
_NO_SPACE_BEFORE = {".", ",", ";", ":", ")"}


def _ner_sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    words = rng.choice(_NER_TEMPLATES).split()
    drug_at = [i for i, w in enumerate(words) if w == "{R}"]
    drugs = [rng.choice(list(_DRUGS)) for _ in drug_at]
    tokens, tags = [], []
    for i, word in enumerate(words):
        label = _SLOTS.get(word)
        if label == "Drug":
            phrase = drugs[drug_at.index(i)]
        elif label == "Dose":  # the dose of the drug just named (or named next)
            before = [k for k, at in enumerate(drug_at) if at < i]
            phrase = rng.choice(_DRUGS[drugs[before[-1] if before else 0]])
        elif label == "Disease":
            phrase = rng.choice(_DISEASES)
        else:
            tokens.append(word)
            tags.append("O")
            continue
        parts = phrase.split()
        tokens += parts
        tags += [f"B-{label}"] + [f"I-{label}"] * (len(parts) - 1)
    tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
    return tokens, tags


def _render(tokens: list[str]) -> tuple[str, list[int]]:
    """Join tokens as prose (no space before punctuation); return the text and token starts."""
    text, starts = "", []
    for i, token in enumerate(tokens):
        if i and token not in _NO_SPACE_BEFORE:
            text += " "
        starts.append(len(text))
        text += token
    return text, starts


def _spans(tokens: list[str], tags: list[str], starts: list[int]) -> list[dict]:
    spans = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            spans.append({"start": starts[i], "end": starts[i] + len(tokens[i]), "label": tag[2:]})
        elif tag.startswith("I-"):
            spans[-1]["end"] = starts[i] + len(tokens[i])
    return spans


def ner_record(seed: int, index: int) -> dict:
    """One NER sentence; a pure function of (seed, index)."""
    tokens, tags = _ner_sentence(entity_rng(seed, "ner", index))
    text, starts = _render(tokens)
    return {"id": str(index + 1), "text": text, "tokens": tokens, "tags": tags,
            "spans": _spans(tokens, tags, starts)}


def ner_batches(n: int, seed: int = 0) -> Iterator[pa.RecordBatch]:
    return batched((ner_record(seed, i) for i in range(n)), NER_SCHEMA)


def conll_lines(batch: pa.RecordBatch) -> Iterable[str]:
    """CoNLL/IOB text for a batch of NER records: `token<TAB>tag` lines, blank line after each."""
    for tokens, tags in zip(batch.column("tokens").to_pylist(), batch.column("tags").to_pylist()):
        yield "".join(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags)) + "\n"


# ----------------------------------------------------------------------------- pairs

# (finding, paraphrase, negation), each completing "<subject> ..."
_FINDINGS = [
    ("has a fever", "is febrile", "is afebrile"),
    ("reports chest pain", "complains of chest pain", "denies chest pain"),
    ("is short of breath", "reports dyspnea", "denies shortness of breath"),
    ("has a productive cough", "is coughing up sputum", "has no cough"),
    ("is hypotensive", "has a low blood pressure", "is normotensive"),
    ("is tachycardic", "has a rapid heart rate", "has a normal heart rate"),
    ("has pneumonia", "was diagnosed with pneumonia", "does not have pneumonia"),
    ("was started on antibiotics", "received antibiotic therapy", "was not given antibiotics"),
    ("is on insulin", "takes insulin at home", "is not on insulin"),
    ("has swelling in both legs", "has bilateral lower extremity edema", "has no leg swelling"),
    ("is confused", "is disoriented", "is alert and oriented"),
    ("has nausea and vomiting", "is vomiting", "denies nausea or vomiting"),
    ("requires supplemental oxygen", "is on oxygen by nasal cannula",
     "is saturating well on room air"),
    ("has a history of diabetes", "is diabetic", "has no history of diabetes"),
    ("has abdominal pain", "complains of belly pain", "denies abdominal pain"),
    ("is bleeding from the rectum", "has bright red blood per rectum", "has no signs of bleeding"),
    ("has a headache", "complains of head pain", "denies headache"),
    ("has an elevated creatinine", "has worsening renal function", "has a normal creatinine"),
    ("is anemic", "has a low hemoglobin", "has a normal hemoglobin"),
    ("has a rash on the arms", "has a skin eruption on both arms", "has no rash"),
]
_SUBJECTS = ["The patient", "Patient", "Pt", "He", "She"]
_PREFIXES = ["", "", "", "On admission, ", "Today ", "Overnight "]
_UNRELATED = ["Follow-up is scheduled with cardiology in two weeks.",
              "The family was updated at the bedside.", "Physical therapy evaluation is pending.",
              "Discharge paperwork was reviewed with the daughter.",
              "Diet was advanced to regular as tolerated.",
              "The chaplain visited this afternoon.", "Social work will assist with housing."]
# kind: (weight, similarity range, entailment label)
_PAIR_KINDS = {
    "paraphrase": (3, (4.0, 5.0), "entailment"),
    "negation": (3, (2.0, 3.4), "contradiction"),
    "added": (2, (2.8, 3.8), "neutral"),
    "dropped": (2, (3.0, 4.0), "entailment"),
    "different": (2, (0.8, 2.0), "neutral"),
    "unrelated": (2, (0.0, 0.7), "neutral"),
}


def _sentence(prefix: str, subject: str, predicate: str) -> str:
    if prefix and subject != "Pt":
        subject = subject.lower()
    return f"{prefix}{subject} {predicate}."


def _pair(rng: random.Random) -> tuple[str, str, str]:
    kinds = list(_PAIR_KINDS)
    kind = rng.choices(kinds, weights=[_PAIR_KINDS[k][0] for k in kinds])[0]
    first, second = rng.sample(_FINDINGS, 2)
    subject, prefix = rng.choice(_SUBJECTS), rng.choice(_PREFIXES)
    a = _sentence(prefix, subject, first[0])
    if kind == "paraphrase":
        b = _sentence(rng.choice(_PREFIXES), rng.choice(_SUBJECTS[:3]), first[1])
    elif kind == "negation":
        b = _sentence(prefix, subject, first[2])
    elif kind == "added":
        b = _sentence(prefix, subject, f"{first[0]} and {second[0]}")
    elif kind == "dropped":
        a = _sentence(prefix, subject, f"{first[0]} and {second[0]}")
        b = _sentence("", rng.choice(_SUBJECTS[:3]), first[1] if rng.random() < 0.5 else first[0])
    elif kind == "different":
        b = _sentence(prefix, subject, second[0])
    else:
        b = rng.choice(_UNRELATED)
    return kind, a, b


def pair_record(seed: int, index: int) -> dict:
    """One sentence pair; a pure function of (seed, index)."""
    rng = entity_rng(seed, "pairs", index)
    kind, a, b = _pair(rng)
    _, (low, high), label = _PAIR_KINDS[kind]
    if kind in ("negation", "different", "unrelated") and rng.random() < 0.5:
        a, b = b, a  # these labels are symmetric; entailment and "added" are not
    return {"id": str(index + 1), "sentence_a": a, "sentence_b": b,
            "similarity": round(rng.uniform(low, high), 1), "entailment": label}


def pair_batches(n: int, seed: int = 0) -> Iterator[pa.RecordBatch]:
    return batched((pair_record(seed, i) for i in range(n)), PAIR_SCHEMA)
