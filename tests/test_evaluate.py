"""`ehrkit evaluate`: task inference, intervals, patients, comparisons, subgroups, plots, errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, mean_absolute_error, roc_auc_score

from tests.conftest import load_records

MARKER = "ZQXJ-PATIENT-MARKER"


def _binary(n=400, seed=0, patients=None):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    score = 1 / (1 + np.exp(-(1.5 * y + rng.normal(size=n) - 0.8)))
    rows = [{"hadm_id": f"h{i}", "label": int(y[i]), "score": float(score[i]),
             "sex": "F" if i % 2 else "M", "note": MARKER} for i in range(n)]
    if patients:
        for i, row in enumerate(rows):
            row["patient_id"] = f"p{i % patients}"
    return rows, y, score


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _metrics(stdout) -> dict:
    return {(r["subgroup"], r["source"], r["metric"]): r for r in load_records(stdout)}


def test_binary_metrics_agree_with_sklearn_and_have_intervals(ehrkit, tmp_path):
    rows, y, score = _binary()
    _write(tmp_path / "p.jsonl", rows)
    done = ehrkit("evaluate", "p.jsonl", "--bootstrap", "200")
    assert done.returncode == 0, done.stderr
    got = _metrics(done.stdout)
    auroc = got[(None, None, "auroc")]
    assert auroc["value"] == pytest.approx(roc_auc_score(y, score))
    assert auroc["ci_low"] < auroc["value"] < auroc["ci_high"]
    assert got[(None, None, "average_precision")]["value"] == pytest.approx(
        average_precision_score(y, score))
    assert auroc["n"] == 400 and auroc["unit"] == "rows" and auroc["task"] == "label"
    for name in ("auprc_trapezoid", "rp80", "min_precision_sensitivity", "brier", "ece", "f1",
                 "balanced_accuracy"):
        assert (None, None, name) in got
    assert b"auroc" in done.stderr and MARKER.encode() not in done.stderr


def test_patient_bootstrap_counts_patients_and_widens_nothing_silently(ehrkit, tmp_path):
    rows, _, _ = _binary(patients=50)
    _write(tmp_path / "p.jsonl", rows)
    done = ehrkit("evaluate", "p.jsonl", "--patient-field", "patient_id", "--bootstrap", "100",
                  "--name", "death")
    assert done.returncode == 0, done.stderr
    auroc = _metrics(done.stdout)[(None, None, "auroc")]
    assert (auroc["n"], auroc["unit"], auroc["task"]) == (50, "patients", "death")


def test_paired_comparison_of_identical_predictions_is_zero(ehrkit, tmp_path):
    rows, _, _ = _binary()
    _write(tmp_path / "a.jsonl", rows)
    _write(tmp_path / "b.jsonl", list(reversed(rows)))
    done = ehrkit("evaluate", "a.jsonl", "--compare", "b.jsonl", "--on", "hadm_id",
                  "--bootstrap", "50")
    assert done.returncode == 0, done.stderr
    got = _metrics(done.stdout)
    diff = got[(None, "b-a", "auroc")]
    assert diff["value"] == 0 and diff["ci_low"] == 0 and diff["ci_high"] == 0
    assert got[(None, "a", "auroc")]["value"] == got[(None, "b", "auroc")]["value"]


def test_comparison_with_a_better_model_has_a_positive_difference(ehrkit, tmp_path):
    rows, y, _ = _binary(n=600)
    better = [dict(r, score=float(0.9 * r["label"] + 0.1 * r["score"])) for r in rows]
    _write(tmp_path / "a.jsonl", rows)
    _write(tmp_path / "b.jsonl", better)
    done = ehrkit("evaluate", "a.jsonl", "--compare", "b.jsonl", "--bootstrap", "200")
    diff = _metrics(done.stdout)[(None, "b-a", "auroc")]
    assert diff["value"] > 0 and diff["ci_low"] > 0


def test_subgroups_split_the_rows(ehrkit, tmp_path):
    rows, _, _ = _binary()
    _write(tmp_path / "p.jsonl", rows)
    done = ehrkit("evaluate", "p.jsonl", "--by", "sex", "--bootstrap", "0")
    got = _metrics(done.stdout)
    assert got[("sex=F", None, "auroc")]["n"] + got[("sex=M", None, "auroc")]["n"] == 400
    assert got[(None, None, "auroc")]["ci_low"] is None


def test_clinicalbert_aggregation_per_admission(tmp_path):
    from ehrkit.eval.predictions import Fields, aggregate, from_table

    table = pa.table({"hadm_id": ["a", "a", "b", "c", "c", "c"], "label": [1, 1, 0, 0, 0, 0],
                      "score": [0.9, 0.1, 0.3, 0.2, 0.2, 0.2]})
    preds = aggregate(from_table(table, Fields()), ["hadm_id"], "clinicalbert")
    by_id = dict(zip(preds.table["hadm_id"].to_pylist(), preds.score.tolist()))
    assert by_id["a"] == pytest.approx(0.70)
    assert by_id["b"] == pytest.approx(0.3) and by_id["c"] == pytest.approx(0.2)


def test_aggregate_through_the_command(ehrkit, tmp_path):
    rows = [{"hadm_id": f"h{i // 3}", "label": (i // 3) % 2, "score": 0.2 + 0.5 * ((i // 3) % 2)}
            for i in range(60)]
    _write(tmp_path / "chunks.jsonl", rows)
    done = ehrkit("evaluate", "chunks.jsonl", "--aggregate", "clinicalbert", "--group-by",
                  "hadm_id", "--bootstrap", "0")
    assert done.returncode == 0, done.stderr
    auroc = _metrics(done.stdout)[(None, None, "auroc")]
    assert auroc["n"] == 20 and auroc["value"] == 1.0


def test_multiclass_multilabel_regression_and_sequence_are_inferred(ehrkit, tmp_path):
    rng = np.random.default_rng(1)
    multiclass = [{"label": int(k), "score": list(np.eye(3)[k] * 0.5 + 0.5 / 3)}
                  for k in rng.integers(0, 3, 60)]
    multilabel = [{"label": [int(a), int(b)], "score": [0.8 * a + 0.1, 0.5]}
                  for a, b in rng.integers(0, 2, (60, 2))]
    y = rng.normal(size=60)
    regression = [{"label": float(v), "score": float(v + 0.1)} for v in y]
    sequence = [{"label": ["B-Disease", "I-Disease", "O"], "prediction": ["B-Disease", "O", "O"]}]
    expect = {"multiclass": "kappa", "multilabel": "auroc_macro", "regression": "mae",
              "sequence": "entity_f1"}
    for name, rows in (("multiclass", multiclass), ("multilabel", multilabel),
                       ("regression", regression), ("sequence", sequence)):
        _write(tmp_path / f"{name}.jsonl", rows)
        done = ehrkit("evaluate", f"{name}.jsonl", "--bootstrap", "20")
        assert done.returncode == 0, (name, done.stderr)
        got = _metrics(done.stdout)
        assert (None, None, expect[name]) in got, name
    got = _metrics(ehrkit("evaluate", "regression.jsonl", "--bootstrap", "0").stdout)
    assert got[(None, None, "mae")]["value"] == pytest.approx(mean_absolute_error(y, y + 0.1))
    got = _metrics(ehrkit("evaluate", "multiclass.jsonl", "--bootstrap", "0").stdout)
    assert got[(None, None, "accuracy")]["value"] == 1.0
    got = _metrics(ehrkit("evaluate", "sequence.jsonl", "--bootstrap", "0").stdout)
    assert got[(None, None, "entity_f1")]["value"] == 0.0


def test_multilabel_names_come_from_parquet_metadata(ehrkit, tmp_path):
    table = pa.table({"label": [[1, 0], [0, 1], [1, 1], [0, 0]],
                      "score": [[0.9, 0.2], [0.1, 0.8], [0.7, 0.6], [0.2, 0.3]]})
    table = table.replace_schema_metadata({"ehrkit.label_names": json.dumps(["shock", "sepsis"])})
    pq.write_table(table, tmp_path / "m.parquet")
    got = _metrics(ehrkit("evaluate", "m.parquet", "--bootstrap", "0").stdout)
    assert got[(None, None, "auroc[shock]")]["value"] == 1.0


def test_plots_are_png_files(ehrkit, tmp_path):
    rows, _, _ = _binary()
    _write(tmp_path / "p.jsonl", rows)
    done = ehrkit("evaluate", "p.jsonl", "--bootstrap", "0", "--plots", "plots")
    assert done.returncode == 0, done.stderr
    for name in ("roc.png", "pr.png", "calibration.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stdin_and_parquet_output(ehrkit, tmp_path):
    rows, _, _ = _binary(n=100)
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    done = ehrkit("evaluate", "--bootstrap", "0", "-o", "m.parquet", input=data)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.column_names[:6] == ["task", "metric", "value", "ci_low", "ci_high", "n"]


def test_errors_name_the_field_and_never_the_data(ehrkit, tmp_path):
    rows, _, _ = _binary(n=20)
    _write(tmp_path / "p.jsonl", rows)
    done = ehrkit("evaluate", "p.jsonl", "--label-field", "died")
    assert done.returncode == 1
    assert b"'died' not found" in done.stderr and b"hadm_id" in done.stderr
    rows[3]["score"] = None
    _write(tmp_path / "q.jsonl", rows)
    done = ehrkit("evaluate", "q.jsonl")
    assert done.returncode == 1 and b"row 4" in done.stderr and b"score" in done.stderr
    assert MARKER.encode() not in done.stderr
    assert ehrkit("evaluate", "p.jsonl", "--aggregate", "clinicalbert").returncode == 2


def test_empty_input_is_an_empty_output(ehrkit, tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    done = ehrkit("evaluate", "e.jsonl")
    assert done.returncode == 0 and done.stdout == b""
