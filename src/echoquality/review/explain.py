"""Grad-CAM on demand for the clip page, with the project's own ``gradcam.save_gradcam``.

The network is loaded once, on the first request (``--weights``, else the weights the run recorded in
``run_info.json``, else the usual resolution order); each map is cached on disk next to the previews.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from pathlib import Path
from typing import Any

from echoquality.config import PreprocessConfig
from echoquality.dicom import SkipError
from echoquality.preprocess import load_clip, normalize_clip

from .previews import PreviewError, cache_key


def _save_gradcam_function() -> Any:
    """``save_gradcam``, imported lazily: Grad-CAM pulls in the model code only when asked for."""
    try:
        return importlib.import_module("echoquality.evaluation.gradcam").save_gradcam
    except (ImportError, AttributeError) as exc:
        raise PreviewError(f"Grad-CAM is not available in this installation: {exc}") from exc


def weights_from_run(results_dir: Path) -> Path | None:
    """The weights file the run recorded (``run_info.json`` ``weights_path``) when it still exists."""
    try:
        value = json.loads((Path(results_dir) / "run_info.json").read_text()).get("weights_path")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(value) if value and Path(value).is_file() else None


class GradcamService:
    """One model, one lock: maps are computed one at a time on the CPU/GPU the server has."""

    def __init__(self, cache_dir: Path, weights: Path | None, cfg: PreprocessConfig | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.weights = weights
        self.cfg = cfg or PreprocessConfig()
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            from echoquality.model import load_model, resolve_weights_path

            weights = self.weights or resolve_weights_path(None)
            if weights is None or not Path(weights).is_file():
                raise PreviewError("no model weights: start `echoquality review` with --weights PATH")
            try:
                self._model = load_model(Path(weights), "cpu")
            except Exception as exc:  # noqa: BLE001 - WeightsError and torch errors: say why, per request
                raise PreviewError(f"cannot load the weights: {exc}") from None
        return self._model

    def path_for(self, source: Path) -> Path:
        """The cached GIF for *source* (made by :meth:`compute`)."""
        key = cache_key(source, True, self.cfg) or hashlib.sha1(str(source).encode()).hexdigest()
        weights_tag = hashlib.sha1(str(self.weights).encode()).hexdigest()[:8]
        return self.cache_dir / f"{key}-{weights_tag}.gif"

    def compute(self, source: Path) -> Path:
        """Write (or reuse) the Grad-CAM GIF of *source*; raises PreviewError with the reason."""
        out = self.path_for(source)
        if out.is_file():
            return out
        save_gradcam = _save_gradcam_function()
        with self._lock:
            if out.is_file():
                return out
            model = self._load()
            try:
                info, clip = load_clip(Path(source), self.cfg)
            except SkipError as exc:
                raise PreviewError(f"{exc.reason.value}: {exc.detail}") from None
            fps = max(1.0, (info.fps or self.cfg.default_fps) / max(self.cfg.frame_stride, 1))
            save_gradcam(model, normalize_clip(clip, self.cfg), clip, out, fps=fps)
        return out
