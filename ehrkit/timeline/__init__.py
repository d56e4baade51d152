"""Timelines from structured data: CLIF and MEDS events, a vocabulary with quantile bins,
integer token timelines with outcomes, and hourly series for recurrent models."""
