"""Fine-tuning models: a pretrained encoder with a new head, built for a Spec, saved as a
transformers directory (or an ehrkit GRU directory) that `ehrkit predict` loads again.

- text: `BertForSequenceClassification` (binary: one output, problem_type
  multi_label_classification, so transformers' own pipeline applies a sigmoid as ClinicalBERT);
- ner: `BertForTokenClassification`;
- timeline: `LlamaForSequenceClassification` (pools the last position; inputs are left-padded);
- series: the ehrkit GRU with a new head, or a new GRU (`init` None: the task-specific RNN).

New weights (heads, BERT's pooler when the checkpoint is a masked LM) are drawn from the run's
seed, so a seed gives the same model. Nothing is downloaded: `init` is a local directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ehrkit.embed.models import load_tokenizer
from ehrkit.errors import DataError, UsageError
from ehrkit.finetune.spec import Spec

_HINT = "--init takes a local model directory (config.json, model.safetensors) written by " \
        "`ehrkit pretrain`, `ehrkit finetune` or transformers' save_pretrained"


def model_type(directory: str | Path | None) -> str | None:
    """config.json's model_type of a model directory (None: no directory)."""
    if directory is None:
        return None
    from ehrkit.embed.models import read_config

    return read_config(Path(directory)).get("model_type")


def kind_for(init: str | None, task: str) -> str:
    """The input kind a model directory (and task) implies."""
    found = model_type(init)
    if found == "bert":
        return "ner" if task == "ner" else "text"
    if found == "llama":
        if task == "ner":
            raise UsageError("--task ner needs a BERT model (--init)")
        return "timeline"
    if found in (None, "ehrkit-gru"):
        if task == "ner":
            raise UsageError("--task ner needs a BERT model (--init DIR)")
        return "series"
    raise DataError(f"{init}: model type {found!r} cannot be fine-tuned",
                    hint="use a BERT (notes), Llama (timelines) or ehrkit GRU (series) directory")


def _problem(task: str) -> str:
    return {"binary": "multi_label_classification", "multilabel": "multi_label_classification",
            "multiclass": "single_label_classification", "regression": "regression"}.get(task, "")


def _label_maps(spec: Spec) -> dict:
    names = spec.tag_names if spec.task == "ner" else \
        [str(c) for c in spec.targets[0]["classes"]] if spec.task == "multiclass" else \
        spec.label_names if spec.task == "multilabel" else \
        [str(spec.targets[0]["positive"])] if spec.task == "binary" else ["value"]
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def build(spec: Spec, init: str | None, seed: int, gru: dict | None = None,
          max_length: int | None = None) -> tuple[torch.nn.Module, object, list[str]]:
    """(model, tokenizer (notes) or None, names of newly initialised weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.kind == "series":
            return _gru(spec, init, gru or {})
        return _transformer(spec, Path(init), max_length)


def _transformer(spec: Spec, init: Path, max_length: int | None):
    from transformers import (BertForSequenceClassification, BertForTokenClassification,
                              LlamaForSequenceClassification)

    cls = {"text": BertForSequenceClassification, "ner": BertForTokenClassification,
           "timeline": LlamaForSequenceClassification}[spec.kind]
    extra = {}
    if spec.kind == "timeline":
        from ehrkit.embed.models import timeline_pad

        extra["pad_token_id"] = timeline_pad(init, json.loads((init / "config.json").read_text()))
    if spec.task != "ner":
        extra["problem_type"] = _problem(spec.task)
    try:
        model, info = cls.from_pretrained(init, local_files_only=True, use_safetensors=True,
                                          attn_implementation="sdpa", output_loading_info=True,
                                          num_labels=spec.outputs, **_label_maps(spec), **extra)
    except (OSError, ValueError, RuntimeError) as err:
        raise DataError(f"{init}: cannot load the model ({type(err).__name__})", hint=_HINT) from None
    positions = int(model.config.max_position_embeddings)
    if max_length is not None and max_length > positions:
        raise UsageError(f"--max-length {max_length}: {init} has only {positions} positions")
    tokenizer = load_tokenizer(init) if spec.kind in ("text", "ner") else None
    return model.float(), tokenizer, sorted(info.get("missing_keys") or [])


def _gru(spec: Spec, init: str | None, options: dict):
    from ehrkit.models.gru import GRUClassifier, GRUConfig

    names = list(_label_maps(spec)["id2label"].values())
    if init is None:
        if not options.get("input_size"):
            raise DataError("the series records have no variables")
        config = GRUConfig(input_size=options["input_size"], num_labels=spec.outputs,
                           hidden_size=options.get("hidden_size", 300),
                           num_layers=options.get("num_layers", 2),
                           dropout=options.get("dropout", 0.3), label_names=names)
        return GRUClassifier(config), None, ["*"]
    try:
        model = GRUClassifier.from_pretrained(init)
    except (OSError, RuntimeError, TypeError) as err:
        raise DataError(f"{init}: cannot load the GRU ({type(err).__name__})", hint=_HINT) from None
    model.config.num_labels, model.config.label_names = spec.outputs, names
    model.head = torch.nn.Linear(model.config.hidden_size, spec.outputs)
    return model, None, ["head.weight", "head.bias"]


def load(directory: Path, spec: Spec) -> torch.nn.Module:
    """A fine-tuned model from its directory, in eval mode on the CPU (weights must all fit)."""
    if spec.kind == "series":
        from ehrkit.models.gru import GRUClassifier

        try:
            return GRUClassifier.from_pretrained(directory).eval()
        except (OSError, RuntimeError, TypeError) as err:
            raise DataError(f"{directory}: cannot load the GRU ({type(err).__name__})") from None
    from transformers import (BertForSequenceClassification, BertForTokenClassification,
                              LlamaForSequenceClassification)

    from ehrkit.embed.models import from_pretrained

    cls = {"text": BertForSequenceClassification, "ner": BertForTokenClassification,
           "timeline": LlamaForSequenceClassification}[spec.kind]
    return from_pretrained(cls, directory)


def logits(model: torch.nn.Module, kind: str, batch: dict) -> torch.Tensor:
    """The model's raw outputs for a collated batch: [rows, outputs], or [rows, positions,
    tags] for ner."""
    if kind == "series":
        return model(batch["inputs"], batch["lengths"])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if kind == "timeline":
        # Left padding: real tokens take positions 0..n-1 whatever the padding, so a timeline's
        # logits do not depend on its batch (RoPE is relative, but masks and caches are not).
        inputs["position_ids"] = (batch["attention_mask"].cumsum(1) - 1).clamp(min=0)
        inputs["use_cache"] = False
    return model(**inputs).logits


def to_scores(spec: Spec, raw: np.ndarray) -> np.ndarray:
    """Logits [rows, outputs] to scores: P(positive) [rows], class probabilities, label
    probabilities, or the predicted value on the label's own scale."""
    raw = raw.astype(np.float64)
    if spec.task == "binary":
        return 1.0 / (1.0 + np.exp(-raw[:, 0]))
    if spec.task == "multilabel":
        return 1.0 / (1.0 + np.exp(-raw))
    if spec.task == "multiclass":
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return raw[:, 0] * spec.target_scale + spec.target_mean
