"""Optuna tuning of guidance scale and synthetic mix ratio on the validation split
(docs/pipeline/tuning.md)."""
