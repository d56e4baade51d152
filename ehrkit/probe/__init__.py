"""Linear probes on embeddings (`ehrkit probe`): methods.md 3.7 items 1-2 and 5.5.

Modules: `labels` (label fields, task inference), `data` (features, splits), `fit`
(imputation, standardisation, the C grid, the JSON artifact), `predictions` (prediction
records), `curves` (learning curves: training fractions and few-shot), `outliers`
(IsolationForest scores), `scoring` (the sklearn metrics), `run` (the command).

sklearn is imported inside functions only; importing this package stays cheap.
"""

from ehrkit.probe.curves import CurveSettings, learning_curves
from ehrkit.probe.fit import DEFAULT_GRID, FitSettings, LabelModel, Preprocess, Probe, fit_label
from ehrkit.probe.labels import Labels, Target, build
from ehrkit.probe.run import ProbeRequest, run_probe

__all__ = ["CurveSettings", "DEFAULT_GRID", "FitSettings", "LabelModel", "Labels", "Preprocess",
           "Probe", "ProbeRequest", "Target", "build", "fit_label", "learning_curves",
           "run_probe"]
