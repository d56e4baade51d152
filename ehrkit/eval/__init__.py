"""Evaluation: metrics, bootstrap confidence intervals and score aggregation (pure numpy)."""
