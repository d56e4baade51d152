"""Representation extraction: `ehrkit embed` as a library.

    from ehrkit.embed import EmbedRequest, EncoderOptions, run_embed
    run_embed(EmbedRequest(["notes.parquet"], "mlm-run", "emb.parquet",
                           encoder=EncoderOptions(pool="mean")))

Modules: `models` (a model directory as an encoder adapter), `batching` (length-sorted
batches), `pooling` (pooling and trajectory statistics), `run` (the driver). Importing this
package imports neither torch nor transformers; running a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["EmbedRequest", "EncoderOptions", "load_encoder", "run_embed"]

if TYPE_CHECKING:  # pragma: no cover
    from ehrkit.embed.models import EncoderOptions, load_encoder
    from ehrkit.embed.run import EmbedRequest, run_embed


def __getattr__(name: str):
    if name in ("EncoderOptions", "load_encoder"):
        from ehrkit.embed import models

        return getattr(models, name)
    if name in ("EmbedRequest", "run_embed"):
        from ehrkit.embed import run

        return getattr(run, name)
    raise AttributeError(f"module 'ehrkit.embed' has no attribute '{name}'")
