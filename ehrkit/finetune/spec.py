"""What a fine-tuned model is for, saved beside its weights as `finetune.json`: the input kind,
the fields it reads, the task and its label map. `ehrkit predict` needs nothing else to turn
new records into prediction records the way `ehrkit finetune` did on its evaluation split.

Input kinds, one per model family:
- `text`: notes through a BERT sequence classifier (`[CLS] ... [SEP]`, first `max_length` tokens);
- `ner`: words through a BERT token classifier, in windows (ehrkit.finetune.ner);
- `timeline`: token timelines through a Llama sequence classifier, left-padded so that its last
  position is each timeline's last real token (the FMs-for-EHRs recipe);
- `series`: hourly series through the GRU (Gupta et al.'s task-specific RNN).

Tasks: binary (one logit and a sigmoid, as ClinicalBERT), multiclass (softmax), multilabel
(a sigmoid per label), regression (one output, trained on standardised targets and scaled
back), ner (a tag per word, BIO or BILOU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ehrkit.io import read_json_artifact, write_json_artifact

FORMAT, VERSION, FILENAME = "ehrkit.finetune", 1, "finetune.json"
KINDS = ("text", "ner", "timeline", "series")
TASKS = ("binary", "multiclass", "multilabel", "regression", "ner")


@dataclass
class Spec:
    kind: str
    task: str
    targets: list = field(default_factory=list)  # probe-style label targets (Target.to_json)
    text_field: str = "text"
    input_field: str = "input_ids"
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    max_length: int = 512
    stride: int = 32  # ner: sub-tokens shared by consecutive windows
    scheme: str = "bio"  # ner tags
    tag_names: list = field(default_factory=list)  # ner: label id -> tag
    target_mean: float = 0.0  # regression: targets are standardised for training
    target_scale: float = 1.0

    @property
    def outputs(self) -> int:
        if self.task == "ner":
            return len(self.tag_names)
        if self.task == "multiclass":
            return len(self.targets[0]["classes"])
        if self.task == "multilabel":
            return len(self.targets)
        return 1

    @property
    def label_names(self) -> list[str]:
        return [t["name"] for t in self.targets]

    def save(self, directory: Path) -> None:
        write_json_artifact(Path(directory) / FILENAME,
                            {"format": FORMAT, "version": VERSION, **asdict(self)}, indent=1)

    @classmethod
    def load(cls, directory: Path) -> "Spec":
        data = read_json_artifact(Path(directory) / FILENAME, FORMAT, VERSION,
                                  "a fine-tuned model's finetune.json",
                                  hint="--model takes a directory written by `ehrkit finetune`")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
