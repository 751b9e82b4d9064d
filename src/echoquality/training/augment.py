"""Training-time augmentation of uint8 BGR clips (t, H, W, 3), BEFORE normalisation.

Every random parameter is drawn once per clip from the caller's numpy Generator and the
same transform is applied to every frame (a real probe moves the whole cine, not single
frames). Output is uint8 with the input's shape, so it feeds ``normalize_clip`` exactly
like an un-augmented clip. The original tool's augmentations clamped z-scored tensors to
[0, 1] and were never wired in; this works on the 0-255 pixels the model's statistics
refer to.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from echoquality.config import AugmentConfig


@dataclass(frozen=True)
class AugmentParams:
    """The transform drawn for one clip (identity values when an op is not applied)."""

    brightness: float = 1.0
    contrast: float = 1.0
    angle: float = 0.0  # degrees
    shift: tuple[float, float] = (0.0, 0.0)  # pixels (x, y)
    zoom: float = 1.0
    noise_std: float = 0.0
    noise_seed: int = 0
    temporal_keep: float = 1.0
    temporal_start: float = 0.0  # fraction of the droppable frames skipped at the start


def draw_params(cfg: AugmentConfig, rng: np.random.Generator, size: int) -> AugmentParams:
    """Draw one clip's transform. Every op consumes the same random numbers whether or not it applies,
    so changing one probability does not reshuffle the others."""
    u = rng.random(6)
    b = rng.uniform(*cfg.brightness_range)
    c = rng.uniform(*cfg.contrast_range)
    a = rng.uniform(-cfg.rotation_degrees, cfg.rotation_degrees)
    t = rng.uniform(-cfg.translation_fraction, cfg.translation_fraction, size=2) * size
    z = rng.uniform(*cfg.zoom_range)
    n = rng.uniform(0.0, cfg.noise_std)
    ns = int(rng.integers(0, 2**31 - 1))
    k = rng.uniform(*cfg.temporal_crop_range)
    ks = rng.random()
    return AugmentParams(
        brightness=float(b) if u[0] < cfg.brightness_p else 1.0,
        contrast=float(c) if u[1] < cfg.contrast_p else 1.0,
        angle=float(a) if u[2] < cfg.rotation_p else 0.0,
        shift=(float(t[0]), float(t[1])) if u[3] < cfg.translation_p else (0.0, 0.0),
        zoom=float(z) if u[4] < cfg.zoom_p else 1.0,
        noise_std=float(n) if u[5] < cfg.noise_p else 0.0,
        noise_seed=ns,
        temporal_keep=float(k) if rng.random() < cfg.temporal_crop_p else 1.0,
        temporal_start=float(ks),
    )


def apply_params(clip: np.ndarray, p: AugmentParams) -> np.ndarray:
    """Apply *p* to a uint8 (t, H, W, 3) clip; returns a new uint8 array of the same shape."""
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a uint8 (t, H, W, 3) clip, got {clip.dtype} {clip.shape}")
    t, h, w, _ = clip.shape
    out = clip
    if p.temporal_keep < 1.0 and t > 1:
        keep = max(1, int(round(t * p.temporal_keep)))
        start = int(round(p.temporal_start * (t - keep)))
        idx = start + np.floor(np.arange(t) * keep / t).astype(int)
        out = out[idx]
    if p.angle != 0.0 or p.zoom != 1.0 or p.shift != (0.0, 0.0):
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), p.angle, p.zoom)
        m[:, 2] += p.shift
        stacked = np.ascontiguousarray(out.transpose(1, 2, 0, 3).reshape(h, w, t * 3))
        warped = np.empty_like(stacked)
        # cv2 handles at most 512 channels per call
        for lo in range(0, t * 3, 510):
            hi = min(lo + 510, t * 3)
            part = cv2.warpAffine(
                np.ascontiguousarray(stacked[:, :, lo:hi]),
                m,
                (w, h),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            warped[:, :, lo:hi] = part.reshape(h, w, hi - lo)
        out = warped.reshape(h, w, t, 3).transpose(2, 0, 1, 3)
    if p.brightness != 1.0 or p.contrast != 1.0 or p.noise_std > 0:
        x = out.astype(np.float32)
        if p.contrast != 1.0:
            mean = float(x.mean())
            x = (x - mean) * p.contrast + mean
        if p.brightness != 1.0:
            x *= p.brightness
        if p.noise_std > 0:
            noise = np.random.default_rng(p.noise_seed).normal(0.0, p.noise_std, size=(h, w, 1))
            x += noise.astype(np.float32)[None]  # one field for the whole clip
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def augment_clip(clip: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Draw a transform from *rng* and apply it to every frame of *clip* (uint8 in, uint8 out)."""
    return apply_params(clip, draw_params(cfg, rng, clip.shape[1]))
