"""`notes clean`: the cleaning profiles (golden cases, ClinicalBERT's quirks), segmentation
rules, fusing, explode, workers, and agreement of the fast segmenter with the spaCy reference."""

from __future__ import annotations

import re
import string
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from ehrkit.notes.clean import CleanConfig, Deid, Profile, clean_expr
from ehrkit.notes.pipeline import NotesConfig, clean_chunks, process_batch
from ehrkit.notes.segment import SegmentConfig, segment


NOTES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "notes"


@pytest.fixture(scope="module")
def real_notes():
    """The real notes in ../shared/data/notes: a MIMIC-style discharge summary and MTS-Dialog."""
    if not NOTES_DIR.is_dir():
        pytest.skip("../shared/data/notes is absent (only the team's checkout has it)")
    texts = [(NOTES_DIR / "medspacy" / "discharge_summary.txt").read_text()]
    for name in ("MTS_Dataset_TrainingSet.csv", "MTS_Dataset_ValidationSet.csv"):
        frame = pl.read_csv(NOTES_DIR / "mts-dialog" / name)
        texts += frame["section_text"].to_list() + frame["dialogue"].to_list()
    return texts


def clean(texts, profile=Profile.default, deid=Deid.placeholder):
    frame = pl.DataFrame({"t": pl.Series(texts, dtype=pl.String)})
    return frame.select(clean_expr(pl.col("t"), CleanConfig(profile, deid)))["t"].to_list()


def sentences(text, min_chars=0, min_words=0, clinical=True):
    config = SegmentConfig(clinical=clinical, min_chars=min_chars, min_words=min_words)
    return segment(pl.Series([text]), config).to_list()[0]


# ---------------------------------------------------------------- ClinicalBERT, step for step

def clinicalbert_source(text, pretrain=False):
    """ClinicalBERT's preprocess1 and the notebook's pretraining extras, transcribed."""
    y = " " if text is None else text
    y = y.replace("\n", " ").replace("\r", " ").strip().lower()
    y = re.sub(r"\[(.*?)\]", "", y)
    y = re.sub(r"[0-9]+\.", "", y)
    y = re.sub(r"dr\.", "doctor", y)
    y = re.sub(r"m\.d\.", "md", y)
    y = re.sub("admission date:", "", y)
    y = re.sub("discharge date:", "", y)
    y = re.sub("--|__|==", "", y)
    if pretrain:
        y = y.translate(str.maketrans("", "", string.digits))
        y = " ".join(y.split())
    return y


def test_clinicalbert_golden_case_from_methods():
    assert clean(["[**2109-7-21**] Dr. Smith 1. bp 2.5"], Profile.clinicalbert) == \
        [" doctor smith  bp 5"]


@pytest.mark.parametrize("text, expected", [
    ("Dose 2.5 mg", "dose 5 mg"),                    # quirk: decimals lose their integer part
    ("seen on 12.03.2101", "seen on 2101"),           # quirk: dotted dates vanish
    ("home addr. given", "home addoctor given"),      # quirk: dr. matches inside words
    ("a---b ====c", "a-b c"),                         # quirk: pairs removed, odd dash kept
    ("Admission Date: x Discharge Date: y", " x  y"),
    ("seen by M.D. today", "seen by md today"),
    ("[anything] kept [** x **]", " kept "),
    (None, ""),
    ("line\r\nbreak\nhere", "line  break here"),
])
def test_clinicalbert_quirks(text, expected):
    assert clean([text], Profile.clinicalbert) == [expected]
    assert clean([text], Profile.clinicalbert) == [clinicalbert_source(text)]


def test_clinicalbert_pretrain_variant_deletes_digits_and_collapses_space():
    text = "BP 120/80,  HR 7.5\n[**2101-1-1**] Dr. X"
    assert clean([text], Profile.clinicalbert_pretrain) == ["bp /, hr doctor x"]
    assert clean([text], Profile.clinicalbert_pretrain) == [clinicalbert_source(text, True)]


def test_clinicalbert_profile_matches_the_source_on_synthetic_notes():
    from ehrkit.synth.notes import note_batches

    texts = [t for b in note_batches(200, seed=3) for t in b.column("text").to_pylist()]
    for profile, pretrain in [(Profile.clinicalbert, False), (Profile.clinicalbert_pretrain, True)]:
        assert clean(texts, profile) == [clinicalbert_source(t, pretrain) for t in texts]


def test_clinicalbert_profile_matches_the_source_on_real_notes(real_notes):
    for profile, pretrain in [(Profile.clinicalbert, False), (Profile.clinicalbert_pretrain, True)]:
        assert clean(real_notes, profile) == [clinicalbert_source(t, pretrain) for t in real_notes]


def test_clinicalbert_pretrain_segmentation_with_spacy_is_the_notebooks():
    """--segmenter spacy with the pretraining profile is toSentence exactly."""
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")

    def to_sentence(x):
        text = []
        for sent in nlp(x).sents:
            st = str(sent).strip()
            if len(st) < 20:
                if len(text) != 0:
                    text[-1] = " ".join((text[-1], st))
                else:
                    text = [st]
            else:
                text.append(st)
        return text

    from ehrkit.synth.notes import note_batches

    batch = next(note_batches(60, seed=5))
    config = NotesConfig(clean=CleanConfig(Profile.clinicalbert_pretrain), segmenter="spacy",
                         segment=SegmentConfig(clinical=False, min_chars=20))
    out = process_batch(batch, config)
    expected = [to_sentence(clinicalbert_source(t, True)) for t in batch.column("text").to_pylist()]
    assert out.column("sentences").to_pylist() == expected


# ---------------------------------------------------------------- default profile

def test_default_profile_keeps_doses_and_decimals():
    assert clean(["Lisinopril 2.5 mg p.o. q.d., K 3.6, 20mg"]) == \
        ["lisinopril 2.5 mg p.o. q.d., k 3.6, 20mg"]


def test_default_profile_removes_breaks_and_separator_runs():
    assert clean(["A\r\n\nB ==== C ---- D ____ E ~~ F - G"]) == ["a b c d e f - g"]


def test_default_profile_normalises_md_and_dr():
    assert clean(["Dr. Smith, M.D., saw him; addr. kept"]) == ["dr smith, md, saw him; addr. kept"]


@pytest.mark.parametrize("span, placeholder", [
    ("[**2109-7-21**]", "[date]"), ("[**6-25**]", "[date]"), ("[**2554**]", "[date]"),
    ("[**Month (only) 11**]", "[date]"),
    ("[**Known patient lastname 2004**]", "[name]"), ("[**First Name3 (LF) 1893**]", "[name]"),
    ("[**Doctor First Name **]", "[name]"),
    ("[**Hospital1 18**]", "[location]"), ("[**Location (un) 86**]", "[location]"),
    ("[**Telephone/Fax (1) 1234**]", "[contact]"),
    ("[**MD Number 2012**]", "[id]"), ("[**Medical Record Number 123**]", "[id]"),
    ("[**Age over 90 **]", "[age]"), ("[**Something else**]", "[deid]"),
])
def test_deid_placeholders_are_typed(span, placeholder):
    assert clean([f"seen {span} today"]) == [f"seen {placeholder} today"]


def test_deid_strip_and_keep():
    text = "Seen [**2109-7-21**] by [**Last Name (NamePattern1) 12**]."
    assert clean([text], deid=Deid.strip) == ["seen by ."]
    assert clean([text], deid=Deid.keep) == ["seen [**2109-7-21**] by [**last name (namepattern1) 12**]."]


# ---------------------------------------------------------------- segmentation

def test_no_split_inside_abbreviations_decimals_list_numbers_or_doses():
    text = ("pt given lisinopril 20mg p.o. q.d. and metoprolol 12.5 mg b.i.d. for htn. "
            "seen by dr. smith today. past history: 1. htn 2. dm. plan: t.i.d. dosing.")
    assert sentences(text) == [
        "pt given lisinopril 20mg p.o. q.d. and metoprolol 12.5 mg b.i.d. for htn.",
        "seen by dr. smith today.",
        "past history: 1. htn 2. dm.",
        "plan: t.i.d. dosing.",
    ]


def test_list_numbers_start_sentences_after_a_period():
    assert sentences("meds: 1. aspirin daily. 2. lasix 40 mg daily. 3. insulin.") == \
        ["meds: 1. aspirin daily.", "2. lasix 40 mg daily.", "3. insulin."]


def test_a_list_number_right_after_an_abbreviation_is_still_protected():
    # Regression: the protected boundary before "2." must not hide the space "2" needs.
    assert sentences("meds: 1. lisinopril 20mg p.o. q.d. 2. insulin at bedtime. 3. aspirin.") == \
        ["meds: 1. lisinopril 20mg p.o. q.d. 2. insulin at bedtime.", "3. aspirin."]


def test_a_decimal_at_a_sentence_end_still_ends_it():
    assert sentences("tmax 38.2. blood cultures sent.") == ["tmax 38.2.", "blood cultures sent."]


def test_plain_rules_split_at_every_period():
    assert sentences("take 20 mg p.o. daily. ok", clinical=False) == \
        ["take 20 mg p.o.", "daily.", "ok"]


def test_question_and_exclamation_marks_and_closing_punctuation():
    assert sentences('is it better? yes! he said "stop." then (left.) ok') == \
        ["is it better?", "yes!", 'he said "stop."', "then (left.)", "ok"]


def test_short_segments_fuse_into_the_previous_one():
    text = "the patient was admitted overnight. stable. no events. discharged home with family."
    assert sentences(text, min_chars=20) == [
        "the patient was admitted overnight. stable. no events.",
        "discharged home with family.",
    ]


def test_a_short_first_segment_starts_the_list_and_collects_followers():
    assert sentences("ok. fine. a much longer second sentence here.", min_chars=20) == \
        ["ok. fine.", "a much longer second sentence here."]


def test_min_words_fuses_segments_with_few_words():
    text = "one two three. four five six seven eight. nine."
    assert sentences(text, min_words=4) == ["one two three.", "four five six seven eight. nine."]
    assert sentences(text, min_words=4, min_chars=0) == sentences(text, min_words=4)


def test_empty_and_null_texts_have_no_sentences():
    out = segment(pl.Series(["", None, "   "], dtype=pl.String), SegmentConfig())
    assert out.to_list() == [[], [], []]


def test_mark_characters_in_input_cannot_forge_boundaries():
    assert sentences("a\x1fb\x1ec\x1dd") == ["a b c d"]


# Awkward whitespace, punctuation and spans; NESTED has spans with a "[" inside, which need
# the slower, general de-identification patterns.
AWKWARD = [
    "Seen [**2101-1-1**] by [**Known lastname 12**] at [**Hospital1 18**].\nDr. X. 1. ok",
    "[****] [**]**] **] [** __m.d. m.d.dr. e.g. (1. x-12. y a\u300012. b a.12. b",
    "?. !) .) \" ' \u2003. x line\u2028break\xa0nbsp\x85nel\ttab\r\n\x1d\x1e\x1f. 3. ok.",
    None, "", "   ",
]
NESTED = ["[**[**2101-1-1**] name**] [**a]b**] [** x [y] name **]"]
# ASCII with no whitespace but spaces and line breaks, as most notes: literal passes do there.
PLAIN = ["Seen [**2101-1-1**] by Dr. X.\n\n1. ok.  Two  spaces .\nhere. 2.5 mg p.o. q.d. ?  !\n",
         "x. y.) \"z.\" a?! b.. 12. c", None, "", " \n "]


@pytest.mark.parametrize("texts", [AWKWARD, AWKWARD + NESTED, PLAIN])
def test_fast_paths_equal_the_general_rules(texts):
    """clean_column picks faster patterns when no span holds a "[" and when the texts are
    plain ASCII, segment skips what the default profile already did, and boundaries after a
    period are marked in a pass of their own: none of it may change a result."""
    from ehrkit.notes.clean import clean_column
    from ehrkit.notes.segment import _BOUNDARY_RE, MARK, split_expr

    frame = pl.DataFrame({"t": pl.Series(texts, dtype=pl.String)})
    for deid in Deid:
        config = CleanConfig(Profile.default, deid)
        general = frame.select(clean_expr(pl.col("t"), config))
        assert clean_column(frame, "t", config).equals(general)
    cleaned = general["t"]
    assert segment(cleaned, SegmentConfig(), cleaned=True).equals(segment(cleaned, SegmentConfig()))
    one_pass = cleaned.str.replace_all(_BOUNDARY_RE, "${1}" + MARK)
    assert pl.select(split_expr(pl.lit(cleaned), clinical=False, cleaned=True)).to_series() \
        .equals(one_pass)


# ---------------------------------------------------------------- batches, explode, workers

def _batch(texts, **extra):
    return pa.RecordBatch.from_pydict({"note_id": list(range(len(texts))), "text": texts, **extra})


def test_other_fields_pass_through_unchanged():
    batch = _batch(["First one here. Second sentence here."], charttime=["2101-01-01 10:00:00"],
                   label=[1])
    out = process_batch(batch, NotesConfig())
    assert out.column("charttime").to_pylist() == ["2101-01-01 10:00:00"]
    assert out.column("label").to_pylist() == [1]
    assert out.column("sentences").to_pylist() == [["first one here.", "second sentence here."]]


def test_explode_writes_one_record_per_sentence():
    batch = _batch(["First one is long enough. Second one is long enough.", ""])
    out = process_batch(batch, NotesConfig(explode=True)).to_pydict()
    assert out["note_id"] == [0, 0]
    assert out["text"] == ["first one is long enough.", "second one is long enough."]
    assert out["sentence_index"] == [0, 1]
    assert "sentences" not in out


def test_no_segment_only_cleans():
    out = process_batch(_batch(["A. B."]), NotesConfig(segment=None))
    assert out.schema.names == ["note_id", "text"]


def test_workers_keep_input_order():
    from ehrkit.synth.notes import note_batches

    batches = [b.slice(i, 50) for b in note_batches(400, seed=2) for i in range(0, b.num_rows, 50)]
    one = [d.payload for d in clean_chunks(batches, NotesConfig(), workers=1, encode=True)]
    many = [d.payload for d in clean_chunks(batches, NotesConfig(), workers=3, encode=True)]
    assert len(one) == len(batches) > 2
    assert one == many


# ---------------------------------------------------------------- agreement with spaCy

def _starts(text, parts):
    """Offsets where sentences after the first begin, at their first letter or digit."""
    out, cursor = set(), 0
    for i, part in enumerate(parts):
        at = text.index(part, cursor)
        cursor = at + len(part)
        word = re.search(r"[^\W_]", text[at:])
        if i and word:
            out.add(at + word.start())
    return out


def boundary_agreement(texts):
    """F1 of the fast segmenter's sentence starts against the spaCy reference's."""
    from ehrkit.notes import spacy_ref
    from ehrkit.notes.segment import fuse_lists

    config = SegmentConfig()
    cleaned = clean(texts)
    fast = segment(pl.Series(cleaned), config).to_list()
    ref = fuse_lists(spacy_ref.split(cleaned, clinical=True), config)
    both = n_fast = n_ref = 0
    for text, f, r in zip(cleaned, fast, ref):
        a, b = _starts(text, f), _starts(text, r)
        both, n_fast, n_ref = both + len(a & b), n_fast + len(a), n_ref + len(b)
    return 2 * both / (n_fast + n_ref)


@pytest.mark.slow
def test_fast_segmenter_agrees_with_spacy_on_real_notes(real_notes):
    assert boundary_agreement(real_notes) >= 0.98


def test_fast_segmenter_agrees_with_spacy_on_synthetic_notes():
    from ehrkit.synth.notes import note_batches

    texts = [t for b in note_batches(300, seed=4) for t in b.column("text").to_pylist()]
    assert boundary_agreement(texts) >= 0.98
