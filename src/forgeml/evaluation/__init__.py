"""Evaluation: streaming metrics (torchmetrics) per split."""
