"""Rendering of synthetic B-mode cines: fan geometry, speckle, a beating chamber, ECG trace, overlays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class ClipSpec:
    """Everything needed to render one cine."""

    height: int
    width: int
    num_frames: int
    fps: float
    degradation: str = "none"
    heart_rate: float = 72.0
    gain: float = 1.0
    colour_overlays: bool = True
    label_text: str = "ECHO"


class _Geometry:
    """Pixel grids and the fan-shaped sector of one image size."""

    def __init__(self, height: int, width: int, radius_frac: float = 0.80, half_angle_deg: float = 40.0):
        self.h, self.w = height, width
        self.cx, self.cy = width / 2.0, 0.06 * height
        self.radius = radius_frac * height
        self.half_angle = math.radians(half_angle_deg)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.xx, self.yy = xx, yy
        dx, dy = xx - self.cx, yy - self.cy
        self.r = np.sqrt(dx * dx + dy * dy)
        self.phi = np.arctan2(dx, np.maximum(dy, 1e-3))
        self.sector = (self.r <= self.radius) & (np.abs(self.phi) <= self.half_angle) & (dy > 0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _speckle(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Rayleigh speckle with mean ~1, slightly correlated like real B-mode speckle."""
    field = rng.rayleigh(scale=1.0 / math.sqrt(math.pi / 2.0), size=shape).astype(np.float32)
    return cv2.GaussianBlur(field, (0, 0), sigmaX=sigma * 1.4, sigmaY=sigma)


def _ellipse(geo: _Geometry, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((geo.xx - cx) / ax) ** 2 + ((geo.yy - cy) / ay) ** 2


def render_clip(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """Render a (T, H, W, 3) uint8 RGB cine: grey B-mode sector plus coloured overlays outside it."""
    geo = _Geometry(spec.height, spec.width)
    deg = spec.degradation
    scale = spec.height / 200.0
    sector = geo.sector.copy()
    if deg == "truncated_sector":
        sector &= geo.r <= 0.42 * geo.radius
        sector &= np.abs(geo.phi) <= math.radians(24)
    # Static anatomy: tissue texture, chamber positions (jittered per clip).
    texture = cv2.GaussianBlur(
        rng.normal(0, 1, (spec.height, spec.width)).astype(np.float32), (0, 0), 6 * scale
    )
    texture = 0.32 + 0.10 * texture / (texture.std() + 1e-6)
    lv_x = geo.cx + rng.uniform(-0.06, 0.06) * geo.radius
    lv_y = geo.cy + rng.uniform(0.50, 0.58) * geo.radius
    rv_dx = -rng.uniform(0.30, 0.36) * geo.radius
    phase0 = rng.uniform(0, 2 * math.pi)
    static_speckle = _speckle(rng, (spec.height, spec.width), 0.7 * scale)
    attenuation = 1.0 - 0.35 * np.clip(geo.r / geo.radius, 0, 1)
    shadow = np.ones((spec.height, spec.width), np.float32)
    if deg == "shadowing":
        width = rng.uniform(0.45, 0.6) * 2 * geo.half_angle
        start = rng.uniform(-geo.half_angle, geo.half_angle - width)
        shadow[(geo.phi >= start) & (geo.phi <= start + width)] = 0.04
        shadow[(geo.r > 0.30 * geo.radius) & (geo.r < 0.55 * geo.radius)] *= 0.25  # a dropout band
    ecg = _ecg_trace(spec, rng)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), np.uint8)
    for t in range(spec.num_frames):
        time_s = t / spec.fps
        c = 0.5 * (1 - math.cos(2 * math.pi * spec.heart_rate / 60.0 * time_s + phase0))  # contraction 0..1
        ax, ay = 0.20 * geo.radius * (1 - 0.22 * c), 0.32 * geo.radius * (1 - 0.12 * c)
        e_in = _ellipse(geo, lv_x, lv_y, ax, ay)
        e_out = _ellipse(geo, lv_x, lv_y, ax * (1.55 + 0.1 * c), ay * (1.35 + 0.05 * c))
        e_rv = _ellipse(
            geo, lv_x + rv_dx, lv_y - 0.04 * geo.radius, 0.11 * geo.radius * (1 - 0.15 * c), 0.22 * geo.radius
        )
        wall = _sigmoid((1 - e_out) * 10) * _sigmoid((e_in - 1) * 10)
        blood = np.maximum(_sigmoid((1 - e_in) * 10), _sigmoid((1 - e_rv) * 10))
        refl = texture * (1 - wall) + 1.0 * wall
        refl = refl * (1 - blood) + 0.03 * blood
        speckle = 0.75 * static_speckle + 0.25 * _speckle(rng, (spec.height, spec.width), 0.7 * scale)
        img = refl * speckle * attenuation * shadow * spec.gain
        img = 255.0 * np.clip(img * 0.85, 0, 1) ** 0.8
        if deg == "noise":
            img = 0.6 * img + rng.normal(0, 70, img.shape).astype(np.float32) + 40
        elif deg == "low_gain":
            img = img * 0.10
        elif deg == "blur":
            img = cv2.GaussianBlur(img, (0, 0), 0.03 * spec.height)
        grey = np.where(sector, np.clip(img, 1, 255), 0).astype(np.uint8)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        _draw_overlays(rgb, spec, geo, ecg, t, scale)
        frames[t] = rgb
    return frames


def _ecg_trace(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """(N, 2) int32 polyline of a synthetic ECG across the bottom band of the image."""
    x0, x1 = int(0.05 * spec.width), int(0.95 * spec.width)
    xs = np.arange(x0, x1)
    seconds_per_px = 2.5 / (x1 - x0)
    beat = 60.0 / spec.heart_rate
    tt = (xs - x0) * seconds_per_px + rng.uniform(0, beat)
    ph = (tt % beat) / beat
    wave = (
        0.15 * np.exp(-(((ph - 0.15) / 0.03) ** 2))
        - 0.10 * np.exp(-(((ph - 0.27) / 0.01) ** 2))
        + 1.0 * np.exp(-(((ph - 0.30) / 0.012) ** 2))
        - 0.20 * np.exp(-(((ph - 0.33) / 0.012) ** 2))
        + 0.30 * np.exp(-(((ph - 0.55) / 0.05) ** 2))
    )
    base_y, amp = 0.95 * spec.height, 0.06 * spec.height
    ys = base_y - amp * wave
    return np.stack([xs, ys], axis=1).round().astype(np.int32)


def _draw_overlays(
    rgb: np.ndarray, spec: ClipSpec, geo: _Geometry, ecg: np.ndarray, t: int, scale: float
) -> None:
    """Burned-in text, depth marks and a sweeping ECG trace, all outside the sector."""
    text_col = (235, 220, 120) if spec.colour_overlays else (220, 220, 220)
    ecg_col = (40, 220, 60) if spec.colour_overlays else (200, 200, 200)
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.32 * scale, max(1, int(round(scale)))
    for i, line in enumerate((spec.label_text, f"HR {spec.heart_rate:.0f}", f"{spec.fps:.0f} Hz")):
        cv2.putText(rgb, line, (3, int((11 + 11 * i) * scale)), font, fs, text_col, th, cv2.LINE_AA)
    cv2.putText(
        rgb, "16cm", (int(spec.width - 34 * scale), int(11 * scale)), font, fs, text_col, th, cv2.LINE_AA
    )
    for k in range(1, 8):  # depth ticks just right of the sector edge
        r = geo.radius * k / 8
        x = int(geo.cx + r * math.sin(geo.half_angle) + 14 * scale)
        y = int(geo.cy + r * math.cos(geo.half_angle))
        cv2.circle(rgb, (x, y), max(1, int(scale)), text_col, -1)
    cv2.polylines(rgb, [ecg], False, ecg_col, th, cv2.LINE_AA)
    # Sweep: an erase gap moving with time (changes between frames, yet thin).
    span = ecg[-1, 0] - ecg[0, 0]
    cursor = int(ecg[0, 0] + (t * 7 * scale) % span)
    y_lo, y_hi = int(ecg[:, 1].min() - 2), int(ecg[:, 1].max() + 2)
    rgb[y_lo:y_hi, cursor : cursor + int(5 * scale)] = 0
