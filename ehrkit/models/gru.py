"""A multi-layer GRU over hourly series with a multi-label head (Gupta et al. 2018).

Inputs are the series values and observed masks side by side (the benchmark's 76 dimensions
for its 17 variables). Saved as a directory: `config.json` (model_type `ehrkit-gru`) and
`model.safetensors`. `hidden_states` returns every layer's state at every hour, so the
features z_t of the paper (all layers' states at hour t, concatenated) can be extracted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from ehrkit.errors import DataError

MODEL_TYPE = "ehrkit-gru"


@dataclass
class GRUConfig:
    input_size: int
    num_labels: int
    hidden_size: int = 300
    num_layers: int = 2
    dropout: float = 0.3
    label_names: list = field(default_factory=list)
    model_type: str = MODEL_TYPE


class GRUClassifier(torch.nn.Module):
    """Stacked one-layer GRUs (not one multi-layer nn.GRU) so every layer's states are at hand."""

    def __init__(self, config: GRUConfig):
        super().__init__()
        self.config = config
        sizes = [config.input_size] + [config.hidden_size] * config.num_layers
        self.layers = torch.nn.ModuleList(
            torch.nn.GRU(sizes[i], config.hidden_size, batch_first=True)
            for i in range(config.num_layers))
        self.dropout = torch.nn.Dropout(config.dropout)
        self.head = torch.nn.Linear(config.hidden_size, config.num_labels)

    def hidden_states(self, inputs: torch.Tensor) -> torch.Tensor:
        """[layers, batch, time, hidden]: each layer's state at each hour."""
        states, x = [], inputs
        for i, layer in enumerate(self.layers):
            x, _ = layer(x)
            states.append(x)
            if i < len(self.layers) - 1:
                x = self.dropout(x)  # between layers, as nn.GRU's dropout
        return torch.stack(states)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from the top layer's state at each series' last real hour."""
        top = self.hidden_states(inputs)[-1]
        if lengths is None:
            last = top[:, -1]
        else:
            index = (lengths.clamp(min=1, max=top.shape[1]) - 1).long()
            last = top[torch.arange(top.shape[0], device=top.device), index]
        return self.head(self.dropout(last))

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=1) + "\n")
        save_model(self, str(directory / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "GRUClassifier":
        directory = Path(directory)
        try:
            config = json.loads((directory / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            raise DataError(f"{directory}: no readable config.json") from None
        if config.get("model_type") != MODEL_TYPE:
            raise DataError(f"{directory}: not an ehrkit GRU model (model_type "
                            f"{config.get('model_type')!r})")
        model = cls(GRUConfig(**config))
        load_model(model, str(directory / "model.safetensors"))
        return model
