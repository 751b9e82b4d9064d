"""``echoquality.gradcam``: the stable import path of :mod:`echoquality.evaluation.gradcam`.

``infer --gradcam`` imports it from here; new code imports ``echoquality.evaluation.gradcam``.
"""

from echoquality.evaluation.gradcam import compute_cam, overlay, save_gradcam

__all__ = ["compute_cam", "overlay", "save_gradcam"]
