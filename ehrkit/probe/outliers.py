"""Outlier scores of embeddings (FMs for EHRs, methods.md 3.7 item 2): an IsolationForest with
random_state = seed, fitted on the training rows.

`outlier_score` is the forest's anomaly score, -score_samples (higher is more anomalous, in
(0, 1]); `outlier` is predict == -1, i.e. a score above 0.5 (contamination 'auto').

The fitted trees are kept as plain arrays (`Forest`), so a saved probe can score new rows
without pickling sklearn objects; `Forest.score` walks them with numpy and reproduces sklearn's
score_samples: per tree, the leaf's depth plus the average path length of an isolation tree
with as many samples as the leaf, minus one; then 2 ** (-mean depth / c(max_samples)).
The forest is fitted on the standardised features: isolation splits are drawn uniformly between
a feature's minimum and maximum, so scaling a feature does not change the trees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean depth of an unsuccessful search in a binary search tree of n keys.

    >>> average_path_length(np.array([1, 2, 256])).round(3).tolist()
    [0.0, 1.0, 10.245]
    """
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@dataclass
class Tree:
    left: np.ndarray  # child node ids, -1 at leaves
    right: np.ndarray
    feature: np.ndarray  # column of the full feature matrix
    threshold: np.ndarray
    value: np.ndarray  # at leaves: depth (root = 1) + c(samples in the leaf) - 1

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), np.int64)
        rows = np.arange(len(x))
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return self.value[node]
            # sklearn compares float32 inputs with float64 thresholds
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)


@dataclass
class Forest:
    trees: list[Tree]
    max_samples: int

    def score(self, x: np.ndarray) -> np.ndarray:
        """Anomaly score per row (= -IsolationForest.score_samples)."""
        x32 = np.asarray(x, np.float32).astype(np.float64)
        depths = np.zeros(len(x))
        for tree in self.trees:
            depths += tree.leaf_values(x32)
        denominator = len(self.trees) * float(average_path_length(np.array([self.max_samples]))[0])
        if denominator == 0:
            return np.ones(len(x))
        return 2.0 ** (-depths / denominator)

    def to_json(self) -> dict:
        return {"max_samples": self.max_samples, "trees": [
            {"left": t.left.tolist(), "right": t.right.tolist(), "feature": t.feature.tolist(),
             "threshold": t.threshold.tolist(), "value": t.value.tolist()} for t in self.trees]}

    @classmethod
    def from_json(cls, data: dict) -> "Forest":
        trees = [Tree(np.asarray(t["left"], np.int64), np.asarray(t["right"], np.int64),
                      np.asarray(t["feature"], np.int64), np.asarray(t["threshold"], np.float64),
                      np.asarray(t["value"], np.float64)) for t in data["trees"]]
        return cls(trees, int(data["max_samples"]))


def fit_forest(z: np.ndarray, seed: int) -> Forest:
    """An IsolationForest (sklearn defaults, random_state = seed) as plain arrays."""
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(random_state=seed).fit(z)
    subsampled = getattr(model, "_max_features", z.shape[1]) != z.shape[1]
    trees = []
    for estimator, columns in zip(model.estimators_, model.estimators_features_):
        t = estimator.tree_
        depth = t.compute_node_depths().astype(np.float64)
        value = depth + average_path_length(t.n_node_samples) - 1.0
        feature = np.where(t.children_left >= 0, t.feature, 0).astype(np.int64)
        if subsampled:
            feature = np.asarray(columns)[feature]
        trees.append(Tree(t.children_left.astype(np.int64), t.children_right.astype(np.int64),
                          feature, t.threshold.astype(np.float64), value))
    return Forest(trees, int(model.max_samples_))
