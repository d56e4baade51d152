"""The named choices of `notes clean`, in a module without heavy imports so the CLI can use
them for option parsing and completion without loading polars."""

from __future__ import annotations

from enum import Enum


class Profile(str, Enum):
    default = "default"
    clinicalbert = "clinicalbert"
    clinicalbert_pretrain = "clinicalbert-pretrain"


class Deid(str, Enum):
    placeholder = "placeholder"
    strip = "strip"
    keep = "keep"


class Segmenter(str, Enum):
    fast = "fast"  # vectorised polars rules
    spacy = "spacy"  # the reference: spaCy's blank English pipeline and sentencizer
