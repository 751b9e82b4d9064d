"""EchoQuality configuration: reference defaults, YAML overrides, clear errors."""

from __future__ import annotations

import pytest

from echoquality.config import REFERENCE_MEAN_BGR, EchoConfig, load_config


def test_reference_preprocessing_defaults():
    p = EchoConfig().preprocess
    assert (p.image_size, p.num_frames, p.frame_stride, p.start_frame, p.pad_to_frames) == (112, 16, 2, 0, 32)
    assert p.mean_bgr == REFERENCE_MEAN_BGR == (29.110628, 28.076836, 29.096405)
    assert p.std_bgr == (47.989223, 46.456997, 47.20083)
    assert EchoConfig().inference.threshold == 0.3


def test_yaml_overrides_nested_sections(tmp_path):
    path = tmp_path / "echo.yaml"
    path.write_text(
        "preprocess:\n  fps_aware: true\n  mean_bgr: [1, 2, 3]\ntrain:\n  augment:\n    noise_p: 0.2\n"
    )
    cfg = load_config(path)
    assert cfg.preprocess.fps_aware is True
    assert cfg.preprocess.mean_bgr == (1, 2, 3)
    assert cfg.train.augment.noise_p == 0.2
    assert cfg.train.augment.brightness_p == 0.5


def test_unknown_keys_are_rejected(tmp_path):
    path = tmp_path / "echo.yaml"
    path.write_text("inference:\n  treshold: 0.4\n")
    with pytest.raises(ValueError, match="treshold"):
        load_config(path)
