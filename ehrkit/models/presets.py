"""Named model sizes. `tiny` trains in seconds on a CPU (tests); `small` for laptops and
sizing studies; `base` is BERT-base for notes and a ~100M-parameter Llama shape for timelines
(the FMs-for-EHRs sizing study found far smaller models than its 1B Llama work well)."""

from __future__ import annotations

from ehrkit.errors import UsageError

BERT = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
LLAMA = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                 intermediate_size=128),
    "small": dict(hidden_size=256, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
                  intermediate_size=512),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                 intermediate_size=2048),
}
PRESETS = ("tiny", "small", "base")


def bert_config(preset: str, vocab_size: int, max_length: int, **overrides):
    """A transformers BertConfig of the named size (SDPA attention)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, max_position_embeddings=max(512, max_length),
                      **_size(BERT, preset), **overrides)


def llama_config(preset: str, vocab_size: int, max_length: int, **overrides):
    """A transformers LlamaConfig of the named size (SDPA attention)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, max_position_embeddings=max_length,
                       **_size(LLAMA, preset), **overrides)


def _size(table: dict, preset: str) -> dict:
    if preset not in table:
        raise UsageError(f"unknown preset '{preset}'; use one of {', '.join(table)}")
    return dict(table[preset])
