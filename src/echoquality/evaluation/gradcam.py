"""Grad-CAM for the quality network: which parts of the cine drove the score.

Hooks ``layer4`` (both architectures name it so), backpropagates the logit, weights each
channel by its mean gradient, sums, applies ReLU and normalises to [0, 1]. The coarse map
(2x7x7 for a 16x112x112 input on r2plus1d_18) is upsampled trilinearly over time AND space
to the clip, then overlaid on the ORIGINAL uint8 frames (not the z-scored tensor) and saved
as an animated GIF, one frame per clip frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def compute_cam(model: Any, tensor: Any, target_layer: str = "layer4") -> np.ndarray:
    """Grad-CAM volume (T, H, W) in [0, 1] for one (3, T, H, W) float tensor, at the input resolution."""
    import torch
    import torch.nn.functional as F

    layer = dict(model.named_children()).get(target_layer)
    if layer is None:
        raise ValueError(f"model has no child module {target_layer!r}")
    store: dict[str, torch.Tensor] = {}

    def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
        store["act"] = output
        output.register_hook(lambda g: store.__setitem__("grad", g))

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(tensor, dtype=torch.float32, device=device)
    if x.ndim == 4:
        x = x.unsqueeze(0)
    x = x.clone().requires_grad_(True)  # gradients flow even when every parameter is frozen
    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logit = model(x).reshape(-1)[0]
            model.zero_grad(set_to_none=True)
            logit.backward()
    finally:
        handle.remove()
        model.train(was_training)
    act, grad = store["act"].detach(), store["grad"].detach()  # (1, C, t, h, w)
    weights = grad.mean(dim=(2, 3, 4), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    return cam.cpu().numpy().astype(np.float32)


def overlay(clip_bgr: np.ndarray, cam: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """RGB uint8 frames (t, H, W, 3): the clip with a jet heat map blended in."""
    import cv2

    t, h, w, _ = clip_bgr.shape
    frames = []
    for i in range(t):
        heat = cv2.resize(cam[min(i, cam.shape[0] - 1)], (w, h), interpolation=cv2.INTER_LINEAR)
        colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
        blended = cv2.addWeighted(clip_bgr[i], 1 - alpha, colour, alpha, 0)
        frames.append(cv2.cvtColor(blended, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def save_gradcam(model: Any, tensor: Any, clip_uint8: np.ndarray, out_path: Path, fps: float = 10.0) -> Path:
    """Write an animated GIF of Grad-CAM over the clip's frames; returns *out_path*.

    *tensor* is the model input (3, T, H, W) (normalised, padded); *clip_uint8* the BGR frames
    (t, H, W, 3) it was made from, t <= T. The GIF has exactly t frames.
    """
    from PIL import Image

    clip = np.asarray(clip_uint8)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"clip must be uint8 (t, H, W, 3), got {clip.dtype} {clip.shape}")
    cam = compute_cam(model, tensor)
    frames = overlay(clip, cam[: clip.shape[0]])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    tmp = out_path.with_name(f".{out_path.stem}.tmp.gif")
    images[0].save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=int(1000 / fps),
        loop=0,
        optimize=False,
        disposal=1,
    )
    tmp.replace(out_path)
    return out_path
