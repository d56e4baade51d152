"""`embed --handcrafted`: the MIMIC-III benchmark's statistics of series records as embeddings.

No model: each stay becomes 6 statistics x 7 sub-windows x its variables (714 features for the
17 benchmark variables; `ehrkit.timeline.series_features`), the baseline Gupta et al. compare
pretrained GRU features against. It goes through the same streaming, output and torchrun
paths as a model, so `probe` reads both alike.
"""

from __future__ import annotations

import pyarrow as pa

from ehrkit.embed.run import Counts

BENCHMARK_DIM = 17 * 42  # the width an empty output is declared with


class HandcraftedExtractor:
    def __init__(self):
        self.dim = BENCHMARK_DIM

    def metadata(self) -> dict:
        return {"model": "handcrafted", "kind": "series statistics", "pool": "none", "dim": self.dim,
                "features": "min, max, mean, std, skew, count x full, first and last 10/25/50%"}

    def fields(self) -> list[pa.Field]:
        return [pa.field("embedding", pa.list_(pa.float32(), self.dim))]

    def embed(self, table: pa.Table, source: str) -> tuple[dict[str, pa.Array], Counts]:
        from ehrkit.timeline.series_features import handcrafted

        batch = table.combine_chunks().to_batches()[0]  # chunks are never empty
        out = handcrafted(batch, source)
        embedding = out.column(out.schema.get_field_index("embedding"))
        self.dim = embedding.type.list_size
        return {"embedding": embedding}, Counts(rows=table.num_rows)
