"""The MIMIC-III benchmark's hand-crafted features of series records (714 for 17 variables)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.errors import DataError
from ehrkit.probe import ProbeRequest, run_probe
from ehrkit.synth import series as synth
from ehrkit.timeline.series import columns
from ehrkit.timeline.series_features import STATS, WINDOWS, handcrafted, layout_from_names

NAN = math.nan


def _nested(array: np.ndarray, kind: pa.DataType) -> pa.Array:
    """stays x T x W -> list<list<kind>> with nulls for NaN."""
    n, t, w = array.shape
    flat = array.ravel()
    values = pa.array(np.nan_to_num(flat), kind, mask=np.isnan(flat.astype(np.float64)))
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, n * t * w + 1, w, dtype=np.int32)), values)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * t + 1, t, dtype=np.int32)), inner)


def _batch(values: np.ndarray, mask: np.ndarray, length=None, metadata=None, **extra) -> pa.RecordBatch:
    n, t = values.shape[:2]
    columns_ = {"stay_id": pa.array([f"s{i}" for i in range(n)]),
                "hours": pa.array([list(range(t))] * n, pa.list_(pa.float32())),
                "values": _nested(values, pa.float32()), "mask": _nested(mask, pa.int8())}
    if length is not None:
        columns_["length"] = pa.array(length, pa.int32())
    columns_.update({k: pa.array(v) for k, v in extra.items()})
    schema = pa.schema([pa.field(k, v.type) for k, v in columns_.items()], metadata=metadata)
    return pa.RecordBatch.from_arrays(list(columns_.values()), schema=schema)


def _stay(length: int | None = 10) -> pa.RecordBatch:
    """One stay, 10 hours, two numeric variables: A seen at hours 0, 1, 2, 9; B at hour 5."""
    values = np.full((1, 10, 2), NAN)
    mask = np.zeros((1, 10, 2))
    for hour, value in ((0, 1.0), (1, 2.0), (2, 6.0), (9, 3.0)):
        values[0, hour, 0], mask[0, hour, 0] = value, 1
    values[0, 5, 1], mask[0, 5, 1] = 7.0, 1
    values[0, 7, 1] = 99.0  # a value without its mask bit (an imputed one): not an observation
    return _batch(values, mask, None if length is None else [length], mortality=[1])


def _features(batch: pa.RecordBatch) -> dict[str, float]:
    out = handcrafted(batch)
    names = json.loads(out.schema.metadata[b"ehrkit.embedding"])["features"]
    return dict(zip(names, out.column("embedding").values.to_numpy()))


def _window(f: dict, variable: str, window: str) -> list[float]:
    return [f[f"{variable}:{window}:{s}"] for s in STATS]


def test_hand_checked_statistics_of_one_stay():
    f = _features(_stay())
    assert len(f) == 2 * 7 * 6
    # A, whole stay: 1, 2, 6, 3 -> mean 3, deviations -2 -1 3 0: m2 = 3.5, m3 = 4.5
    np.testing.assert_allclose(_window(f, "variable_0", "full"),
                               [1, 6, 3, math.sqrt(3.5), 4.5 / 3.5 ** 1.5, 4], rtol=1e-6)
    # first 25% of 10 hours: bins whose midpoint is <= 2.5, i.e. hours 0-2: 1, 2, 6
    np.testing.assert_allclose(_window(f, "variable_0", "first25"),
                               [1, 6, 3, math.sqrt(14 / 3), 6 / (14 / 3) ** 1.5, 3], rtol=1e-6)
    assert _window(f, "variable_0", "first10") == [1, 1, 1, 0, 0, 1]  # one value: no spread
    assert _window(f, "variable_0", "last25") == [3, 3, 3, 0, 0, 1]
    # B: one observation at hour 5, in full and last50 only; the unmasked 99 is ignored
    assert _window(f, "variable_1", "last50") == [7, 7, 7, 0, 0, 1]
    empty = _window(f, "variable_1", "first50")
    assert all(math.isnan(v) for v in empty[:5]) and empty[5] == 0
    from scipy.stats import skew

    assert f["variable_0:full:skew"] == pytest.approx(skew([1, 2, 6, 3]), rel=1e-6)


def test_windows_honour_the_stay_length():
    f = _features(_stay(length=4))  # hours 4-9 are after the stay: nothing there counts
    assert _window(f, "variable_0", "full")[:3] == [1, 6, 3] and f["variable_0:full:count"] == 3
    assert f["variable_1:full:count"] == 0
    assert f["variable_0:first50:count"] == 2  # midpoints 0.5 and 1.5 <= 2
    assert f["variable_0:last50:mean"] == 6  # hours 2-3
    without = _features(_stay(length=None))  # no length field: the whole grid
    assert without == pytest.approx(_features(_stay(length=10)), nan_ok=True)


def test_synth_series_give_714_features_and_pass_fields_through():
    batch = next(synth.series_batches(300, seed=0))
    out = handcrafted(batch)
    assert out.num_rows == 300
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 714)
    assert out.schema.names == ["stay_id", "patient_id", "mortality", "phenotypes", "embedding"]
    meta = json.loads(out.schema.metadata[b"ehrkit.embedding"])
    assert meta["model"] == "handcrafted" and meta["dim"] == 714
    assert meta["features"][0] == "Capillary refill rate:full:min"
    assert meta["features"][-1] == "pH:last50:count"
    x = out.column("embedding").values.to_numpy().reshape(300, 714)
    heart = [meta["features"].index(f"Heart Rate:full:{s}") for s in ("min", "max", "mean", "count")]
    values = batch.column("values").to_pylist()
    first = [v[8] for v in values[0] if v[8] is not None]
    assert x[0, heart] == pytest.approx([min(first), max(first), np.mean(first), len(first)], rel=1e-5)


def test_chunks_and_empty_batches(monkeypatch):
    from ehrkit.timeline import series_features

    batch = next(synth.series_batches(40, seed=1))
    whole = handcrafted(batch).column("embedding").values.to_numpy()
    monkeypatch.setattr(series_features, "CHUNK_STAYS", 7)
    np.testing.assert_array_equal(handcrafted(batch).column("embedding").values.to_numpy(), whole)
    empty = handcrafted(batch.slice(0, 0))
    assert empty.num_rows == 0 and empty.schema.field("embedding").type.list_size == 714


def test_benchmark_one_hot_layout_decodes_categories():
    names = columns()  # timeline series with its defaults: 43 value columns, 17 variables
    values = np.zeros((2, 6, len(names)))
    mask = np.zeros((2, 6, 17))
    total = [i for i, n in enumerate(names) if n.startswith("Glascow coma scale total->")]
    gcs = 5  # the variable's mask column
    values[0, 0, names.index("Glascow coma scale total->15")] = 1
    values[0, 3, names.index("Glascow coma scale total->7")] = 1
    values[:, :, names.index("Heart Rate")] = 0.25  # normalised
    mask[0, [0, 3], gcs] = 1
    mask[:, :, 8] = 1
    values[1, :, total[0]] = 1  # imputed, never observed: not counted
    f = _features(_batch(values, mask, [6, 6]))
    out = handcrafted(_batch(values, mask, [6, 6]))
    assert out.schema.field("embedding").type.list_size == 714
    assert f["Glascow coma scale total:full:max"] == 15 and f["Glascow coma scale total:full:min"] == 7
    assert f["Heart Rate:full:mean"] == pytest.approx(0.25)
    second = out.column("embedding").values.to_numpy().reshape(2, 714)[1]
    names714 = json.loads(out.schema.metadata[b"ehrkit.embedding"])["features"]
    assert second[names714.index("Glascow coma scale total:full:count")] == 0


def test_column_names_from_schema_metadata():
    plan = layout_from_names(["GCS->3", "GCS->15", "Kind->a", "Kind->b", "HR"])
    assert plan.names == ["GCS", "Kind", "HR"] and plan.columns == [[0, 1], [2, 3], [4]]
    values = np.zeros((1, 4, 5))
    values[0, 0, 1] = values[0, 1, 0] = 1  # GCS 15, then 3
    values[0, 2, 3] = 1  # Kind 'b' has index 1
    values[0, :, 4] = 80
    mask = np.ones((1, 4, 3))
    mask[0, 2:, 0] = 0
    meta = {"ehrkit.series": json.dumps({"columns": ["GCS->3", "GCS->15", "Kind->a", "Kind->b", "HR"]})}
    f = _features(_batch(values, mask, [4], metadata=meta))
    assert len(f) == 3 * 42
    assert _window(f, "GCS", "full")[:3] == [3, 15, 9]
    assert f["Kind:last50:max"] == 1
    assert math.isnan(f["Kind:first25:max"]) and f["Kind:first25:count"] == 0  # none active
    assert f["HR:full:std"] == 0 and f["HR:full:count"] == 4


def test_unknown_layout_is_a_data_error():
    values, mask = np.zeros((1, 3, 5)), np.ones((1, 3, 2))
    with pytest.raises(DataError, match="5 value columns .* 2 variables"):
        handcrafted(_batch(values, mask, [3]))
    with pytest.raises(DataError, match="field 'mask' not found"):
        handcrafted(pa.RecordBatch.from_pydict({"values": [[[1.0]]]}))


def test_probe_learns_from_handcrafted_features(tmp_path):
    batch = next(synth.series_batches(600, seed=0))
    path = tmp_path / "hc.parquet"
    pq.write_table(pa.Table.from_batches([handcrafted(batch)]), path)
    summary = run_probe(ProbeRequest([str(path)], output=str(tmp_path / "p.jsonl"),
                                     label_fields=["mortality", "phenotypes[1]", "phenotypes[3]"],
                                     group_field="patient_id", test_fraction=0.3))
    aurocs = [v["held_out"]["auroc"] for v in summary["labels"].values()]
    assert min(aurocs) > 0.7, aurocs
    assert len(WINDOWS) == 7 and len(STATS) == 6


def test_doctests():
    import doctest

    from ehrkit.timeline import series_features

    assert doctest.testmod(series_features).failed == 0
