"""`ehrkit synth series`: 48 h x 17 benchmark variables, masks, mortality and 25 phenotypes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.cli import run
from ehrkit.synth import series


def _table(n: int, seed: int, size: int = series.BATCH_STAYS) -> pa.Table:
    return pa.Table.from_batches(list(series.series_batches(n, seed, size)), series.SCHEMA)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    table = _table(1200, 3)
    values = table["values"].combine_chunks().flatten().flatten()
    shape = (table.num_rows, series.HOURS, len(series.VARIABLES))
    return {"values": values.to_numpy(zero_copy_only=False).reshape(shape),  # nulls -> NaN
            "mask": np.array(table["mask"].to_pylist(), dtype=np.int8),
            "mortality": table["mortality"].to_numpy(),
            "phenotypes": np.array(table["phenotypes"].to_pylist())}


def _column(name: str) -> int:
    return series.VARIABLES.index(name)


def test_same_seed_same_records_and_batch_size_does_not_matter():
    a, b, c = _table(50, 1), _table(50, 1, size=7), _table(50, 2)
    assert a.equals(b)
    assert not a.equals(c)
    assert a.num_rows == 50 and a.schema.equals(series.SCHEMA)


def test_names_follow_the_benchmark():
    assert len(series.VARIABLES) == 17 and series.VARIABLES == sorted(series.VARIABLES)
    assert len(series.PHENOTYPES) == 25 and series.PHENOTYPES == sorted(series.PHENOTYPES)
    assert len(series.NORMAL_VALUES) == 17
    assert series.NORMAL_VALUES[_column("Heart Rate")] == 86


def test_shapes_nulls_and_mask_agree(data):
    values, mask = data["values"], data["mask"]
    assert values.shape == mask.shape == (1200, 48, 17)
    assert np.array_equal(np.isnan(values), mask == 0)
    assert set(np.unique(mask)) == {0, 1}
    assert data["phenotypes"].shape == (1200, 25)
    table = _table(2, 0)
    assert table["hours"][0].as_py() == [float(h) for h in range(48)]


def test_value_ranges(data):
    v = data["values"]
    ranges = {"Heart Rate": (30, 220), "Oxygen saturation": (60, 100),
              "Fraction inspired oxygen": (0.21, 1), "pH": (6.8, 7.7), "Temperature": (33, 42),
              "Systolic blood pressure": (50, 240), "Glucose": (40, 600),
              "Capillary refill rate": (0, 1), "Glascow coma scale total": (3, 15),
              "Glascow coma scale eye opening": (1, 4), "Glascow coma scale motor response": (1, 6),
              "Glascow coma scale verbal response": (1, 5)}
    for name, (lo, hi) in ranges.items():
        column = v[:, :, _column(name)]
        assert lo <= np.nanmin(column) and np.nanmax(column) <= hi, name
    items = v[:, :, [_column(n) for n in ("Glascow coma scale eye opening",
                                          "Glascow coma scale motor response",
                                          "Glascow coma scale verbal response")]]
    total = v[:, :, _column("Glascow coma scale total")]
    observed = ~np.isnan(total)
    assert np.array_equal(items.sum(axis=2)[observed], total[observed])
    assert set(np.unique(v[:, :, 0][~np.isnan(v[:, :, 0])])) <= {0.0, 1.0}


def test_missingness_is_realistic(data):
    rate = data["mask"].mean(axis=(0, 1))
    assert rate[_column("Heart Rate")] > 0.7
    assert 0.05 < rate[_column("Glucose")] < 0.25
    assert 0.05 < rate[_column("pH")] < 0.25
    assert rate[_column("Capillary refill rate")] < 0.05
    assert rate[_column("Height")] < 0.03


def test_label_prevalences(data):
    assert 0.05 <= data["mortality"].mean() <= 0.25
    prevalence = data["phenotypes"].mean(axis=0)
    assert prevalence.min() >= 0.03 and prevalence.max() <= 0.45


def _means(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-variable means over the hours; a variable never seen gets the column's mean."""
    counts = mask.sum(axis=1)
    means = np.nansum(values, axis=1) / np.maximum(counts, 1)
    column = means.sum(axis=0) / np.maximum((counts > 0).sum(axis=0), 1)
    return np.where(counts > 0, means, column)


def _probe_auroc(x: np.ndarray, y: np.ndarray, n_train: int) -> float:
    """AUROC on held-out rows of a ridge-regularised linear probe fitted on the first rows.

    Closed form in numpy, so the test stays fast (importing scikit-learn alone takes seconds).
    """
    x = (x - x[:n_train].mean(axis=0)) / (x[:n_train].std(axis=0) + 1e-9)
    x = np.hstack([x, np.ones((len(x), 1))])
    a, b = x[:n_train], y[:n_train]
    w = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ b)
    score, truth = x[n_train:] @ w, y[n_train:].astype(bool)
    ranks = np.argsort(np.argsort(score)) + 1
    positives = truth.sum()
    return (ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * (~truth).sum())


def test_labels_are_learnable_from_per_variable_means(data):
    values, mask = data["values"], data["mask"]
    x = np.hstack([_means(values, mask), _means(values[:, -12:], mask[:, -12:]),
                   mask.mean(axis=1)])
    assert _probe_auroc(x, data["mortality"], 800) > 0.7
    phenotype = [_probe_auroc(x, data["phenotypes"][:, k], 800) for k in range(25)]
    assert np.mean(phenotype) > 0.7 and min(phenotype) > 0.55


def test_cli_parquet_matches_library_and_is_atomic(tmp_path, capsys):
    out = tmp_path / "series.parquet"
    assert run(["synth", "series", "-n", "20", "--seed", "4", "-o", str(out)]) == 0
    assert "synth series: 20 stays" in capsys.readouterr().err
    assert pq.read_table(out).equals(_table(20, 4))
    assert [p.name for p in tmp_path.iterdir()] == ["series.parquet"]


def test_cli_jsonl_on_stdout_uses_null_not_nan(capsys):
    assert run(["synth", "series", "-n", "3", "--seed", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    record = json.loads(lines[0])  # NaN would not be valid JSON
    assert set(record) == set(series.SCHEMA.names)
    assert len(record["values"]) == 48 and len(record["values"][0]) == 17
    assert any(v is None for row in record["values"] for v in row)
    assert len(record["phenotypes"]) == 25


def test_pipe_closed_early_is_not_an_error(shell):
    done = shell("ehrkit synth series -n 3000 | head -n 1 | wc -l")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "1"
