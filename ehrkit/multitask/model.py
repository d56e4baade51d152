"""One shared BERT encoder with a head per task (MT-Clinical BERT), and its directory.

Heads are linear layers on the encoder's last layer, as in MT-Clinical BERT: a token head on
every position (NER), a [CLS] head on the first position (classification, regression,
multi-label; no pooler). Unlike the source, dropout (the encoder's hidden dropout) is applied
before every head in training, as transformers' own task models do.

A multitask model directory is a transformers BERT directory (config.json, model.safetensors
of the encoder, the tokenizer), so `ehrkit embed` and `ehrkit finetune --init` read it as any
BERT, plus:

    heads.safetensors   every head's weight and bias ("NAME.weight", "NAME.bias")
    multitask.json      each task's head, input and label map (ehrkit.finetune.spec.Spec)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ehrkit.errors import DataError
from ehrkit.finetune.spec import Spec
from ehrkit.io import read_json_artifact, write_json_artifact

FORMAT, VERSION, FILENAME, HEADS = "ehrkit.multitask", 1, "multitask.json", "heads.safetensors"


@dataclass
class Head:
    name: str
    head: str  # token or cls
    input: str  # words, text or pair
    fields: list  # the record fields it reads
    spec: Spec

    def to_json(self) -> dict:
        return {"name": self.name, "head": self.head, "input": self.input,
                "fields": list(self.fields), "spec": asdict(self.spec)}

    @classmethod
    def from_json(cls, data: dict) -> "Head":
        known = set(Spec.__dataclass_fields__)
        spec = Spec(**{k: v for k, v in data["spec"].items() if k in known})
        return cls(data["name"], data["head"], data["input"], list(data["fields"]), spec)


class MultitaskModel(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, heads: list[Head]):
        super().__init__()
        self.encoder, self.tasks = encoder, {h.name: h for h in heads}
        hidden = encoder.config.hidden_size
        self.heads = torch.nn.ModuleDict({h.name: torch.nn.Linear(hidden, h.spec.outputs)
                                          for h in heads})
        self.dropout = torch.nn.Dropout(encoder.config.hidden_dropout_prob)

    @property
    def config(self):
        return self.encoder.config

    def states(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """The last layer's states [rows, positions, hidden]."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state

    def head(self, name: str, states: torch.Tensor) -> torch.Tensor:
        """A head's logits: [rows, positions, tags] (token) or [rows, outputs] ([CLS])."""
        states = self.dropout(states)
        if self.tasks[name].head == "cls":
            states = states[:, 0]
        return self.heads[name](states)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Logits of every task in a batch whose keys are "NAME:input_ids" etc. (one task in a
        round-robin step, all in a summed step); a task with no rows here is left out."""
        out = {}
        for name in self.heads:
            ids = batch.get(f"{name}:input_ids")
            if ids is None or ids.shape[0] == 0:
                continue
            states = self.states(ids, batch[f"{name}:attention_mask"],
                                 batch.get(f"{name}:token_type_ids"))
            out[name] = self.head(name, states)
        return out

    # ------------------------------------------------------------------- the directory

    def save_pretrained(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        self.encoder.save_pretrained(directory)
        tensors = {f"{name}.{key}": value.detach().cpu().contiguous()
                   for name, head in self.heads.items() for key, value in head.state_dict().items()}
        save_file(tensors, str(directory / HEADS))
        write_json_artifact(directory / FILENAME, {"format": FORMAT, "version": VERSION,
                                                   "tasks": [h.to_json() for h in self.tasks.values()]},
                            indent=1)


def build(init: str | Path, heads: list[Head], seed: int) -> MultitaskModel:
    """The encoder of a local BERT directory (a masked LM, a fine-tuned BERT or a multitask
    model) with new heads drawn from `seed`."""
    from transformers import BertModel

    from ehrkit.embed.models import from_pretrained

    encoder = _encoder(BertModel, Path(init), from_pretrained)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MultitaskModel(encoder, heads)
    return model


def _encoder(cls, init: Path, from_pretrained):
    """BertModel weights from any BERT checkpoint (the "bert." prefix of task models is
    transformers' to strip); the pooler is not used."""
    try:
        return from_pretrained(cls, init, add_pooling_layer=False)
    except DataError:
        raise
    except (TypeError, KeyError) as err:
        raise DataError(f"{init}: not a BERT model directory ({type(err).__name__})",
                        hint="--init takes a BERT directory from `ehrkit pretrain`, `ehrkit "
                             "finetune`, `ehrkit multitask` or transformers") from None


def is_multitask(directory: str | Path) -> bool:
    return (Path(directory) / FILENAME).is_file()


def read_heads(directory: Path) -> list[Head]:
    data = read_json_artifact(Path(directory) / FILENAME, FORMAT, VERSION,
                              "a multitask model's multitask.json",
                              hint="--model takes a directory written by `ehrkit multitask`")
    return [Head.from_json(t) for t in data["tasks"]]


def load(directory: str | Path) -> MultitaskModel:
    """A saved multitask model, on the CPU in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import BertModel

    from ehrkit.embed.models import from_pretrained

    directory = Path(directory)
    heads = read_heads(directory)
    model = MultitaskModel(_encoder(BertModel, directory, from_pretrained), heads)
    try:
        tensors = load_file(str(directory / HEADS))
        for name, head in model.heads.items():
            head.load_state_dict({k: tensors[f"{name}.{k}"] for k in ("weight", "bias")})
    except (OSError, KeyError, RuntimeError, SafetensorError) as err:
        raise DataError(f"{directory}: cannot load {HEADS} ({type(err).__name__})",
                        hint="is multitask.json the one saved with it?") from None
    return model.float().eval()
