"""`ehrkit probe`: linear probes on embeddings with planted signal, their artifact, curves,
outliers, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.errors import DataError, UsageError
from ehrkit.probe import CurveSettings, FitSettings, Probe, ProbeRequest, run_probe
from ehrkit.probe.data import HELD_OUT, TRAIN, TUNING, random_split
from ehrkit.probe.outliers import fit_forest

DIM = 24


def _embeddings(n: int = 600, seed: int = 0, signal: float = 1.5) -> tuple[np.ndarray, dict]:
    """Gaussian embeddings; labels depend on the first few dimensions only."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    logit = signal * (x[:, 0] + x[:, 1] - x[:, 2])
    labels = {
        "mortality": (logit + rng.logistic(size=n) > 0).astype(np.int8),
        "sepsis": (signal * 2 * x[:, 3] + rng.logistic(size=n) > 1).astype(np.int8),
        "ward": np.array(["icu", "step", "floor"])[np.argmax(
            x[:, 4:7] * 2 + rng.gumbel(size=(n, 3)), axis=1)],
        "los": (3.0 * x[:, 7] - 2.0 * x[:, 8] + 0.5 * rng.standard_normal(n)).astype(np.float64),
    }
    return x, labels


def _table(x: np.ndarray, labels: dict, **extra) -> pa.Table:
    n = len(x)
    columns = {"stay_id": [f"s{i}" for i in range(n)], "patient_id": [f"p{i // 3}" for i in range(n)],
               **labels, **extra,
               "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])}
    return pa.table(columns)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    x, labels = _embeddings()
    path = tmp_path_factory.mktemp("probe") / "emb.parquet"
    table = _table(x, labels)
    pq.write_table(table, path)
    return {"x": x, "labels": labels, "path": str(path), "table": table}


def _run(path, tmp_path, **kw) -> tuple[dict, list[dict]]:
    out = tmp_path / kw.pop("name", "pred.parquet")
    summary = run_probe(ProbeRequest([str(path)], output=str(out), **kw))
    return summary, pq.read_table(out).to_pylist() if out.exists() else []


def _auroc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, s)


# ----------------------------------------------------------------------------- fitting

def test_binary_probe_learns_planted_signal(data, tmp_path):
    summary, rows = _run(data["path"], tmp_path, label_fields=["mortality"], group_field="patient_id")
    assert summary["labels"]["mortality"]["held_out"]["auroc"] > 0.8
    assert {r["split"] for r in rows} == {"held_out"}
    assert _auroc([r["label"] for r in rows], [r["score"] for r in rows]) > 0.8
    assert set(rows[0]) == {"stay_id", "patient_id", "mortality", "sepsis", "ward", "los",
                            "label", "score", "split"}  # embedding dropped, the rest passes


def test_l1_gives_sparser_weights_than_l2_at_equal_c(data, tmp_path):
    sparsity = {}
    for penalty in ("l1", "l2"):
        save = tmp_path / f"{penalty}.json"
        _run(data["path"], tmp_path, label_fields=["mortality"], save=str(save),
             fit=FitSettings(penalty=penalty, grid=[0.05]))
        sparsity[penalty] = json.loads(save.read_text())["labels"][0]["sparsity"]
    assert sparsity["l1"] > 0.5 > sparsity["l2"] == 0.0


def test_grid_chooses_the_c_with_the_best_tuning_score(data, tmp_path):
    save = tmp_path / "probe.json"
    _run(data["path"], tmp_path, label_fields=["mortality"], save=str(save),
         fit=FitSettings(penalty="l1", patience=0))
    label = json.loads(save.read_text())["labels"][0]
    grid = label["tuning"]["grid"]
    assert len(grid) == 8 and label["tuning"]["metric"] == "auroc"
    best = max(v for _, v in grid)
    assert label["tuning"]["value"] == best and [c for c, v in grid if v == best][0] == label["C"]
    # L1 at the smallest C has no weights left (AUROC 0.5): the choice is not the smallest
    assert grid[0][1] == 0.5 and label["C"] > grid[0][0]


def test_save_load_round_trip_gives_identical_predictions(data, tmp_path):
    save = tmp_path / "probe.json"
    _, fitted = _run(data["path"], tmp_path, label_fields=["mortality"], save=str(save),
                     outliers=True, predict="all", split_field="nope")
    raw = save.read_bytes()
    probe = json.loads(raw)  # plain JSON, no pickle anywhere
    assert b"\x80" not in raw and b"pickle" not in raw and b"joblib" not in raw
    assert probe["format"] == "ehrkit.probe" and probe["feature_dim"] == DIM
    assert probe["labels"][0]["target"]["classes"] == [0, 1]
    for key in ("coef", "intercept", "C", "penalty", "sparsity", "rows", "held_out", "tuning"):
        assert key in probe["labels"][0]
    assert set(probe["info"]["rows"]) == {"train", "tuning", "held_out"}
    _, loaded = _run(data["path"], tmp_path, load=str(save), outliers=True, name="loaded.parquet",
                     split_field="nope")
    assert [r["score"] for r in loaded] == [r["score"] for r in fitted]
    assert [r["outlier_score"] for r in loaded] == [r["outlier_score"] for r in fitted]
    assert [r["label"] for r in loaded] == [r["label"] for r in fitted]


def test_standardisation_uses_training_rows_only(data, tmp_path):
    save = tmp_path / "probe.json"
    _, rows = _run(data["path"], tmp_path, label_fields=["mortality"], save=str(save),
                   predict="all", split_field="nope")
    probe = Probe.load(str(save))
    train = np.array([r["split"] == "train" for r in rows])
    assert 0 < train.sum() < len(rows)
    x = data["x"].astype(np.float64)[train]
    np.testing.assert_allclose(probe.preprocess.mean, x.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(probe.preprocess.scale, x.std(axis=0), rtol=1e-10)
    assert not np.allclose(probe.preprocess.mean, data["x"].mean(axis=0), atol=1e-6)


def test_missing_feature_values_are_filled_with_training_means(tmp_path, capsys):
    x, labels = _embeddings(300, seed=4)
    x[::7, 5] = np.nan
    path = tmp_path / "nan.parquet"
    pq.write_table(_table(x, labels), path)
    save = tmp_path / "p.json"
    _, rows = _run(path, tmp_path, label_fields=["mortality"], save=str(save), predict="all")
    assert all(np.isfinite(r["score"]) for r in rows)
    train = np.array([r["split"] == "train" for r in rows])
    fill = Probe.load(str(save)).preprocess.fill[5]
    assert fill == pytest.approx(np.nanmean(x[train, 5].astype(np.float64)))
    assert f"{int(np.isnan(x).sum())} missing feature values filled" in capsys.readouterr().err


def test_multiclass_writes_class_index_and_probabilities(data, tmp_path):
    summary, rows = _run(data["path"], tmp_path, label_fields=["ward"])
    meta = pq.read_schema(tmp_path / "pred.parquet").metadata
    classes = json.loads(meta[b"ehrkit.classes"])
    assert classes == ["floor", "icu", "step"]
    assert all(classes[r["label"]] == r["ward"] for r in rows)
    assert all(len(r["score"]) == 3 and abs(sum(r["score"]) - 1) < 1e-9 for r in rows)
    accuracy = np.mean([np.argmax(r["score"]) == r["label"] for r in rows])
    assert accuracy > 0.6 and summary["labels"]["ward"]["held_out"]["auroc_macro"] > 0.75


def test_two_class_multiclass_matches_binary(data, tmp_path):
    fit = FitSettings(grid=[0.1])
    _, binary = _run(data["path"], tmp_path, label_fields=["mortality"], fit=fit)
    _, multi = _run(data["path"], tmp_path, label_fields=["mortality"], task="multiclass", fit=fit,
                    name="m.parquet")
    assert all(len(m["score"]) == 2 for m in multi)
    np.testing.assert_allclose([m["score"][1] for m in multi], [b["score"] for b in binary],
                               rtol=1e-12)


def test_multilabel_one_probe_per_label_with_unknown_labels(data, tmp_path):
    sepsis = pa.array([None if i % 10 == 0 else int(v) for i, v in enumerate(data["labels"]["sepsis"])],
                      pa.int8())
    table = data["table"].set_column(data["table"].schema.get_field_index("sepsis"), "sepsis", sepsis)
    path = tmp_path / "ml.parquet"
    pq.write_table(table, path)
    save = tmp_path / "p.json"
    summary, rows = _run(path, tmp_path, label_fields=["mortality", "sepsis"], save=str(save))
    assert set(summary["labels"]) == {"mortality", "sepsis"}
    assert all(v["held_out"]["auroc"] > 0.8 for v in summary["labels"].values())
    assert json.loads(pq.read_schema(tmp_path / "pred.parquet").metadata[b"ehrkit.label_names"]) == \
        ["mortality", "sepsis"]
    assert any(r["label"][1] is None for r in rows) and all(len(r["score"]) == 2 for r in rows)
    probe = json.loads(save.read_text())
    assert probe["task"] == "multilabel"
    # rows without a sepsis label are not used for sepsis
    assert probe["labels"][1]["rows"]["train"] < probe["labels"][0]["rows"]["train"]


def test_list_label_field_is_multilabel(data, tmp_path):
    both = zip(data["labels"]["mortality"], data["labels"]["sepsis"])
    pairs = pa.array([[int(a), int(b)] for a, b in both], pa.list_(pa.int8()))
    path = tmp_path / "list.parquet"
    pq.write_table(data["table"].append_column("flags", pairs), path)
    summary, rows = _run(path, tmp_path, label_fields=["flags[1:]"])
    assert list(summary["labels"]) == ["flags[1]"] and len(rows[0]["score"]) == 1


def test_regression_with_ridge(data, tmp_path):
    save = tmp_path / "p.json"
    summary, rows = _run(data["path"], tmp_path, label_fields=["los"], save=str(save))
    assert json.loads(save.read_text())["labels"][0]["model"] == "ridge"
    assert summary["labels"]["los"]["held_out"]["r2"] > 0.8
    assert isinstance(rows[0]["label"], float) and isinstance(rows[0]["score"], float)


def test_string_binary_labels_and_positive_override(data, tmp_path):
    outcome = pa.array(np.where(data["labels"]["mortality"] == 1, "died", "alive"))
    path = tmp_path / "str.parquet"
    pq.write_table(data["table"].append_column("outcome", outcome), path)
    save = tmp_path / "p.json"
    _, rows = _run(path, tmp_path, label_fields=["outcome"], save=str(save))
    assert json.loads(save.read_text())["labels"][0]["target"]["positive"] == "died"  # sorted 2nd
    assert all(r["label"] == (r["outcome"] == "died") for r in rows)
    _, flipped = _run(path, tmp_path, label_fields=["outcome"], positive="alive", name="f.parquet")
    assert all(r["label"] == (r["outcome"] == "alive") for r in flipped)
    assert all(abs(a["score"] + b["score"] - 1) < 1e-3 for a, b in zip(rows, flipped))


# ----------------------------------------------------------------------------- splits

def test_split_field_with_synonyms(data, tmp_path):
    n = len(data["x"])
    split = np.array(["train", "val", "test"])[np.arange(n) % 3]
    path = tmp_path / "split.parquet"
    pq.write_table(data["table"].append_column("split", pa.array(split)), path)
    save = tmp_path / "p.json"
    _, rows = _run(path, tmp_path, label_fields=["mortality"], save=str(save))
    assert [r["stay_id"] for r in rows] == [f"s{i}" for i in range(n) if split[i] == "test"]
    assert {r["split"] for r in rows} == {"held_out"}
    assert json.loads(save.read_text())["info"]["rows"] == {"train": 200, "tuning": 200, "held_out": 200}


def test_grouped_random_split_keeps_groups_together(data, tmp_path):
    groups = np.repeat(np.arange(100), np.random.default_rng(1).integers(1, 6, 100))
    codes = random_split(groups, 0.15, 0.2, seed=3)
    for g in np.unique(groups):
        assert len(set(codes[groups == g])) == 1
    share = np.bincount(codes, minlength=3) / len(codes)
    assert abs(share[HELD_OUT] - 0.2) < 0.06 and abs(share[TUNING] - 0.15) < 0.06
    assert share[TRAIN] > 0.5
    _, rows = _run(data["path"], tmp_path, label_fields=["mortality"], group_field="patient_id",
                   predict="all")
    seen: dict[str, set] = {}
    for r in rows:
        seen.setdefault(r["patient_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in seen.values())
    assert {r["split"] for r in rows} == {"train", "tuning", "held_out"}


# ----------------------------------------------------------------------------- curves

def test_learning_curves_write_metric_records(data, tmp_path):
    curves = CurveSettings(fractions=[0.1, 1.0], shots=[2, 8], replicates=3)
    _, rows = _run(data["path"], tmp_path, label_fields=["mortality"], curves=curves,
                   fit=FitSettings(grid=[0.01, 1.0]))
    assert len(rows) == (2 + 2) * 3 * 2  # points x replicates x (auroc, auprc_trapezoid)
    assert {r["metric"] for r in rows} == {"auroc", "auprc_trapezoid"}
    assert {r["task"] for r in rows} == {"mortality"}
    assert {(r["train_fraction"], r["replicate"]) for r in rows if r["shots"] is None} == \
        {(f, k) for f in (0.1, 1.0) for k in range(3)}
    assert {r["n_train"] for r in rows if r["shots"] == 8} == {16}
    full = [r for r in rows if r["train_fraction"] == 1.0 and r["metric"] == "auroc"]
    tenth = [r for r in rows if r["train_fraction"] == 0.1]
    assert full[0]["n_train"] > 3 * tenth[0]["n_train"] and full[0]["value"] > 0.8
    assert all(r["ci_low"] is None and r["unit"] == "rows" and r["n"] > 0 for r in rows)


def test_shots_beyond_the_class_sizes_are_skipped(data, tmp_path, capsys):
    curves = CurveSettings(shots=[4, 10_000], replicates=2)
    _, rows = _run(data["path"], tmp_path, label_fields=["mortality"], curves=curves,
                   fit=FitSettings(grid=[0.1]))
    assert {r["shots"] for r in rows} == {4}
    assert "10000 shots skipped in 2 of 2 replicates" in capsys.readouterr().err


# ----------------------------------------------------------------------------- outliers

def test_outliers_score_planted_outliers_higher(tmp_path):
    x, labels = _embeddings(400, seed=2)
    x[:8] += 6.0  # far from everything
    path = tmp_path / "out.parquet"
    pq.write_table(_table(x, labels), path)
    _, rows = _run(path, tmp_path, label_fields=["mortality"], outliers=True, predict="all",
                   group_field="patient_id")
    score = np.array([r["outlier_score"] for r in rows])
    assert score[:8].min() > np.quantile(score[8:], 0.95)
    assert all(rows[i]["outlier"] for i in range(8)) and np.mean([r["outlier"] for r in rows[8:]]) < 0.2


def test_forest_arrays_reproduce_sklearn_isolation_forest():
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(0)
    train, other = rng.standard_normal((300, 6)), rng.standard_normal((50, 6)) * 2
    ours = fit_forest(train, seed=7).score(other)
    np.testing.assert_array_equal(ours, -IsolationForest(random_state=7).fit(train).score_samples(other))


# ----------------------------------------------------------------------------- errors

def test_library_errors(data, tmp_path):
    with pytest.raises(UsageError):
        run_probe(ProbeRequest([data["path"]], output=str(tmp_path / "x.jsonl")))  # no label
    with pytest.raises(DataError, match="distinct values"):
        run_probe(ProbeRequest([data["path"]], output=str(tmp_path / "x.jsonl"),
                               label_fields=["ward"], task="binary"))
    with pytest.raises(UsageError):
        run_probe(ProbeRequest([data["path"]], output=str(tmp_path / "x.jsonl"), load="p.json",
                               save="q.json"))


# ----------------------------------------------------------------------------- command line

def _jsonl(table: pa.Table) -> bytes:
    rows = table.to_pylist()
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_cli_stdin_jsonl_and_file_parquet(data, ehrkit, records_of, tmp_path):
    small = data["table"].slice(0, 300)
    result = ehrkit("probe", "--label-field", "mortality", "--C", "0.01,1", "--seed", "1",
                    input=_jsonl(small))
    assert result.returncode == 0, result.stderr.decode()
    rows = records_of(result.stdout)
    assert rows and {"label", "score", "split"} <= set(rows[0]) and "embedding" not in rows[0]
    err = result.stderr.decode()
    assert "mortality: logistic l2 C=" in err and "held_out auroc" in err and "zero weights" in err
    out = tmp_path / "p.jsonl"
    result = ehrkit("probe", data["path"], "--label-field", "mortality", "--save", "probe.json",
                    "--predict", "all", "-o", out)
    assert result.returncode == 0 and result.stdout == b""
    loaded = ehrkit("probe", data["path"], "--load", "probe.json", "--to", "parquet")
    assert loaded.returncode == 0  # no split field: every row is scored
    assert [r["score"] for r in records_of(loaded.stdout)] == [r["score"] for r in records_of(out)]


def test_cli_missing_label_field_names_the_fields(data, ehrkit):
    secret = data["table"].slice(0, 20).append_column("note", pa.array(["Jane Doe MRN 12345"] * 20))
    result = ehrkit("probe", "--label-field", "readmit", input=_jsonl(secret))
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "field 'readmit' not found" in err and "mortality" in err and "embedding" in err
    assert "--label-field" in err and "Jane" not in err and "p0" not in err


def test_cli_usage_errors(data, ehrkit):
    result = ehrkit("probe", data["path"], "--label-field", "mortality", "--C", "0.1,abc")
    assert result.returncode == 2 and "--C" in result.stderr.decode()
    result = ehrkit("probe", data["path"], "--label-field", "mortality", "--shots", "2",
                    "--save", "p.json")
    assert result.returncode == 2


def test_doctests():
    import doctest

    from ehrkit.probe import labels, outliers

    assert doctest.testmod(labels).failed == 0 and doctest.testmod(outliers).failed == 0
