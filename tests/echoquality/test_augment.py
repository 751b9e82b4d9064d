"""Clip augmentation on uint8 frames: one transform per clip, seeded, shape/dtype/range kept."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from echoquality.config import AugmentConfig
from echoquality.training.augment import AugmentParams, apply_params, augment_clip, draw_params

ALL_ON = AugmentConfig(
    brightness_p=1.0,
    contrast_p=1.0,
    rotation_p=1.0,
    translation_p=1.0,
    zoom_p=1.0,
    noise_p=1.0,
    temporal_crop_p=1.0,
    brightness_range=(0.7, 1.3),
    contrast_range=(0.7, 1.3),
    rotation_degrees=15.0,
    translation_fraction=0.1,
    zoom_range=(0.8, 1.2),
    noise_std=10.0,
    temporal_crop_range=(0.6, 0.8),
)


def _clip(t: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.zeros((112, 112, 3), np.uint8)
    base[30:80, 40:90] = rng.integers(60, 255, size=(50, 50, 3), dtype=np.uint8)
    frames = [np.roll(base, shift=i * 2, axis=1) for i in range(t)]
    return np.stack(frames)


def test_shape_dtype_range_kept():
    clip = _clip()
    for seed in range(10):
        out = augment_clip(clip, ALL_ON, np.random.default_rng(seed))
        assert out.shape == clip.shape
        assert out.dtype == np.uint8
        assert out.min() >= 0 and out.max() <= 255
    # input untouched
    np.testing.assert_array_equal(clip, _clip())


def test_same_transform_for_every_frame():
    frame = _clip(1)[0]
    clip = np.repeat(frame[None], 10, axis=0)
    for seed in range(8):
        out = augment_clip(clip, ALL_ON, np.random.default_rng(seed))
        assert not np.array_equal(out[0], frame)  # something happened
        for i in range(1, 10):
            np.testing.assert_array_equal(out[i], out[0])


def test_seeded_reproducible_and_varies_with_seed():
    clip = _clip()
    a = augment_clip(clip, ALL_ON, np.random.default_rng(123))
    b = augment_clip(clip, ALL_ON, np.random.default_rng(123))
    c = augment_clip(clip, ALL_ON, np.random.default_rng(124))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_probabilities_zero_is_identity():
    off = dataclasses.replace(
        ALL_ON,
        brightness_p=0,
        contrast_p=0,
        rotation_p=0,
        translation_p=0,
        zoom_p=0,
        noise_p=0,
        temporal_crop_p=0,
    )
    clip = _clip()
    np.testing.assert_array_equal(augment_clip(clip, off, np.random.default_rng(0)), clip)
    assert draw_params(off, np.random.default_rng(0), 112) == AugmentParams(
        noise_seed=draw_params(off, np.random.default_rng(0), 112).noise_seed,
        temporal_start=draw_params(off, np.random.default_rng(0), 112).temporal_start,
    )


def test_individual_ops_do_what_they_say():
    clip = _clip()
    brighter = apply_params(clip, AugmentParams(brightness=1.2))
    assert brighter.astype(float).mean() > clip.astype(float).mean()
    lower_contrast = apply_params(clip, AugmentParams(contrast=0.5))
    assert lower_contrast.astype(float).std() < clip.astype(float).std()
    shifted = apply_params(clip, AugmentParams(shift=(10.0, 0.0)))
    np.testing.assert_array_equal(shifted[:, :, 10:], clip[:, :, :-10])
    rotated = apply_params(clip, AugmentParams(angle=90.0))
    np.testing.assert_array_equal(rotated[0], np.rot90(clip[0], k=1, axes=(0, 1)))
    cropped = apply_params(clip, AugmentParams(temporal_keep=0.5, temporal_start=0.0))
    assert cropped.shape == clip.shape
    np.testing.assert_array_equal(cropped[0], clip[0])
    np.testing.assert_array_equal(cropped[-1], clip[5])


def test_rejects_non_uint8():
    with pytest.raises(ValueError):
        apply_params(np.zeros((2, 8, 8, 3), np.float32), AugmentParams())
