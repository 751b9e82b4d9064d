"""Judging a model and a run: metrics, evaluation on human labels, Grad-CAM, run summaries.

- ``metrics``: threshold and ranking metrics, bootstrap intervals (pure numpy).
- ``evaluate``: score human-labelled clips with a weights file and write the report.
- ``gradcam``: which parts of a cine drove the score.
- ``analyze``: pass rates, score spread and skips of an inference run.
"""
